//! Scenario 4, deploy / rolling restart: SIGTERM an instance under load (deregistered from the load
//! balancer first). It stops accepting, finishes or requeues its running tasks within the
//! grace period and exits 0. On PostgreSQL (two instances) the other instance picks the
//! requeued tasks up at once — the requeue sends a NOTIFY — instead of after a lease expiry;
//! on SQLite (one instance) the restarted process picks them up at startup.

use std::time::{Duration, Instant};

use super::{
    account, all_completed, check_answers, deadline, logs_of, ms, owned, secs, start, Ctx, Stage,
};
use crate::backend::Backend;
use crate::chaos::db::{task_times, wait_finished};
use crate::chaos::load::{self, send, Load, LoadSpec};
use crate::chaos::{logs, progress};
use crate::http::Request;

const GRACE_MS: u64 = 300;
const ENV: &[(&str, &str)] = &[("EMAIL_DELAY_MS", "1500"), ("SHUTDOWN_GRACE_MS", "300")];

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    let instances = if ctx.backend == Backend::Postgres {
        2
    } else {
        1
    };
    let Some(Stage {
        db,
        servers: mut live,
        inspector,
        targets,
    }) = Stage::start(&ctx, instances, ENV).await
    else {
        return;
    };
    let load = Load::start(
        &targets,
        LoadSpec::new("deploy", ctx.params.pick(20.0, 30.0)).invites(5),
    );
    let client = load::client();
    let mut stopped = Vec::new();
    let mut requeued_ids: Vec<String> = Vec::new();
    let mut exits = Vec::new();
    let mut probes = Vec::new();
    for cycle in 0..2 {
        tokio::time::sleep(
            ctx.params
                .pick(Duration::from_millis(1500), Duration::from_secs(4)),
        )
        .await;
        let mut victim = live.remove(0);
        targets.remove(victim.base_url());
        victim.sigterm();
        let signalled = Instant::now();
        // A new request right after the signal must not be taken on.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let probe = Request::signup(format!("probe-{cycle}@example.com"));
        let reply = send(&client, victim.base_url(), &probe).await;
        ctx.rec.check(reply.task_id().is_none(), || {
            format!("a request 50 ms after SIGTERM was acknowledged: {reply:?}")
        });
        probes.push(reply);
        let status = victim
            .wait_exit(Duration::from_millis(GRACE_MS) + Duration::from_secs(10))
            .await;
        let took = signalled.elapsed();
        ctx.rec.check(status.success(), || {
            format!("{} exited with {status}, expected 0", victim.name())
        });
        ctx.rec.check(
            took < Duration::from_millis(GRACE_MS) + Duration::from_secs(3),
            || format!("shutdown took {took:?} with a {GRACE_MS} ms grace"),
        );
        let log = victim.log_text();
        let ids: Vec<String> = logs::count_by(&log, "will be requeued", "task_id")
            .into_keys()
            .collect();
        let reported = log
            .lines()
            .find(|l| l.contains("example-signup stopped"))
            .and_then(|l| logs::field(l, "requeued"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        progress(&format!(
            "cycle {cycle}: exit {status} after {took:?}; requeued {} ({reported} reported)",
            ids.len()
        ));
        ctx.rec.check(reported == ids.len(), || {
            format!(
                "the shutdown report says {reported} requeued, the log names {} tasks",
                ids.len()
            )
        });
        exits.push((took, ids.len()));
        requeued_ids.extend(ids);
        stopped.push(victim);
        let replacement = start(&db, ENV).await;
        targets.add(replacement.base_url());
        live.push(replacement);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.stop().await;
    let done = wait_finished(&inspector, deadline(&ctx)).await;

    check_answers(&ctx, &report, &[], false);
    let mut acknowledged = owned(report.acknowledged());
    for (cycle, reply) in probes.iter().enumerate() {
        if let Some(id) = reply.task_id() {
            acknowledged.push((
                Request::signup(format!("probe-{cycle}@example.com")),
                id.to_owned(),
            ));
        }
    }
    let all_logs = logs_of(stopped.iter().chain(live.iter()));
    account(&ctx, &acknowledged, &done, &all_logs);
    all_completed(&ctx, &done);

    ctx.rec.check(!requeued_ids.is_empty(), || {
        "with 1.5 s tasks and a 300 ms grace, some tasks should have been requeued".to_owned()
    });
    let times = task_times(&inspector).await.expect("read the task timings");
    let mut pickups = Vec::new();
    for id in &requeued_ids {
        let Some(t) = times.iter().find(|t| &t.id == id) else {
            ctx.rec
                .check(false, || format!("requeued task {id} has no row"));
            continue;
        };
        ctx.rec
            .check(t.state == "completed" && t.attempts == 1, || {
                format!("requeued task should complete in one counted attempt: {t:?}")
            });
        if let Some(started) = t.started_at {
            pickups.push(Duration::from_millis(
                u64::try_from(started - t.run_at).unwrap_or(0),
            ));
        }
    }
    pickups.sort_unstable();
    let worst = pickups.last().copied().unwrap_or_default();
    let median = pickups.get(pickups.len() / 2).copied().unwrap_or_default();
    if ctx.backend == Backend::Postgres {
        // The other instance polls every 2 s and leases last 10 s: under a second means the
        // NOTIFY of the requeue woke it.
        ctx.rec.check(worst < Duration::from_secs(1), || {
            format!("requeued tasks waited up to {worst:?} for the other instance")
        });
    }
    ctx.rec.with(|r| r.recovery = Some(worst));
    let exits: Vec<String> = exits
        .iter()
        .map(|(took, n)| format!("{} ({n} requeued)", ms(*took)))
        .collect();
    ctx.rec.note(format!(
        "{} instance(s), 2 SIGTERMs under load ({} requests), grace {GRACE_MS} ms, 1.5 s tasks: exit 0 after {}; \
         requests after SIGTERM refused; requeued tasks picked up by {} after median {}, max {} (requeue to started_at)",
        instances,
        report.sent.len(),
        exits.join(" and "),
        if instances == 2 { "the other instance" } else { "the restarted process" },
        ms(median),
        secs(worst)
    ));
}
