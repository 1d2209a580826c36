//! An application that depends on `axum-durable` and has `durable-core` and `serde` as
//! dev-dependencies only: the library (built without them) must compile.

use axum_durable::{task, Registry};

/// The application state.
#[derive(Clone, Debug)]
pub struct AppState;

/// Sends the welcome email.
#[task(max_attempts = 3)]
pub async fn send_welcome_email(state: AppState, user_id: i64, email: String) {
    let _ = (state, user_id, email);
}

/// The registry with every task of the application.
pub fn registry() -> Registry {
    Registry::new().register::<send_welcome_email>(AppState)
}

#[cfg(test)]
mod tests {
    use durable_core::Task;

    /// In a test build the dev-dependencies are there too; the same items are used.
    #[test]
    fn the_task_is_a_task() {
        assert_eq!(
            <super::send_welcome_email as Task>::NAME,
            "send_welcome_email"
        );
        let json = serde_json::to_string(&super::send_welcome_email::task(1, "a@b.c".into()))
            .expect("serialize");
        assert_eq!(json, r#"{"user_id":1,"email":"a@b.c"}"#);
    }
}
