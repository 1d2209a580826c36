//! The connections claims run on: the store's connect options, with sorting priced out.
//!
//! A claim takes the first due rows in claim order, and the claim indexes hold them in that
//! order: walked from the head (or from the claim's position), the claim reads its `LIMIT`
//! rows and stops. Every other plan reads every pending entry of an index (a bitmap scan, a
//! per-queue index read from end to end, a sequential scan) and sorts what it found. On the
//! statistics of a healthy queue (a row or two pending, what the housekeeping's analyze sees)
//! those plans are estimated as cheap as the walk, and PostgreSQL takes either from one
//! analyze to the next: it prices an index by the rows it expects to match, not by the
//! entries it holds. Under a held vacuum horizon the claim indexes keep an entry for every
//! task pending since, so a claim that reads them all took longer with every task — tens of
//! milliseconds after a minute, the queue building up behind it — until the next analyze
//! happened to pick the walk again.
//!
//! `enable_sort = off` on these connections prices every plan with a sort out of reach, so
//! the walk in claim order is what a claim runs whatever the statistics. It is not a ban: a
//! database without the claim indexes still plans a sort. Only claims run here, and the looks
//! before a claim position, which walk the same index in the same order; every other
//! statement of the store keeps the server's settings on the store's pool.
//!
//! The same pricing makes a claim's plan the same whatever the tables hold, so claims keep
//! one plan per connection (`plan_cache_mode = force_generic_plan`) instead of being planned
//! at every run as the store's other statements are: planning a claim over the live
//! partition's three leaves (lane 0 and the lanes, migration 13) and their indexes took
//! longer than running it (about 0.25 ms of a 0.8-ms claim transaction on the 2-core machine
//! of `docs/BENCHMARKS.md`). `enable_seqscan = off` prices out the one shape a plan kept
//! could regret: a lane empty when the plan was made is scanned whole at no cost, and read
//! whole, for every claim, once it holds a turn of tasks. The claim's UPDATE finds its rows
//! by their primary keys, its CTE walks a claim index, whatever the leaves held at first.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// At most this many claim connections per store: a runtime has one claim in flight at a
/// time, a claim at shutdown may overlap it, and a look before the claim position (see
/// [`look`](super::look)) runs beside them.
const CLAIM_CONNECTIONS: u32 = 3;

/// A pool for claims on the connect options of `pool` (schema, application name, timeouts:
/// everything the store's connections get, the plan cache mode and the two prices above
/// aside), opened on first use. A
/// connection idle for `ping_after_idle` or longer is pinged before a claim uses it, as the
/// store's own are: one that died while idle (a restart, a failover) is replaced rather than
/// failing a claim.
pub(super) fn claim_pool(pool: &PgPool, ping_after_idle: Duration) -> PgPool {
    let options = (*pool.connect_options()).clone().options([
        ("enable_sort", "off"),
        ("enable_seqscan", "off"),
        ("plan_cache_mode", "force_generic_plan"),
    ]);
    let settings = pool.options();
    let pool_options = PgPoolOptions::new()
        .max_connections(CLAIM_CONNECTIONS)
        .min_connections(0)
        .acquire_timeout(settings.get_acquire_timeout())
        .idle_timeout(settings.get_idle_timeout())
        .max_lifetime(settings.get_max_lifetime());
    super::builder::pinged_after_idle(pool_options, ping_after_idle).connect_lazy_with(options)
}
