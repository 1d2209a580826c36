//! [`AdminStore::list`](durable_core::store::AdminStore::list) on SQLite: keyset pages over
//! the primary key (ids are UUID v7 text, so id order is creation order), oldest or newest
//! first, and payload searches bounded to [`SEARCH_SCAN`] rows per call.

use durable_core::store::{ListQuery, Page, MAX_LIST_LIMIT, SEARCH_SCAN};
use durable_core::{TaskId, TaskState};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::rows::{parse_id, record_from_row};
use crate::error::{Error, Result};

/// The filters every list statement shares: ?1 state, ?2 name, ?3 queue, ?4 after id,
/// ?5 created from, ?6 created until (Unix ms; each NULL: any). `$cmp` is the keyset's
/// comparison and `$open` the bound it takes without an `after` (below or above every id
/// text): a comparison with a constant, unlike `?4 IS NULL OR ..`, lets the primary key seek
/// to the page instead of reading every row before it.
macro_rules! list_filters {
    ($cmp:literal, $open:literal) => {
        concat!(
            "(?1 IS NULL OR state = ?1) AND (?2 IS NULL OR name = ?2)
  AND (?3 IS NULL OR queue = ?3) AND id ",
            $cmp,
            " coalesce(?4, ",
            $open,
            ")
  AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at < ?6)"
        )
    };
}

/// A page without a search: the filters, ?7 limit, in `$dir` id order.
macro_rules! list_page {
    ($cmp:literal, $open:literal, $dir:literal) => {
        concat!(
            "SELECT * FROM durable_tasks\nWHERE ",
            list_filters!($cmp, $open),
            "\nORDER BY id ",
            $dir,
            "\nLIMIT ?7"
        )
    };
}

/// A page with a search: the filters, ?7 limit, ?8 text, ?9 most rows scanned. The scan
/// reads at most ?9 rows in keyset order (a materialized CTE, so the bound holds); the page
/// is its first ?7 rows whose payload contains ?8. Every row carries how many rows were
/// scanned and the last of them in scan order (with one row of NULL task columns when
/// nothing matched), so the caller can resume after the scan.
macro_rules! search_page {
    ($cmp:literal, $open:literal, $dir:literal, $rev:literal) => {
        concat!(
            "
WITH scanned AS MATERIALIZED (
    SELECT id, instr(payload, ?8) > 0 AS hit
    FROM durable_tasks
    WHERE ",
            list_filters!($cmp, $open),
            "
    ORDER BY id ",
            $dir,
            "
    LIMIT ?9
), hits AS (
    SELECT id FROM scanned WHERE hit ORDER BY id ",
            $dir,
            " LIMIT ?7
), edge AS (
    SELECT count(*) AS scanned,
        (SELECT id FROM scanned ORDER BY id ",
            $rev,
            " LIMIT 1) AS last_scanned
    FROM scanned
)
SELECT page.*, edge.scanned, edge.last_scanned
FROM edge LEFT JOIN (SELECT * FROM durable_tasks WHERE id IN (SELECT id FROM hits)) AS page
ON 1
ORDER BY page.id ",
            $dir
        )
    };
}

const OLDEST_FIRST: &str = list_page!(">", "''", "ASC");
const NEWEST_FIRST: &str = list_page!("<", "'g'", "DESC");
const SEARCH_OLDEST_FIRST: &str = search_page!(">", "''", "ASC", "DESC");
const SEARCH_NEWEST_FIRST: &str = search_page!("<", "'g'", "DESC", "ASC");

/// One page of `query`.
pub(super) async fn list(pool: &SqlitePool, query: &ListQuery) -> Result<Page> {
    let limit = query.limit.clamp(1, MAX_LIST_LIMIT);
    let statement = match (query.search.is_some(), query.newest_first) {
        (false, false) => OLDEST_FIRST,
        (false, true) => NEWEST_FIRST,
        (true, false) => SEARCH_OLDEST_FIRST,
        (true, true) => SEARCH_NEWEST_FIRST,
    };
    let mut statement = sqlx::query(statement)
        .bind(query.state.map(TaskState::as_str))
        .bind(query.name.as_deref())
        .bind(query.queue.as_deref())
        .bind(query.after.map(|id| id.to_string()))
        .bind(query.created_from.map(|t| t.timestamp_millis()))
        .bind(query.created_until.map(|t| t.timestamp_millis()))
        .bind(i64::from(limit));
    if let Some(search) = &query.search {
        statement = statement.bind(search.as_str()).bind(i64::from(SEARCH_SCAN));
    }
    let rows = statement.fetch_all(pool).await.map_err(Error::db("list"))?;
    let mut tasks = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Option<String> = row.try_get("id").map_err(Error::db("list"))?;
        if id.is_some() {
            tasks.push(record_from_row(row)?);
        }
    }
    let next = if tasks.len() == limit as usize {
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
fn scan_cut(rows: &[SqliteRow]) -> Result<Option<TaskId>> {
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let scanned: i64 = row.try_get("scanned").map_err(Error::db("list"))?;
    let last: Option<String> = row.try_get("last_scanned").map_err(Error::db("list"))?;
    match last {
        Some(last) if scanned >= i64::from(SEARCH_SCAN) => parse_id(&last).map(Some),
        _ => Ok(None),
    }
}
