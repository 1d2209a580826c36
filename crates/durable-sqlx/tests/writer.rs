//! The client's enqueue path against real databases: what `Client::prepare` refuses, a row
//! the database refuses failing only its own request, large `enqueue_many` batches, and the
//! writer's bounded queue while the database hangs.
//!
//! Every case runs on a fresh SQLite file and, when `DURABLE_TEST_DATABASE_URL` is set (and
//! the `postgres` feature is on), in a fresh PostgreSQL schema.

use std::sync::Arc;
use std::time::Duration;

use durable_core::{Client, EnqueueOptions, Error, NewTask, Store, Task, TaskContext, TaskError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    text: String,
}

impl Note {
    fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }
}

impl Task for Note {
    const NAME: &'static str = "note";
    type State = ();
    async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A database under test: a SQLite file or a PostgreSQL schema.
enum Db {
    #[cfg(feature = "sqlite")]
    Sqlite {
        _dir: tempfile::TempDir,
        path: String,
        store: durable_sqlx::sqlite::SqliteStore,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        store: durable_sqlx::postgres::PostgresStore,
        pg: pg::Schema,
    },
}

/// Another session holding the database so the writer waits; `release` lets it go.
enum Held {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqliteConnection),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgConnection),
}

impl Held {
    async fn release(self) {
        match self {
            #[cfg(feature = "sqlite")]
            Held::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("release");
            }
            #[cfg(feature = "postgres")]
            Held::Postgres(mut conn) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("release");
            }
        }
    }
}

impl Db {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite { store, .. } => Arc::new(store.clone()),
            #[cfg(feature = "postgres")]
            Db::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    fn client(&self) -> Client {
        Client::from_arc(self.store(), durable_core::DEFAULT_MAX_PAYLOAD_BYTES)
    }

    /// Installs a trigger that refuses any row whose payload's `text` is `poison`.
    async fn refuse_poison(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite { store, .. } => {
                sqlx::query(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON durable_tasks
                     WHEN NEW.payload ->> '$.text' = 'poison'
                     BEGIN SELECT RAISE(ABORT, 'poisoned payload'); END",
                )
                .execute(store.writer_pool())
                .await
                .expect("trigger");
            }
            #[cfg(feature = "postgres")]
            Db::Postgres { pg, .. } => {
                let mut conn = pg.connect().await;
                sqlx::query(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                         IF NEW.payload->>'text' = 'poison' THEN
                             RAISE EXCEPTION 'poisoned payload';
                         END IF;
                         RETURN NEW;
                     END $$",
                )
                .execute(&mut conn)
                .await
                .expect("function");
                sqlx::query(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON durable_tasks
                     FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
                )
                .execute(&mut conn)
                .await
                .expect("trigger");
            }
        }
    }

    /// Makes the database hang for the writer: SQLite — another connection holds the write
    /// lock (`BEGIN IMMEDIATE`); PostgreSQL — another session holds an `ACCESS EXCLUSIVE`
    /// lock on the tasks table.
    async fn hold(&self) -> Held {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite { path, .. } => {
                use sqlx::Connection as _;
                let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                    .await
                    .expect("second connection");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("hold the write lock");
                Held::Sqlite(conn)
            }
            #[cfg(feature = "postgres")]
            Db::Postgres { pg, .. } => {
                let mut conn = pg.connect().await;
                sqlx::query("BEGIN")
                    .execute(&mut conn)
                    .await
                    .expect("begin");
                sqlx::query("LOCK TABLE durable_tasks IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .expect("lock");
                Held::Postgres(conn)
            }
        }
    }
}

#[cfg(feature = "sqlite")]
async fn sqlite_db() -> Option<Db> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db").display().to_string();
    let store = durable_sqlx::sqlite::SqliteStore::connect(path.clone())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some(Db::Sqlite {
        _dir: dir,
        path,
        store,
    })
}

#[cfg(feature = "postgres")]
async fn postgres_db() -> Option<Db> {
    let pg = pg::Schema::create()?;
    let store = durable_sqlx::postgres::PostgresStore::builder(&pg.url)
        .schema(&pg.name)
        .connect()
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some(Db::Postgres { store, pg })
}

#[cfg(feature = "postgres")]
mod pg {
    use sqlx::{Connection as _, PgConnection};

    const URL_VAR: &str = "DURABLE_TEST_DATABASE_URL";

    /// A schema of its own, dropped at the end (also when the test panics).
    pub(crate) struct Schema {
        pub(crate) url: String,
        pub(crate) name: String,
    }

