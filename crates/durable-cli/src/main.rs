//! # durable
//!
//! The command line of axum-durable: inspect and administer the task table of a SQLite or
//! PostgreSQL database — counts, listings, one task's whole story, and the operator's
//! actions (retry, cancel, delete, requeue, prune, migrate).
//!
//! ```text
//! export DATABASE_URL=sqlite://signup.db
//! durable stats
//! durable list --state failed --since 1h
//! durable show 0190c0de-...
//! durable retry --failed --type send_welcome_email --yes
//! durable prune --older-than 7d --yes
//! ```
//!
//! Every action is logged on stderr (who, what, which tasks); `--json` prints one JSON
//! document per command on stdout for scripts. Exit codes: 0 success, 1 error, 2 usage,
//! 3 not found, 4 conflict (see `durable --help`).

mod cli;
mod commands;
mod connect;
mod error;
mod render;
mod table;
mod when;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse(); // exits with 2 on a usage error, 0 for --help
    let verbose = cli.verbose;
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("{}", error.report(verbose));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Actions are logged at info on stderr, so stdout stays the command's output (tables or
/// JSON) for scripts; `RUST_LOG` overrides the filter.
fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,durable=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
