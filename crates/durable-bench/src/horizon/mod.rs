//! `horizon`: a fixed offered rate for a series of phases while something holds the vacuum
//! horizon back (PostgreSQL) or keeps checkpoints from completing (SQLite); how completion
//! rate, claim latency, queue depth and the storage of the task table evolve.
//!
//! The parent opens a fresh store, starts `--processes` worker processes (this binary again,
//! in the hidden `horizon-worker` mode, local dispatch off so every task goes through a
//! claim) and inserts tasks open loop through a client. Every `--sample` it reads the
//! workers' reports, the queue depth and the storage, prints a row and appends it to the CSV.

mod args;
mod csv;
mod disturb;
mod fleet;
mod histogram;
mod producer;
mod protocol;
mod sample;
mod sampler;
mod starts;
mod storage;
mod summary;
mod wal;
pub(crate) mod worker;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use durable_core::{CancellationToken, Client};

pub(crate) use self::args::Args;
use self::disturb::{Disturbance, Readers, Target};
use self::fleet::{Fleet, Launch};
use self::producer::Counters;
use self::sample::Sample;
use self::sampler::Sampler;
use self::storage::Reader;
use self::summary::PhaseRun;
use crate::backend::{Backend, BenchStore};
use crate::{Result, Settings};

/// Runs `horizon` on each store of `settings`. `passthrough` holds the options the worker
/// processes must share with the parent.
pub(crate) async fn run(settings: &Settings, args: &Args, passthrough: &[String]) -> Result<()> {
    if args.phases.is_empty() || args.phase.is_zero() || args.sample.is_zero() {
        return Err("horizon needs at least one phase, a --phase and a --sample above zero".into());
    }
    let mut csv = args.csv.as_deref().map(csv::Csv::create).transpose()?;
    for backend in &settings.backends {
        run_one(*backend, settings, args, passthrough, csv.as_mut()).await?;
    }
    Ok(())
}

async fn run_one(
    backend: Backend,
    settings: &Settings,
    args: &Args,
    passthrough: &[String],
    mut csv: Option<&mut csv::Csv>,
) -> Result<()> {
    let bench = BenchStore::open(backend, &settings.database_url).await?;
    let (target, reader) = match (bench.pg_schema(), bench.sqlite_file()) {
        (Some(schema), _) => (
            Target::Postgres {
                url: settings.database_url.clone(),
                schema: schema.to_owned(),
            },
            Reader::postgres(&settings.database_url, schema).await?,
        ),
        (None, Some(file)) => (
            Target::Sqlite { url: file.url() },
            Reader::sqlite(file.path().to_path_buf()).await?,
        ),
        (None, None) => return Err("a store is either PostgreSQL or SQLite".into()),
    };
    let launch = Launch {
        backend,
        database_url: settings.database_url.clone(),
        target: match &target {
            Target::Postgres { schema, .. } => schema.clone(),
            Target::Sqlite { url } => url.clone(),
        },
        passthrough: passthrough.to_vec(),
    };
    let fleet = Fleet::start(&launch, args.processes, args.workers).await?;
    let title = format!(
        "{}/s offered, {} worker slots in {} processes, phases of {} s",
        args.rate,
        args.workers,
        args.processes.max(1),
        args.phase.as_secs()
    );
    eprintln!("  horizon {backend}: workers ready; {title}");

    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let producer = tokio::spawn(producer::run(
        Client::new(Arc::clone(&bench.store)),
        args.rate,
        args.insert_every,
        Arc::clone(&counters),
        stop.clone(),
    ));
    let mut sampler = Sampler::new(Arc::clone(&counters), reader);
    println!(
        "### horizon, {backend}: samples every {} s ({title})\n",
        args.sample.as_secs_f64()
    );
    println!("_{}_\n", sampler.reader.describe().await?);
    sample::print_header(backend);

    let mut taken: Vec<Sample> = Vec::new();
    let mut runs: Vec<PhaseRun> = Vec::new();
    let readers = Readers {
        count: args.readers,
        pause: args.reader_pause,
        parallel_workers: args.reader_parallel_workers,
    };
    for (i, phase) in args.phases.iter().enumerate() {
        let phase_start = sampler.started + args.phase * i as u32;
        let end = phase_start + args.phase;
        let start = sampler.reader.read().await?;
        let disturbance = Disturbance::start(*phase, &target, readers).await?;
        let mut next = phase_start + args.sample;
        // The last sample may fall short of a full interval: it ends with the phase.
        while next < end + args.sample {
            tokio::time::sleep_until(next.min(end)).await;
            let s = sampler.sample(*phase, i, &fleet, &bench).await?;
            sample::print_row(&s.cells());
            if let Some(csv) = csv.as_deref_mut() {
                csv.write(backend, &s)?;
            }
            taken.push(s);
            next += args.sample;
        }
        let scans = disturbance.end().await?;
        runs.push(PhaseRun {
            phase: *phase,
            step: i,
            start,
            scans,
        });
    }
    println!();

    stop.cancel();
    producer.await??;
    let tail = fleet.stop().await?;
    sampler.reader.close().await?;
    bench.close().await?;
    summary::print(backend, &runs, &taken, &title);
    println!(
        "- totals: {} offered, {} inserted ({} batches failed), {} completed, {} retried or \
         failed; tasks still pending at the end were not waited for\n",
        counters.offered.load(Ordering::Relaxed),
        counters.inserted.load(Ordering::Relaxed),
        counters.failed_batches.load(Ordering::Relaxed),
        sampler.completed + tail.completed(),
        sampler.unsuccessful + tail.unsuccessful,
    );
    Ok(())
}

/// The worker processes' share of the parent's options, as arguments.
pub(crate) fn passthrough(args: &Args, sqlite_sync: &str) -> Vec<String> {
    let duration = |d: Duration| format!("{}us", d.as_micros());
    let mut out = vec![
        "--sqlite-sync".to_owned(),
        sqlite_sync.to_owned(),
        "--task-sleep".to_owned(),
        duration(args.task_sleep),
        "--claim-ahead".to_owned(),
        args.claim_ahead.to_string(),
    ];
    if let Some(every) = args.poll_interval {
        out.extend(["--poll-interval".to_owned(), duration(every)]);
    }
    if let Some(keep) = args.retention {
        out.extend(["--retention".to_owned(), duration(keep)]);
    }
    out
}
