//! The client's enqueue path against real databases: what `Client::prepare` refuses, a row
//! the database refuses failing only its own request, large `enqueue_many` batches, and the
//! writer's bounded queue while the database hangs.
//!
//! Every case runs on a fresh SQLite file and, when `DURABLE_TEST_DATABASE_URL` is set (and
//! the `postgres` feature is on), in a fresh PostgreSQL schema.

use std::sync::Arc;
use std::time::Duration;

use durable_core::client::ClientBuilder;
use durable_core::store::AdminStore as _;
use durable_core::store::Store;
use durable_core::{Client, EnqueueOptions, Error, Task, TaskContext, TaskError};
use serde::{Deserialize, Serialize};

#[path = "conformance/writes.rs"]
mod writes;
use writes::Writes as _;

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
        _file: durable_testkit::SqliteFile,
        path: String,
        store: durable_sqlx::sqlite::SqliteStore,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        store: durable_sqlx::postgres::PostgresStore,
        pg: durable_testkit::PgSchema,
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

    /// Another store on the same database that gives up on a held database after 500 ms:
    /// SQLite's `busy_timeout`, PostgreSQL's `statement_timeout`.
    async fn impatient_store(&self) -> Arc<dyn Store> {
        let patience = Duration::from_millis(500);
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite { path, .. } => Arc::new(
                durable_sqlx::sqlite::SqliteStore::builder(path.clone())
                    .busy_timeout(patience)
                    .connect()
                    .await
                    .expect("connect"),
            ),
            #[cfg(feature = "postgres")]
            Db::Postgres { pg, .. } => Arc::new(
                durable_sqlx::postgres::PostgresStore::builder(pg.url())
                    .schema(pg.name())
                    .statement_timeout(patience)
                    .connect()
                    .await
                    .expect("connect"),
            ),
        }
    }

    fn client(&self) -> Client {
        Client::new(self.store())
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
    let file = durable_testkit::SqliteFile::new();
    let path = file.path_string();
    let store = durable_sqlx::sqlite::SqliteStore::connect(path.clone())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some(Db::Sqlite {
        _file: file,
        path,
        store,
    })
}

#[cfg(feature = "postgres")]
async fn postgres_db() -> Option<Db> {
    let pg = pg_schema().await?;
    let store = durable_sqlx::postgres::PostgresStore::builder(pg.url())
        .schema(pg.name())
        .connect()
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some(Db::Postgres { store, pg })
}

