//! The scenarios, and what they share: starting servers with the runner's defaults and the
//! final accounting of acknowledged work.

mod crash;
mod deploy;
mod early;
mod failures;
mod outage;
mod overload;
mod pair;
mod poison;
mod termination;
mod zombie;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::load::{LoadReport, Targets};
use super::{logs, Ctx};
use crate::backend::{Backend, TestDb, POSTGRES_ENV};
use crate::http::{Kind, Request};
use crate::inspect::{Inspector, Snapshot};
use crate::server::Server;

/// Runs scenario `name`.
pub(crate) async fn run(name: &str, ctx: Ctx) {
    match name {
        "request-ends-early" => early::run(ctx).await,
        "crash-mid-task" => crash::run(ctx).await,
        "silent-failures" => failures::run(ctx).await,
        "deploy" => deploy::run(ctx).await,
        "overload" => overload::run(ctx).await,
        "database-outage" => outage::run(ctx).await,
        "zombie-worker" => zombie::run(ctx).await,
        "backend-termination" => termination::run(ctx).await,
        "two-instances" => pair::run(ctx).await,
        "poison-input" => poison::run(ctx).await,
        other => panic!("unknown scenario {other}"),
    }
}

/// The task type of the example.
const EMAIL_TASK: &str = "send_welcome_email";

/// Generous bound for "soon" (2 cores, debug build).
fn deadline(ctx: &Ctx) -> Duration {
    ctx.params
        .pick(Duration::from_secs(60), Duration::from_secs(240))
}

/// A fresh database, or `None` with the skip recorded.
async fn database(ctx: &Ctx) -> Option<TestDb> {
    let db = TestDb::create(ctx.backend).await;
    if db.is_none() {
        ctx.rec
            .skip(format!("{POSTGRES_ENV} not set (required when CI is set)"));
    }
    db
}

/// What a scenario starts from: a fresh database, the example started on it (the runner's
/// defaults and the scenario's `env`), an inspector of its rows, and the load balancer over
/// the servers.
///
/// Take it apart binding every field by name (`_db` where unused): a field left to `_` or
/// `..` is dropped at once, and the database or a server with it.
struct Stage {
    db: TestDb,
    servers: Vec<Server>,
    inspector: Inspector,
    targets: Targets,
}

impl Stage {
    /// `instances` servers on a fresh database; `None` with the skip recorded when the
    /// backend is not configured.
    async fn start(ctx: &Ctx, instances: usize, env: &[(&str, &str)]) -> Option<Stage> {
        let db = database(ctx).await?;
        let mut servers = Vec::with_capacity(instances);
        for _ in 0..instances {
            servers.push(start(&db, env).await);
        }
        let inspector = Inspector::connect(&db).await;
        let targets = Targets::new(servers.iter().map(|s| s.base_url().to_owned()));
        Some(Stage {
            db,
            servers,
            inspector,
            targets,
        })
    }
}

/// Checks a load's answers: each one acknowledged or one of the `allowed` statuses, and
/// with `all_answered` none missing (refused, reset or timed out).
fn check_answers(ctx: &Ctx, report: &LoadReport, allowed: &[u16], all_answered: bool) {
    let unexpected = report.unexpected(allowed);
    let unanswered = if all_answered {
        report.failed_count()
    } else {
        0
    };
    ctx.rec.check(unexpected.is_empty() && unanswered == 0, || {
        let expected = std::iter::once("2xx".to_owned())
            .chain(allowed.iter().map(u16::to_string))
            .collect::<Vec<_>>()
            .join("/");
        format!(
            "{} answers other than {expected}, {unanswered} without answer: {:?}",
            unexpected.len(),
            &unexpected[..unexpected.len().min(3)]
        )
    });
}

/// Records a skip on SQLite for a PostgreSQL-only scenario; returns whether it skipped.
fn postgres_only(ctx: &Ctx, why: &str) -> bool {
    if ctx.backend == Backend::Sqlite {
        ctx.rec.skip(format!("PostgreSQL only: {why}"));
        true
    } else {
        false
    }
}

