//! What handlers spawned: the stored rows of one task type, decoded.

use std::fmt::{Debug, Write as _};

use durable_core::store::{ListQuery, TaskRecord, MAX_LIST_LIMIT};
use durable_core::Task;

use super::TestDurable;

impl TestDurable {
    /// Every stored row, in id order (creation order), in any state.
    ///
    /// # Panics
    ///
    /// When the store cannot be read.
    pub async fn records(&self) -> Vec<TaskRecord> {
        self.records_where(None).await
    }

    pub(super) async fn records_where(&self, name: Option<&str>) -> Vec<TaskRecord> {
        let store = self.store();
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let mut query = ListQuery::new(MAX_LIST_LIMIT);
            if let Some(name) = name {
                query = query.name(name);
            }
            if let Some(id) = after {
                query = query.after(id);
            }
            let page = store
                .list(&query)
                .await
                .unwrap_or_else(|e| panic!("reading the stored tasks failed: {e}"));
            after = page.next;
            all.extend(page.tasks);
            if after.is_none() {
                return all;
            }
        }
    }

    /// The tasks of type `T` stored so far (in any state: waiting, ran, failed), decoded, in
    /// the order they were spawned.
    ///
    /// # Panics
    ///
    /// When the store cannot be read, or a stored payload does not decode as `T`.
    pub async fn spawned<T: Task>(&self) -> Vec<T> {
        self.records_where(Some(T::NAME))
            .await
            .iter()
            .map(|r| {
                serde_json::from_str(&r.payload).unwrap_or_else(|e| {
                    panic!(
                        "stored task {} `{}` does not decode: {e}; payload {}",
                        r.id,
                        T::NAME,
                        r.payload
                    )
                })
            })
            .collect()
    }

    /// Asserts that a task of type `T` equal to `expected` was stored (in any state).
    ///
    /// # Panics
    ///
    /// When none was, with every stored task of that type in the message:
    ///
    /// ```text
    /// expected a spawned `send_welcome_email` task equal to
    ///     SendWelcomeEmail { email: "ada@example.com" }
    /// but the 1 spawned `send_welcome_email` task is:
    ///     SendWelcomeEmail { email: "bob@example.com" } (pending, task 0193…)
    /// ```
    pub async fn assert_spawned<T: Task + PartialEq + Debug>(&self, expected: &T) {
        let records = self.records_where(Some(T::NAME)).await;
        let decoded: Vec<(&TaskRecord, Result<T, serde_json::Error>)> = records
            .iter()
            .map(|r| (r, serde_json::from_str::<T>(&r.payload)))
            .collect();
        if decoded
            .iter()
            .any(|(_, task)| task.as_ref().is_ok_and(|t| t == expected))
        {
            return;
        }
        panic!("{}", mismatch(T::NAME, expected, &decoded));
    }
}

/// The message of a failed [`TestDurable::assert_spawned`].
fn mismatch<T: Debug>(
    name: &str,
    expected: &T,
    found: &[(&TaskRecord, Result<T, serde_json::Error>)],
) -> String {
    let mut message = format!("expected a spawned `{name}` task equal to\n    {expected:?}\n");
    match found.len() {
        0 => {
            let _ = write!(message, "but no `{name}` task was spawned");
        }
        1 => {
            let _ = writeln!(message, "but the 1 spawned `{name}` task is:");
        }
        n => {
            let _ = writeln!(message, "but the {n} spawned `{name}` tasks are:");
        }
    }
    for (record, task) in found {
        let state = record.state;
        let id = record.id;
        let _ = match task {
            Ok(task) => writeln!(message, "    {task:?} ({state}, task {id})"),
            Err(e) => writeln!(
                message,
                "    payload {} does not decode: {e} ({state}, task {id})",
                record.payload
            ),
        };
    }
    message
}

#[cfg(test)]
mod tests {
    use durable_core::{TaskId, TaskState};

    use super::*;

    #[test]
    fn the_message_lists_what_was_spawned() {
        let record = TaskRecord::new(
            TaskId::new(),
            "greet",
            "default",
            "\"bob\"",
            TaskState::Pending,
        );
        let found = vec![(&record, Ok("bob".to_owned()))];
        let message = mismatch("greet", &"ada".to_owned(), &found);
        assert!(message.contains("equal to\n    \"ada\""), "{message}");
        assert!(
            message.contains("the 1 spawned `greet` task is:\n    \"bob\" (pending"),
            "{message}"
        );
        let none = mismatch::<String>("greet", &"ada".to_owned(), &[]);
        assert!(none.ends_with("but no `greet` task was spawned"), "{none}");
    }
}
