//! Migrations across deploys: an older build against a newer schema, shipped migrations
//! whose text moved, several processes migrating one fresh file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::{ClaimRequest, NewTask, Store};
use durable_core::{TaskState, WorkerId};
use durable_sqlx::sqlite::SqliteStore;
use durable_testkit::SqliteFile;
use sqlx::SqlitePool;

use crate::conformance::row;
use crate::conformance::Writes as _;

/// The versions of this build's embedded migrations, read from the migrations folder (so
/// the tests hold as migrations are added).
pub(crate) fn embedded_versions() -> Vec<i64> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut versions: Vec<i64> = std::fs::read_dir(folder)
        .expect("the migrations folder")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// This build's schema version: its newest embedded migration.
fn this_version() -> i64 {
    embedded_versions().last().copied().expect("a migration")
}

async fn migrated(url: &str) -> SqliteStore {
    let store = SqliteStore::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// What a newer release leaves behind: its schema change, and its row in the migrations
/// table with the oldest schema version it declares compatible (`None`: no declaration).
async fn apply_newer_migration(pool: &SqlitePool, version: i64, compatible_from: Option<i64>) {
    let has_column: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_table_info('_durable_migrations') WHERE name = 'compatible_from'",
    )
    .fetch_one(pool)
    .await
    .expect("table info");
    if has_column == 0 {
        sqlx::query("ALTER TABLE _durable_migrations ADD COLUMN compatible_from BIGINT")
            .execute(pool)
            .await
            .expect("the newer release's bookkeeping column");
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE durable_tasks ADD COLUMN note_{version} TEXT"
    )))
    .execute(pool)
    .await
    .expect("the newer release's schema change");
    sqlx::query(
        "INSERT INTO _durable_migrations
             (version, description, success, checksum, execution_time, compatible_from)
         VALUES ($1, 'add a note', TRUE, x'00', 0, $2)",
    )
    .bind(version)
    .bind(compatible_from)
    .execute(pool)
    .await
    .expect("the newer release's migration row");
}

async fn applied_versions(pool: &SqlitePool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _durable_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .expect("versions")
}

/// A rollout (or a rollback) restarts an instance of this version after a newer one applied
/// the next migration, which declares itself compatible with this version: it starts and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_build_starts_against_a_compatible_newer_schema() {
    let file = SqliteFile::new();
    let url = file.url();
    let first = migrated(&url).await;
    let v = this_version();
    apply_newer_migration(first.writer_pool(), v + 1, Some(v)).await;

    let restarted = SqliteStore::connect(&url).await.expect("connect");
    restarted
        .migrate()
        .await
        .expect("an older build starts against a schema compatible with it");
    assert_eq!(
        applied_versions(restarted.writer_pool()).await,
        [embedded_versions(), vec![v + 1]].concat(),
        "nothing re-applied"
    );
    let task = NewTask::new("work", "{}");
    restarted
        .insert(std::slice::from_ref(&task))
        .await
        .expect("insert");
    let claimed = restarted
        .claim(&ClaimRequest::new(
            WorkerId::new(),
            Duration::from_secs(30),
            1,
            ["work"],
        ))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let store: Arc<dyn Store> = Arc::new(restarted);
    assert_eq!(row(&store, task.id).await.state, TaskState::Processing);
}

/// The next migration needs its own version or newer: this version refuses to start, naming
/// both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_build_refuses_an_incompatible_newer_schema() {
    let file = SqliteFile::new();
    let url = file.url();
    let first = migrated(&url).await;
    let v = this_version();
    apply_newer_migration(first.writer_pool(), v + 1, Some(v + 1)).await;

    let error = SqliteStore::connect(&url)
        .await
        .expect("connect")
        .migrate()
        .await
        .expect_err("an incompatible newer schema is refused")
        .to_string();
    assert!(
        error.contains(&format!("at version {}", v + 1))
            && error.contains(&format!("schema version {} or newer", v + 1))
            && error.contains(&format!("this build's schema version is {v}")),
        "{error}"
    );
}

/// The newest compatibility declaration is not enough: every newer migration must accept
/// this version. Here the next one needs itself, the one after accepts this version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_newer_migration_must_accept_this_version() {
    let file = SqliteFile::new();
    let url = file.url();
    let first = migrated(&url).await;
    let v = this_version();
    apply_newer_migration(first.writer_pool(), v + 1, Some(v + 1)).await;
    apply_newer_migration(first.writer_pool(), v + 2, Some(v)).await;

    let error = first
        .migrate()
        .await
        .expect_err("the first newer migration needs its own version")
        .to_string();
    assert!(
        error.contains(&format!("at version {}", v + 2))
            && error.contains(&format!("schema version {} or newer", v + 1)),
        "{error}"
    );
}

/// A newer migration recorded without a compatibility declaration counts as needing its own
/// version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_migration_without_a_declaration_is_refused() {
    let file = SqliteFile::new();
    let url = file.url();
    let first = migrated(&url).await;
    let v = this_version();
    apply_newer_migration(first.writer_pool(), v + 1, None).await;

    let error = first
        .migrate()
        .await
        .expect_err("no declaration: incompatible")
        .to_string();
    assert!(
        error.contains(&format!("schema version {} or newer", v + 1))
            && error.contains(&format!("this build's schema version is {v}")),
        "{error}"
    );
}

fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations/sqlite")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The checksum sqlx (and the store) computes for a migration's text.
fn checksum(sql: String) -> Vec<u8> {
    use sqlx::SqlSafeStr as _;
    sqlx::migrate::Migration::new(
        0,
        "checksum".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::AssertSqlSafe(sql).into_sql_str(),
        false,
    )
    .checksum
    .into_owned()
}

