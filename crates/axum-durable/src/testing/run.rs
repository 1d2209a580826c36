//! Running the due tasks inline until nothing due is left.

use std::collections::HashMap;
use std::time::Duration;

use durable_core::store::TaskRecord;
use durable_core::{Runtime, TaskId, TaskState};

use super::{Backend, TestDurable};

/// What one [`TestDurable::run_until_idle`] ran: the tasks with an attempt in it, by how
/// they stand at its end.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunReport {
    /// Tasks whose attempt completed.
    pub completed: Vec<TaskRecord>,
    /// Tasks whose last attempt failed: they are `failed` for good.
    pub failed: Vec<TaskRecord>,
    /// Tasks whose attempt failed and that wait for a retry (`pending` at a later run time:
    /// [`advance`](durable_sqlx::testing::TestClock::advance) the clock past it).
    pub retrying: Vec<TaskRecord>,
}

impl RunReport {
    /// How many tasks had an attempt.
    pub fn ran(&self) -> usize {
        self.completed.len() + self.failed.len() + self.retrying.len()
    }

    /// The names of the completed tasks, in id order.
    pub fn completed_names(&self) -> Vec<&str> {
        self.completed.iter().map(|r| r.name.as_str()).collect()
    }
}

/// Pause between two looks at the store while tasks run.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// How far ahead a pending task still counts as due: the database's clock (PostgreSQL) and
/// the application's may differ a little, and a task due that soon is waited for.
const SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Grace of the runtime's shutdown at the end of a run: nothing is running by then.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl TestDurable {
    /// Runs every due task of the registry's types — and the tasks they spawn, and retries
    /// that become due meanwhile — until none is due (or due within a second) and none is
    /// running, then reports what ran. Tasks whose lease expired (the store's time moved
    /// past it) are handed back first and run again. A task waiting for a retry or a delay
    /// is left waiting: move the [`clock`](Self::clock) forward and run again.
    ///
    /// # Panics
    ///
    /// When the store cannot be read, or the tasks are still not idle after the
    /// [`idle_timeout`](Self::idle_timeout) (a task that never ends, or one held by another
    /// worker's lease).
    pub async fn run_until_idle(&self) -> RunReport {
        let before: HashMap<TaskId, u32> = self
            .records()
            .await
            .into_iter()
            .map(|r| (r.id, r.attempts))
            .collect();
        let store = self.store();
        let runtime = self.start_runtime();
        let deadline = tokio::time::Instant::now() + self.idle_timeout;
        loop {
            store
                .rescue_expired()
                .await
                .unwrap_or_else(|e| panic!("handing back expired leases failed: {e}"));
            if runtime.running() == 0 && self.idle().await {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                runtime.force_shutdown();
                let counts = store.counts().await.ok();
                panic!(
                    "tasks still due or running after {:?} (counts: {counts:?}): a task that \
                     does not end, or a task held by another worker's lease (advance the \
                     clock past it)",
                    self.idle_timeout
                );
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
        runtime.shutdown(STOP_GRACE).await;
        report(&before, self.records().await)
    }

    fn start_runtime(&self) -> Runtime {
        let registry = self.registry.clone();
        let builder = match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(store) => Runtime::builder(store.clone(), registry),
            #[cfg(feature = "postgres")]
            Backend::Postgres(store) => Runtime::builder(store.clone(), registry),
        };
        builder.poll_interval(LOOK_EVERY).start()
    }

    /// Nothing `processing`, and no `pending` task of a registered type due (or due within
    /// [`SKEW`]), in one read of the rows: separate counts could see a task leave `pending`
    /// before it shows as `processing`. Due tasks of other types are left alone, as a
    /// runtime without them would.
    async fn idle(&self) -> bool {
        let soon = self.clock.now() + SKEW;
        !self.records().await.iter().any(|r| {
            r.state == TaskState::Processing
                || (r.state == TaskState::Pending
                    && r.run_at <= soon
                    && self.registry.contains(&r.name))
        })
    }
}

/// The tasks whose attempts grew since `before`, by how they stand now.
fn report(before: &HashMap<TaskId, u32>, after: Vec<TaskRecord>) -> RunReport {
    let mut report = RunReport::default();
    for record in after {
        if record.attempts <= before.get(&record.id).copied().unwrap_or(0) {
            continue;
        }
        match record.state {
            TaskState::Completed => report.completed.push(record),
            TaskState::Failed => report.failed.push(record),
            TaskState::Pending => report.retrying.push(record),
            _ => {}
        }
    }
    report
}
