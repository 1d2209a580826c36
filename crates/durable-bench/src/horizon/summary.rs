//! The closing tables of a `horizon` run: one line per phase, compared with the clean phase,
//! and the size of each table and index at the end of each phase.

use super::args::Phase;
use super::sample::{Sample, MIB};
use super::storage::Storage;
use crate::backend::Backend;
use crate::stats::{median, num, ratio, Table};

/// What the run kept of one phase besides its samples.
#[derive(Debug, Clone)]
pub(crate) struct PhaseRun {
    /// Which phase.
    pub(crate) phase: Phase,
    /// Its position in the run.
    pub(crate) step: usize,
    /// The storage just before the phase began.
    pub(crate) start: Storage,
    /// Scans the readers made (`rr-readers`).
    pub(crate) scans: u64,
}

/// The figures of one phase.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PhaseFigures {
    /// Median completion rate, tasks/s.
    pub(crate) median: f64,
    /// Lowest sample's completion rate.
    pub(crate) lowest: f64,
    /// Median of the samples' claim p50 and p99, ms.
    pub(crate) claim_median: (f64, f64),
    /// Median of the samples' pickup p50 and p99, ms.
    pub(crate) pickup_median: (f64, f64),
    /// Highest sample's claim p99, ms.
    pub(crate) claim_p99_peak: f64,
    /// Highest depth.
    pub(crate) depth_peak: u64,
    /// Median of the samples' machine CPU busy and CPU wait percent.
    pub(crate) machine: (f64, f64),
    /// Median and highest dead tuples of the task table (PostgreSQL).
    pub(crate) dead: (f64, f64),
}

/// Figures of the samples of one phase.
pub(crate) fn figures(samples: &[&Sample]) -> PhaseFigures {
    let rates: Vec<f64> = samples.iter().map(|s| s.completed).collect();
    let dead: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.storage.tasks().map(|t| t.dead as f64))
        .collect();
    // `median` leaves out the samples without a figure (no task started in them).
    let of = |f: fn(&Sample) -> f64| median(&samples.iter().map(|s| f(s)).collect::<Vec<_>>());
    PhaseFigures {
        median: median(&rates),
        claim_median: (of(|s| s.claim_p50), of(|s| s.claim_p99)),
        pickup_median: (of(|s| s.pickup_p50), of(|s| s.pickup_p99)),
        lowest: rates.iter().copied().fold(f64::NAN, f64::min),
        claim_p99_peak: samples.iter().map(|s| s.claim_p99).fold(f64::NAN, f64::max),
        depth_peak: samples.iter().map(|s| s.depth).max().unwrap_or(0),
        machine: (of(|s| s.cpu_busy), of(|s| s.cpu_wait)),
        dead: (median(&dead), dead.iter().copied().fold(f64::NAN, f64::max)),
    }
}

/// Prints the per-phase summary and the relations table.
pub(crate) fn print(backend: Backend, runs: &[PhaseRun], samples: &[Sample], title: &str) {
    let of = |step: usize| -> Vec<&Sample> { samples.iter().filter(|s| s.step == step).collect() };
    // The reference: the clean phase, else the first one.
    let reference = runs
        .iter()
        .find(|r| r.phase == Phase::Clean)
        .or(runs.first())
        .map_or(f64::NAN, |r| figures(&of(r.step)).median);
    let mut header = vec![
        "phase",
        "samples",
        "completed/s median",
        "vs clean",
        "lowest",
        "vs clean",
        "claim p50/p99 ms",
        "pickup p50/p99 ms",
        "claim p99 peak ms",
        "depth peak",
        "CPU busy % / wait %",
        "storage MiB start→end",
    ];
    let extra: &[&str] = match backend {
        Backend::Postgres => &[
            "without history MiB start→end",
            "task dead median",
            "task dead peak",
            "task vacuums",
            "reader scans",
        ],
        Backend::Sqlite => &["WAL MiB peak", "checkpointed at end", "reader scans"],
    };
    header.extend_from_slice(extra);
    let mut table = Table::new(format!("horizon, {backend}: phases ({title})"), &header);
    for run in runs {
        let mine = of(run.step);
        let f = figures(&mine);
        let end = mine.last().map(|s| &s.storage);
        let mut row = vec![
            run.phase.name().to_owned(),
            mine.len().to_string(),
            num(f.median),
            ratio(f.median / reference),
            num(f.lowest),
            ratio(f.lowest / reference),
            format!("{}/{}", num(f.claim_median.0), num(f.claim_median.1)),
            format!("{}/{}", num(f.pickup_median.0), num(f.pickup_median.1)),
            num(f.claim_p99_peak),
            f.depth_peak.to_string(),
            format!("{}/{}", num(f.machine.0), num(f.machine.1)),
            format!(
                "{}→{}",
                num(run.start.total_bytes() as f64 / MIB),
                end.map_or("–".to_owned(), |s| num(s.total_bytes() as f64 / MIB))
            ),
        ];
        row.extend(store_cells(backend, run, &mine, &f));
        row.push(run.scans.to_string());
        table.row(row);
    }
    table.note(
        "vs clean: the phase's median (or lowest) completion rate over the clean phase's median; \
         claim p50/p99: medians of the samples' percentiles, from the batch being built (the \
         producer's commit included); pickup: the same from the batch's commit acknowledged; \
         claim p99 peak: the highest of the phase's per-sample p99s; CPU busy / wait: \
         medians of the samples' share of the machine's CPU time in use (every process, every \
         core) and of their time in which some thread waited for a CPU (more work than cores); \
         storage: before the phase → its last sample; without history: the same less the history table, which grows \
         with the tasks finished in any phase",
    );
    table.print();
    if backend == Backend::Postgres {
        print_relations(runs, samples, title);
    }
}

