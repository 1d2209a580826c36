use durable_macros::task;

#[derive(Clone)]
struct AppState;

#[task(retries = 3)]
async fn unknown_key(_state: AppState) {}

#[task(name = "a", name = "b")]
async fn duplicate_key(_state: AppState) {}

#[task(max_attempts = 0)]
async fn zero_attempts(_state: AppState) {}

#[task(timeout = 30)]
async fn timeout_without_unit(_state: AppState) {}

#[task(timeout = "30 fortnights")]
async fn timeout_bad_unit(_state: AppState) {}

#[task(priority = 40000)]
async fn priority_too_large(_state: AppState) {}

#[task(name = "")]
async fn empty_name(_state: AppState) {}

fn main() {}
