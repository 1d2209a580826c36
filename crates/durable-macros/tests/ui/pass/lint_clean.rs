//! The generated items pass strict lints in the user's crate.
#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused_qualifications,
    unused_results,
    trivial_casts,
    single_use_lifetimes,
    elided_lifetimes_in_paths,
    unused_lifetimes,
    variant_size_differences
)]

/// Public tasks in a public module.
pub mod tasks {
    use durable_core::{TaskContext, TaskError};
    use durable_macros::task;

    /// The state.
    #[derive(Clone, Debug, Default)]
    pub struct AppState;

    /// A public task.
    #[task]
    pub async fn send_welcome_email(
        state: AppState,
        user_id: i64,
        email: String,
    ) -> Result<(), TaskError> {
        let _ = (state, user_id, email);
        Ok(())
    }

    /// A crate-visible task.
    #[task]
    pub(crate) async fn internal(cx: TaskContext<AppState>) {
        let _ = cx.id();
    }

    /// A private task.
    #[task]
    async fn private(_state: &AppState, _unused: u8) {}

    /// Uses the private task.
    pub fn register(registry: durable_core::Registry) -> durable_core::Registry {
        registry
            .register::<private>(AppState)
            .register::<internal>(AppState)
    }

    /// Builds the private task.
    pub fn build_private() -> impl durable_core::Task<State = AppState> {
        private::task(1)
    }
}

fn main() {
    let registry = tasks::register(durable_core::Registry::new())
        .register::<tasks::send_welcome_email>(tasks::AppState);
    assert_eq!(registry.names().len(), 3);
    let task = tasks::send_welcome_email::task(1, String::new());
    assert_eq!(task.user_id, 1);
    let _task = tasks::build_private();
    let _task = tasks::internal::task();
}