/// The cells of a phase's row that depend on the store: sizes, dead tuples and vacuums on
/// PostgreSQL, the WAL on SQLite.
fn store_cells(
    backend: Backend,
    run: &PhaseRun,
    mine: &[&Sample],
    f: &PhaseFigures,
) -> Vec<String> {
    let end = mine.last().map(|s| &s.storage);
    let mut cells = Vec::new();
    match backend {
        Backend::Postgres => {
            let hot = |s: &Storage| {
                s.hot_bytes()
                    .map_or("–".to_owned(), |b| num(b as f64 / MIB))
            };
            cells.push(format!(
                "{}→{}",
                hot(&run.start),
                end.map_or("–".to_owned(), hot)
            ));
            let vacuums = |s: &Storage| s.tasks().map_or(0, |t| t.vacuums);
            cells.push(num(f.dead.0));
            cells.push(num(f.dead.1));
            cells.push(
                end.map_or(0, vacuums)
                    .saturating_sub(vacuums(&run.start))
                    .to_string(),
            );
        }
        Backend::Sqlite => {
            let wal_peak = mine
                .iter()
                .filter_map(|s| match &s.storage {
                    Storage::Sqlite { wal_bytes, .. } => Some(*wal_bytes as f64 / MIB),
                    Storage::Postgres { .. } => None,
                })
                .fold(f64::NAN, f64::max);
            cells.push(num(wal_peak));
            cells.push(match end {
                Some(Storage::Sqlite { checkpoint, .. }) => {
                    format!("{} of {} frames", checkpoint.backfilled, checkpoint.frames)
                }
                _ => "–".to_owned(),
            });
        }
    }
    cells
}

/// Each table's and index's size (and a table's dead tuples) before the run and at the end of
/// each phase.
fn print_relations(runs: &[PhaseRun], samples: &[Sample], title: &str) {
    let Some(first) = runs.first() else { return };
    let Storage::Postgres { relations, .. } = &first.start else {
        return;
    };
    let mut header: Vec<String> = vec!["relation".into(), "kind".into(), "start".into()];
    header.extend(runs.iter().map(|r| format!("end of {}", r.phase.name())));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(
        format!("horizon, PostgreSQL: tables and indexes ({title})"),
        &header,
    );
    let cell = |storage: &Storage, name: &str| -> String {
        let Storage::Postgres { relations, .. } = storage else {
            return "–".to_owned();
        };
        relations
            .iter()
            .find(|r| r.name == name)
            .map_or("–".to_owned(), |r| {
                if r.kind == "table" {
                    format!("{} MiB, {} dead", num(r.total_bytes as f64 / MIB), r.dead)
                } else {
                    format!("{} MiB", num(r.bytes as f64 / MIB))
                }
            })
    };
    for relation in relations {
        let mut row = vec![
            relation.name.clone(),
            relation.kind.to_owned(),
            cell(&first.start, &relation.name),
        ];
        for run in runs {
            let end = samples.iter().rev().find(|s| s.step == run.step);
            row.push(end.map_or("–".to_owned(), |s| cell(&s.storage, &relation.name)));
        }
        table.row(row);
    }
    table.note("tables: with their indexes and TOAST; indexes: alone");
    table.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(completed: f64, claim_p99: f64, depth: u64, dead: i64) -> Sample {
        Sample {
            phase: Phase::Clean,
            step: 0,
            elapsed_s: 5.0,
            offered: 2000.0,
            inserted: 2000.0,
            completed,
            unsuccessful: 0,
            claim_p50: 1.0,
            claim_p99,
            claim_max: claim_p99,
            pickup_p50: 0.5,
            pickup_p99: claim_p99 / 2.0,
            commit_p99: 3.0,
            cpu_busy: depth as f64 / 10.0,
            cpu_wait: 2.0,
            depth,
            storage: Storage::Postgres {
                relations: vec![super::super::storage::Relation {
                    name: "durable_tasks".into(),
                    kind: "table",
                    live: 10,
                    dead,
                    bytes: 8192,
                    total_bytes: 16384,
                    vacuums: 0,
                }],
                xmin_age: 3,
            },
        }
    }

    #[test]
    fn phase_figures_take_medians_and_peaks() {
        let samples = [
            sample(2000.0, 5.0, 10, 100),
            sample(1000.0, 40.0, 900, 5000),
            sample(1900.0, 7.0, 20, 300),
        ];
        let refs: Vec<&Sample> = samples.iter().collect();
        let f = figures(&refs);
        assert!((f.median - 1900.0).abs() < 1e-9);
        assert!((f.lowest - 1000.0).abs() < 1e-9);
        assert!((f.claim_p99_peak - 40.0).abs() < 1e-9);
        assert!((f.claim_median.1 - 7.0).abs() < 1e-9);
        assert!((f.pickup_median.1 - 3.5).abs() < 1e-9);
        assert_eq!(f.depth_peak, 900);
        assert!((f.machine.0 - 2.0).abs() < 1e-9 && (f.machine.1 - 2.0).abs() < 1e-9);
        assert!((f.dead.0 - 300.0).abs() < 1e-9 && (f.dead.1 - 5000.0).abs() < 1e-9);
    }
}
