use std::rc::Rc;

use durable_macros::task;

#[derive(Clone)]
struct AppState;

async fn yield_now() {}

#[task]
async fn holds_rc_across_await(state: AppState, user_id: i64) {
    let local = Rc::new(user_id);
    yield_now().await;
    let _ = (state, local);
}

#[task]
async fn rc_state(state: Rc<String>, user_id: i64) {
    let _ = (state, user_id);
}

fn main() {}
