//! # durable-bench
//!
//! Measures axum-durable against its baselines on the machine it runs on, and prints one
//! markdown table per mode with the **medians** of `--runs` runs and, beside each figure, its
//! ratio to a baseline measured in the same run:
//!
//! - `http`: requests/s and latency of an endpoint spawning one no-op task per request:
//!   `tokio::spawn` vs `Durable` vs the naive one-transaction-per-request design;
//! - `burn-down`: time to complete 100,000 pre-enqueued no-op tasks;
//! - `pickup`: enqueue-to-start latency of an idle runtime (local, and across instances
//!   through PostgreSQL `NOTIFY`);
//! - `idle`: CPU time and store queries per second of an idle runtime;
//! - `backlog`: peak memory while working through a large pending backlog;
//! - `admin`: latency of the admin reads (stats, pages, search) on `--rows` tasks;
//! - `reference`: the raw database limits (single-row transactions, 100-row batches);
//! - `all`: every mode in turn;
//! - `horizon` (not part of `all`): a fixed offered rate through phases that hold the
//!   vacuum horizon back, with bloat, claim latency and completion rate sampled as it runs.
//!
//! Run with `cargo run --release -p durable-bench -- <mode> [--quick] [--runs N]`; see
//! `docs/BENCHMARKS.md`.

mod admin;
mod backend;
mod backlog;
mod burn_down;
mod counting;
mod horizon;
mod http;
mod idle;
mod load;
mod pickup;
mod reference;
mod stats;
mod sys;

use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Error type of the benchmark: anything printable.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result of a benchmark step.
pub(crate) type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Command line.
#[derive(Debug, Clone, Parser)]
#[command(name = "durable-bench", about = "Benchmarks of axum-durable", version)]
pub(crate) struct Cli {
    /// What to measure.
    #[arg(value_enum)]
    pub(crate) mode: Mode,
    /// Runs per measurement; tables show the medians [default: 3; 1 with `--quick`].
    #[arg(long)]
    pub(crate) runs: Option<usize>,
    /// Which store(s) to measure.
    #[arg(long, value_enum, default_value_t = BackendChoice::All)]
    pub(crate) backend: BackendChoice,
    /// PostgreSQL URL (each measurement uses its own schema or database and drops it).
    #[arg(
        long,
        env = "DURABLE_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub(crate) database_url: String,
    /// Measured time of each HTTP load run (after a short warm-up).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub(crate) duration: Duration,
    /// Rows of the `backlog` and `admin` modes (default 1,000,000; 100,000 with `--quick`).
    #[arg(long)]
    pub(crate) rows: Option<u64>,
    /// Short smoke run: small sizes and durations, one run unless `--runs` is given.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Only these concurrency points of `http` (1, 16, 64) and `burn-down` (32, 256),
    /// comma-separated; all of them by default.
    #[arg(long, value_delimiter = ',')]
    pub(crate) conns: Vec<usize>,
    /// `http` also measures `Durable` with a unique key per request (distinct keys: the cost
    /// of the unique insert path, every task stored).
    #[arg(long)]
    pub(crate) unique: bool,
    /// `http`: every request carries a unique `Idempotency-Key` and the `Durable` servers add
    /// the `Idempotency` layer (the cost of taking a key and recording the response).
    #[arg(long)]
    pub(crate) idempotency_key: bool,
    /// SQLite's `synchronous` setting for the stores under test (`reference` measures both):
    /// `full` (the library's default: an acknowledged task survives power loss) or `normal`
    /// (the documented opt-in: survives a process crash only).
    #[arg(long, value_enum, default_value_t = SqliteSync::Full)]
    pub(crate) sqlite_sync: SqliteSync,
    /// Options of `horizon`.
    #[command(flatten)]
    pub(crate) horizon: horizon::Args,
}

/// SQLite durability of the stores under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SqliteSync {
    /// `synchronous=FULL` (default).
    Full,
    /// `synchronous=NORMAL` (opt-in).
    Normal,
}

/// A benchmark mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// HTTP endpoint spawning one no-op task per request.
    Http,
    /// Completion rate of 100,000 pre-enqueued tasks.
    BurnDown,
    /// Enqueue-to-start latency of an idle runtime.
    Pickup,
    /// CPU and queries of an idle runtime.
    Idle,
    /// Memory while working through a large backlog.
    Backlog,
    /// Raw database limits on this machine.
    Reference,
    /// Latency of the admin reads on a large table.
    Admin,
    /// Every mode in turn.
    All,
    /// Long horizon: bloat and a held-back vacuum horizon under a fixed offered rate.
    Horizon,
    /// A worker process of `horizon` (started by it).
    #[value(hide = true)]
    HorizonWorker,
}

/// Which stores to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendChoice {
    /// SQLite only.
    Sqlite,
    /// PostgreSQL only.
    Postgres,
    /// Both.
    All,
}

/// Settings every mode reads, resolved from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Runs per measurement.
    pub(crate) runs: usize,
    /// The stores to measure (those available).
    pub(crate) backends: Vec<backend::Backend>,
    /// PostgreSQL URL.
    pub(crate) database_url: String,
    /// Measured time of one HTTP load run.
    pub(crate) duration: Duration,
    /// Backlog rows.
    pub(crate) rows: u64,
    /// Smoke-run sizes.
    pub(crate) quick: bool,
    /// Concurrency points to keep (empty: all).
    pub(crate) conns: Vec<usize>,
    /// `http` measures the unique-key variant too.
    pub(crate) unique: bool,
    /// `http` requests carry an `Idempotency-Key`.
    pub(crate) idempotency_key: bool,
}

