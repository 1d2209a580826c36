use durable_macros::task;

#[derive(Clone)]
struct AppState;

#[derive(Debug)]
struct NotDisplay;

#[task]
async fn send_welcome_email(state: AppState, user_id: i64) -> Result<(), NotDisplay> {
    let _ = (state, user_id);
    Err(NotDisplay)
}

fn main() {}