/// A fresh schema on the test server; `None` (said on stderr) without
/// `DURABLE_TEST_DATABASE_URL`; required in CI.
#[cfg(feature = "postgres")]
async fn pg_schema() -> Option<durable_testkit::PgSchema> {
    Some(durable_testkit::PgSchema::new(&durable_testkit::database_url()?).await)
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
    enqueue_many_with_takes_options_per_task,
    hung_database_bounds_the_write_queue,
    hung_database_fails_writes_after_the_timeout,
);

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs about 3 GB of memory"]
async fn sqlite_enqueue_many_past_a_gigabyte() {
    let Some(db) = sqlite_db().await else { return };
    enqueue_many_past_a_gigabyte(&db).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs about 3 GB of memory"]
async fn postgres_enqueue_many_past_a_gigabyte() {
    let Some(db) = postgres_db().await else {
        return;
    };
    enqueue_many_past_a_gigabyte(&db).await;
}

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
    let store = db.store();
    store.insert(&[row, at_limit]).await.expect("stored");
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
    let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
        .expect("date")
        .and_hms_opt(0, 0, 0)
        .expect("time")
        .and_utc();
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
    db.store().insert(&[row]).await.expect("stored");
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

/// A batch of over a gigabyte — past SQLite's string limit (1,000,000,000 bytes) and
/// PostgreSQL's 1 GB message — is still stored, in several statements of one transaction.
/// Needs about 3 GB of memory and a minute: run with `--ignored`.
async fn enqueue_many_past_a_gigabyte(db: &Db) {
    let client = db.client();
    let filler = "x".repeat(250_000);
    let rows = 4_400; // 1.1e9 bytes: over 2^30 too
    let ids = client
        .enqueue_many((0..rows).map(|i| Note::new(format!("{i} {filler}"))))
        .await
        .expect("a 1 GB batch");
    assert_eq!(ids.len(), rows);
    assert_eq!(
        db.store().counts().await.expect("counts").pending,
        rows as u64
    );
}

/// Per-task options in one all-or-none batch.
async fn enqueue_many_with_takes_options_per_task(db: &Db) {
    let client = db.client();
    let store = db.store();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let ids = client
        .enqueue_many_with([
            (Note::new("a"), EnqueueOptions::new()),
            (
                Note::new("b"),
                EnqueueOptions::new().queue("emails").priority(5),
            ),
            (Note::new("c"), EnqueueOptions::new().run_at(later)),
            (
                Note::new("d"),
                EnqueueOptions::new()
                    .delay(Duration::from_secs(7200))
                    .max_attempts(3),
            ),
        ])
        .await
        .expect("enqueue_many_with");
    assert_eq!(ids.len(), 4);
    let rows = futures_rows(&*store, &ids).await;
    assert_eq!(rows[0].queue, "default");
    assert_eq!((rows[1].queue.as_str(), rows[1].priority), ("emails", 5));
    assert_eq!(rows[2].run_at.timestamp_millis(), later.timestamp_millis());
    assert!(rows[3].run_at > later && rows[3].max_attempts == 3);
    // One task that cannot be prepared: nothing of the batch is written.
    let e = client
        .enqueue_many_with([
            (Note::new("e"), EnqueueOptions::new()),
            (Note::new("f"), EnqueueOptions::new().queue("")),
        ])
        .await
        .expect_err("empty queue");
    assert!(matches!(e, Error::InvalidTask { .. }), "{e:?}");
    assert_eq!(store.counts().await.expect("counts").pending, 4);
}

async fn futures_rows(
    store: &dyn Store,
    ids: &[durable_core::TaskId],
) -> Vec<durable_core::store::TaskRecord> {
    let mut rows = Vec::new();
    for id in ids {
        rows.push(store.get(*id).await.expect("get").expect("stored"));
    }
    rows
}

/// While the database hangs, the client holds at most its bound of rows: past it, every
/// enqueue is refused at once with `Overloaded`, and memory stays put. Once the database is
/// back, the admitted rows are all stored and there is room again.
async fn hung_database_bounds_the_write_queue(db: &Db) {
    const BOUND: usize = 100;
    let client = ClientBuilder::new(db.store())
        .max_queued_rows(BOUND)
        .build();
    let held = db.hold().await;
    let mut waiting = Vec::new();
    for i in 0..BOUND {
        let client = client.clone();
        waiting.push(tokio::spawn(async move {
            client.enqueue(Note::new(format!("n{i}"))).await
        }));
    }
    eventually("the bound reached", || client.queued_rows() == BOUND).await;
    let bytes = client.queued_bytes();
    let started = std::time::Instant::now();
    for _ in 0..1000 {
        let e = client
            .enqueue(Note::new("one too many"))
            .await
            .expect_err("refused past the bound");
        assert!(
            matches!(
                e,
                Error::Overloaded {
                    queued_rows: BOUND,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.is_transient());
    }
    let e = client
        .enqueue_many((0..10).map(|i| Note::new(format!("m{i}"))))
        .await
        .expect_err("a batch too");
    assert!(matches!(e, Error::Overloaded { .. }), "{e:?}");
    let refusing = started.elapsed();
    eprintln!("1,001 refusals in {refusing:?} while {BOUND} rows ({bytes} bytes) wait");
    assert!(
        refusing < Duration::from_secs(5),
        "refusals must not wait: {refusing:?}"
    );
    assert_eq!(
        (client.queued_rows(), client.queued_bytes()),
        (BOUND, bytes)
    );
    held.release().await;
    for w in waiting {
        w.await.expect("join").expect("an admitted task is stored");
    }
    assert_eq!(client.queued_rows(), 0);
    assert_eq!(client.queued_bytes(), 0);
    let store = db.store();
    assert_eq!(store.counts().await.expect("counts").pending, BOUND as u64);
    client
        .enqueue(Note::new("room again"))
        .await
        .expect("room again");
}

/// A database held longer than the store's timeout fails the waiting writes with a
/// transient error after about that timeout — not never — and nothing stays queued.
async fn hung_database_fails_writes_after_the_timeout(db: &Db) {
    let client = Client::new(db.impatient_store().await);
    let held = db.hold().await;
    let started = std::time::Instant::now();
    let mut calls = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client.enqueue(Note::new(format!("n{i}"))).await
        }));
    }
    for call in calls {
        let e = call.await.expect("join").expect_err("the database is held");
        assert!(e.is_transient(), "{e:?}");
        assert!(matches!(e, Error::Store { .. }), "{e:?}");
    }
    let waited = started.elapsed();
    eprintln!("20 enqueues failed after {waited:?}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert_eq!(client.queued_rows(), 0);
    held.release().await;
    client
        .enqueue(Note::new("later"))
        .await
        .expect("stored once released");
}

#[cfg(feature = "postgres")]
mod postgres_pool {
    use super::*;
    use durable_sqlx::postgres::PostgresStore;

    async fn show_statement_timeout(store: &PostgresStore) -> String {
        sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(store.pool())
            .await
            .expect("show")
    }

