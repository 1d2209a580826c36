//! The `horizon` options, and the phases a run goes through.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use durable_core::runtime::ClaimAhead;

/// A phase of a `horizon` run: what holds the vacuum horizon (or SQLite's checkpoints) back
/// while the load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub(crate) enum Phase {
    /// Nothing: the reference the other phases are compared with.
    Clean,
    /// One session idle in a `REPEATABLE READ` transaction that read the task table
    /// (SQLite: a read transaction left open on another connection).
    IdleTx,
    /// One session idle in a transaction that holds a transaction id and reads none of the
    /// queue's tables: the horizon held back without a lock on any of them (SQLite: a read
    /// transaction on the schema table only).
    IdleXid,
    /// Concurrent `REPEATABLE READ` transactions scanning the task table again and again,
    /// each open for the whole phase (SQLite: read transactions doing the same).
    RrReaders,
    /// Nothing again: how the store recovers once the horizon is released.
    Recovery,
}

impl Phase {
    /// The phase's name on the command line and in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Clean => "clean",
            Phase::IdleTx => "idle-tx",
            Phase::IdleXid => "idle-xid",
            Phase::RrReaders => "rr-readers",
            Phase::Recovery => "recovery",
        }
    }
}

/// Options of `horizon` (and of its worker processes).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// `horizon`: offered rate, tasks per second, inserted open loop (not slowed down by a
    /// growing queue).
    #[arg(long, default_value_t = 2000)]
    pub(crate) rate: u64,
    /// `horizon`: length of each phase.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub(crate) phase: Duration,
    /// `horizon`: the phases, in order, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "clean,idle-tx,rr-readers,recovery"
    )]
    pub(crate) phases: Vec<Phase>,
    /// `horizon`: worker processes (the bench runs itself again as each of them).
    #[arg(long, default_value_t = 2)]
    pub(crate) processes: usize,
    /// `horizon`: concurrency of all worker processes together, split evenly.
    #[arg(long, default_value_t = 32)]
    pub(crate) workers: usize,
    /// `horizon`: sampling interval of the table and the CSV.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub(crate) sample: Duration,
    /// `horizon`: how long each task sleeps.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1ms")]
    pub(crate) task_sleep: Duration,
    /// `horizon`: tasks each worker process claims beyond its free slots: `auto` or a count
    /// (`RuntimeBuilder::claim_ahead`; `0`: only for free slots).
    #[arg(long, default_value = "auto")]
    pub(crate) claim_ahead: ClaimAhead,
    /// `horizon`: the producer inserts one batch this often (rate × interval tasks each).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20ms")]
    pub(crate) insert_every: Duration,
    /// `horizon`: concurrent readers of the `rr-readers` phase.
    #[arg(long, default_value_t = 4)]
    pub(crate) readers: usize,
    /// `horizon`: pause between two scans of one reader of `rr-readers` (`0s`: back to back).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub(crate) reader_pause: Duration,
    /// `horizon`, PostgreSQL: the `rr-readers` sessions' `max_parallel_workers_per_gather`
    /// (`0`: each scan in its own process only; default: the server's setting).
    #[arg(long)]
    pub(crate) reader_parallel_workers: Option<u32>,
    /// `horizon`: the workers' poll interval (default: the runtime's, 2 s). SQLite sends no
    /// wakeups across processes, so there it bounds the pickup of an idle worker.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) poll_interval: Option<Duration>,
    /// `horizon`: the workers' retention of completed rows (default: the runtime's, 24 h,
    /// so completed rows stay for the whole run).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) retention: Option<Duration>,
    /// `horizon`: also write every sample to this CSV file (long format: one value a line).
    #[arg(long)]
    pub(crate) csv: Option<PathBuf>,
    /// Worker process only: the PostgreSQL schema or the SQLite URL to work on.
    #[arg(long, hide = true)]
    pub(crate) worker_target: Option<String>,
    /// Worker process only: its concurrency.
    #[arg(long, hide = true, default_value_t = 16)]
    pub(crate) worker_slots: usize,
}
