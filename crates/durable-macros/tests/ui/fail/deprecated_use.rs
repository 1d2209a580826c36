//! A deprecated task warns where it is used, not where it is defined.
#![deny(deprecated)]

use durable_core::Registry;
use durable_macros::task;

#[derive(Clone)]
struct AppState;

#[task]
#[deprecated(note = "use `send_welcome_email_v2`")]
async fn send_welcome_email(_state: AppState, user_id: i64) {
    let _ = user_id;
}

fn main() {
    let _task = send_welcome_email::task(1);
    let _registry = Registry::new().register::<send_welcome_email>(AppState);
}