impl Settings {
    /// The points of `all` that `--conns` keeps.
    pub(crate) fn points(&self, all: &[usize]) -> Vec<usize> {
        all.iter()
            .copied()
            .filter(|c| self.conns.is_empty() || self.conns.contains(c))
            .collect()
    }
}

/// Headline figures collected by the modes, for the closing summary of `all`.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// `(label, value, unit)` lines.
    pub(crate) lines: Vec<(String, f64, &'static str)>,
}

impl Summary {
    /// Records one headline figure.
    pub(crate) fn add(&mut self, label: impl Into<String>, value: f64, unit: &'static str) {
        self.lines.push((label.into(), value, unit));
    }

    /// A recorded figure by label.
    pub(crate) fn get(&self, label: &str) -> Option<f64> {
        self.lines
            .iter()
            .find(|(l, _, _)| l == label)
            .map(|(_, v, _)| *v)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let sqlite_durability = match cli.sqlite_sync {
        SqliteSync::Full => durable_sqlx::sqlite::Durability::Full,
        SqliteSync::Normal => durable_sqlx::sqlite::Durability::Normal,
    };
    if cli.mode == Mode::HorizonWorker {
        return run_horizon_worker(&cli, sqlite_durability).await;
    }
    let runs = cli.runs.unwrap_or(if cli.quick { 1 } else { 3 }).max(1);
    let mut backends = Vec::new();
    if matches!(cli.backend, BackendChoice::Sqlite | BackendChoice::All) {
        backends.push(backend::Backend::Sqlite);
    }
    if matches!(cli.backend, BackendChoice::Postgres | BackendChoice::All) {
        match backend::check_postgres(&cli.database_url).await {
            Ok(()) => backends.push(backend::Backend::Postgres),
            Err(error) => {
                println!("> postgres store unavailable ({error}); PostgreSQL variants skipped\n");
            }
        }
    }
    let settings = Settings {
        runs,
        backends,
        database_url: cli.database_url.clone(),
        duration: if cli.quick && cli.duration == Duration::from_secs(5) {
            Duration::from_secs(1)
        } else {
            cli.duration
        },
        rows: cli
            .rows
            .unwrap_or(if cli.quick { 100_000 } else { 1_000_000 }),
        quick: cli.quick,
        conns: cli.conns.clone(),
        unique: cli.unique,
        idempotency_key: cli.idempotency_key,
    };
    backend::set_sqlite_durability(sqlite_durability);
    print_machine(&settings);
    if cli.sqlite_sync == SqliteSync::Normal {
        println!(
            "- **SQLite under test with `synchronous=NORMAL`** (opt-in: commits do not wait for \
             fsync; the naive design uses the same setting)\n"
        );
    }
    let mut summary = Summary::default();
    let modes: &[Mode] = match cli.mode {
        Mode::All => &[
            Mode::Reference,
            Mode::Http,
            Mode::BurnDown,
            Mode::Pickup,
            Mode::Idle,
            Mode::Backlog,
        ],
        _ => std::slice::from_ref(&cli.mode),
    };
    for mode in modes {
        let started = std::time::Instant::now();
        if let Some(load) = sys::load_average() {
            println!(
                "_{mode:?}: load average at start {load} (other processes share the cores)_\n"
            );
        }
        match mode {
            Mode::Http => http::run(&settings, &mut summary).await?,
            Mode::BurnDown => burn_down::run(&settings, &mut summary).await?,
            Mode::Pickup => pickup::run(&settings, &mut summary).await?,
            Mode::Idle => idle::run(&settings, &mut summary).await?,
            Mode::Backlog => backlog::run(&settings, &mut summary).await?,
            Mode::Reference => reference::run(&settings, &mut summary).await?,
            Mode::Horizon => {
                let sync = match cli.sqlite_sync {
                    SqliteSync::Full => "full",
                    SqliteSync::Normal => "normal",
                };
                horizon::run(
                    &settings,
                    &cli.horizon,
                    &horizon::passthrough(&cli.horizon, sync),
                )
                .await?;
            }
            Mode::All | Mode::HorizonWorker => unreachable!("expanded or handled above"),
            Mode::Admin => admin::run(&settings, &mut summary).await?,
        }
        println!(
            "_{:?} took {:.0} s_\n",
            mode,
            started.elapsed().as_secs_f64()
        );
    }
    if cli.mode == Mode::All {
        reference::print_ratios(&summary);
    }
    Ok(())
}

/// A child of `horizon`: its stdout is the protocol to the parent, nothing else.
async fn run_horizon_worker(
    cli: &Cli,
    sqlite_durability: durable_sqlx::sqlite::Durability,
) -> Result<()> {
    let backend = match cli.backend {
        BackendChoice::Sqlite => backend::Backend::Sqlite,
        BackendChoice::Postgres => backend::Backend::Postgres,
        BackendChoice::All => return Err("a horizon worker runs on one --backend".into()),
    };
    horizon::worker::run(backend, &cli.database_url, sqlite_durability, &cli.horizon).await
}

fn print_machine(settings: &Settings) {
    println!("# durable-bench");
    println!();
    println!(
        "- cores: {} | runs: {} (medians shown) | backends: {:?} | quick: {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        settings.runs,
        settings.backends,
        settings.quick
    );
    if let Some(model) = sys::cpu_model() {
        println!("- cpu: {model}");
    }
    println!();
}
