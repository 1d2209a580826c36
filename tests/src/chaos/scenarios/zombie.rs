//! Scenario 7, zombie worker: two processes on one database; the one running the tasks is stopped
//! (SIGSTOP) past its 1 s lease while its 3 s emails are in flight; the other re-claims the
//! tasks; then the zombie resumes (SIGCONT) and finishes its stale attempts. Its completion
//! is rejected by fencing ("stale write rejected"); each task ends `completed` after two
//! counted attempts with exactly one `sent_emails` row.
//!
//! On SQLite the stop must land between two of the zombie's writes: a process stopped inside
//! a write transaction keeps the file's write lock, and every other process's writes wait
//! until it resumes (SQLite's locking, not the runtime's). The scenario checks for that
//! after each stop and, if so, lets the zombie run on for a moment and stops it again.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{account, all_completed, deadline, logs_of, ms, secs, wait_logged, Ctx, Stage};
use crate::backend::Backend;
use crate::chaos::db::{snapshot, sqlite_lock_free, wait_finished, wait_for};
use crate::chaos::load::{self, send};
use crate::chaos::logs;
use crate::http::Request;
use crate::server::Server;

const LEASE: Duration = Duration::from_millis(1000);
const EMAIL_DELAY: Duration = Duration::from_millis(3000);
const ENV: &[(&str, &str)] = &[("LEASE_MS", "1000"), ("EMAIL_DELAY_MS", "3000")];
const TASKS: usize = 8;
/// How long the SQLite write lock must stay taken after a stop to count as the zombie's:
/// the live process's write transactions last milliseconds.
const LOCK_PROBE: Duration = Duration::from_millis(300);
/// Stops tried before giving up on stopping the zombie outside a write.
const STOP_TRIES: usize = 5;

fn signal(server: &Server, signal: Signal) {
    let pid = i32::try_from(server.pid()).expect("a pid fits in i32");
    kill(Pid::from_raw(pid), signal).expect("signal the server");
}

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    let Some(Stage {
        db,
        servers,
        inspector,
        targets: _targets,
    }) = Stage::start(&ctx, 2, ENV).await
    else {
        return;
    };
    let owners: Vec<String> = servers
        .iter()
        .map(|s| logs::owner(&s.log_text()).expect("the runtime logs its owner id"))
        .collect();
    let client = load::client();
    let mut acknowledged = Vec::new();
    for i in 0..TASKS {
        let request = Request::signup(format!("zombie-{i}@example.com"));
        let reply = send(&client, servers[0].base_url(), &request).await;
        let id = reply
            .task_id()
            .unwrap_or_else(|| panic!("signup not acknowledged: {reply:?}"))
            .to_owned();
        acknowledged.push((request, id));
    }
    let running = wait_for(
        &inspector,
        "every task is processing",
        deadline(&ctx),
        |s| s.count("processing") == TASKS,
    )
    .await;
    // The zombie: whichever process holds the most of them (the one they were sent to,
    // normally; on PostgreSQL the other may have claimed some after the NOTIFY).
    let held = |owner: &str| {
        running
            .tasks
            .iter()
            .filter(|t| t.lease_owner.as_deref() == Some(owner))
            .count()
    };
    let z = usize::from(held(&owners[1]) > held(&owners[0]));
    let other = 1 - z;
    let stalled: Vec<String> = running
        .tasks
        .iter()
        .filter(|t| t.lease_owner.as_deref() == Some(owners[z].as_str()))
        .map(|t| t.id.clone())
        .collect();

    let stopped = stop_between_writes(&ctx, &servers[z], db.url()).await;
    let reclaim_limit = LEASE + Duration::from_secs(8);
    let mut reclaimed = None;
    while stopped.elapsed() < reclaim_limit {
        let s = snapshot(&inspector, deadline(&ctx)).await;
        let taken = stalled.iter().all(|id| {
            s.task(id).is_some_and(|t| {
                t.attempts >= 2 && t.lease_owner.as_deref() == Some(owners[other].as_str())
            })
        });
        if taken {
            reclaimed = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let Some(reclaimed) = reclaimed else {
        signal(&servers[z], Signal::SIGCONT);
        ctx.rec.check(false, || {
            format!(
                "the other instance did not re-claim the stalled tasks within {reclaim_limit:?}"
            )
        });
        return;
    };
    // Resume once the zombie's emails are due, so it completes them at once.
    let stall = EMAIL_DELAY + Duration::from_millis(200);
    tokio::time::sleep(stall.saturating_sub(stopped.elapsed())).await;
    signal(&servers[z], Signal::SIGCONT);
    let stalled_for = stopped.elapsed();
    let done = wait_finished(&inspector, deadline(&ctx)).await;
    // The zombie's late writes are logged once they are attempted and rejected.
    let zombie_log = wait_logged(&servers[z], "stale write rejected", Duration::from_secs(5)).await;
    let rejected = logs::count_by(&zombie_log, "stale write rejected", "task_id");
    let lost = logs::count_by(&zombie_log, "lease lost", "task_id");
    let (rejected_total, lost_total) = (rejected.values().sum::<usize>(), lost.len());
    ctx.rec.check(rejected_total >= 1, || {
        format!(
            "the zombie logged no \"stale write rejected\" after SIGCONT ({lost_total} \"lease lost\" lines)"
        )
    });
    // Per task: its stale completion was rejected, or its next heartbeat found the lease
    // gone and stopped it first (both fenced writes; which comes first is a race).
    let unfenced: Vec<&String> = stalled
        .iter()
        .filter(|id| !rejected.contains_key(id.as_str()) && !lost.contains_key(id.as_str()))
        .collect();
    ctx.rec.check(unfenced.is_empty(), || {
        format!("no fencing logged by the zombie for stalled tasks {unfenced:?}")
    });
    for id in &stalled {
        let task = done.task(id);
        ctx.rec.check(
            task.is_some_and(|t| t.state == "completed" && t.attempts == 2),
            || format!("stalled task should be completed after 2 attempts: {task:?}"),
        );
    }
    account(&ctx, &acknowledged, &done, &logs_of(&servers));
    all_completed(&ctx, &done);
    ctx.rec.with(|r| r.recovery = Some(reclaimed));
    ctx.rec.note(format!(
        "{} tasks' worker SIGSTOPped for {} (lease 1 s, emails 3 s): re-claimed by the other instance after {}; \
         after SIGCONT the zombie logged {rejected_total} \"stale write rejected\" (completions) and {lost_total} \"lease lost\" (heartbeats); \
         final rows completed, attempts 2, one sent_emails row each",
        stalled.len(),
        secs(stalled_for),
        ms(reclaimed)
    ));
}

/// Stops `zombie` (SIGSTOP) and returns when. On SQLite, a stop that caught the zombie
/// inside a write transaction (the file's write lock stays taken) is undone — SIGCONT, a
/// moment to finish the write, SIGSTOP again — up to [`STOP_TRIES`] times.
async fn stop_between_writes(ctx: &Ctx, zombie: &Server, url: &str) -> Instant {
    for _ in 1..STOP_TRIES {
        signal(zombie, Signal::SIGSTOP);
        let stopped = Instant::now();
        if ctx.backend != Backend::Sqlite || sqlite_lock_free(url, LOCK_PROBE).await {
            return stopped;
        }
        signal(zombie, Signal::SIGCONT);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(zombie, Signal::SIGSTOP);
    Instant::now()
}
