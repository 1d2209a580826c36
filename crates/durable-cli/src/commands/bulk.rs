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

/// How a [`drain`] knows it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// A call changed fewer rows than asked: the store found no more.
    Short,
    /// A call changed nothing. For a bulk retry, which keeps one failed task per unique key:
    /// a batch where two share a key comes back short while retryable tasks remain behind
    /// it (the next call passes over the one whose key is now held).
    Empty,
}

/// Calls `step(batch)` until `until` says the store has no more, or `limit` rows in all.
/// Returns the total.
async fn drain<F, Fut>(limit: Option<u64>, until: Until, mut step: F) -> Result<u64>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let mut total = 0_u64;
    loop {
        let left = limit.map_or(u64::MAX, |l| l.saturating_sub(total));
        if left == 0 {
            return Ok(total);
        }
        let batch = left.min(u64::from(MAX_LIST_LIMIT)) as u32;
        let changed = step(batch).await?;
        total += changed;
        let done = match until {
            Until::Short => changed < u64::from(batch),
            Until::Empty => changed == 0,
        };
        if done {
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
    // Retried tasks that fail again at once would come back as failed while this loops:
    // retry at most as many as were failed when it started.
    let failed_at_start = ctx
        .store
        .stats()
        .await
        .map_err(Error::store("retry --failed"))?
        .state(durable_core::TaskState::Failed)
        .value();
    let limit = Some(
        args.limit
            .map_or(failed_at_start, |l| l.min(failed_at_start)),
    );
    let total = drain(limit, Until::Empty, |batch| {
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
    let total = drain(args.limit, Until::Short, |batch| async move {
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
    let total = drain(args.limit, Until::Short, |batch| {
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
        assert_eq!(drain(None, Until::Short, take).await.unwrap(), 2_500);
        rows.set(2_500);
        assert_eq!(drain(Some(1_200), Until::Short, take).await.unwrap(), 1_200);
        assert_eq!(rows.get(), 1_300);
    }

    #[tokio::test]
    async fn a_drain_until_empty_goes_on_past_short_batches() {
        // Short batches (rows sharing a key), then nothing left.
        let answers = Cell::new(0_u32);
        let take = |batch: u32| {
            let call = answers.get();
            answers.set(call + 1);
            let n = match call {
                0 => u64::from(batch) - 1,
                1 | 2 => 2,
                _ => 0,
            };
            let n = n.min(u64::from(batch));
            async move { Ok(n) }
        };
        assert_eq!(drain(None, Until::Empty, take).await.unwrap(), 1_003);
        assert_eq!(answers.get(), 4, "ends at the call that changed nothing");
        answers.set(0);
        assert_eq!(drain(None, Until::Short, take).await.unwrap(), 999);
        answers.set(0);
        assert_eq!(drain(Some(1_000), Until::Empty, take).await.unwrap(), 1_000);
    }
}
