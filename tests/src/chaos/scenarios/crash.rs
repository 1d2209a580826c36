//! Scenario 2, crash mid-task: under steady load, SIGKILL the server three times at random moments
//! and restart it each time. Every acknowledged signup gets exactly one `sent_emails` row;
//! the longest time from a restart to the last task recovered from its kill is reported.

use std::time::{Duration, Instant};

use super::{
    account, all_completed, check_answers, deadline, logs_of, owned, secs, start, Ctx, Stage,
};
use crate::chaos::db::{snapshot, wait_finished, wait_for};
use crate::chaos::load::{Load, LoadSpec};
use crate::chaos::progress;

const ENV: &[(&str, &str)] = &[("EMAIL_DELAY_MS", "300"), ("LEASE_MS", "1000")];

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    let Some(Stage {
        db,
        mut servers,
        inspector,
        targets,
    }) = Stage::start(&ctx, 1, ENV).await
    else {
        return;
    };
    let rate = ctx.params.pick(
        60.0,
        ctx.params.requests as f64 / ctx.params.duration.as_secs_f64(),
    );
    let load = Load::start(&targets, LoadSpec::new("crash", rate).invites(6));
    let began = Instant::now();
    let window_ms = ctx.params.pick(
        (300, 1200),
        (1000, (ctx.params.duration.as_millis() / 4) as u64),
    );

    let mut worst = Duration::ZERO;
    let mut unfinished_at_kills = 0;
    for kill in 1..=3 {
        tokio::time::sleep(Duration::from_millis(rand::random_range(
            window_ms.0..=window_ms.1,
        )))
        .await;
        // Kill while emails are being sent (the point of the scenario), not between tasks.
        wait_for(&inspector, "some task is processing", deadline(&ctx), |s| {
            s.count("processing") > 0
        })
        .await;
        let victim = servers.last_mut().expect("a server runs");
        victim.sigkill();
        let at_kill = snapshot(&inspector, deadline(&ctx)).await;
        let ids: Vec<String> = at_kill
            .tasks
            .iter()
            .filter(|t| t.state == "pending" || t.state == "processing")
            .map(|t| t.id.clone())
            .collect();
        unfinished_at_kills += ids.len();
        let restarted = start(&db, ENV).await;
        targets.set([restarted.base_url().to_owned()]);
        let ready = restarted.ready_at();
        servers.push(restarted);
        wait_for(
            &inspector,
            "the tasks unfinished at the kill are finished",
            deadline(&ctx),
            |s| {
                ids.iter().all(|id| {
                    s.task(id)
                        .is_some_and(|t| t.state != "pending" && t.state != "processing")
                })
            },
        )
        .await;
        let took = ready.elapsed();
        progress(&format!(
            "kill {kill}: {} unfinished tasks recovered {took:?} after the restart",
            ids.len()
        ));
        worst = worst.max(took);
    }
    // Keep the load on for the rest of the duration (at least a second after the last kill).
    let rest = ctx
        .params
        .duration
        .saturating_sub(began.elapsed())
        .max(Duration::from_secs(1));
    tokio::time::sleep(rest).await;
    let report = load.stop().await;
    let done = wait_finished(&inspector, deadline(&ctx)).await;

    check_answers(&ctx, &report, &[], false);
    account(
        &ctx,
        &owned(report.acknowledged()),
        &done,
        &logs_of(&servers),
    );
    all_completed(&ctx, &done);
    ctx.rec.with(|r| r.recovery = Some(worst));
    let stored_unacked = done.tasks.len().saturating_sub(report.acknowledged_count());
    ctx.rec.note(format!(
        "{} requests at {rate:.0}/s, 3 SIGKILLs: {unfinished_at_kills} tasks unfinished at the kills, \
         {} requests cut off by a kill ({stored_unacked} of those stored anyway, all done); \
         longest restart-to-last-recovered {} (LEASE_MS=1000)",
        report.sent.len(),
        report.failed_count(),
        secs(worst)
    ));
}
