use durable_macros::task;

#[derive(Clone)]
struct AppState;

#[task]
async fn send_welcome_email(state: AppState, email: &str, ids: &[i64]) {
    let _ = (state, email, ids);
}

#[task]
async fn nested(state: AppState, names: Vec<&'static str>, borrowed: std::borrow::Cow<'_, str>) {
    let _ = (state, names, borrowed);
}

fn main() {}
