//! The claim positions and the looks' schedule, on a paused clock.

use super::*;

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("time")
}

fn at(rank: i32, ms: i64) -> Position {
    Position {
        rank,
        run_at: time(ms),
        id: Uuid::now_v7(),
    }
}

#[tokio::test(start_paused = true)]
async fn claims_resume_only_after_a_slow_walk_and_walk_again_each_second() {
    let resume = Resume::default();
    assert_eq!(resume.start("any"), None, "no claim yet");
    resume.record(
        "any",
        None,
        Duration::from_millis(1),
        Some(at(0, 10_000)),
        Some(time(10_000)),
    );
    assert_eq!(
        resume.start("any"),
        None,
        "a fast walk keeps walking from the head"
    );

    resume.record("any", None, SLOW, Some(at(0, 20_000)), Some(time(20_000)));
    let from = resume
        .start("any")
        .expect("a slow walk makes claims resume");
    assert_eq!(from.rank, 0);
    assert_eq!(from.run_at.timestamp_millis(), 20_000 - 500, "slack behind");
    assert_eq!(from.id, Uuid::nil());
    assert_eq!(resume.start("queue:mail"), None, "kinds are apart");

    // A resumed claim moves the position forward, never back.
    resume.record(
        "any",
        Some(from),
        Duration::from_millis(1),
        Some(at(0, 30_000)),
        Some(time(30_000)),
    );
    assert_eq!(
        resume.start("any").map(|p| p.run_at.timestamp_millis()),
        Some(29_500)
    );
    resume.record(
        "any",
        Some(from),
        Duration::from_millis(1),
        Some(at(0, 25_000)),
        Some(time(25_000)),
    );
    assert_eq!(
        resume.start("any").map(|p| p.run_at.timestamp_millis()),
        Some(29_500)
    );

    assert_eq!(resume.look_due("any"), None, "no look within a second");
    tokio::time::advance(LOOK_EVERY).await;
    assert!(resume.start("any").is_some(), "claims go on resuming");
    let (look, reach) = resume.look_due("any").expect("a look each second");
    assert_eq!(
        (look.run_at.timestamp_millis(), reach),
        (29_500, Reach::Near),
        "near the position"
    );
    assert_eq!(resume.look_due("any"), None, "one look at a time");
    resume.looked("any", reach, Some(true), Duration::from_millis(30));
    assert_eq!(
        resume.start("any"),
        None,
        "it found a row before the position: a walk from the head"
    );

    // A walk from the head that took 200 ms: the next look 4 s later, not 1 s.
    resume.record(
        "any",
        None,
        Duration::from_millis(200),
        Some(at(0, 40_000)),
        Some(time(40_000)),
    );
    assert!(resume.start("any").is_some(), "resuming again");
    tokio::time::advance(LOOK_EVERY * 3).await;
    assert_eq!(resume.look_due("any"), None, "no look after 3 s");
    tokio::time::advance(LOOK_EVERY).await;
    let (_, reach) = resume.look_due("any").expect("a look after 4 s");
    resume.looked("any", reach, Some(false), Duration::from_millis(100));
    assert!(
        resume.start("any").is_some(),
        "nothing before the position, and the look was slow: resuming"
    );
    tokio::time::advance(LOOK_EVERY * 2).await;
    let (_, reach) = resume.look_due("any").expect("a look 2 s later");
    assert_eq!(reach, Reach::Near);
    resume.looked("any", reach, Some(false), Duration::from_millis(1));
    assert!(
        resume.start("any").is_some(),
        "a fast near look tells nothing about the head: resuming"
    );
    // 30 s after the walk from the head, a full look.
    tokio::time::advance(LOOK_EVERY * 24).await;
    let (_, reach) = resume.look_due("any").expect("a look");
    assert_eq!(reach, Reach::Full);
    resume.looked("any", reach, Some(false), Duration::from_millis(1));
    assert_eq!(
        resume.start("any"),
        None,
        "a fast full look: exact order again"
    );
}

#[tokio::test(start_paused = true)]
async fn near_looks_each_second_and_a_full_one_every_thirty() {
    let resume = Resume::default();
    resume.record("any", None, SLOW, Some(at(0, 20_000)), Some(time(20_000)));
    let mut reaches = Vec::new();
    for _ in 0..61 {
        tokio::time::advance(LOOK_EVERY).await;
        if let Some((_, reach)) = resume.look_due("any") {
            // Full looks are slow (2 s: the next full one 40 s later), near ones fast.
            let took = match reach {
                Reach::Full => Duration::from_secs(2),
                Reach::Near => Duration::from_millis(2),
            };
            resume.looked("any", reach, Some(false), took);
            reaches.push(reach);
        }
    }
    let full: Vec<usize> = (0..reaches.len())
        .filter(|&i| reaches[i] == Reach::Full)
        .collect();
    assert_eq!(reaches.len(), 61, "a look each second");
    assert_eq!(
        full,
        [29],
        "the first full look 30 s after the walk, the next 40 s later"
    );
    assert!(resume.start("any").is_some(), "slow full looks: resuming");
    let (_, reach) = {
        tokio::time::advance(LOOK_EVERY * 10).await;
        resume.look_due("any").expect("a look")
    };
    assert_eq!(reach, Reach::Full);
    resume.looked("any", reach, Some(true), Duration::from_millis(2));
    assert_eq!(resume.start("any"), None, "it found a row: from the head");
}

#[tokio::test(start_paused = true)]
async fn a_look_that_fails_or_never_answers_brings_a_walk_from_the_head() {
    let resume = Resume::default();
    resume.record("any", None, SLOW, Some(at(0, 20_000)), Some(time(20_000)));
    tokio::time::advance(LOOK_EVERY).await;
    let (_, reach) = resume.look_due("any").expect("a look");
    resume.looked("any", reach, None, Duration::from_millis(5));
    assert_eq!(resume.start("any"), None, "a failed look: from the head");

    resume.record("any", None, SLOW, Some(at(0, 30_000)), Some(time(30_000)));
    tokio::time::advance(LOOK_EVERY).await;
    assert!(resume.look_due("any").is_some());
    tokio::time::advance(LOOK_EVERY).await;
    assert!(
        resume.start("any").is_some(),
        "a look in flight for a second: still resuming"
    );
    tokio::time::advance(LOOK_EVERY).await;
    assert_eq!(
        resume.start("any"),
        None,
        "no answer two periods after the last: from the head"
    );
}

#[tokio::test(start_paused = true)]
async fn behind_a_backlog_the_next_claim_starts_where_the_last_one_ended() {
    let resume = Resume::default();
    // Claims keep up: the rows claimed are as old as the claim.
    resume.record("any", None, SLOW, Some(at(0, 20_000)), Some(time(20_010)));
    assert_eq!(
        resume.start("any").map(|p| p.run_at.timestamp_millis()),
        Some(19_510),
        "slack before the claim's time"
    );
    // A backlog: the rows claimed were enqueued 5 s before the claim. Anything enqueued
    // later that is still to commit sorts after them.
    resume.record(
        "any",
        resume.start("any"),
        Duration::from_millis(1),
        Some(at(0, 21_000)),
        Some(time(26_000)),
    );
    let from = resume.start("any").expect("resuming");
    assert_eq!(
        from.run_at.timestamp_millis(),
        21_000,
        "where the claim ended"
    );
    assert_eq!(from.id, Uuid::nil(), "with the rows that share its run_at");
}