async fn set_recorded_checksum(pool: &SqlitePool, version: i64, checksum: Vec<u8>) {
    sqlx::query("UPDATE _durable_migrations SET checksum = $1 WHERE version = $2")
        .bind(checksum)
        .bind(version)
        .execute(pool)
        .await
        .expect("update checksum");
}

/// A database migrated by a build from a CRLF checkout (Windows, `core.autocrlf`) recorded
/// the checksum of the CRLF text: the same migration, so it still starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_applied_from_a_crlf_checkout_is_the_same_migration() {
    let file = SqliteFile::new();
    let store = migrated(&file.url()).await;
    let crlf = shipped("0001_create_durable_tasks.sql").replace('\n', "\r\n");
    set_recorded_checksum(store.writer_pool(), 1, checksum(crlf)).await;
    store
        .migrate()
        .await
        .expect("line endings do not make a different migration");
}

/// A shipped migration whose text changed otherwise is refused, with what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_shipped_migration_is_refused_with_the_rule() {
    let file = SqliteFile::new();
    let store = migrated(&file.url()).await;
    let edited = shipped("0001_create_durable_tasks.sql").replace("One row per task", "A task");
    set_recorded_checksum(store.writer_pool(), 1, checksum(edited)).await;
    let error = store
        .migrate()
        .await
        .expect_err("an edited migration is refused")
        .to_string();
    assert!(
        error.contains("migration 1") && error.contains("new migration"),
        "{error}"
    );
}

/// Three stores (own pools: separate "processes") migrate one fresh file at once, twenty
/// times over: every `migrate()` succeeds and each migration is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_migrating_one_fresh_file_at_once_all_succeed() {
    for round in 0..20 {
        let file = SqliteFile::new();
        let url = file.url();
        let start = Arc::new(tokio::sync::Barrier::new(3));
        let mut handles = Vec::new();
        for _ in 0..3 {
            let (url, start) = (url.clone(), Arc::clone(&start));
            handles.push(tokio::spawn(async move {
                // Opening the fresh file races too. Every task reaches the barrier, failed
                // or not, so a failure is reported instead of leaving the others waiting.
                let opened = SqliteStore::connect(&url).await;
                start.wait().await;
                let store = opened.map_err(|e| format!("connect: {e}"))?;
                store.migrate().await.map_err(|e| format!("migrate: {e}"))?;
                Ok::<_, String>(store)
            }));
        }
        let mut stores = Vec::new();
        for handle in handles {
            let migrated = handle.await.expect("join");
            stores.push(migrated.unwrap_or_else(|e| panic!("round {round}: {e}")));
        }
        assert_eq!(
            applied_versions(stores[0].writer_pool()).await,
            embedded_versions()
        );
    }
}

/// Stores opening one fresh file at once (each switches it to WAL, which takes an exclusive
/// lock SQLite does not wait for): every open succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opening_one_fresh_file_at_once_all_succeed() {
    for round in 0..100 {
        let file = SqliteFile::new();
        let url = file.url();
        let start = Arc::new(tokio::sync::Barrier::new(8));
        let mut handles = Vec::new();
        for _ in 0..8 {
            let (url, start) = (url.clone(), Arc::clone(&start));
            handles.push(tokio::spawn(async move {
                start.wait().await;
                SqliteStore::connect(&url).await
            }));
        }
        for handle in handles {
            let opened = handle.await.expect("join");
            opened.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}

/// Set (to the database file) in the child process of
/// `processes_migrating_one_fresh_file_at_once_all_succeed`.
const CHILD_FILE_VAR: &str = "DURABLE_TEST_MIGRATE_FILE";

fn ready_file(db: &Path) -> PathBuf {
    db.with_extension("ready")
}

fn go_file(db: &Path) -> PathBuf {
    db.with_extension("go")
}

/// Waits (polling, with a deadline) until `path` exists.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The other process: this test binary, re-run with only this test selected and the file in
/// `DURABLE_TEST_MIGRATE_FILE`. Says it is ready, waits for the go, then opens and migrates
/// the file. Without the variable (a normal run) it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_migrates() {
    let Ok(file) = std::env::var(CHILD_FILE_VAR) else {
        return;
    };
    let file = PathBuf::from(file);
    std::fs::write(ready_file(&file), b"").expect("ready");
    let go = go_file(&file);
    tokio::task::spawn_blocking(move || wait_for_file(&go))
        .await
        .expect("join");
    let store = SqliteStore::connect(file.display().to_string())
        .await
        .expect("child: connect");
    store.migrate().await.expect("child: migrate");
}

async fn open_and_migrate(url: &str) -> Result<SqliteStore, String> {
    let store = SqliteStore::connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    store.migrate().await.map_err(|e| format!("migrate: {e}"))?;
    Ok(store)
}

/// A real second process and two stores of this one open and migrate one fresh file at
/// once, ten times over: all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_migrating_one_fresh_file_at_once_all_succeed() {
    for round in 0..10 {
        let fresh = SqliteFile::new();
        let file = fresh.path().to_path_buf();
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "migrations::child_process_migrates",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_FILE_VAR, &file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the child process");
        let ready = ready_file(&file);
        tokio::task::spawn_blocking(move || wait_for_file(&ready))
            .await
            .expect("join");
        std::fs::write(go_file(&file), b"").expect("go");
        let url = file.display().to_string();
        let (a, b) = tokio::join!(open_and_migrate(&url), open_and_migrate(&url));
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("child output");
        assert!(
            output.status.success(),
            "round {round}: the child process failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let a = a.unwrap_or_else(|e| panic!("round {round}: {e}"));
        b.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(applied_versions(a.writer_pool()).await, embedded_versions());
    }
}
