//! The crate's error type.

/// Errors of the sqlx stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database answered with an error or could not be reached.
    #[error("database error during {operation}: {source}")]
    Database {
        /// What the store was doing.
        operation: &'static str,
        /// The sqlx error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("applying durable migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database's schema is newer than this build, and one of the newer migrations does
    /// not accept this build's schema version.
    #[error(
        "the database's durable schema is at version {applied} and needs a build of schema \
         version {required} or newer, but this build's schema version is {supported}: deploy a \
         build of schema version {required} or newer, or restore the database from before the \
         upgrade"
    )]
    IncompatibleSchema {
        /// The newest migration the database has applied.
        applied: i64,
        /// The oldest schema version the applied migrations accept.
        required: i64,
        /// This build's schema version (its newest migration).
        supported: i64,
    },
    /// A migration the database applied differs from the one this build embeds.
    #[error(
        "migration {version} differs from the one the database applied (its checksum changed): \
         a shipped migration was edited; restore it and put the change in a new migration"
    )]
    MigrationChanged {
        /// The migration's version.
        version: i64,
    },
    /// The migrations table, or an embedded migration, is in a state no release leaves it in.
    #[error("cannot migrate: migration {version} {reason}")]
    MigrationState {
        /// The migration concerned.
        version: i64,
        /// What is wrong.
        reason: String,
    },
    /// The connection URL or options are not usable.
    #[error("invalid database url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A schema name the PostgreSQL store cannot use.
    #[error("invalid schema name `{schema}`: {reason}")]
    InvalidSchema {
        /// The name as given.
        schema: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A row held a value this version cannot read.
    #[error("corrupt task row {id}: {reason}")]
    CorruptRow {
        /// The row's id column.
        id: String,
        /// What was wrong.
        reason: String,
    },
    /// A background database task panicked or was cancelled.
    #[error("database task during {operation} did not finish: {reason}")]
    Join {
        /// What the store was doing.
        operation: &'static str,
        /// The join error.
        reason: String,
    },
    /// Rows or fences could not be encoded for a statement (as JSON or as parameters).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A task's unique key was held at each insert, yet free at each lookup of its holder
    /// that followed (the holders kept finishing in between): the enqueue gives up rather
    /// than loop; a retry normally succeeds.
    #[error(
        "unique key `{key}`: held at each of {rounds} inserts but by no task at the lookup after"
    )]
    UniqueUnresolved {
        /// The stored key.
        key: String,
        /// Inserts tried.
        rounds: usize,
    },
    /// The response of an idempotent request could not be recorded: the request no longer
    /// holds its idempotency key (another request took it over after its lock expired).
    /// Nothing of the transaction was committed.
    #[error(
        "the request no longer holds its idempotency key; its response and tasks were not stored"
    )]
    KeyLost,
    /// Preparing a task for enqueue failed (payload too large, serialization).
    #[error(transparent)]
    Task(#[from] durable_core::Error),
}

impl Error {
    pub(crate) fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Error::Database { operation, source }
    }

    /// Whether the error means the database is unavailable rather than the request bad.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Database { source, .. } if Self::sqlx_is_unavailable(source))
    }

    /// Whether the database refused the data itself — a constraint, a trigger, a value it
    /// cannot hold — so the same statement would fail again, while other rows may be
    /// written. PostgreSQL SQLSTATE classes `22` (data exception), `23` (integrity
    /// constraint), `54` (program limit: an index row too large) and `P0` (PL/pgSQL
    /// `RAISE`); SQLite `SQLITE_CONSTRAINT` (triggers' `RAISE(ABORT)` included),
    /// `SQLITE_TOOBIG`, `SQLITE_MISMATCH` and `SQLITE_RANGE`; a value sqlx cannot encode.
    /// Becomes [`durable_core::Error::Rejected`].
    pub fn is_rejection(&self) -> bool {
        matches!(self, Error::Database { source, .. } if Self::sqlx_is_rejection(source))
    }

    /// [`is_unavailable`](Self::is_unavailable) for an error as sqlx reports it: a
    /// [`durable_core::Error::Store`] converted from this crate carries the sqlx error itself
    /// as its source.
    pub fn sqlx_is_unavailable(source: &sqlx::Error) -> bool {
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(e) => e.code().is_some_and(|c| is_unavailable_code(&c)),
            _ => false,
        }
    }

    /// [`is_rejection`](Self::is_rejection) for an error as sqlx reports it.
    pub fn sqlx_is_rejection(source: &sqlx::Error) -> bool {
        match source {
            sqlx::Error::Encode(_) => true,
            sqlx::Error::Database(e) => refused_by_database(&**e),
            _ => false,
        }
    }
}

