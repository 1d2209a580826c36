//! The scheduler loop: enqueues the occurrences of the registry's periodic schedules, each
//! exactly once across every instance (see [`crate::periodic`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use crate::error::Result;
use crate::periodic::Periodic;
use crate::store::{NewTask, ScheduleAdvance};

/// Longest pause after a failed pass, which doubles from [`FIRST_RETRY`].
const MAX_RETRY: Duration = Duration::from_secs(30);
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Runs the registry's schedules until `stop`: at each occurrence (and at least every poll
/// interval, to follow the store's clock), one pass over every schedule.
pub(crate) async fn scheduler_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let schedules = shared.registry.periodic.clone();
    if schedules.is_empty() {
        return;
    }
    for periodic in &schedules {
        if !shared.registry.contains(periodic.task) {
            tracing::warn!(schedule = %periodic.name, task = periodic.task,
                "this instance enqueues the occurrences of a periodic task whose type it does \
                 not register: an instance that registers it must run them");
        }
    }
    tracing::info!(schedules = ?schedules.iter().map(|p| (p.name.as_str(), p.schedule.to_string())).collect::<Vec<_>>(),
        "periodic schedules running");
    let names: Vec<String> = schedules.iter().map(|p| p.name.clone()).collect();
    let mut retry = FIRST_RETRY;
    loop {
        let pause = match pass(&shared, &schedules, &names).await {
            Ok((pause, false)) => {
                retry = FIRST_RETRY;
                pause
            }
            Ok((pause, true)) => {
                // A schedule failed (logged): the others keep their times, it is retried.
                let pause = pause.min(retry);
                retry = (retry * 2).min(MAX_RETRY);
                pause
            }
            Err(error) => {
                let pause = retry;
                retry = (retry * 2).min(MAX_RETRY);
                tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64,
                    "periodic schedules: pass failed; retrying");
                pause
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One pass: reads the store's clock and the schedules' rows, advances each schedule with due
/// occurrences; returns how long to wait for the next occurrence, and whether a schedule
/// failed (logged; one schedule's failure, such as a task too large to store, does not hold
/// the others up).
async fn pass(
    shared: &Shared,
    schedules: &[Arc<Periodic>],
    names: &[String],
) -> Result<(Duration, bool)> {
    let store = &shared.store;
    let now = to_millis(store.database_now().await?);
    let rows = store.schedules(names).await?;
    let mut next: Option<DateTime<Utc>> = None;
    let mut failed = false;
    for periodic in schedules {
        let spec = periodic.schedule.to_string();
        let through = match rows.iter().find(|r| r.name == periodic.name) {
            None => {
                // First seen: start from now, without back-filling occurrences before it.
                let advance = ScheduleAdvance::new(&periodic.name, None, now, &spec);
                if store.advance_schedule(advance).await? {
                    tracing::info!(schedule = %periodic.name, %spec, from = %now,
                        "periodic schedule created");
                }
                now
            }
            Some(row) => {
                if let Err(error) =
                    advance(shared, periodic, row.enqueued_through, now, &spec).await
                {
                    tracing::warn!(schedule = %periodic.name, %error,
                        "periodic schedule: could not enqueue its due occurrences; retrying");
                    failed = true;
                }
                now.max(row.enqueued_through)
            }
        };
        if let Some(at) = periodic.schedule.next_after(through) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    let poll = shared.config.poll_interval;
    let pause = next
        .and_then(|at| (at - now).to_std().ok())
        .map_or(poll, |wait| wait.min(poll))
        .max(Duration::from_millis(1));
    Ok((pause, failed))
}

/// Enqueues the due occurrences of one schedule (through `now`) that its catch-up policy
/// keeps, moving its row from `through` in the same transaction.
async fn advance(
    shared: &Shared,
    periodic: &Periodic,
    through: DateTime<Utc>,
    now: DateTime<Utc>,
    spec: &str,
) -> Result<()> {
    let (due, earlier) = periodic
        .schedule
        .due(through, now, periodic.catch_up.keep());
    let Some(&latest) = due.last() else {
        return Ok(());
    };
    let chosen = periodic.catch_up.select(&due, now);
    let rows = chosen
        .iter()
        .map(|at| periodic.row(*at, &shared.client))
        .collect::<Result<Vec<NewTask>>>()?;
    let advance = ScheduleAdvance::new(&periodic.name, Some(through), latest, spec).tasks(&rows);
    if !shared.store.advance_schedule(advance).await? {
        // Another instance moved the row first: it enqueued these occurrences.
        return Ok(());
    }
    let dropped = earlier + (due.len() - chosen.len()) as u64;
    if dropped > 0 {
        // `dropped` is counted up to a bound (a lower bound past it).
        tracing::warn!(schedule = %periodic.name, dropped, policy = ?periodic.catch_up,
            since = %through, "periodic schedule: missed occurrences dropped by its catch-up policy");
    }
    if !rows.is_empty() {
        tracing::debug!(schedule = %periodic.name, enqueued = rows.len(), latest = %latest,
            "periodic occurrences enqueued");
        shared.wake.committed();
    }
    Ok(())
}

/// `t` to whole milliseconds, the precision both stores keep: a value read back compares
/// equal to the one written.
fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
