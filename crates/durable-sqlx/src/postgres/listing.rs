//! [`AdminStore::list`](durable_core::store::AdminStore::list) on PostgreSQL: keyset pages
//! over the primary key (ids are UUID v7, so id order is creation order), oldest or newest
//! first, and payload searches bounded to [`SEARCH_SCAN`] rows per call.

use durable_core::store::{ListQuery, Page, MAX_LIST_LIMIT, SEARCH_SCAN};
use durable_core::{TaskId, TaskState};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::rows::{clean_text, record_from_row};
use crate::error::{Error, Result};

/// The filters every list statement shares: $1 state, $2 name, $3 queue, $4 after id,
/// $5 created from, $6 created until (each NULL: any). `$cmp` is the keyset's comparison
/// and `$open` the bound it takes without an `after` (the lowest or highest UUID): a
/// comparison with a value, unlike `$4 IS NULL OR ..`, keeps an index range in the generic
/// plan of the prepared statement.
macro_rules! list_filters {
    ($cmp:literal, $open:literal) => {
        concat!(
            "($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR name = $2)
  AND ($3::text IS NULL OR queue = $3) AND id ",
            $cmp,
            " coalesce($4::uuid, ",
            $open,
            ")
  AND ($5::timestamptz IS NULL OR created_at >= $5)
  AND ($6::timestamptz IS NULL OR created_at < $6)"
        )
    };
}

/// A page without a search: the filters, $7 limit, in `$dir` id order, from `$table`.
macro_rules! list_page {
    ($table:literal, $cmp:literal, $open:literal, $dir:literal) => {
        concat!(
            record_columns!($table),
            "\nWHERE ",
            list_filters!($cmp, $open),
            "\nORDER BY id ",
            $dir,
            "\nLIMIT $7"
        )
    };
}

/// A page with a search: the filters, $7 limit, $8 text, $9 most rows scanned. The scan
/// reads at most $9 rows in keyset order (a materialized CTE, so the bound holds whatever
/// the planner does); the page is its first $7 rows whose payload text contains $8. Every
/// row carries how many rows were scanned and the last of them in scan order (with one
/// row of NULL task columns when nothing matched), so the caller can resume after the scan.
macro_rules! search_page {
    ($table:literal, $cmp:literal, $open:literal, $dir:literal, $rev:literal) => {
        concat!(
            "
WITH scanned AS MATERIALIZED (
    SELECT id, strpos(payload::text, $8::text) > 0 AS hit
    FROM ",
            $table,
            "
    WHERE ",
            list_filters!($cmp, $open),
            "
    ORDER BY id ",
            $dir,
            "
    LIMIT $9
), hits AS (
    SELECT id FROM scanned WHERE hit ORDER BY id ",
            $dir,
            " LIMIT $7
), edge AS (
    SELECT count(*) AS scanned,
        (SELECT id FROM scanned ORDER BY id ",
            $rev,
            " LIMIT 1) AS last_scanned
    FROM scanned
)
SELECT page.*, edge.scanned, edge.last_scanned
FROM edge LEFT JOIN (",
            record_columns!($table),
            " WHERE id IN (SELECT id FROM hits)) AS page ON true
ORDER BY page.id ",
            $dir
        )
    };
}

/// The four kinds of page (plain or searched, oldest or newest first) over `$table`.
macro_rules! pages {
    ($table:literal) => {
        [
            list_page!($table, ">", "'00000000-0000-0000-0000-000000000000'", "ASC"),
            list_page!(
                $table,
                "<",
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                "DESC"
            ),
            search_page!(
                $table,
                ">",
                "'00000000-0000-0000-0000-000000000000'",
                "ASC",
                "DESC"
            ),
            search_page!(
                $table,
                "<",
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                "DESC",
                "ASC"
            ),
        ]
    };
}

/// Pages over every task.
const ALL: [&str; 4] = pages!("durable_tasks");

/// Pages of `pending` or `processing` tasks: the live partition only. Over the whole table,
/// the history partition's part of a page walks its whole primary key for rows it never
/// holds.
const LIVE: [&str; 4] = pages!("durable_tasks_live");

/// One page of `query`.
pub(super) async fn list(pool: &PgPool, query: &ListQuery) -> Result<Page> {
    let limit = query.limit.clamp(1, MAX_LIST_LIMIT);
    let pages = match query.state {
        Some(TaskState::Pending | TaskState::Processing) => &LIVE,
        _ => &ALL,
    };
    let statement =
        pages[usize::from(query.search.is_some()) * 2 + usize::from(query.newest_first)];
    let mut statement = sqlx::query(statement)
        .bind(query.state.map(TaskState::as_str))
        .bind(query.name.as_deref())
        .bind(query.queue.as_deref())
        .bind(query.after.map(|id| *id.as_uuid()))
        .bind(query.created_from)
        .bind(query.created_until)
        .bind(i64::from(limit));
    if let Some(search) = &query.search {
        // Text cannot hold NUL: a search for one matches nothing, as no payload holds one.
        statement = statement
            .bind(clean_text(search))
            .bind(i64::from(SEARCH_SCAN));
    }
    let rows = statement.fetch_all(pool).await.map_err(Error::db("list"))?;
    let mut tasks = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Option<Uuid> = row.try_get("id").map_err(Error::db("list"))?;
        if id.is_some() {
            tasks.push(record_from_row(row)?);
        }
    }
    let full = tasks.len() == limit as usize;
    let next = if full {
        tasks.last().map(|t| t.id)
    } else if query.search.is_some() {
        scan_cut(&rows)?
    } else {
        None
    };
    Ok(Page::new(tasks, next))
}

/// Where a search resumes when its scan stopped at [`SEARCH_SCAN`] rows: after the last row
/// it read, matching or not (so the next call neither reads a row twice nor skips one).
fn scan_cut(rows: &[sqlx::postgres::PgRow]) -> Result<Option<TaskId>> {
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let scanned: i64 = row.try_get("scanned").map_err(Error::db("list"))?;
    let last: Option<Uuid> = row.try_get("last_scanned").map_err(Error::db("list"))?;
    Ok((scanned >= i64::from(SEARCH_SCAN))
        .then_some(last)
        .flatten()
        .map(TaskId::from_uuid))
}
