use durable_macros::task;

#[derive(Clone)]
struct AppState;

#[task]
fn send_welcome_email(state: AppState, user_id: i64) -> Result<(), String> {
    let _ = (state, user_id);
    Ok(())
}

fn main() {}
