use durable_macros::task;

#[derive(Clone)]
struct AppState;

#[task]
async fn generic_arg<T: serde::Serialize>(state: AppState, value: T) {
    let _ = (state, value);
}

#[task]
async fn with_lifetime<'a>(state: &'a AppState, user_id: i64) {
    let _ = (state, user_id);
}

#[task]
async fn impl_trait_arg(state: AppState, value: impl serde::Serialize) {
    let _ = (state, value);
}

fn main() {}
