//! `backlog`: peak memory of a runtime working through a large pending backlog (default
//! 1,000,000 rows). Memory must stay bounded: the runtime claims at most its free slots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::{Registry, Runtime};

use crate::backend::{Backend, BenchStore, NoOp};
use crate::burn_down::preload;
use crate::stats::{median, num, Table};
use crate::sys::{reset_peak_rss, rss_mib, sample_rss_until};
use crate::{Result, Settings, Summary};

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    insert_rows_per_s: f64,
    seconds: f64,
    rate: f64,
    rss_before: f64,
    peak: f64,
    rss_after: f64,
}

/// Runs the mode and prints its table.
pub(crate) async fn run(settings: &Settings, summary: &mut Summary) -> Result<()> {
    let rows = settings.rows;
    let mut figures: HashMap<Backend, Vec<Figures>> = HashMap::new();
    let mut hwm_reset = true;
    for run in 0..settings.runs {
        for backend in &settings.backends {
            let (f, reset) = measure(*backend, rows, &settings.database_url).await?;
            hwm_reset &= reset;
            eprintln!("  backlog run {} {backend}: {f:?}", run + 1);
            figures.entry(*backend).or_default().push(f);
        }
    }
    let mut table = Table::new(
        format!(
            "backlog: {rows} pending rows worked through by one runtime (concurrency 64; medians of {} runs)",
            settings.runs
        ),
        &[
            "store",
            "rows",
            "seconds",
            "tasks/s",
            "RSS before MiB",
            "peak RSS MiB",
            "RSS after MiB",
            "preload rows/s",
        ],
    );
    for backend in &settings.backends {
        let fs = figures.get(backend).map_or(&[][..], Vec::as_slice);
        let m = |f: fn(&Figures) -> f64| median(&fs.iter().map(f).collect::<Vec<_>>());
        table.row(vec![
            backend.to_string(),
            rows.to_string(),
            num(m(|f| f.seconds)),
            num(m(|f| f.rate)),
            num(m(|f| f.rss_before)),
            num(m(|f| f.peak)),
            num(m(|f| f.rss_after)),
            num(m(|f| f.insert_rows_per_s)),
        ]);
        summary.add(format!("backlog {backend} peak RSS"), m(|f| f.peak), "MiB");
        summary.add(
            format!("backlog {backend} tasks/s"),
            m(|f| f.rate),
            "tasks/s",
        );
    }
    table.note(if hwm_reset {
        "peak: VmHWM after resetting it (`/proc/self/clear_refs` = 5) once the rows were inserted, so it covers the runtime's work only"
    } else {
        "peak: highest VmRSS sampled every 100 ms (the kernel refused to reset VmHWM)"
    });
    table.note("the whole process is measured: Tokio, the HTTP-free runtime, the sqlx pools and SQLite's page cache");
    table.print();
    Ok(())
}

/// Preloads `rows`, then works through them with one runtime while sampling memory.
/// Returns the figures and whether the peak could be reset before the work started.
async fn measure(backend: Backend, rows: u64, url: &str) -> Result<(Figures, bool)> {
    let bench = BenchStore::open(backend, url).await?;
    let insert_rows_per_s = preload(&bench.store, rows).await?;
    let hwm_reset = reset_peak_rss();
    let (rss_before, _) = rss_mib()?;
    let runtime = Runtime::builder(
        Arc::clone(&bench.store),
        Registry::new().register::<NoOp>(()),
    )
    .start();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let runtime = runtime.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(3600);
            while runtime.stats().completed < rows && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            done.store(true, Ordering::Relaxed);
            started.elapsed()
        })
    };
    let sampled_peak =
        sample_rss_until(|| done.load(Ordering::Relaxed), Duration::from_millis(100)).await;
    let elapsed = watcher.await?;
    let completed = runtime.stats().completed;
    let (_, hwm) = rss_mib()?;
    runtime.shutdown(Duration::from_secs(10)).await;
    drop(runtime);
    let (rss_after, _) = rss_mib()?;
    bench.close().await?;
    if completed < rows {
        return Err(format!("backlog: only {completed} of {rows} completed").into());
    }
    let f = Figures {
        insert_rows_per_s,
        seconds: elapsed.as_secs_f64(),
        rate: rows as f64 / elapsed.as_secs_f64(),
        rss_before,
        peak: if hwm_reset {
            hwm.max(sampled_peak)
        } else {
            sampled_peak
        },
        rss_after,
    };
    Ok((f, hwm_reset))
}
