//! The registry: task names mapped to the code and state that run them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::context::TaskContext;
use crate::error::TaskError;
use crate::task::{Task, TaskOptions};

pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>;

/// What the runtime needs to start one attempt, built from a stored row.
pub(crate) struct Attempt {
    pub(crate) id: crate::ids::TaskId,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) cancel: tokio_util::sync::CancellationToken,
    pub(crate) stop: tokio_util::sync::CancellationToken,
    pub(crate) requested: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) client: crate::client::Client,
    pub(crate) scope: Arc<crate::steps::AttemptScope>,
}

trait ErasedTask: Send + Sync {
    fn options(&self) -> &TaskOptions;
    fn start(&self, payload: &str, attempt: Attempt) -> Result<TaskFuture, serde_json::Error>;
}

struct Registered<T: Task> {
    state: T::State,
    options: TaskOptions,
}

impl<T: Task> ErasedTask for Registered<T> {
    fn options(&self) -> &TaskOptions {
        &self.options
    }

    fn start(&self, payload: &str, attempt: Attempt) -> Result<TaskFuture, serde_json::Error> {
        let task: T = serde_json::from_str(payload)?;
        let cx = TaskContext {
            state: self.state.clone(),
            id: attempt.id,
            name: T::NAME,
            attempt: attempt.attempt,
            max_attempts: attempt.max_attempts,
            cancel: attempt.cancel,
            stop: attempt.stop,
            requested: attempt.requested,
            client: attempt.client,
            scope: attempt.scope,
        };
        Ok(Box::pin(task.run(cx)))
    }
}

/// Maps stable task names to their code and state. Built once at startup, then shared by
/// the runtime.
///
/// # Examples
///
/// ```
/// # use durable_core::{Registry, Task, TaskContext, TaskError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Ping;
/// # impl Task for Ping {
/// #     const NAME: &'static str = "ping";
/// #     type State = ();
/// #     async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> { Ok(()) }
/// # }
/// let registry = Registry::new().register::<Ping>(());
/// assert!(registry.contains("ping"));
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    tasks: HashMap<&'static str, Arc<dyn ErasedTask>>,
    /// Periodic schedules ([`Registry::periodic`]), in the order added.
    pub(crate) periodic: Vec<Arc<crate::periodic::Periodic>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers task type `T` with the state its runs receive.
    ///
    /// # Panics
    ///
    /// If another type was already registered under `T::NAME` — in this registry or
    /// anywhere in the process, or used it at enqueue: two types sharing a stored name would
    /// decode each other's rows. Task names are global to the application.
    #[must_use]
    pub fn register<T: Task>(mut self, state: T::State) -> Self {
        self.insert::<T>(state);
        self
    }

    /// Like [`register`](Self::register), through a mutable reference.
    ///
    /// # Panics
    ///
    /// If another type was already registered under `T::NAME`, here or elsewhere in the
    /// process.
    pub fn insert<T: Task>(&mut self, state: T::State) -> &mut Self {
        if let Err(error) = crate::names::claim::<T>(T::NAME) {
            panic!("{error}");
        }
        let entry = Registered::<T> {
            state,
            options: T::options(),
        };
        let previous = self.tasks.insert(T::NAME, Arc::new(entry));
        assert!(
            previous.is_none(),
            "task name `{}` registered twice (by `{}`): task names must be unique",
            T::NAME,
            std::any::type_name::<T>()
        );
        self
    }

    /// Whether a task type is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.tasks.keys().copied().collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn options(&self, name: &str) -> Option<&TaskOptions> {
        self.tasks.get(name).map(|t| t.options())
    }

    pub(crate) fn start(
        &self,
        name: &str,
        payload: &str,
        attempt: Attempt,
    ) -> Option<Result<TaskFuture, serde_json::Error>> {
        self.tasks.get(name).map(|t| t.start(payload, attempt))
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("tasks", &self.names())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct A;
    impl Task for A {
        const NAME: &'static str = "same";
        type State = ();
        async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
            Ok(())
        }
    }

    #[derive(Serialize, Deserialize)]
    struct B;
    impl Task for B {
        const NAME: &'static str = "same";
        type State = ();
        async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
            Ok(())
        }
    }

    #[test]
    #[should_panic(expected = "task name `same` is used by two types")]
    fn duplicate_names_are_refused() {
        let _ = Registry::new().register::<A>(()).register::<B>(());
    }

    #[test]
    fn names_are_listed_sorted() {
        let registry = Registry::new().register::<A>(());
        assert_eq!(registry.names(), ["same"]);
        assert!(registry.contains("same") && !registry.contains("other"));
        assert_eq!(registry.options("same").map(|o| o.max_attempts), Some(20));
    }
}