fn refused_by_database(e: &dyn sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "postgres")]
    if let Some(e) = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return ["22", "23", "54", "P0"]
            .iter()
            .any(|class| e.code().starts_with(class));
    }
    #[cfg(feature = "sqlite")]
    if let Some(e) = e.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        use sqlx::error::DatabaseError as _;
        // The primary result code is the low byte of the extended one.
        return e
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 18 | 19 | 20 | 25));
    }
    let _ = e;
    false
}

impl From<Error> for durable_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Task(inner) => inner,
            // The core error names the operation; its source is what the database answered
            // (this crate's wrapper would name the operation a second time).
            Error::Database { operation, source } if Error::sqlx_is_rejection(&source) => {
                durable_core::Error::rejected(operation, source)
            }
            Error::Database { operation, source } => durable_core::Error::store(operation, source),
            Error::Join { operation, reason } => {
                durable_core::Error::store(operation, format!("did not finish: {reason}"))
            }
            Error::UniqueUnresolved { .. } => durable_core::Error::store("enqueue", e),
            Error::Migrate(_)
            | Error::IncompatibleSchema { .. }
            | Error::MigrationChanged { .. }
            | Error::MigrationState { .. } => durable_core::Error::store("migrate", e),
            Error::InvalidUrl { .. } | Error::InvalidSchema { .. } => {
                durable_core::Error::store("connect", e)
            }
            Error::CorruptRow { .. } => durable_core::Error::store("decode", e),
            Error::Encode { .. } => durable_core::Error::store("encode", e),
            // Refused for this request alone: a batch holding it is written apart.
            Error::KeyLost => durable_core::Error::rejected("record response", e),
        }
    }
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Database error codes that mean "not now" rather than "never": a retry may succeed.
///
/// SQLite: `SQLITE_BUSY` (5), `SQLITE_LOCKED` (6), `SQLITE_BUSY_SNAPSHOT` (517).
/// PostgreSQL SQLSTATE classes `08` (connection exception), `40` (transaction rollback:
/// serialization failure, deadlock), `53` (insufficient resources: too many connections,
/// out of memory or disk), `57P` (operator intervention: shutdown, terminated backend,
/// cannot connect now), and `55000`/`55006`/`55P03` (a database not accepting connections,
/// an object in use, a lock not available).
fn is_unavailable_code(code: &str) -> bool {
    matches!(code, "5" | "6" | "517" | "55000" | "55006" | "55P03")
        || ["08", "40", "53", "57P"]
            .iter()
            .any(|class| code.starts_with(class))
}

#[cfg(test)]
mod tests {
    use super::is_unavailable_code;

    #[test]
    fn outage_codes_are_unavailable_and_data_errors_are_not() {
        for code in [
            "5", "517", "08006", "40001", "40P01", "53300", "55000", "57P01", "57P03",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["19", "2067", "23505", "22P02", "42601", "54000"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }
}

#[cfg(test)]
mod chain_tests {
    use super::Error;

    /// Each layer names its context once: the core error says which operation, the source
    /// says what the database answered (not "during insert" again).
    #[test]
    fn converted_errors_name_their_operation_once() {
        let store: durable_core::Error = Error::Database {
            operation: "insert",
            source: sqlx::Error::PoolTimedOut,
        }
        .into();
        let text = store.to_string();
        assert_eq!(text.matches("insert").count(), 1, "{text}");
        assert!(
            text.starts_with("task store error during insert: "),
            "{text}"
        );
        assert!(store.is_transient());

        let join: durable_core::Error = Error::Join {
            operation: "claim",
            reason: "task panicked".into(),
        }
        .into();
        let text = join.to_string();
        assert_eq!(text.matches("claim").count(), 1, "{text}");
        assert!(text.ends_with("task panicked"), "{text}");
    }
}
