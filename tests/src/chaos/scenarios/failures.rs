//! Scenario 3, silent failures: emails fail 30% of the time, one task type panics and one hangs past
//! its timeout. Every failed attempt shows: `attempts` and `last_error` in the row, one warn
//! line ("task attempt failed; will retry") per retried attempt and one error line ("task
//! failed permanently") per exhausted task; exhausted tasks end `failed`, nothing vanishes.

use std::time::Instant;

use super::{account, check_answers, deadline, ms, owned, Ctx, Stage, EMAIL_TASK};
use crate::chaos::db::wait_finished;
use crate::chaos::load::{self, send_to, Load, LoadSpec};
use crate::chaos::logs;
use crate::http::Request;

const RETRY_LINE: &str = "task attempt failed; will retry";
const FAILED_LINE: &str = "task failed permanently";

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    let env = [
        ("EMAIL_FAIL_RATE", "0.3"),
        ("EMAIL_DELAY_MS", "20"),
        ("CHAOS_TASKS", "1"),
    ];
    let Some(Stage {
        db: _db,
        mut servers,
        inspector,
        targets,
    }) = Stage::start(&ctx, 1, &env).await
    else {
        return;
    };
    let server = servers.remove(0);

    let n = ctx.params.pick(40, ctx.params.requests / 10);
    let report = Load::start(&targets, LoadSpec::new("flaky", 100.0).count(n))
        .finish()
        .await;
    let client = load::client();
    let mut chaos_ids = Vec::new();
    for (path, copies) in [("/chaos/panic", 3), ("/chaos/hang", 2)] {
        for _ in 0..copies {
            let reply = send_to(&client, &server.url(path), "", 202).await;
            match reply.task_id() {
                Some(id) => chaos_ids.push((path, id.to_owned())),
                None => {
                    ctx.rec
                        .check(false, || format!("POST {path} was not accepted: {reply:?}"));
                }
            }
        }
    }
    let sent_all = Instant::now();
    let done = wait_finished(&inspector, deadline(&ctx)).await;
    let settled = sent_all.elapsed();
    // The log line of a task's last failure is written just after its row changed.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = server.log_text();

    check_answers(&ctx, &report, &[], true);
    let acknowledged: Vec<(Request, String)> = owned(report.acknowledged());
    account(&ctx, &acknowledged, &done, std::slice::from_ref(&log));

    // Nothing vanished: every accepted task has its row.
    let missing = chaos_ids
        .iter()
        .map(|(_, id)| id)
        .chain(acknowledged.iter().map(|(_, id)| id))
        .filter(|id| done.task(id).is_none())
        .count();
    ctx.rec.check(missing == 0, || {
        format!("{missing} accepted tasks have no row")
    });
    ctx.rec.check(
        done.tasks.len() == acknowledged.len() + chaos_ids.len(),
        || {
            format!(
                "{} rows for {} accepted tasks",
                done.tasks.len(),
                acknowledged.len() + chaos_ids.len()
            )
        },
    );

    // Every failed attempt is in the row and in the log, per task.
    let retries = logs::count_by(&log, RETRY_LINE, "task_id");
    let failures = logs::count_by(&log, FAILED_LINE, "task_id");
    let mut failed_attempts = 0;
    let mut mismatches = Vec::new();
    for task in &done.tasks {
        let failed = task.state == "failed";
        let expected_retries = usize::try_from(task.attempts - 1).unwrap_or(0);
        let logged_retries = retries.get(&task.id).copied().unwrap_or(0);
        let logged_failure = failures.get(&task.id).copied().unwrap_or(0);
        failed_attempts += expected_retries + usize::from(failed);
        if logged_retries != expected_retries || logged_failure != usize::from(failed) {
            mismatches.push(format!(
                "{} {} {} attempts={}: {logged_retries} warn + {logged_failure} error lines",
                task.name, task.id, task.state, task.attempts
            ));
        }
        if task.attempts > 1 || failed {
            ctx.rec.check(task.last_error.is_some(), || {
                format!("{} failed an attempt but has no last_error", task.id)
            });
        }
    }
    ctx.rec.check(mismatches.is_empty(), || {
        format!(
            "log lines do not match the rows' attempts: {}",
            mismatches.join(", ")
        )
    });

    // Emails: retried until sent; the retried ones carry the simulated error.
    let flaky: Vec<_> = done
        .tasks
        .iter()
        .filter(|t| t.name == EMAIL_TASK && t.attempts > 1)
        .collect();
    ctx.rec.check(!flaky.is_empty(), || {
        format!("EMAIL_FAIL_RATE=0.3 over {n} emails should fail some attempts")
    });
    for task in &flaky {
        ctx.rec.check(
            task.last_error
                .as_deref()
                .is_some_and(|e| e.contains("simulated SMTP failure")),
            || format!("retried email task without the SMTP error: {task:?}"),
        );
    }
    // Exhausted tasks end `failed` with the reason.
    for (path, id) in &chaos_ids {
        let Some(task) = done.task(id) else { continue };
        let (attempts, reason) = if *path == "/chaos/panic" {
            (3, "panicked")
        } else {
            (2, "timed out")
        };
        ctx.rec.check(
            task.state == "failed"
                && task.attempts == attempts
                && task
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains(reason)),
            || {
                format!(
                    "{path} task should be failed after {attempts} attempts ({reason}): {task:?}"
                )
            },
        );
    }
    let error_of = |name: &str| {
        done.tasks
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.last_error.clone())
            .unwrap_or_default()
    };
    let warn_total: usize = retries.values().sum();
    let error_total: usize = failures.values().sum();
    ctx.rec.with(|r| r.recovery = Some(settled));
    ctx.rec.note(format!(
        "{failed_attempts} failed attempts = {warn_total} warn + {error_total} error log lines, each matching its row; \
         {} of {n} emails retried (max attempts {}), all sent; chaos_panic failed after 3 (\"{}\"), chaos_hang after 2 (\"{}\"); \
         settled {}",
        flaky.len(),
        flaky.iter().map(|t| t.attempts).max().unwrap_or(1),
        error_of("chaos_panic"),
        error_of("chaos_hang"),
        ms(settled)
    ));
}