/// Starts the example with the runner's defaults (`RUST_LOG=info`: the warn/error lines the
/// checks read, without per-request debug output slowing a 2-core machine) and `env`.
async fn start(db: &TestDb, env: &[(&str, &str)]) -> Server {
    let mut all: Vec<(&str, &str)> = vec![("RUST_LOG", "info")];
    all.extend_from_slice(env);
    Server::start(db, &all).await
}

/// Every server's whole log.
fn logs_of<'a>(servers: impl IntoIterator<Item = &'a Server>) -> Vec<String> {
    servers.into_iter().map(Server::log_text).collect()
}

/// The end-of-scenario accounting, added to the report: acknowledged requests, completed
/// tasks, lost work (an acknowledged task missing, not completed, or without its email),
/// duplicate `sent_emails` rows, tasks run more than once (`attempts > 1`), and emails the
/// logs show sent more than once. Also checks that a signup's email was sent by its own
/// task.
fn account(ctx: &Ctx, acknowledged: &[(Request, String)], done: &Snapshot, logs: &[String]) {
    let mut lost = Vec::new();
    for (request, task_id) in acknowledged {
        let task = done.task(task_id);
        let ok =
            task.is_some_and(|t| t.state == "completed") && done.sent_count(&request.email) == 1;
        if !ok {
            lost.push(format!(
                "{} (task {task_id}: {})",
                request.email,
                task.map_or_else(|| "no row".to_owned(), |t| format!("{t:?}"))
            ));
        }
        if request.kind == Kind::Signup {
            if let Some((_, sent_by)) = done.sent.iter().find(|(e, _)| *e == request.email) {
                ctx.rec.check(sent_by == task_id, || {
                    format!(
                        "{}'s email was sent by task {sent_by}, not {task_id}",
                        request.email
                    )
                });
            }
        }
    }
    ctx.rec.check(lost.is_empty(), || {
        format!(
            "{} acknowledged tasks not completed with their email, e.g. {}",
            lost.len(),
            lost.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        )
    });
    let distinct: BTreeSet<&str> = done.sent.iter().map(|(e, _)| e.as_str()).collect();
    let mut sends: BTreeMap<String, usize> = BTreeMap::new();
    for log in logs {
        for (email, n) in logs::sends(log) {
            *sends.entry(email).or_default() += n;
        }
    }
    let duplicate_sends = sends.values().filter(|n| **n > 1).count();
    let reran = done
        .tasks
        .iter()
        .filter(|t| t.name == EMAIL_TASK && t.attempts > 1)
        .count();
    ctx.rec.with(|r| {
        r.acknowledged += acknowledged.len();
        r.completed += done.count("completed");
        r.lost += lost.len();
        r.duplicate_rows += done.sent.len() - distinct.len();
        r.reran += reran;
        r.duplicate_sends += duplicate_sends;
    });
    ctx.rec.check(done.sent.len() == distinct.len(), || {
        format!(
            "{} duplicate sent_emails rows",
            done.sent.len() - distinct.len()
        )
    });
}

/// Checks that every stored task ended `completed` (nothing failed, nothing left behind):
/// work stored without an acknowledgement (the answer lost to a hang-up or a kill) included.
fn all_completed(ctx: &Ctx, done: &Snapshot) {
    let other: Vec<_> = done
        .tasks
        .iter()
        .filter(|t| t.state != "completed")
        .collect();
    ctx.rec.check(other.is_empty(), || {
        format!(
            "{} stored tasks did not complete: {:?}",
            other.len(),
            other.iter().take(3).collect::<Vec<_>>()
        )
    });
}

/// `acknowledged` of a load report as owned pairs.
fn owned<'a>(acknowledged: impl Iterator<Item = (&'a Request, &'a str)>) -> Vec<(Request, String)> {
    acknowledged
        .map(|(r, id)| (r.clone(), id.to_owned()))
        .collect()
}

/// The server's log once it contains `needle`, or after `timeout` as it is (a line is
/// written just after the state change a scenario waited for).
async fn wait_logged(server: &Server, needle: &str, timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let log = server.log_text();
        if log.contains(needle) || std::time::Instant::now() >= deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `d` as milliseconds for notes.
fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// `d` as seconds with two decimals for notes.
fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
