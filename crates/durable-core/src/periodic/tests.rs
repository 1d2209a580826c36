use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Paris;

use super::{CatchUp, Schedule};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid time")
}

fn ms(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(n).expect("valid ms")
}

#[test]
fn every_falls_on_multiples_of_the_period() {
    let every = Schedule::every(Duration::from_millis(200));
    assert_eq!(every.next_after(ms(1_000)), Some(ms(1_200)));
    assert_eq!(every.next_after(ms(1_199)), Some(ms(1_200)));
    assert_eq!(every.latest_at(ms(1_199)), Some(ms(1_000)));
    assert_eq!(every.latest_at(ms(1_200)), Some(ms(1_200)));
    // Before the epoch too (floor, not truncation toward zero).
    assert_eq!(every.next_after(ms(-50)), Some(ms(0)));
    assert_eq!(every.to_string(), "every 200ms");
}

#[test]
fn due_keeps_the_latest_and_counts_the_rest() {
    let every = Schedule::every(Duration::from_secs(1));
    let (due, earlier) = every.due(ms(0), ms(10_500), 3);
    assert_eq!(due, [ms(8_000), ms(9_000), ms(10_000)]);
    assert_eq!(earlier, 7);
    let (due, earlier) = every.due(ms(0), ms(10_500), 100);
    assert_eq!(due.len(), 10);
    assert_eq!((due[0], earlier), (ms(1_000), 0));
    // Nothing after `after`: nothing due, at the boundary too.
    assert_eq!(every.due(ms(10_000), ms(10_999), 5), (vec![], 0));
    assert_eq!(every.due(ms(10_000), ms(11_000), 5), (vec![ms(11_000)], 0));

    let cron = Schedule::cron("*/10 * * * * *", chrono_tz::UTC).expect("parse");
    let (due, earlier) = cron.due(ms(0), ms(95_000), 2);
    assert_eq!(due, [ms(80_000), ms(90_000)]);
    assert_eq!(earlier, 7);
}

#[test]
fn cron_follows_the_wall_clock_across_daylight_saving_changes() {
    // 09:00 every day in Paris: 08:00 UTC in winter, 07:00 UTC in summer. The change to
    // summer time is on 2026-03-29.
    let daily = Schedule::cron("0 9 * * *", Paris).expect("parse");
    assert_eq!(
        daily.next_after(utc(2026, 3, 28, 8, 0, 0)),
        Some(utc(2026, 3, 29, 7, 0, 0))
    );
    let (due, _) = daily.due(utc(2026, 3, 27, 12, 0, 0), utc(2026, 3, 31, 12, 0, 0), 10);
    assert_eq!(
        due,
        [
            utc(2026, 3, 28, 8, 0, 0),
            utc(2026, 3, 29, 7, 0, 0),
            utc(2026, 3, 30, 7, 0, 0),
            utc(2026, 3, 31, 7, 0, 0),
        ]
    );
    // 02:30 does not exist on 2026-03-29 in Paris: it runs at the first instant after the
    // gap (03:00 local, 01:00 UTC), once.
    let in_gap = Schedule::cron("30 2 * * *", Paris).expect("parse");
    let (due, _) = in_gap.due(utc(2026, 3, 28, 12, 0, 0), utc(2026, 3, 30, 12, 0, 0), 10);
    assert_eq!(due, [utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 30, 0, 30, 0)]);
    // 02:30 happens twice on 2026-10-25 (back to winter time): it runs once, the first time.
    let (due, _) = in_gap.due(utc(2026, 10, 24, 12, 0, 0), utc(2026, 10, 25, 12, 0, 0), 10);
    assert_eq!(due, [utc(2026, 10, 25, 0, 30, 0)]);
    assert_eq!(in_gap.to_string(), "cron 30 2 * * * in Europe/Paris");
}

#[test]
fn cron_accepts_five_and_six_fields_and_refuses_nonsense() {
    let weekdays = Schedule::cron("0 9 * * MON-FRI", Paris).expect("5 fields");
    // Friday 2026-03-06 10:00 UTC: next is Monday 09:00 Paris (08:00 UTC).
    assert_eq!(
        weekdays.next_after(utc(2026, 3, 6, 10, 0, 0)),
        Some(utc(2026, 3, 9, 8, 0, 0))
    );
    let seconds = Schedule::cron("15 * * * * *", chrono_tz::UTC).expect("6 fields");
    assert_eq!(
        seconds.next_after(utc(2026, 1, 1, 0, 0, 15)),
        Some(utc(2026, 1, 1, 0, 1, 15))
    );
    // Strictly after, also from inside the matching second.
    assert_eq!(
        seconds.next_after(ms(utc(2026, 1, 1, 0, 0, 15).timestamp_millis() - 1)),
        Some(utc(2026, 1, 1, 0, 0, 15))
    );
    for bad in ["", "61 * * * *", "not a cron", "* * * *"] {
        let error = Schedule::cron(bad, Paris).expect_err(bad);
        assert!(
            matches!(error, crate::Error::InvalidSchedule { .. }),
            "{bad}: {error}"
        );
    }
}

#[test]
fn catch_up_policies_choose_among_due_occurrences() {
    let due = [ms(1_000), ms(2_000), ms(3_000)];
    let now = ms(3_500);
    assert_eq!(CatchUp::Latest.select(&due, now), [ms(3_000)]);
    assert_eq!(CatchUp::Skip.select(&due, now), [ms(3_000)]);
    let much_later = ms(3_000 + 61_000);
    assert!(CatchUp::Skip.select(&due, much_later).is_empty());
    assert_eq!(CatchUp::Latest.select(&due, much_later), [ms(3_000)]);
    assert_eq!(
        CatchUp::AllUpTo(2).select(&due, now),
        [ms(2_000), ms(3_000)]
    );
    assert_eq!(CatchUp::AllUpTo(10).select(&due, now), due);
    assert_eq!(CatchUp::AllUpTo(0).select(&due, now), [ms(3_000)]);
    assert!(CatchUp::Latest.select(&[], now).is_empty());
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Nightly;

impl crate::Task for Nightly {
    const NAME: &'static str = "periodic_test_nightly";
    type State = ();
    async fn run(self, _cx: crate::TaskContext<()>) -> Result<(), crate::TaskError> {
        Ok(())
    }
}

#[test]
fn schedules_are_named_after_their_task_unless_named() {
    let every = Schedule::every(Duration::from_secs(60));
    let registry = crate::Registry::new()
        .periodic(super::Periodic::of(every.clone(), Nightly))
        .periodic(super::Periodic::of(every, Nightly).name("nightly_eu"));
    assert_eq!(
        registry.periodic_names(),
        ["periodic_test_nightly", "nightly_eu"]
    );
}

#[test]
#[should_panic(expected = "added twice")]
fn a_schedule_name_is_used_once() {
    let every = Schedule::every(Duration::from_secs(60));
    let _ = crate::Registry::new()
        .periodic(super::Periodic::of(every.clone(), Nightly))
        .periodic(super::Periodic::of(every, Nightly));
}

#[test]
fn catch_up_is_bounded() {
    assert_eq!(
        CatchUp::AllUpTo(u32::MAX).keep(),
        super::MAX_CATCH_UP as usize
    );
    assert_eq!(CatchUp::AllUpTo(0).keep(), 1);
}