    impl Schema {
        /// `None` (said on stderr) without `DURABLE_TEST_DATABASE_URL`; required in CI.
        pub(crate) fn create() -> Option<Self> {
            let url = match std::env::var(URL_VAR) {
                Ok(url) if !url.trim().is_empty() => url,
                _ => {
                    assert!(
                        std::env::var("CI").map_or(true, |v| v.is_empty()),
                        "PostgreSQL tests are required in CI: set {URL_VAR}"
                    );
                    eprintln!("skipped: set {URL_VAR}=postgres://user@host:port/database");
                    return None;
                }
            };
            let name = format!("t_{}", uuid::Uuid::now_v7().simple());
            Some(Self { url, name })
        }

        /// A connection of its own with the schema on its `search_path`.
        pub(crate) async fn connect(&self) -> PgConnection {
            let mut conn = PgConnection::connect(&self.url).await.expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SET search_path = \"{}\"",
                self.name
            )))
            .execute(&mut conn)
            .await
            .expect("search_path");
            conn
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let url = self.url.clone();
            let name = self.name.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio");
                rt.block_on(async {
                    let mut conn = PgConnection::connect(&url).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&mut conn)
                    .await?;
                    conn.close().await
                })
            })
            .join();
        }
    }
}

/// One `#[tokio::test]` per backend for each case.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = super::sqlite_db().await else { return };
                    super::$case(&db).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = super::postgres_db().await else { return };
                    super::$case(&db).await;
                }
            )*
        }
    };
}

on_both!(
    row_refused_by_the_database_fails_only_its_request,
    input_no_backend_can_store_is_refused_at_prepare,
    run_times_out_of_range_are_refused,
    enqueue_many_stores_100_000_rows,
    enqueue_many_is_all_or_none_across_chunks,
);

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Fifty requests meet in one writer cycle (the database is held until they all wait); one
/// of them — an `enqueue_many` of three rows — holds a row the database refuses. Only that
/// request fails, with all three of its rows; the other 49 are stored.
async fn row_refused_by_the_database_fails_only_its_request(db: &Db) {
    db.refuse_poison().await;
    let client = db.client();
    let store = db.store();
    let held = db.hold().await;
    let mut calls = Vec::new();
    for i in 0..49 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .enqueue(Note::new(format!("n{i}")))
                .await
                .map(|id| vec![id])
        }));
    }
    eventually("49 requests queued", || client.queued_rows() == 49).await;
    let poisoned = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .enqueue_many([Note::new("a"), Note::new("poison"), Note::new("b")])
                .await
        })
    };
    eventually("every request queued", || client.queued_rows() == 52).await;
    held.release().await;
    for call in calls {
        let ids = call.await.expect("join").expect("a good request is stored");
        assert!(store.get(ids[0]).await.expect("get").is_some());
    }
    let error = poisoned
        .await
        .expect("join")
        .expect_err("the poisoned request is refused");
    assert!(matches!(error, Error::Rejected { .. }), "{error:?}");
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("poisoned payload"), "{error}");
    let counts = store.counts().await.expect("counts");
    assert_eq!(counts.pending, 49, "{counts:?}");
    assert_eq!(client.queued_rows(), 0);
}

/// What some backend cannot store is refused by `prepare` (so by every enqueue) with a
/// clear error, on every backend alike; the limits themselves are storable.
async fn input_no_backend_can_store_is_refused_at_prepare(db: &Db) {
    let client = db.client();
    let refused = |e: &Error, needle: &str| {
        assert!(matches!(e, Error::InvalidTask { .. }), "{e:?}");
        assert!(!e.is_transient());
        assert!(e.to_string().contains(needle), "{e}");
    };
    let plain = EnqueueOptions::new();
    let e = client
        .prepare(&Note::new("a\u{0}b"), &plain)
        .expect_err("NUL in payload");
    refused(&e, "NUL");
    // An escaped backslash before `u0000` is text, not a NUL.
    let row = client
        .prepare(&Note::new("a\\u0000b"), &plain)
        .expect("a backslash is not a NUL");
    let e = client
        .prepare(&Note::new("x"), &EnqueueOptions::new().queue("q\u{0}"))
        .expect_err("NUL in queue");
    refused(&e, "NUL");
    let e = client
        .prepare(
            &Note::new("x"),
            &EnqueueOptions::new().queue("q".repeat(3000)),
        )
        .expect_err("queue too long for an index");
    refused(&e, "255");
    let e = client
        .prepare(&Note::new("x"), &EnqueueOptions::new().queue(""))
        .expect_err("empty queue");
    refused(&e, "empty");
    // Rows built by hand are checked by `insert` too.
    let e = client
        .insert(vec![NewTask::new("bad\u{0}name", "{}")])
        .await
        .expect_err("NUL in a raw row's name");
    refused(&e, "NUL");
    // At the limits: stored and read back unchanged.
    let longest = "é".repeat(127) + "q"; // 255 bytes
    assert_eq!(longest.len(), 255);
    let at_limit = client
        .prepare(
            &Note::new("x"),
            &EnqueueOptions::new().queue(longest.clone()),
        )
        .expect("255 bytes");
    let ids = [row.id, at_limit.id];
    client.insert(vec![row, at_limit]).await.expect("stored");
    let store = db.store();
    let stored = store.get(ids[1]).await.expect("get").expect("row");
    assert_eq!(stored.queue, longest);
    let stored = store.get(ids[0]).await.expect("get").expect("row");
    assert!(stored.payload.contains("a\\\\u0000b"), "{}", stored.payload);
}

