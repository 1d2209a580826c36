//! The CSV of a `horizon` run, in long format (`backend,phase,elapsed_s,metric,relation,value`,
//! one value a line) so that every table and index fits without knowing them in advance and
//! runs of both stores go into one file.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use super::sample::Sample;
use super::storage::Storage;
use crate::backend::Backend;
use crate::Result;

/// An open CSV file.
#[derive(Debug)]
pub(crate) struct Csv {
    out: BufWriter<File>,
}

impl Csv {
    /// Creates (or truncates) the file and writes the header.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "backend,phase,elapsed_s,metric,relation,value")?;
        Ok(Self { out })
    }

    /// Appends every figure of `sample` and flushes, so an interrupted run keeps its samples.
    pub(crate) fn write(&mut self, backend: Backend, sample: &Sample) -> Result<()> {
        let store = match backend {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        };
        let mut line = |metric: &str, relation: &str, value: f64| {
            writeln!(
                self.out,
                "{store},{},{:.1},{metric},{relation},{}",
                sample.phase.name(),
                sample.elapsed_s,
                if value.is_nan() {
                    String::new()
                } else {
                    format!("{value}")
                }
            )
        };
        line("offered_per_s", "", sample.offered)?;
        line("inserted_per_s", "", sample.inserted)?;
        line("completed_per_s", "", sample.completed)?;
        line("unsuccessful", "", sample.unsuccessful as f64)?;
        line("claim_p50_ms", "", sample.claim_p50)?;
        line("claim_p99_ms", "", sample.claim_p99)?;
        line("claim_max_ms", "", sample.claim_max)?;
        line("pickup_p50_ms", "", sample.pickup_p50)?;
        line("pickup_p99_ms", "", sample.pickup_p99)?;
        line("insert_p99_ms", "", sample.commit_p99)?;
        line("depth", "", sample.depth as f64)?;
        line("cpu_busy_pct", "", sample.cpu_busy)?;
        line("cpu_wait_pct", "", sample.cpu_wait)?;
        line("storage_bytes", "", sample.storage.total_bytes() as f64)?;
        match &sample.storage {
            Storage::Postgres {
                relations,
                xmin_age,
            } => {
                line("xmin_age", "", *xmin_age as f64)?;
                for r in relations {
                    if r.kind == "table" {
                        line("live_tuples", &r.name, r.live as f64)?;
                        line("dead_tuples", &r.name, r.dead as f64)?;
                        line("vacuums", &r.name, r.vacuums as f64)?;
                        line("total_bytes", &r.name, r.total_bytes as f64)?;
                        line("heap_bytes", &r.name, r.bytes as f64)?;
                    } else {
                        line("index_bytes", &r.name, r.bytes as f64)?;
                    }
                }
            }
            Storage::Sqlite {
                db_bytes,
                wal_bytes,
                pages,
                free_pages,
                checkpoint,
            } => {
                line("db_bytes", "", *db_bytes as f64)?;
                line("wal_bytes", "", *wal_bytes as f64)?;
                line("pages", "", *pages as f64)?;
                line("free_pages", "", *free_pages as f64)?;
                line("wal_frames", "", f64::from(checkpoint.frames))?;
                line("wal_backfilled", "", f64::from(checkpoint.backfilled))?;
            }
        }
        self.out.flush()?;
        Ok(())
    }
}
