//! Scenario 5, overload: offer several times more signups per second than the workers can finish
//! (4 workers × 200 ms emails = 20 tasks/s). The HTTP p99 stays bounded (next to the idle
//! p99), the server's memory stays bounded (peak RSS, `VmHWM`), and once the load stops every
//! task completes. Then with `MAX_BACKLOG` set low: some requests get 503 with `Retry-After`,
//! none of those is stored, and every accepted one completes.

use std::time::{Duration, Instant};

use super::{account, all_completed, check_answers, deadline, ms, owned, secs, Ctx, Stage};
use crate::chaos::db::{proc_status_kb, snapshot, wait_finished};
use crate::chaos::load::{Load, LoadSpec};

/// Tasks per second the server can finish: WORKER_CONCURRENCY / EMAIL_DELAY.
const CAPACITY: f64 = 4.0 / 0.2;
const ENV: &[(&str, &str)] = &[("EMAIL_DELAY_MS", "200"), ("WORKER_CONCURRENCY", "4")];
/// Bound on the p99 under overload: a request does one short transaction whatever the backlog.
const P99_BOUND: Duration = Duration::from_secs(1);
/// Bound on the peak RSS of the (debug) server: the backlog lives in the database.
const RSS_BOUND_MB: u64 = 200;

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    overload(&ctx).await;
    shed(&ctx).await;
}

async fn overload(ctx: &Ctx) {
    let Some(Stage {
        db: _db,
        mut servers,
        inspector,
        targets,
    }) = Stage::start(ctx, 1, ENV).await
    else {
        return;
    };
    let mut server = servers.remove(0);

    // Idle: well under capacity.
    let idle = Load::start(
        &targets,
        LoadSpec::new("idle", 10.0).count(ctx.params.pick(30, 100)),
    )
    .finish()
    .await;
    wait_finished(&inspector, deadline(ctx)).await;
    let rss_idle = proc_status_kb(server.pid(), "VmRSS").unwrap_or(0) / 1024;

    let ratio = ctx.params.pick(3.0, 4.0);
    let offered = CAPACITY * ratio;
    let over = Load::start(
        &targets,
        LoadSpec::new("over", offered).duration(ctx.params.duration),
    )
    .finish()
    .await;
    let stopped = Instant::now();
    let backlog = snapshot(&inspector, deadline(ctx)).await.unfinished();
    let burn_limit = Duration::from_secs_f64(backlog as f64 / CAPACITY * 2.0) + deadline(ctx);
    let done = wait_finished(&inspector, burn_limit).await;
    let burn = stopped.elapsed();
    let peak = proc_status_kb(server.pid(), "VmHWM").unwrap_or(0) / 1024;

    for report in [&idle, &over] {
        check_answers(ctx, report, &[], true);
    }
    let mut acknowledged = owned(idle.acknowledged());
    acknowledged.extend(owned(over.acknowledged()));
    account(ctx, &acknowledged, &done, &[server.log_text()]);
    all_completed(ctx, &done);

    let (idle_p99, over_p50, over_p99) = (
        idle.percentile(99.0),
        over.percentile(50.0),
        over.percentile(99.0),
    );
    ctx.rec.check(over_p99 < P99_BOUND, || {
        format!("p99 under overload {over_p99:?} (bound {P99_BOUND:?}; idle {idle_p99:?})")
    });
    ctx.rec.check(peak > 0 && peak < RSS_BOUND_MB, || {
        format!("peak RSS {peak} MiB (bound {RSS_BOUND_MB} MiB)")
    });
    ctx.rec
        .check(server.is_running(), || "the server exited".to_owned());
    ctx.rec.with(|r| r.recovery = Some(burn));
    ctx.rec.note(format!(
        "capacity {CAPACITY:.0} tasks/s, offered {offered:.0}/s for {}: p99 {} idle, {} overloaded (p50 {}); \
         peak RSS {peak} MiB (idle {rss_idle} MiB); {backlog} tasks queued when the load stopped, all done {} later",
        secs(ctx.params.duration),
        ms(idle_p99),
        ms(over_p99),
        ms(over_p50),
        secs(burn)
    ));
}

async fn shed(ctx: &Ctx) {
    let limit = ctx.params.pick(20, 50);
    let limit_text = limit.to_string();
    let mut env = ENV.to_vec();
    env.push(("MAX_BACKLOG", &limit_text));
    let Some(Stage {
        db: _db,
        mut servers,
        inspector,
        targets,
    }) = Stage::start(ctx, 1, &env).await
    else {
        return;
    };
    let mut server = servers.remove(0);
    let offered = CAPACITY * 3.0;
    let report = Load::start(
        &targets,
        LoadSpec::new("shed", offered).duration(
            ctx.params
                .pick(Duration::from_secs(4), Duration::from_secs(10)),
        ),
    )
    .finish()
    .await;
    let done = wait_finished(&inspector, deadline(ctx)).await;

    let shed: Vec<_> = report.with_status(503).collect();
    ctx.rec.check(!shed.is_empty(), || {
        format!("MAX_BACKLOG={limit} at {offered:.0}/s for capacity {CAPACITY:.0}/s should answer some 503s")
    });
    let without_retry_after = shed
        .iter()
        .filter(|s| {
            !matches!(&s.reply, crate::chaos::load::Reply::Rejected { retry_after: Some(v), .. } if !v.is_empty())
        })
        .count();
    ctx.rec.check(without_retry_after == 0, || {
        format!("{without_retry_after} 503 answers without Retry-After")
    });
    check_answers(ctx, &report, &[503], true);
    let stored_shed = shed
        .iter()
        .filter(|s| done.has_user(&s.request.email) || done.sent_count(&s.request.email) > 0)
        .count();
    ctx.rec.check(stored_shed == 0, || {
        format!("{stored_shed} requests answered 503 were stored anyway")
    });
    ctx.rec
        .check(done.tasks.len() == report.acknowledged_count(), || {
            format!(
                "{} task rows for {} accepted requests",
                done.tasks.len(),
                report.acknowledged_count()
            )
        });
    account(
        ctx,
        &owned(report.acknowledged()),
        &done,
        &[server.log_text()],
    );
    all_completed(ctx, &done);
    ctx.rec
        .check(server.is_running(), || "the server exited".to_owned());
    ctx.rec.note(format!(
        "MAX_BACKLOG={limit}, {offered:.0}/s offered: {} accepted (all completed), {} answered 503 + Retry-After, none of them stored",
        report.acknowledged_count(),
        shed.len()
    ));
}
