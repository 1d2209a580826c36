//! Scenario 6, database outage under load. PostgreSQL: the test database refuses connections
//! (`ALTER DATABASE .. ALLOW_CONNECTIONS false`) and every backend of it is terminated, for a
//! few seconds — only this test's database is affected, not the server. SQLite: another
//! connection holds the write lock (`BEGIN EXCLUSIVE`). During the outage requests get 503 or
//! wait and succeed, never a 2xx for unstored work; afterwards the same process (no restart)
//! completes everything acknowledged.

use std::time::{Duration, Instant};

use super::{account, all_completed, check_answers, deadline, ms, owned, secs, Ctx, Stage};
use crate::backend::Backend;
use crate::chaos::db::{database_name, hold_sqlite_lock, wait_finished, PgAdmin};
use crate::chaos::load::{Load, LoadSpec, Reply};
use crate::chaos::logs;

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
    }) = Stage::start(&ctx, 1, &[("EMAIL_DELAY_MS", "100")]).await
    else {
        return;
    };
    let mut server = servers.remove(0);
    let load = Load::start(&targets, LoadSpec::new("outage", 20.0).invites(4));
    tokio::time::sleep(
        ctx.params
            .pick(Duration::from_millis(1500), Duration::from_secs(4)),
    )
    .await;

    let outage = match ctx.backend {
        Backend::Postgres => ctx
            .params
            .pick(Duration::from_secs(3), Duration::from_secs(10)),
        // Long mode: longer than the store's 10 s busy timeout, so writes fail, not just wait.
        Backend::Sqlite => ctx
            .params
            .pick(Duration::from_secs(3), Duration::from_secs(12)),
    };
    let began = load.started();
    let outage_start = began.elapsed();
    let how = match ctx.backend {
        Backend::Postgres => {
            let name = database_name(db.url());
            let mut admin = PgAdmin::connect().await;
            admin
                .allow_connections(&name, false)
                .await
                .expect("ALTER DATABASE .. ALLOW_CONNECTIONS false");
            let killed = admin
                .terminate_all(&name)
                .await
                .expect("terminate the database's backends");
            tokio::time::sleep(outage).await;
            admin
                .allow_connections(&name, true)
                .await
                .expect("ALTER DATABASE .. ALLOW_CONNECTIONS true");
            format!(
                "database refused connections for {} (ALLOW_CONNECTIONS false) after {killed} backends were terminated",
                secs(outage)
            )
        }
        Backend::Sqlite => {
            hold_sqlite_lock(db.url(), outage).await;
            format!(
                "another connection held the write lock (BEGIN EXCLUSIVE) for {} (busy_timeout 10 s)",
                secs(outage)
            )
        }
    };
    let outage_end_at = Instant::now();
    let outage_end = began.elapsed();
    tokio::time::sleep(
        ctx.params
            .pick(Duration::from_secs(3), Duration::from_secs(5)),
    )
    .await;
    let report = load.stop().await;
    let done = wait_finished(&inspector, deadline(&ctx)).await;
    let all_done = outage_end_at.elapsed();

    let during: Vec<_> = report
        .sent
        .iter()
        .filter(|s| s.at + s.latency >= outage_start && s.at <= outage_end)
        .collect();
    let during_ok = during
        .iter()
        .filter(|s| s.reply.task_id().is_some())
        .count();
    let during_503 = during
        .iter()
        .filter(|s| s.reply.status() == Some(503))
        .count();
    let slowest = during.iter().map(|s| s.latency).max().unwrap_or_default();
    check_answers(&ctx, &report, &[503], false);
    let unanswered = report
        .sent
        .iter()
        .filter(|s| matches!(s.reply, Reply::Failed(_)))
        .count();
    // Acknowledged means stored: every 2xx's task exists and completes (checked by account).
    account(
        &ctx,
        &owned(report.acknowledged()),
        &done,
        &[server.log_text()],
    );
    all_completed(&ctx, &done);
    ctx.rec.check(server.is_running(), || {
        "the server exited during the outage".to_owned()
    });
    // Back without a restart: requests sent after the outage are acknowledged again.
    let first_ok_after = report
        .sent
        .iter()
        .filter(|s| s.at >= outage_end && s.reply.task_id().is_some())
        .map(|s| (s.at + s.latency).saturating_sub(outage_end))
        .min();
    ctx.rec.check(first_ok_after.is_some(), || {
        "no request after the outage was acknowledged".to_owned()
    });
    ctx.rec.with(|r| r.recovery = first_ok_after);
    let mut how = how;
    if ctx.backend == Backend::Postgres {
        // The LISTEN connection (cross-instance wakeups) was terminated too: it must be back.
        // (Its reconnect backs off up to 10 s, so give it that long.)
        let log = super::wait_logged(&server, "re-established", Duration::from_secs(15)).await;
        let relistened = logs::count(&log, "LISTEN connection re-established")
            + logs::count(&log, "LISTEN connection dropped and re-established");
        ctx.rec.check(relistened > 0, || {
            "the LISTEN connection was not re-established after the outage".to_owned()
        });
        how.push_str("; LISTEN connection re-established");
    }
    ctx.rec.note(format!(
        "{how}; requests overlapping it: {} ({during_ok} acknowledged after waiting up to {}, {during_503} answered 503, \
         {unanswered} without answer); first acknowledgement {} after it ended, every acknowledged task done {} after",
        during.len(),
        ms(slowest),
        first_ok_after.map_or_else(|| "-".to_owned(), ms),
        secs(all_done)
    ));
}
