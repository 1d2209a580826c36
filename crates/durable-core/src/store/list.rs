//! [`ListQuery`]: which rows [`AdminStore::list`](super::AdminStore::list) returns.

use chrono::{DateTime, Utc};

use crate::ids::TaskId;
use crate::state::TaskState;

use super::TaskRecord;

/// Most rows one [`AdminStore::list`](super::AdminStore::list) call returns.
pub const MAX_LIST_LIMIT: u32 = 1_000;

/// Most rows one [`AdminStore::list`](super::AdminStore::list) call with a
/// [`search`](ListQuery::search) reads before it returns the page it has: a search in payloads
/// has no index, so it is bounded, and the caller continues from [`Page::next`].
pub const SEARCH_SCAN: u32 = 10_000;

/// One page of [`AdminStore::list`](super::AdminStore::list).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page {
    /// The matching rows, in the query's order.
    pub tasks: Vec<TaskRecord>,
    /// Where the next page starts ([`ListQuery::after`]); `None` when no row is left. With a
    /// search, a page can be short (or empty) and still have a next one: the scan stopped at
    /// [`SEARCH_SCAN`] rows.
    pub next: Option<TaskId>,
}

impl Page {
    /// A page from its rows and its continuation.
    pub fn new(tasks: Vec<TaskRecord>, next: Option<TaskId>) -> Self {
        Self { tasks, next }
    }
}

/// Filters and one keyset page of rows, in id order (ids are UUID v7: creation order),
/// oldest first or [newest first](ListQuery::newest_first).
///
/// A page continues from the last id of the previous one ([`after`](Self::after)), so paging
/// stays cheap however deep it goes and rows inserted meanwhile do not shift the pages.
///
/// # Examples
///
/// ```no_run
/// use durable_core::store::{AdminStore, ListQuery};
/// use durable_core::TaskState;
///
/// async fn failed_emails(store: &impl AdminStore) -> durable_core::Result<()> {
///     let mut query = ListQuery::new(100)
///         .state(TaskState::Failed)
///         .name("send_welcome_email");
///     loop {
///         let page = store.list(&query).await?;
///         for task in &page.tasks {
///             println!("{} {:?}", task.id, task.last_error);
///         }
///         match page.next {
///             Some(next) => query = query.after(next),
///             None => return Ok(()),
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListQuery {
    /// Only rows in this state.
    pub state: Option<TaskState>,
    /// Only rows of this task name.
    pub name: Option<String>,
    /// Only rows of this queue.
    pub queue: Option<String>,
    /// Only rows created at or after this time.
    pub created_from: Option<DateTime<Utc>>,
    /// Only rows created before this time.
    pub created_until: Option<DateTime<Utc>>,
    /// Only rows whose payload (its JSON text) contains this string, compared as is
    /// (case-sensitive); at most [`SEARCH_SCAN`] rows are read per call.
    pub search: Option<String>,
    /// Newest rows first (descending ids) instead of oldest first.
    pub newest_first: bool,
    /// Only rows after this id in the list's order (the previous page's [`Page::next`]).
    pub after: Option<TaskId>,
    /// Most rows returned, from 1 to [`MAX_LIST_LIMIT`].
    pub limit: u32,
}

impl ListQuery {
    /// Every row, `limit` at a time (clamped to 1..=[`MAX_LIST_LIMIT`]).
    pub fn new(limit: u32) -> Self {
        Self {
            state: None,
            name: None,
            queue: None,
            created_from: None,
            created_until: None,
            search: None,
            newest_first: false,
            after: None,
            limit: limit.clamp(1, MAX_LIST_LIMIT),
        }
    }

    /// Only rows in `state`.
    #[must_use]
    pub fn state(mut self, state: TaskState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only rows of the task name `name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only rows of `queue`.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only rows created in `from..until`.
    #[must_use]
    pub fn created(mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.created_from = Some(from);
        self.created_until = Some(until);
        self
    }

    /// Only rows created at or after `from`.
    #[must_use]
    pub fn created_from(mut self, from: DateTime<Utc>) -> Self {
        self.created_from = Some(from);
        self
    }

    /// Only rows whose payload contains `text` (bounded: see [`SEARCH_SCAN`]).
    #[must_use]
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// Newest rows first.
    #[must_use]
    pub fn newest_first(mut self) -> Self {
        self.newest_first = true;
        self
    }

    /// The page after `id` (the previous page's [`Page::next`]).
    #[must_use]
    pub fn after(mut self, id: TaskId) -> Self {
        self.after = Some(id);
        self
    }
}
