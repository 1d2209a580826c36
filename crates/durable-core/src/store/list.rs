//! [`ListQuery`]: which rows [`AdminStore::list`](super::AdminStore::list) returns.

use crate::ids::TaskId;
use crate::state::TaskState;

/// Most rows one [`AdminStore::list`](super::AdminStore::list) call returns.
pub const MAX_LIST_LIMIT: u32 = 1_000;

/// Filters and one keyset page of rows, in id order (ids are UUID v7: creation order).
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
///         for task in &page {
///             println!("{} {:?}", task.id, task.last_error);
///         }
///         match page.last() {
///             Some(last) if page.len() == 100 => query = query.after(last.id),
///             _ => return Ok(()),
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
    /// Only rows whose id sorts after this one.
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

    /// The page after `id` (the last id of the previous page).
    #[must_use]
    pub fn after(mut self, id: TaskId) -> Self {
        self.after = Some(id);
        self
    }
}
