//! Scenario 9, two instances, one database (PostgreSQL): a burst of signups spread over two instances.
//! With nothing failing, every task runs exactly once: `attempts` = 1 on every row, one
//! `sent_emails` row each, and one "welcome email sent" log line per email across both logs
//! (executions counted, not just rows) — so never twice, at the same time or otherwise.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{
    account, all_completed, check_answers, deadline, logs_of, owned, postgres_only, secs, Ctx,
    Stage,
};
use crate::chaos::db::wait_finished;
use crate::chaos::load::{Load, LoadSpec};
use crate::chaos::logs;

const ENV: &[(&str, &str)] = &[("EMAIL_DELAY_MS", "10")];

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    if postgres_only(
        &ctx,
        "several instances share one database on PostgreSQL (SQLite is the embedded, single-instance store)",
    ) {
        return;
    }
    let Some(Stage {
        db: _db,
        servers,
        inspector,
        targets,
    }) = Stage::start(&ctx, 2, ENV).await
    else {
        return;
    };
    let n = ctx.params.requests * 2;
    let started = Instant::now();
    let report = Load::start(
        &targets,
        LoadSpec::new("pair", ctx.params.pick(400.0, 500.0))
            .count(n)
            .in_flight(64),
    )
    .finish()
    .await;
    let sent_all = Instant::now();
    let done = wait_finished(&inspector, deadline(&ctx)).await;
    let settled = sent_all.elapsed();
    let total = started.elapsed();

    check_answers(&ctx, &report, &[], true);
    let logs = logs_of(&servers);
    account(&ctx, &owned(report.acknowledged()), &done, &logs);
    all_completed(&ctx, &done);

    let rerun: Vec<_> = done.tasks.iter().filter(|t| t.attempts != 1).collect();
    ctx.rec.check(rerun.is_empty(), || {
        format!(
            "{} tasks did not run exactly once: {:?}",
            rerun.len(),
            &rerun[..rerun.len().min(3)]
        )
    });
    let per_instance: Vec<BTreeMap<String, usize>> = logs.iter().map(|l| logs::sends(l)).collect();
    let mut executions: BTreeMap<&str, usize> = BTreeMap::new();
    for sends in &per_instance {
        for (email, k) in sends {
            *executions.entry(email.as_str()).or_default() += k;
        }
    }
    let twice = executions.values().filter(|k| **k > 1).count();
    ctx.rec.check(twice == 0, || {
        format!("{twice} emails were sent more than once (log lines)")
    });
    ctx.rec
        .check(executions.len() == report.acknowledged_count(), || {
            format!(
                "{} emails sent for {} acknowledged signups",
                executions.len(),
                report.acknowledged_count()
            )
        });
    let already: usize = logs
        .iter()
        .map(|l| logs::count(l, "already sent; nothing to do"))
        .sum();
    ctx.rec.check(already == 0, || {
        format!("{already} re-runs found their email already sent")
    });
    ctx.rec.with(|r| r.recovery = Some(settled));
    ctx.rec.note(format!(
        "{n} signups over 2 instances in {}: executions {} + {} (one per task, attempts = 1 everywhere); \
         last task done {} after the last acknowledgement",
        secs(total),
        per_instance[0].values().sum::<usize>(),
        per_instance[1].values().sum::<usize>(),
        secs(settled)
    ));
}
