use durable_macros::task;

#[derive(Clone)]
struct AppState;

struct Connection;

#[task]
async fn send_welcome_email(state: AppState, user_id: i64, conn: Connection) {
    let _ = (state, user_id, conn);
}

fn main() {}
