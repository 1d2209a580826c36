//! The application's table for the steps conformance cases, on a second connection to the
//! test's SQLite file.

use std::sync::Arc;

use durable_core::{TaskContext, TaskId};
use durable_sqlx::sqlite::SqliteStore;

use crate::conformance::steps::{AppDb, BoxFuture, TxDb, TxState};
use crate::SqliteDb;

struct App(SqliteStore);

impl AppDb for App {
    fn complete_with_row<'a>(
        &'a self,
        cx: &'a TaskContext<TxState>,
        tag: &'a str,
        commit: bool,
    ) -> BoxFuture<'a, Result<(), durable_sqlx::Error>> {
        Box::pin(async move {
            let mut tx = self.0.begin().await?;
            sqlx::query("INSERT INTO app_rows (task_id, tag) VALUES (?, ?)")
                .bind(cx.id().to_string())
                .bind(tag)
                .execute(&mut *tx)
                .await
                .map_err(|e| durable_sqlx::Error::Database {
                    operation: "app row",
                    source: e,
                })?;
            durable_sqlx::complete_in(&mut *tx, cx).await?;
            if commit {
                tx.commit()
                    .await
                    .map_err(|e| durable_sqlx::Error::Database {
                        operation: "commit",
                        source: e,
                    })?;
            }
            Ok(())
        })
    }

    fn step_with_row<'a>(
        &'a self,
        cx: &'a TaskContext<TxState>,
        step: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<(), durable_sqlx::Error>> {
        Box::pin(async move {
            let mut tx = self.0.begin().await?;
            sqlx::query("INSERT INTO app_rows (task_id, tag) VALUES (?, ?)")
                .bind(cx.id().to_string())
                .bind(tag)
                .execute(&mut *tx)
                .await
                .map_err(|e| durable_sqlx::Error::Database {
                    operation: "app row",
                    source: e,
                })?;
            durable_sqlx::step_in(&mut *tx, cx, step, tag).await?;
            tx.commit()
                .await
                .map_err(|e| durable_sqlx::Error::Database {
                    operation: "commit",
                    source: e,
                })?;
            Ok(())
        })
    }

    fn rows(&self, id: TaskId) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT tag FROM app_rows WHERE task_id = ? ORDER BY tag")
                .bind(id.to_string())
                .fetch_all(self.0.reader_pool())
                .await
                .expect("read app_rows")
        })
    }
}

impl TxDb for SqliteDb {
    fn app(&self) -> BoxFuture<'_, Arc<dyn AppDb>> {
        Box::pin(async move {
            let store = SqliteStore::connect(&self.url)
                .await
                .expect("second connection");
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS app_rows (task_id TEXT NOT NULL, tag TEXT NOT NULL)",
            )
            .execute(store.writer_pool())
            .await
            .expect("create app_rows");
            Arc::new(App(store)) as Arc<dyn AppDb>
        })
    }
}
