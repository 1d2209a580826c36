//! `http`: an endpoint spawning one no-op task per request, driven at concurrency 1, 16 and
//! 64, for `tokio::spawn` (baseline), `Durable` and the naive one-transaction-per-request
//! design on each store.

mod measure;
mod tables;

use std::collections::HashMap;
use std::time::Duration;

use crate::backend::Backend;
use crate::load::LoadResult;
use crate::{Result, Settings, Summary};
use measure::measure;
use tables::print_table;

/// Connection counts driven.
const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// One server design under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Variant {
    /// `tokio::spawn(async {})` in the handler: the baseline.
    Spawn,
    /// `durable.spawn(NoOp {})` with `DurableLayer` and a running runtime.
    Durable(Backend),
    /// `durable.spawn_with(NoOp {}, ..unique_key(..))`, a fresh key per request, with a
    /// running runtime (`--unique`): the unique insert path's cost.
    DurableUnique(Backend),
    /// Diagnostic: `durable.spawn` with `DurableLayer` over a client with no runtime (the
    /// rows are stored, nothing runs them): the cost of the write path alone.
    EnqueueOnly(Backend),
    /// One insert + commit per request in the handler.
    Naive(Backend),
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Spawn => "tokio::spawn".to_owned(),
            Variant::Durable(b) => format!("Durable ({b})"),
            Variant::DurableUnique(b) => format!("Durable, unique key ({b})"),
            Variant::EnqueueOnly(b) => format!("Durable, no runtime ({b})"),
            Variant::Naive(b) => format!("naive tx/request ({b})"),
        }
    }
}

/// Where a `Durable` run's store traffic went.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    /// Rows inserted (tasks acknowledged, warm-up included).
    tasks: u64,
    /// Rows per insert transaction.
    rows_per_insert: f64,
    /// Rows per completion statement.
    rows_per_complete: f64,
    /// Claim statements per 100 tasks.
    claims_per_100: f64,
    /// Write transactions (insert + completion + claim cycles) per 100 tasks.
    writes_per_100: f64,
    /// Share of tasks dispatched locally at insert, in percent.
    local_pct: f64,
}

/// One measurement's figures.
#[derive(Debug, Clone, Copy)]
struct Point {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    traffic: Option<Traffic>,
}

impl From<&LoadResult> for Point {
    fn from(r: &LoadResult) -> Self {
        Self {
            rps: r.rps(),
            p50: r.p50(),
            p99: r.p99(),
            errors: r.errors,
            traffic: None,
        }
    }
}

/// Runs the mode and prints its table.
pub(crate) async fn run(settings: &Settings, summary: &mut Summary) -> Result<()> {
    let mut variants = vec![Variant::Spawn];
    for backend in &settings.backends {
        variants.push(Variant::Durable(*backend));
        if settings.unique {
            variants.push(Variant::DurableUnique(*backend));
        }
        variants.push(Variant::EnqueueOnly(*backend));
        variants.push(Variant::Naive(*backend));
    }
    let warmup = (settings.duration / 5).min(Duration::from_secs(1));
    let probe_dir = tempfile::Builder::new().prefix("durable-bench").tempdir()?;
    let mut fsync = Vec::new();
    // runs[(variant, c)] = one point per run
    let mut points: HashMap<(Variant, usize), Vec<Point>> = HashMap::new();
    let mut incomplete = Vec::new();
    for run in 0..settings.runs {
        fsync.push(crate::sys::fdatasync_ms(probe_dir.path(), 50)?);
        for c in settings.points(&CONCURRENCY) {
            for variant in &variants {
                let (result, note, traffic) = measure(
                    *variant,
                    c,
                    warmup,
                    settings.duration,
                    &settings.database_url,
                    settings.idempotency_key,
                )
                .await?;
                if let Some(note) = note {
                    incomplete.push(format!(
                        "run {}: {} c={c}: {note}",
                        run + 1,
                        variant.label()
                    ));
                }
                eprintln!(
                    "  http run {} {} c={c}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
                    run + 1,
                    variant.label(),
                    result.rps(),
                    result.p50(),
                    result.p99(),
                    result.errors
                );
                let mut point = Point::from(&result);
                point.traffic = traffic;
                points.entry((*variant, c)).or_default().push(point);
            }
        }
    }
    print_table(settings, &variants, &points, &fsync, &incomplete, summary);
    Ok(())
}
/// "met" / "MISSED".
pub(crate) fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}
