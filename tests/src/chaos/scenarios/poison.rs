//! Scenario 10, poison input: rows written behind the library's back with an unknown task type and
//! with a payload that does not decode, and an oversized payload at enqueue (an invite with a
//! ~300 KB email; a signup with one too). The undecodable row is retried with backoff within
//! its 3 attempts (another version may read it), then ends `failed` with a readable
//! `last_error`; the unknown-type row is never claimed and stays `pending`, untouched (a newer
//! version's task, waiting for an instance that knows its type); the oversized invite gets a
//! 422 naming the limit, the signup is refused, and nothing of either is stored (the
//! signup's user row is rolled back with its task); later signups complete.

use std::time::Instant;

use super::{account, check_answers, deadline, ms, owned, Ctx, Stage};
use crate::chaos::db::{insert_raw_task, snapshot, wait_for};
use crate::chaos::load::{self, send_to, Load, LoadSpec, Reply};
use crate::chaos::logs;

#[allow(
    clippy::too_many_lines,
    reason = "a scenario reads best as one script: inject, observe, check"
)]
pub(super) async fn run(ctx: Ctx) {
    let Some(Stage {
        db: _db,
        mut servers,
        inspector,
        targets,
    }) = Stage::start(&ctx, 1, &[("EMAIL_DELAY_MS", "20")]).await
    else {
        return;
    };
    let mut server = servers.remove(0);

    let unknown = uuid::Uuid::new_v4().to_string();
    let undecodable = uuid::Uuid::new_v4().to_string();
    insert_raw_task(&inspector, &unknown, "no_such_task", "{}")
        .await
        .expect("insert the unknown-type row");
    insert_raw_task(
        &inspector,
        &undecodable,
        "send_welcome_email",
        r#"{"wrong_field": 1}"#,
    )
    .await
    .expect("insert the undecodable row");
    let inserted = Instant::now();

    let client = load::client();
    let huge = format!("{}@example.com", "x".repeat(300 * 1024));
    // The invite: the task's payload is over the 256 KiB limit at enqueue.
    let invite = send_to(&client, &server.url("/invite"), &huge, 202).await;
    let invite_ok = matches!(&invite, Reply::Rejected { status: 422, body, .. } if body.contains("over the limit"));
    ctx.rec.check(invite_ok, || {
        format!(
            "oversized POST /invite should answer 422 \"... over the limit ...\", got {}",
            shown(&invite)
        )
    });
    // The signup: refused up front (422: longer than an email address can be), before any
    // transaction opens; nothing is acknowledged or stored.
    let signup = send_to(&client, &server.url("/signup"), &huge, 201).await;
    ctx.rec.check(signup.status() == Some(422), || {
        format!(
            "oversized POST /signup should be refused, got {}",
            shown(&signup)
        )
    });
    let after_oversized = snapshot(&inspector, deadline(&ctx)).await;
    ctx.rec.check(
        !after_oversized.has_user(&huge)
            && after_oversized
                .tasks
                .iter()
                .all(|t| t.id == unknown || t.id == undecodable),
        || {
            format!(
                "the oversized requests stored something: {} task rows, {} users",
                after_oversized.tasks.len(),
                after_oversized.users.len()
            )
        },
    );

    let report = Load::start(&targets, LoadSpec::new("after-poison", 50.0).count(20))
        .finish()
        .await;
    let mut marked = None;
    let done = wait_for(
        &inspector,
        "the undecodable row is failed and every signup is done",
        deadline(&ctx),
        |s| {
            let bad_failed = s.task(&undecodable).is_some_and(|t| t.state == "failed");
            if bad_failed && marked.is_none() {
                marked = Some(inserted.elapsed());
            }
            let unfinished = s
                .tasks
                .iter()
                .filter(|t| t.id != unknown && (t.state == "pending" || t.state == "processing"))
                .count();
            bad_failed && unfinished == 0
        },
    )
    .await;

    let error = |id: &str| {
        done.task(id)
            .and_then(|t| t.last_error.clone())
            .unwrap_or_default()
    };
    let decode_error = error(&undecodable);
    let waiting = done.task(&unknown).map(|t| {
        (
            t.state.clone(),
            t.attempts,
            t.lease_owner.clone(),
            t.last_error.clone(),
        )
    });
    ctx.rec.check(
        waiting == Some(("pending".to_owned(), 0, None, None)),
        || format!("the unknown-type row should be left pending, untouched: {waiting:?}"),
    );
    ctx.rec.check(
        decode_error.contains("cannot decode payload")
            && decode_error.contains("send_welcome_email"),
        || format!("undecodable row's last_error: {decode_error:?}"),
    );
    let attempts = done.task(&undecodable).map_or(0, |t| t.attempts);
    ctx.rec.check(attempts == 3, || {
        format!(
            "an undecodable row is retried within its attempts: {undecodable} has {attempts} of 3"
        )
    });
    let log = server.log_text();
    let dead = logs::count(&log, "task failed permanently");
    ctx.rec.check(dead == 1, || {
        format!("{dead} \"task failed permanently\" log lines (expected 1, the undecodable row)")
    });
    check_answers(&ctx, &report, &[], true);
    account(
        &ctx,
        &owned(report.acknowledged()),
        &done,
        std::slice::from_ref(&log),
    );
    let other_failed = done
        .tasks
        .iter()
        .filter(|t| t.state != "completed" && t.id != unknown && t.id != undecodable)
        .count();
    ctx.rec.check(other_failed == 0, || {
        format!("{other_failed} good tasks did not complete")
    });
    ctx.rec
        .check(server.is_running(), || "the server exited".to_owned());
    ctx.rec.with(|r| r.recovery = marked);
    let short = |s: &str| s.chars().take(90).collect::<String>();
    ctx.rec.note(format!(
        "undecodable row failed after 3 attempts within {}: \"{}\"; unknown-type row left pending, 0 attempts; \
         ~300 KB invite → {}; ~300 KB signup → {}; nothing stored; {} later signups completed",
        marked.map_or_else(|| "-".to_owned(), ms),
        short(&decode_error),
        shown(&invite).chars().take(120).collect::<String>(),
        shown(&signup).chars().take(120).collect::<String>(),
        report.acknowledged_count()
    ));
}

fn shown(reply: &Reply) -> String {
    match reply {
        Reply::Rejected { status, body, .. } => {
            format!("{status} {}", &body[..body.len().min(200)])
        }
        other => format!("{other:?}").chars().take(200).collect(),
    }
}