    /// 30 s by default, set by the builder, or kept from the URL.
    #[tokio::test]
    async fn statement_timeout_defaults_to_30s_and_can_be_set() {
        let Some(pg) = pg_schema().await else {
            return;
        };
        let store = PostgresStore::builder(pg.url())
            .schema(pg.name())
            .connect()
            .await
            .expect("connect");
        assert_eq!(show_statement_timeout(&store).await, "30s");
        let store = PostgresStore::builder(pg.url())
            .schema(pg.name())
            .statement_timeout(Duration::ZERO)
            .connect()
            .await
            .expect("connect");
        assert_eq!(show_statement_timeout(&store).await, "0");
        let sep = if pg.url().contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}options=-c%20statement_timeout%3D5000", pg.url());
        let store = PostgresStore::builder(url)
            .schema(pg.name())
            .connect()
            .await
            .expect("connect");
        assert_eq!(show_statement_timeout(&store).await, "5s");
        // Migrations run without it.
        let store = PostgresStore::builder(pg.url())
            .schema(pg.name())
            .statement_timeout(Duration::from_millis(1))
            .connect()
            .await
            .expect("connect");
        store
            .migrate()
            .await
            .expect("migrate without a statement timeout");
    }

    /// A store of one pooled connection named `app`, pinging as told, migrated.
    async fn pinging_store(
        pg: &durable_testkit::PgSchema,
        app: &str,
        ping_after_idle: Duration,
    ) -> PostgresStore {
        let store = PostgresStore::builder(pg.url())
            .schema(pg.name())
            .application_name(app)
            .max_connections(1)
            .ping_after_idle(ping_after_idle)
            .connect()
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// Waits until no backend named `app` matches `also` (a condition on `pg_stat_activity`).
    async fn wait_gone(admin: &mut sqlx::PgConnection, app: &str, also: &str) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND {also}"
            )))
            .bind(app)
            .fetch_one(&mut *admin)
            .await
            .expect("activity");
            if left == 0 {
                return;
            }
            assert!(std::time::Instant::now() < until, "backend still there");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The claims' own connection whose backend died is treated as the store's are: pinged
    /// before use once idle past `ping_after_idle` (the claim goes to a fresh connection),
    /// not pinged before that (the claim fails once, transient).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_claim_connection_is_replaced() {
        use durable_core::store::{ClaimRequest, NewTask};
        use durable_core::WorkerId;

        let Some(pg) = pg_schema().await else {
            return;
        };
        for (ping_after_idle, fails_once) in [(Duration::ZERO, false), (Duration::MAX, true)] {
            let app = format!("{}-claims-{}", pg.name(), u8::from(fails_once));
            let store = pinging_store(&pg, &app, ping_after_idle).await;
            let request = ClaimRequest::new(WorkerId::new(), Duration::from_secs(30), 1, ["work"]);
            // Opens the claims' connection.
            store.claim(&request).await.expect("first claim");
            let mut admin = pg.connect().await;
            let until = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                // Every backend of the store, the claims' one included, once it is idle.
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND state = 'idle' AND query LIKE '%SKIP LOCKED%'",
                )
                .bind(&app)
                .fetch_all(&mut admin)
                .await
                .expect("terminate");
                if killed == [true] {
                    break;
                }
                assert!(
                    std::time::Instant::now() < until,
                    "no idle claim connection: {killed:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            wait_gone(&mut admin, &app, "query LIKE '%SKIP LOCKED%'").await;
            store
                .insert(&[NewTask::new("work", "{}")])
                .await
                .expect("insert");
            let first = store.claim(&request).await;
            if fails_once {
                let e = first.expect_err("the dead connection is used once");
                assert!(e.is_transient(), "{e:?}");
                let claimed = store.claim(&request).await.expect("a fresh connection");
                assert_eq!(claimed.len(), 1);
            } else {
                let claimed = first.expect("pinged, replaced, claimed");
                assert_eq!(claimed.len(), 1);
            }
        }
    }

    /// A pooled connection whose backend died: pinged before use once idle past
    /// `ping_after_idle`, so the write goes to a fresh connection; not pinged before that,
    /// so the write fails once (transient) and the next one gets a fresh connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_pooled_connection_is_replaced() {
        let Some(pg) = pg_schema().await else {
            return;
        };
        for (ping_after_idle, fails_once) in [(Duration::ZERO, false), (Duration::MAX, true)] {
            let app = format!("{}-{}", pg.name(), u8::from(fails_once));
            let store = pinging_store(&pg, &app, ping_after_idle).await;
            store.counts().await.expect("the pooled connection is open");
            // Back in the pool (after sqlx's ping on release), idle, before it is killed.
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while store.pool().num_idle() != 1 {
                assert!(
                    std::time::Instant::now() < until,
                    "connection not back in the pool"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut admin = pg.connect().await;
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1",
            )
            .bind(&app)
            .fetch_all(&mut admin)
            .await
            .expect("terminate");
            assert_eq!(killed, [true]);
            wait_gone(&mut admin, &app, "true").await;
            let client = Client::new(store.clone());
            let first = client.enqueue(Note::new("after the kill")).await;
            if fails_once {
                let e = first.expect_err("the dead connection is used once");
                assert!(e.is_transient(), "{e:?}");
                client
                    .enqueue(Note::new("again"))
                    .await
                    .expect("a fresh connection");
            } else {
                first.expect("pinged, replaced, written");
            }
        }
    }
}
