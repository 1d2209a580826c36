use durable_macros::task;

#[derive(Clone)]
struct AppState;

#[task]
async fn tuple_pattern(state: AppState, (a, b): (i64, i64)) {
    let _ = (state, a, b);
}

#[task]
async fn wildcard(state: AppState, _: i64) {
    let _ = state;
}

#[task]
async fn serde_on_state(#[serde(default)] state: AppState) {
    let _ = state;
}

fn main() {}
