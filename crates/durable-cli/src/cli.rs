//! The command line: global options and one subcommand per operator action.

use clap::{Args, Parser, Subcommand};
use durable_core::{TaskId, TaskState};

use crate::when::When;

/// What `durable --help` ends with: the exit codes scripts can rely on.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (database unreachable, invalid URL, unreadable row...)
  2  usage (unknown option, bad value, bulk action without --yes)
  3  not found (show/retry/cancel/delete/requeue-stuck of an unknown id)
  4  conflict (the action was refused: the task is in the wrong state, or its unique key is held)
When several ids are given, every id is tried; the exit code is 3 if any was not found,
else 4 if any was refused.";

/// Inspect and administer the tasks of an axum-durable database (SQLite or PostgreSQL).
#[derive(Debug, Parser)]
#[command(name = "durable", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Database URL: `sqlite://path/to/app.db`, `sqlite:app.db` or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub(crate) database_url: Option<String>,

    /// PostgreSQL schema holding the tables (as the application's store was given it).
    #[arg(long, env = "DURABLE_SCHEMA", global = true)]
    pub(crate) schema: Option<String>,

    /// How long to wait for a PostgreSQL connection before failing (`10s`, `500ms`).
    #[arg(long, global = true, default_value = "10s")]
    pub(crate) connect_timeout: humantime::Duration,

    /// Machine output: one JSON document per command on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Confirms a bulk action (retry --failed, prune, requeue-stuck without ids).
    #[arg(long, global = true)]
    pub(crate) yes: bool,

    /// Who acts, recorded in the log of every action (default: `$USER`).
    #[arg(long, env = "DURABLE_ACTOR", global = true)]
    pub(crate) actor: Option<String>,

    /// Show the database's own error messages (they can contain SQL and server details).
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Apply the store's migrations (creates the tables in an empty database; idempotent).
    Migrate,
    /// Counts per state and live counts per queue, each labelled exact, at least or estimated.
    Stats,
    /// List tasks, one page at a time (prints the cursor of the next page).
    List(ListArgs),
    /// Everything about one task: payload, attempts, error history, steps, lease, timestamps.
    Show {
        /// The task id.
        id: TaskId,
    },
    /// Put failed or cancelled tasks back to pending, due now.
    Retry(RetryArgs),
    /// Cancel tasks: a pending one at once, a running one at its runtime's next look.
    Cancel {
        /// Task ids.
        #[arg(required = true)]
        ids: Vec<TaskId>,
    },
    /// Delete tasks that are not running (their steps go with them).
    Delete {
        /// Task ids.
        #[arg(required = true)]
        ids: Vec<TaskId>,
    },
    /// Delete completed and cancelled tasks finished long enough ago (failed ones are kept).
    Prune(PruneArgs),
    /// Hand running tasks back to pending: the given ids, or every stuck one.
    RequeueStuck(RequeueArgs),
}

/// Filters and paging of `list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tasks in this state (pending, processing, completed, failed, cancelled).
    #[arg(long)]
    pub(crate) state: Option<TaskState>,
    /// Only tasks of this task type.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) task_type: Option<String>,
    /// Only tasks of this queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Only tasks created since: a duration ago (`1h`, `2d 3h`) or an RFC 3339 time.
    #[arg(long)]
    pub(crate) since: Option<When>,
    /// Only tasks created before: a duration ago or an RFC 3339 time.
    #[arg(long)]
    pub(crate) until: Option<When>,
    /// Only tasks whose JSON payload contains this text (case-sensitive).
    #[arg(long)]
    pub(crate) search: Option<String>,
    /// Most tasks shown (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) limit: u32,
    /// Continue after this id (the cursor the previous page printed).
    #[arg(long)]
    pub(crate) after: Option<TaskId>,
    /// Newest first.
    #[arg(long)]
    pub(crate) newest: bool,
}

/// `retry ID...` or `retry --failed`.
#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// Task ids.
    #[arg(required_unless_present = "failed", conflicts_with = "failed")]
    pub(crate) ids: Vec<TaskId>,
    /// Every failed task (with --type, --queue, --limit); needs --yes.
    #[arg(long)]
    pub(crate) failed: bool,
    /// With --failed: only tasks of this task type.
    #[arg(long = "type", value_name = "TYPE", requires = "failed")]
    pub(crate) task_type: Option<String>,
    /// With --failed: only tasks of this queue.
    #[arg(long, requires = "failed")]
    pub(crate) queue: Option<String>,
    /// With --failed: retry at most this many tasks (default: all).
    #[arg(long, requires = "failed", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) limit: Option<u64>,
}

impl RetryArgs {
    /// The filters of `--failed` given without it (clap's `requires` does not see them
    /// beside positional ids).
    pub(crate) fn misplaced_filter(&self) -> Option<&'static str> {
        if self.failed {
            None
        } else if self.task_type.is_some() {
            Some("--type")
        } else if self.queue.is_some() {
            Some("--queue")
        } else if self.limit.is_some() {
            Some("--limit")
        } else {
            None
        }
    }
}

/// `prune --older-than`.
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Finished more than this long ago (`7d`, `12h`).
    #[arg(long)]
    pub(crate) older_than: humantime::Duration,
    /// Delete at most this many tasks (default: all that match).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) limit: Option<u64>,
}

/// `requeue-stuck [ID...]`.
#[derive(Debug, Args)]
pub(crate) struct RequeueArgs {
    /// Task ids to requeue whatever their lease; without ids, every stuck task (needs --yes).
    pub(crate) ids: Vec<TaskId>,
    /// Without ids: attempts running longer than this (`30m`); default: only tasks whose
    /// lease has expired.
    #[arg(long, conflicts_with = "ids")]
    pub(crate) running_for: Option<humantime::Duration>,
    /// Without ids: only tasks of this task type.
    #[arg(long = "type", value_name = "TYPE", conflicts_with = "ids")]
    pub(crate) task_type: Option<String>,
    /// Without ids: requeue at most this many tasks (default: all).
    #[arg(long, conflicts_with = "ids", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) limit: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn retry_needs_ids_or_failed_but_not_both() {
        assert!(Cli::try_parse_from(["durable", "retry"]).is_err());
        let id = TaskId::new().to_string();
        assert!(Cli::try_parse_from(["durable", "retry", &id, "--failed"]).is_err());
        assert!(Cli::try_parse_from(["durable", "retry", "--failed", "--type", "x"]).is_ok());
        let Command::Retry(args) = Cli::try_parse_from(["durable", "retry", "--type", "x", &id])
            .unwrap()
            .command
        else {
            panic!("not retry")
        };
        assert_eq!(args.misplaced_filter(), Some("--type"));
    }
}
