//! Actions on every matching task: `retry --failed`, `prune`, `requeue-stuck` without ids.
//!
//! The store changes at most [`MAX_LIST_LIMIT`] rows per call, so each command loops until
//! a call finds nothing more (or the operator's `--limit` is reached): one short statement
//! at a time, never one huge transaction that holds locks while a backlog waits.

use std::future::Future;
use std::time::Duration;

use durable_core::store::{RetryFailed, StuckQuery, MAX_LIST_LIMIT};
use serde_json::json;

use super::{print_json, print_text, Ctx, Tally};
use crate::cli::{PruneArgs, RequeueArgs, RetryArgs};
use crate::error::{Error, Result};

/// Calls `step(batch)` until it changes fewer rows than asked, or `limit` rows in all.
/// Returns the total.
async fn drain<F, Fut>(limit: Option<u64>, mut step: F) -> Result<u64>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let mut total = 0_u64;
    loop {
        let left = limit.map_or(u64::MAX, |l| l - total);
        if left == 0 {
            return Ok(total);
        }
        let batch = left.min(u64::from(MAX_LIST_LIMIT)) as u32;
        let changed = step(batch).await?;
        total += changed;
        // A short batch means the store found no more. Retrying skips tasks whose unique key
        // is held, so it can return short while such tasks remain: those stay failed.
        if changed < u64::from(batch) {
            return Ok(total);
        }
    }
}

fn report(ctx: &Ctx, action: &str, count: u64, text: &str) -> Result<()> {
    tracing::info!(actor = %ctx.actor, action, count, "operator bulk action");
    if ctx.json {
        print_json(&json!({ "action": action, "count": count }))
    } else {
        print_text(text)
    }
}

/// `retry --failed [--type T] [--queue Q] [--limit N]`.
pub(super) async fn retry_failed(ctx: &Ctx, args: &RetryArgs) -> Result<Tally> {
    ctx.confirmed("retry --failed")?;
    let total = drain(args.limit, |batch| {
        let mut which = RetryFailed::new(batch);
        which.name.clone_from(&args.task_type);
        which.queue.clone_from(&args.queue);
        async move {
            ctx.store
                .retry_failed(&which)
                .await
                .map_err(Error::store("retry --failed"))
        }
    })
    .await?;
    report(
        ctx,
        "retry_failed",
        total,
        &format!("{total} failed tasks back to pending"),
    )?;
    Ok(Tally::default())
}

/// `prune --older-than D [--limit N]`.
pub(super) async fn prune(ctx: &Ctx, args: &PruneArgs) -> Result<Tally> {
    ctx.confirmed("prune")?;
    let older_than: Duration = args.older_than.into();
    let total = drain(args.limit, |batch| async move {
        ctx.store
            .prune(older_than, batch)
            .await
            .map_err(Error::store("prune"))
    })
    .await?;
    report(
        ctx,
        "prune",
        total,
        &format!(
            "{total} completed or cancelled tasks deleted (finished over {} ago)",
            args.older_than
        ),
    )?;
    Ok(Tally::default())
}

/// `requeue-stuck [--running-for D] [--type T] [--limit N]`.
pub(super) async fn requeue_stuck(ctx: &Ctx, args: &RequeueArgs) -> Result<Tally> {
    ctx.confirmed("requeue-stuck without ids")?;
    let running_for: Duration = args.running_for.map_or(Duration::ZERO, Into::into);
    let total = drain(args.limit, |batch| {
        let mut which = StuckQuery::new(running_for, batch);
        which.name.clone_from(&args.task_type);
        async move {
            ctx.store
                .requeue_stuck(&which)
                .await
                .map_err(Error::store("requeue-stuck"))
        }
    })
    .await?;
    let text = if running_for.is_zero() {
        format!("{total} tasks with an expired lease back to pending")
    } else {
        format!(
            "{total} tasks running for over {} back to pending",
            humantime::format_duration(running_for)
        )
    };
    report(ctx, "requeue_stuck", total, &text)?;
    Ok(Tally::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn drain_stops_at_a_short_batch_or_the_limit() {
        let rows = Cell::new(2_500_u64);
        let take = |batch: u32| {
            let n = rows.get().min(u64::from(batch));
            rows.set(rows.get() - n);
            async move { Ok(n) }
        };
        assert_eq!(drain(None, take).await.unwrap(), 2_500);
        rows.set(2_500);
        assert_eq!(drain(Some(1_200), take).await.unwrap(), 1_200);
        assert_eq!(rows.get(), 1_300);
    }
}
