//! Scenario 8, backend termination (PostgreSQL): under load, the app's `active` and `idle in
//! transaction` backends are terminated (`pg_terminate_backend`) twice a second (and every
//! fourth round its idle pooled connections as well). The process
//! stays up, nothing stays `processing` beyond one lease after the kills stop, and the task
//! throughput (a burn-down of a burst of invites, measured before and after) returns to at
//! least 90% of its baseline.

use std::time::{Duration, Instant};

use super::{
    account, all_completed, check_answers, deadline, owned, postgres_only, secs, Ctx, Stage,
};
use crate::chaos::db::{database_name, wait_finished, PgAdmin};
use crate::chaos::load::{Load, LoadReport, LoadSpec, Targets};
use crate::chaos::{logs, progress};
use crate::inspect::Inspector;

const LEASE: Duration = Duration::from_millis(2000);
const EMAIL_DELAY: Duration = Duration::from_millis(200);
const ENV: &[(&str, &str)] = &[
    ("EMAIL_DELAY_MS", "200"),
    ("WORKER_CONCURRENCY", "16"),
    ("LEASE_MS", "2000"),
];

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    if postgres_only(
        &ctx,
        "terminates database backends; SQLite has none (its outage is scenario 6)",
    ) {
        return;
    }
    let Some(Stage {
        db,
        mut servers,
        inspector,
        targets,
    }) = Stage::start(&ctx, 1, ENV).await
    else {
        return;
    };
    let mut server = servers.remove(0);
    let burst = ctx.params.pick(200, 500);
    let mut reports = LoadReport::default();

    let (before, report) = throughput(&ctx, &targets, &inspector, "before", burst).await;
    reports.extend(report);

    let name = database_name(db.url());
    let mut admin = PgAdmin::connect().await;
    let load = Load::start(&targets, LoadSpec::new("term", 60.0).invites(3));
    let began = Instant::now();
    let (mut killed_busy, mut killed_idle, mut rounds) = (0, 0, 0u32);
    while began.elapsed() < ctx.params.duration {
        rounds += 1;
        // Statements are short: look for a busy backend for up to 200 ms per round.
        let round = Instant::now();
        loop {
            let n = admin
                .terminate(&name, "axum-durable", &["active", "idle in transaction"])
                .await
                .expect("pg_terminate_backend");
            killed_busy += n;
            if n > 0 || round.elapsed() > Duration::from_millis(200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Every fourth round, the pool's idle connections too (a failover or a proxy
        // dropping every connection): the pool must notice and reconnect.
        if rounds % 4 == 0 {
            killed_idle += admin
                .terminate(&name, "axum-durable", &["idle"])
                .await
                .expect("pg_terminate_backend");
        }
        tokio::time::sleep_until((began + Duration::from_millis(500) * rounds).into()).await;
    }
    let kills_ended = Instant::now();
    let during = load.stop().await;
    wait_finished(&inspector, deadline(&ctx)).await;
    let settled = kills_ended.elapsed();
    ctx.rec.check(settled < LEASE + EMAIL_DELAY + Duration::from_secs(3), || {
        format!("tasks stayed pending/processing {settled:?} after the kills stopped (lease {LEASE:?})")
    });
    ctx.rec.check(server.is_running(), || {
        "the server exited while its backends were terminated".to_owned()
    });
    let answers_503 = during.with_status(503).count();
    check_answers(&ctx, &during, &[503], false);
    let during_acked = during.acknowledged_count();
    let during_sent = during.sent.len();
    reports.extend(during);

    // Throughput after: the best of up to three burn-downs (a 2-core machine is noisy).
    let mut after = 0.0_f64;
    let mut tries = 0;
    while tries < 3 && after < 0.9 * before {
        let (rate, report) = throughput(&ctx, &targets, &inspector, "after", burst).await;
        reports.extend(report);
        after = after.max(rate);
        tries += 1;
    }
    ctx.rec.check(after >= 0.9 * before, || {
        format!("throughput after the kills {after:.0}/s < 90% of {before:.0}/s")
    });
    let done = wait_finished(&inspector, deadline(&ctx)).await;
    let log = server.log_text();
    let relistened = logs::count(&log, "LISTEN connection re-established")
        + logs::count(&log, "LISTEN connection dropped and re-established");
    account(
        &ctx,
        &owned(reports.acknowledged()),
        &done,
        std::slice::from_ref(&log),
    );
    all_completed(&ctx, &done);
    ctx.rec.with(|r| r.recovery = Some(settled));
    ctx.rec.note(format!(
        "{rounds} rounds in {} terminated {killed_busy} active/idle-in-transaction backends (+ {killed_idle} idle ones \
         every 4th round; the LISTEN connection came back {relistened} times); under load {during_acked} of \
         {during_sent} requests acknowledged, {answers_503} answered 503; all settled {} after the last kill; \
         throughput {before:.0} tasks/s before, {after:.0} after ({:.0}%, best of {tries})",
        secs(ctx.params.duration),
        secs(settled),
        after / before * 100.0
    ));
}

/// Sends a burst of `n` invites and measures tasks completed per second until all are done.
async fn throughput(
    ctx: &Ctx,
    targets: &Targets,
    inspector: &Inspector,
    label: &str,
    n: usize,
) -> (f64, LoadReport) {
    let started = Instant::now();
    let prefix = format!("rate-{label}-{}", rand::random::<u32>());
    let report = Load::start(
        targets,
        LoadSpec::new(&prefix, 1000.0)
            .count(n)
            .invites(1)
            .in_flight(32),
    )
    .finish()
    .await;
    wait_finished(inspector, deadline(ctx)).await;
    let rate = report.acknowledged_count() as f64 / started.elapsed().as_secs_f64();
    progress(&format!("throughput {label}: {rate:.0} tasks/s"));
    (rate, report)
}
