//! The task types of both releases. `work` exists in both: version 2's payload has one more
//! field, with a default, so each release decodes what the other stored. `audit` is new in
//! version 2: instances of version 1 do not claim it (it waits `pending` for a version 2
//! instance).

use std::time::Duration;

use axum_durable::{Backoff, Task, TaskContext, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

use crate::config::Version;
use crate::db::{Completion, Db};

/// What every task needs at run time.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) db: Db,
    pub(crate) version: Version,
}

/// Retries are the library's business, not the test's: a failed attempt would show in
/// `attempts` and `last_error`, which the rollout test requires to stay clean.
fn options() -> TaskOptions {
    TaskOptions::default()
        .max_attempts(25)
        .backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_secs(2),
        ))
        .timeout(Duration::from_secs(120))
}

/// Runs for `ms` (shutdown interrupts it: the attempt is handed back, not failed), then
/// records its completion.
async fn run(cx: &TaskContext<Worker>, ms: u64, done: Completion<'_>) -> Result<(), TaskError> {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => {}
        () = cx.cancelled() => return Err(TaskError::retryable("interrupted by shutdown")),
    }
    cx.state().db.record(&done).await?;
    tracing::debug!(task_id = %cx.id(), kind = done.kind, seq = done.seq, "task completed");
    Ok(())
}

/// Version 1's `work`.
pub(crate) mod v1 {
    use super::{options, run, Completion, Deserialize, Serialize, Task, TaskContext, TaskError};
    use super::{TaskOptions, Worker};

    /// A unit of work: request `seq`, running for `ms`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct Work {
        pub(crate) seq: i64,
        pub(crate) ms: u64,
    }

    impl Task for Work {
        const NAME: &'static str = "work";
        type State = Worker;

        async fn run(self, cx: TaskContext<Worker>) -> Result<(), TaskError> {
            let version = cx.state().version;
            let done = Completion {
                task_id: cx.id(),
                kind: Self::NAME,
                seq: self.seq,
                version,
                tag: None,
            };
            run(&cx, self.ms, done).await
        }

        fn options() -> TaskOptions {
            options()
        }
    }
}

/// Version 2's `work` and its new `audit`.
pub(crate) mod v2 {
    use super::{options, run, Completion, Deserialize, Serialize, Task, TaskContext, TaskError};
    use super::{TaskOptions, Worker};

    /// Version 1's `work` plus a `tag`. `#[serde(default)]`: payloads stored by version 1
    /// (without it) decode. And no `deny_unknown_fields`, on either version: version 1
    /// decodes this one's payloads by ignoring `tag`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct Work {
        pub(crate) seq: i64,
        pub(crate) ms: u64,
        #[serde(default)]
        pub(crate) tag: Option<String>,
    }

    impl Task for Work {
        const NAME: &'static str = "work";
        type State = Worker;

        async fn run(self, cx: TaskContext<Worker>) -> Result<(), TaskError> {
            let version = cx.state().version;
            let done = Completion {
                task_id: cx.id(),
                kind: Self::NAME,
                seq: self.seq,
                version,
                tag: self.tag.as_deref(),
            };
            run(&cx, self.ms, done).await
        }

        fn options() -> TaskOptions {
            options()
        }
    }

    /// New in version 2: an audit of request `seq`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct Audit {
        pub(crate) seq: i64,
    }

    impl Task for Audit {
        const NAME: &'static str = "audit";
        type State = Worker;

        async fn run(self, cx: TaskContext<Worker>) -> Result<(), TaskError> {
            let version = cx.state().version;
            let done = Completion {
                task_id: cx.id(),
                kind: Self::NAME,
                seq: self.seq,
                version,
                tag: None,
            };
            run(&cx, 50, done).await
        }

        fn options() -> TaskOptions {
            options()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{v1, v2};

    #[test]
    fn each_release_decodes_the_others_work() {
        let newer = v2::Work {
            seq: 7,
            ms: 10,
            tag: Some("v2".into()),
        };
        let stored = serde_json::to_string(&newer).expect("encode");
        let read: v1::Work = serde_json::from_str(&stored).expect("version 1 ignores `tag`");
        assert_eq!(read, v1::Work { seq: 7, ms: 10 });

        let older = serde_json::to_string(&v1::Work { seq: 8, ms: 20 }).expect("encode");
        let read: v2::Work = serde_json::from_str(&older).expect("version 2 defaults `tag`");
        assert_eq!(
            read,
            v2::Work {
                seq: 8,
                ms: 20,
                tag: None
            }
        );
    }
}
