//! One sample of a `horizon` run, and its row in the live table.

use super::args::Phase;
use super::storage::{Relation, Storage};
use crate::backend::Backend;
use crate::stats::num;

/// Bytes in a MiB.
pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// What the run looked like over one sampling interval, and at its end.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// The phase it belongs to.
    pub(crate) phase: Phase,
    /// That phase's position in the run (a phase may appear more than once).
    pub(crate) step: usize,
    /// Seconds since the load started (the end of the interval).
    pub(crate) elapsed_s: f64,
    /// Tasks per second the offered rate called for.
    pub(crate) offered: f64,
    /// Tasks per second committed by the producer.
    pub(crate) inserted: f64,
    /// Attempts per second completed by the workers (their reports of the interval).
    pub(crate) completed: f64,
    /// Attempts retried or failed in the interval.
    pub(crate) unsuccessful: u64,
    /// Claim latency (due → started) percentiles of the attempts started, ms.
    pub(crate) claim_p50: f64,
    /// 99th percentile of the same.
    pub(crate) claim_p99: f64,
    /// Largest of the same.
    pub(crate) claim_max: f64,
    /// Pickup latency (the batch's commit acknowledged → started) percentiles, ms: the claim
    /// latency without the producer's commit. Counted in the sample in which the commit's
    /// acknowledgement and the start are both known.
    pub(crate) pickup_p50: f64,
    /// 99th percentile of the same.
    pub(crate) pickup_p99: f64,
    /// 99th percentile of the producer's batch commits, ms.
    pub(crate) commit_p99: f64,
    /// Due `pending` tasks at the end of the interval.
    pub(crate) depth: u64,
    /// Percent of the machine's CPU time (every core) busy over the interval, whoever used
    /// it: the benchmark, the database, the disturbance; NaN where `/proc/stat` is missing.
    pub(crate) cpu_busy: f64,
    /// Percent of the interval in which some thread on the machine waited for a CPU (more
    /// work than cores); NaN where the kernel does not report it.
    pub(crate) cpu_wait: f64,
    /// The storage at the end of the interval.
    pub(crate) storage: Storage,
}

/// Prints the live table's header for `backend`.
pub(crate) fn print_header(backend: Backend) {
    let columns = header(backend);
    println!("| {} |", columns.join(" | "));
    println!("|{}", columns.iter().map(|_| " --- |").collect::<String>());
}

/// The live table's columns for `backend`.
fn header(backend: Backend) -> Vec<&'static str> {
    let mut columns = vec![
        "phase",
        "t s",
        "offered/s",
        "inserted/s",
        "completed/s",
        "claim p50 ms",
        "claim p99 ms",
        "pickup p50 ms",
        "pickup p99 ms",
        "depth",
        "insert p99 ms",
        "CPU busy %",
        "CPU wait %",
        "storage MiB",
    ];
    columns.extend_from_slice(match backend {
        Backend::Postgres => &["tasks live", "tasks dead", "task vacuums", "xmin age"],
        Backend::Sqlite => &["WAL MiB", "WAL frames", "checkpointed", "free pages"],
    });
    columns
}

impl Sample {
    /// The row of this sample in the live table.
    pub(crate) fn cells(&self) -> Vec<String> {
        let mut cells = vec![
            self.phase.name().to_owned(),
            format!("{:.0}", self.elapsed_s),
            num(self.offered),
            num(self.inserted),
            num(self.completed),
            num(self.claim_p50),
            num(self.claim_p99),
            num(self.pickup_p50),
            num(self.pickup_p99),
            self.depth.to_string(),
            num(self.commit_p99),
            num(self.cpu_busy),
            num(self.cpu_wait),
            num(self.storage.total_bytes() as f64 / MIB),
        ];
        match &self.storage {
            Storage::Postgres { xmin_age, .. } => {
                let tasks = self.storage.tasks();
                let cell = |f: fn(&Relation) -> i64| {
                    tasks.as_ref().map_or("–".to_owned(), |t| f(t).to_string())
                };
                cells.push(cell(|t| t.live));
                cells.push(cell(|t| t.dead));
                cells.push(cell(|t| t.vacuums));
                cells.push(xmin_age.to_string());
            }
            Storage::Sqlite {
                wal_bytes,
                free_pages,
                checkpoint,
                ..
            } => {
                cells.push(num(*wal_bytes as f64 / MIB));
                cells.push(checkpoint.frames.to_string());
                cells.push(checkpoint.backfilled.to_string());
                cells.push(free_pages.to_string());
            }
        }
        cells
    }
}

/// Prints a markdown row.
pub(crate) fn print_row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}
