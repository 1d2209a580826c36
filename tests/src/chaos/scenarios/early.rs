//! Scenario 1, request ends early: clients hang up at random moments — mid-request, or 0 to 2× a
//! signup's latency (at least 0–30 ms) after sending it, which lands before, during and
//! right after the handler's commit. Every user
//! row that exists gets its email; every acknowledged task completes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{account, all_completed, deadline, ms, Ctx, Stage};
use crate::chaos::db::{task_times, wait_finished};
use crate::chaos::load::{self, hang_up, Cut, Reply};
use crate::http::Request;

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    let Some(Stage {
        db: _db,
        mut servers,
        inspector,
        targets: _targets,
    }) = Stage::start(&ctx, 1, &[("EMAIL_DELAY_MS", "20")]).await
    else {
        return;
    };
    let mut server = servers.remove(0);
    let mut calibration = Vec::new();

    // Calibrate the hang-up window on this machine: 0 ms up to twice a normal signup's
    // latency (at least 0-30 ms), so hang-ups land before, during and after the commit.
    let client = load::client();
    let mut latencies = Vec::new();
    for i in 0..10 {
        let started = Instant::now();
        let request = Request::signup(format!("calibrate-{i}@example.com"));
        let reply = load::send(&client, server.base_url(), &request).await;
        latencies.push(started.elapsed());
        calibration.push((request, reply));
    }
    latencies.sort_unstable();
    let typical = durable_testkit::percentile(&latencies, 50.0).unwrap_or_default();
    let window_ms = u64::try_from(typical.as_millis() * 2)
        .unwrap_or(u64::MAX)
        .max(30);

    let n = ctx.params.requests;
    let limit = Arc::new(Semaphore::new(8));
    let mut set = JoinSet::new();
    for i in 0..n {
        let email = format!("early-{i}@example.com");
        let request = if i % 5 == 4 {
            Request::invite(email)
        } else {
            Request::signup(email)
        };
        let cut = if i % 10 == 0 {
            Cut::MidRequest(rand::random_range(0..200))
        } else {
            Cut::AfterSend(Duration::from_millis(rand::random_range(0..=window_ms)))
        };
        let permit = Arc::clone(&limit)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let url = server.base_url().to_owned();
        set.spawn(async move {
            let reply = hang_up(&url, &request, cut).await;
            drop(permit);
            (request, cut, reply)
        });
    }
    let mut results: Vec<(Request, Cut, Reply)> = calibration
        .into_iter()
        .map(|(r, reply)| (r, Cut::AfterSend(Duration::from_secs(30)), reply))
        .collect();
    while let Some(joined) = set.join_next().await {
        results.push(joined.expect("a hang-up client panicked"));
    }
    let sent_all = Instant::now();
    let done = wait_finished(&inspector, deadline(&ctx)).await;
    let settled = sent_all.elapsed();

    let acknowledged: Vec<(Request, String)> = results
        .iter()
        .filter_map(|(r, _, reply)| reply.task_id().map(|id| (r.clone(), id.to_owned())))
        .collect();
    let unexpected: Vec<_> = results
        .iter()
        .filter_map(|(r, _, reply)| match reply {
            Reply::Rejected { status, body, .. } => Some((r.email.clone(), *status, body.clone())),
            _ => None,
        })
        .collect();
    ctx.rec.check(unexpected.is_empty(), || {
        format!(
            "unexpected answers: {:?}",
            &unexpected[..unexpected.len().min(3)]
        )
    });
    let logs = vec![server.log_text()];
    account(&ctx, &acknowledged, &done, &logs);
    all_completed(&ctx, &done);

    // The property of this scenario: a user row means an email, acknowledged or not.
    let without_email: Vec<&String> = done
        .users
        .iter()
        .filter(|u| done.sent_count(u) != 1)
        .collect();
    ctx.rec.with(|r| r.lost += without_email.len());
    ctx.rec.check(without_email.is_empty(), || {
        format!(
            "{} stored users never got their email: {:?}",
            without_email.len(),
            &without_email[..without_email.len().min(3)]
        )
    });
    ctx.rec
        .check(server.is_running(), || "the server exited".to_owned());

    let mid = results
        .iter()
        .filter(|(_, cut, _)| matches!(cut, Cut::MidRequest(_)))
        .count();
    let acked: BTreeSet<&str> = acknowledged.iter().map(|(r, _)| r.email.as_str()).collect();
    let unacked_users = done
        .users
        .iter()
        .filter(|u| !acked.contains(u.as_str()))
        .count();
    let acked_ids: BTreeSet<&str> = acknowledged.iter().map(|(_, id)| id.as_str()).collect();
    let unacked_tasks = done
        .tasks
        .iter()
        .filter(|t| !acked_ids.contains(t.id.as_str()))
        .count();
    // How long stored tasks waited to start: a hung-up handler never reaches its wake-up
    // call, so its task may wait for the runtime's next poll (or a NOTIFY on PostgreSQL).
    let times = task_times(&inspector).await.expect("read the task timings");
    let waits: Vec<i64> = times
        .iter()
        .filter_map(|t| t.started_at.map(|s| s - t.created_at))
        .collect();
    let slowest = waits.iter().copied().max().unwrap_or(0);
    let late = waits.iter().filter(|w| **w > 1000).count();
    ctx.rec.with(|r| r.recovery = Some(settled));
    ctx.rec.note(format!(
        "{n} clients ({mid} hung up mid-request, the rest 0-{window_ms} ms after sending; a signup takes ~{} here): \
         {} answered in time; {unacked_tasks} tasks ({unacked_users} of them signups with their user row) stored \
         although the client had hung up, all emailed; {late} tasks waited over 1 s to start (slowest {slowest} ms); \
         settled {} after the last client",
        ms(typical),
        acknowledged.len().saturating_sub(10),
        ms(settled)
    ));
}