/// A delay past chrono's range used to panic, one past `TimeDelta`'s silently meant "now";
/// both, and run times beyond year 9999, are refused.
async fn run_times_out_of_range_are_refused(db: &Db) {
    let client = db.client();
    let note = Note::new("x");
    for delay in [
        Duration::MAX,
        Duration::from_secs(300_000 * 366 * 86_400),
        Duration::from_secs(8000 * 366 * 86_400),
    ] {
        let e = client
            .prepare(&note, &EnqueueOptions::new().delay(delay))
            .expect_err("delay out of range");
        assert!(matches!(e, Error::InvalidTask { .. }), "{e:?}");
        assert!(e.to_string().contains("9999"), "{e}");
    }
    let far = chrono::DateTime::parse_from_rfc3339("10000-01-01T00:00:00Z")
        .map(|d| d.to_utc())
        .unwrap_or_else(|_| {
            chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
                .expect("date")
                .and_hms_opt(0, 0, 0)
                .expect("time")
                .and_utc()
        });
    let e = client
        .prepare(&note, &EnqueueOptions::new().run_at(far))
        .expect_err("run_at out of range");
    assert!(matches!(e, Error::InvalidTask { .. }), "{e:?}");
    // A long but sane delay is kept, and stored as given.
    let year = Duration::from_secs(366 * 86_400);
    let row = client
        .prepare(&note, &EnqueueOptions::new().delay(year * 100))
        .expect("a century is fine");
    let at = row.run_at.expect("run_at");
    let id = row.id;
    client.insert(vec![row]).await.expect("stored");
    let stored = db.store().get(id).await.expect("get").expect("row");
    assert_eq!(stored.run_at.timestamp_millis(), at.timestamp_millis());
}

const MANY: usize = 100_000;

/// One `enqueue_many` of 100,000 rows, far past either backend's bound-parameter limit.
async fn enqueue_many_stores_100_000_rows(db: &Db) {
    let client = db.client();
    let started = std::time::Instant::now();
    let ids = client
        .enqueue_many((0..MANY).map(|i| Note::new(format!("note number {i}"))))
        .await
        .expect("enqueue_many");
    eprintln!("{MANY} rows in {:?}", started.elapsed());
    assert_eq!(ids.len(), MANY);
    let store = db.store();
    assert_eq!(store.counts().await.expect("counts").pending, MANY as u64);
    for id in [ids[0], ids[MANY / 2], ids[MANY - 1]] {
        assert!(store.get(id).await.expect("get").is_some());
    }
}

/// A batch big enough to be written in several statements is still one transaction: a row
/// the database refuses at the very end leaves nothing stored.
async fn enqueue_many_is_all_or_none_across_chunks(db: &Db) {
    db.refuse_poison().await;
    let client = db.client();
    // ~20 MiB of payloads: several chunks on both backends.
    let filler = "x".repeat(1000);
    let notes = (0..20_000)
        .map(|i| Note::new(format!("{i} {filler}")))
        .chain([Note::new("poison")]);
    let e = client
        .enqueue_many(notes)
        .await
        .expect_err("the last row is refused");
    assert!(e.to_string().contains("poisoned payload"), "{e}");
    let counts = db.store().counts().await.expect("counts");
    assert_eq!(counts.pending, 0, "{counts:?}");
    let ids = client
        .enqueue_many((0..20_000).map(|i| Note::new(format!("{i} {filler}"))))
        .await
        .expect("the same without the poison");
    assert_eq!(ids.len(), 20_000);
    assert_eq!(db.store().counts().await.expect("counts").pending, 20_000);
}
