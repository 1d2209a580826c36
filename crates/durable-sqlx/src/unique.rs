//! Unique tasks in both stores: the index predicate their statements share, and how the
//! surviving id of each row is worked out.
//!
//! An insert of rows with unique keys runs `INSERT .. ON CONFLICT (unique_key) WHERE <live>
//! DO NOTHING`: the partial unique index (migration 3) decides, so two transactions racing
//! on a key cannot both insert, whatever they read before. For the rows it skipped, a second
//! statement looks up the row holding the key. Between the two the holder may have left its
//! unique states (completed, on another connection): then the key is free and the skipped
//! rows are inserted again — a few rounds at most, never a read that decides in place of
//! the index.

/// The rows in the unique index: a key, and a current state in the row's own mask. Text
/// shared by the migrations, the `ON CONFLICT` targets and the lookups (SQLite matches a
/// partial index's conflict target by its expression; PostgreSQL infers it from it).
macro_rules! unique_live {
    () => {
        "unique_key IS NOT NULL
      AND (CASE state WHEN 'pending' THEN 1 WHEN 'processing' THEN 2 WHEN 'completed' THEN 4
                      WHEN 'failed' THEN 8 WHEN 'cancelled' THEN 16 ELSE 0 END
           & unique_states) <> 0"
    };
}

use std::collections::HashMap;

use durable_core::store::NewTask;
use durable_core::TaskId;

use crate::error::{Error, Result};

/// How many times rows skipped for a key are inserted again when its holder keeps
/// finishing before the lookup.
pub(crate) const MAX_ROUNDS: usize = 8;

/// The survivors of an insert of `tasks`, worked out round by round.
pub(crate) struct Resolve<'a> {
    tasks: &'a [NewTask],
    survivors: Vec<Option<TaskId>>,
    /// Rows still to insert (indexes into `tasks`).
    todo: Vec<usize>,
    rounds: usize,
}

impl<'a> Resolve<'a> {
    pub(crate) fn new(tasks: &'a [NewTask]) -> Self {
        Self {
            tasks,
            survivors: vec![None; tasks.len()],
            todo: (0..tasks.len()).collect(),
            rounds: 0,
        }
    }

    /// The rows to insert in the next round, or `None` when every row has its survivor.
    /// Fails once [`MAX_ROUNDS`] did not settle them.
    pub(crate) fn next_round(&mut self) -> Result<Option<Vec<&'a NewTask>>> {
        if self.todo.is_empty() {
            return Ok(None);
        }
        if self.rounds == MAX_ROUNDS {
            let key = self.tasks[self.todo[0]]
                .unique
                .as_ref()
                .map_or_else(String::new, |u| u.key.clone());
            return Err(Error::UniqueUnresolved {
                key,
                rounds: self.rounds,
            });
        }
        self.rounds += 1;
        Ok(Some(self.todo.iter().map(|&i| &self.tasks[i]).collect()))
    }

    /// After a round's insert: `inserted` holds the ids it returned. Returns the stored keys
    /// (computed by `stored_key`) of the rows it skipped, to look up.
    pub(crate) fn inserted(
        &mut self,
        inserted: &[TaskId],
        stored_key: impl Fn(&NewTask) -> Option<String>,
    ) -> Result<Vec<String>> {
        let inserted: std::collections::HashSet<&TaskId> = inserted.iter().collect();
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for &i in &self.todo {
            let task = &self.tasks[i];
            if inserted.contains(&task.id) {
                self.survivors[i] = Some(task.id);
                continue;
            }
            let Some(key) = stored_key(task) else {
                // Only the unique index lets an insert skip a row.
                return Err(Error::CorruptRow {
                    id: task.id.to_string(),
                    reason: "a row without a unique key was not inserted".to_owned(),
                });
            };
            keys.push(key);
            skipped.push(i);
        }
        self.todo = skipped;
        Ok(keys)
    }

    /// After the lookup of `keys` (in the order [`inserted`](Self::inserted) gave them):
    /// `found` maps stored keys to the rows holding them. Rows whose key is free again go
    /// to the next round.
    pub(crate) fn found(&mut self, keys: &[String], found: &HashMap<String, TaskId>) {
        let mut again = Vec::new();
        for (&i, key) in self.todo.iter().zip(keys) {
            match found.get(key) {
                Some(id) => self.survivors[i] = Some(*id),
                None => again.push(i),
            }
        }
        self.todo = again;
    }

    /// One id per row, in order.
    pub(crate) fn finish(self) -> Vec<TaskId> {
        self.survivors
            .into_iter()
            .zip(self.tasks)
            .map(|(s, t)| s.unwrap_or(t.id))
            .collect()
    }
}

/// Whether any of `tasks` has a unique key (the plain insert serves the others).
pub(crate) fn any_unique(tasks: &[NewTask]) -> bool {
    tasks.iter().any(|t| t.unique.is_some())
}
