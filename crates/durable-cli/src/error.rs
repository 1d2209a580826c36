//! The command's error type, its exit codes, and what of it an operator sees.

use std::error::Error as _;
use std::fmt::Write as _;

use durable_core::TaskId;

/// Exit code of a usage error (clap's own code for one).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code when a task named on the command line does not exist.
pub(crate) const EXIT_NOT_FOUND: u8 = 3;
/// Exit code when an action was refused (wrong state, unique key held).
pub(crate) const EXIT_CONFLICT: u8 = 4;

/// Everything that makes `durable` fail.
///
/// The messages never carry the database's own text (SQL, server messages): those go to
/// stderr only with `--verbose`, through the error's sources.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The command line is consistent for clap but not for the command.
    #[error("{0}")]
    Usage(String),
    /// A task named on the command line does not exist.
    #[error("no task {0}")]
    NotFound(TaskId),
    /// A SQLite URL names a file that does not exist (only `migrate` creates one).
    #[error("no database at {path} (run `durable migrate` to create one)")]
    NoDatabase {
        /// The file's path.
        path: String,
    },
    /// Opening the store failed.
    #[error("cannot open the database: {}", sqlx_summary(.source))]
    Connect {
        /// The store's error.
        #[source]
        source: durable_sqlx::Error,
    },
    /// A store operation failed.
    #[error("{action} failed: {}", core_summary(.source))]
    Store {
        /// What the command was doing.
        action: &'static str,
        /// The store's error.
        #[source]
        source: durable_core::Error,
    },
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
    /// Encoding the JSON output failed.
    #[error("cannot encode the JSON output")]
    Json(#[from] serde_json::Error),
}

/// The command's result type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A store error while doing `action`.
    pub(crate) fn store(action: &'static str) -> impl FnOnce(durable_core::Error) -> Self {
        move |source| Error::Store { action, source }
    }

    /// The process's exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::NotFound(_) => EXIT_NOT_FOUND,
            _ => 1,
        }
    }

    /// What is printed on stderr: the message, and with `verbose` every source below it.
    pub(crate) fn report(&self, verbose: bool) -> String {
        let mut out = format!("error: {self}");
        if verbose {
            let mut source = self.source();
            while let Some(cause) = source {
                let _ = write!(out, "\n  caused by: {cause}");
                source = cause.source();
            }
        } else if self.source().is_some() && self.hides_detail() {
            out.push_str(" (run with --verbose for the database's message)");
        }
        out
    }

    fn hides_detail(&self) -> bool {
        match self {
            Error::Connect { source } => !sqlx_is_plain(source),
            Error::Store { source, .. } => core_sqlx(source).is_none_or(|e| !sqlx_is_plain(e)),
            _ => false,
        }
    }
}

/// Whether the sqlx store's error says all there is without the database's own text.
fn sqlx_is_plain(error: &durable_sqlx::Error) -> bool {
    use durable_sqlx::Error as E;
    matches!(
        error,
        E::IncompatibleSchema { .. }
            | E::MigrationChanged { .. }
            | E::MigrationState { .. }
            | E::InvalidUrl { .. }
            | E::InvalidSchema { .. }
            | E::CorruptRow { .. }
            | E::UniqueUnresolved { .. }
            | E::KeyLost
    )
}

/// The sqlx store's error an error of the core wraps, if any.
fn core_sqlx(error: &durable_core::Error) -> Option<&durable_sqlx::Error> {
    match error {
        durable_core::Error::Store { source, .. }
        | durable_core::Error::Rejected { source, .. } => {
            source.downcast_ref::<durable_sqlx::Error>()
        }
        _ => None,
    }
}

fn sqlx_summary(error: &durable_sqlx::Error) -> String {
    match error {
        durable_sqlx::Error::Task(core) => core_summary(core),
        e if sqlx_is_plain(e) => e.to_string(),
        durable_sqlx::Error::Database { operation, .. } => {
            format!("the database could not be reached or failed ({operation})")
        }
        _ => "the database failed".to_owned(),
    }
}

fn core_summary(error: &durable_core::Error) -> String {
    if let Some(inner) = core_sqlx(error) {
        return sqlx_summary(inner);
    }
    match error {
        durable_core::Error::Store { operation, .. } => {
            format!("the database could not be reached or failed ({operation})")
        }
        durable_core::Error::Rejected { operation, .. } => {
            format!("the database refused the change ({operation})")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_text_only_with_verbose() {
        let error = Error::Store {
            action: "stats",
            source: durable_core::Error::Store {
                operation: "stats",
                source: "relation \"durable_tasks\" does not exist".into(),
            },
        };
        let plain = error.report(false);
        assert!(!plain.contains("relation"), "{plain}");
        assert!(plain.contains("--verbose"), "{plain}");
        assert!(error.report(true).contains("relation"));
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn plain_store_errors_are_shown_whole() {
        let error = Error::Connect {
            source: durable_sqlx::Error::InvalidSchema {
                schema: "a\"b".into(),
                reason: "quote",
            },
        };
        assert!(error.report(false).contains("invalid schema name"));
        assert!(!error.report(false).contains("--verbose"));
    }
}
