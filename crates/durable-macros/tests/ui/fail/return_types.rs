use durable_macros::task;

#[derive(Clone)]
struct AppState;

#[task]
async fn returns_value(state: AppState) -> Result<u32, String> {
    let _ = state;
    Ok(1)
}

#[task]
async fn returns_number(state: AppState) -> u32 {
    let _ = state;
    1
}

fn main() {}
