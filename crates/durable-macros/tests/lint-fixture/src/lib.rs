//! Fixture of the `disallowed-methods` recipe of durable-macros (`tests/lint_recipe.rs`).
//!
//! With the `raw-spawn` feature it contains raw spawns the recipe must reject; without it,
//! only an audited spawn under `#[expect]`, which must pass.

/// Request-path code written the old way: `cargo clippy` must reject it.
#[cfg(feature = "raw-spawn")]
pub fn send_welcome_email_raw(user_id: i64) {
    drop(tokio::spawn(async move {
        let _ = user_id;
    }));
}

/// The same function through its definition path: also rejected.
#[cfg(feature = "raw-spawn")]
pub fn through_the_task_module() {
    drop(tokio::task::spawn(async {}));
}

/// Through a runtime handle: rejected by the second entry.
#[cfg(feature = "raw-spawn")]
pub fn through_a_handle(handle: &tokio::runtime::Handle) {
    drop(handle.spawn(async {}));
}

/// An audited exception: a process-wide loop started once at boot, not request work.
#[expect(
    clippy::disallowed_methods,
    reason = "boot-time loop owned by main, aborted on shutdown"
)]
pub fn start_metrics_loop() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {})
}
