//! Every accepted form of the first parameter and of the return type.

use durable_core::{Registry, Task, TaskContext, TaskError};
use durable_macros::task;

#[derive(Clone, Default)]
struct AppState {
    greeting: String,
}

#[derive(Debug)]
struct MyErr;

impl std::fmt::Display for MyErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

#[task]
async fn by_value(state: AppState, user_id: i64, email: String) -> Result<(), MyErr> {
    let _ = (state.greeting, user_id, email);
    Ok(())
}

#[task]
async fn by_ref(state: &AppState, mut count: u32) {
    count += 1;
    let _ = (&state.greeting, count);
}

#[task]
async fn context(cx: TaskContext<AppState>, r#type: String) -> Result<(), TaskError> {
    let _ = (cx.id(), cx.attempt(), cx.state(), r#type);
    Ok(())
}

#[task]
async fn context_ref(cx: &durable_core::TaskContext<AppState>) -> () {
    let _ = cx.is_last_attempt();
}

#[task]
async fn no_state(_: (), n: u8) -> std::io::Result<()> {
    let _ = n;
    Ok(())
}

#[task]
async fn boxed_error(_state: AppState) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("boom".into())
}

#[task]
async fn string_error(_state: AppState, unit: ()) -> Result<(), String> {
    let () = unit;
    Err("boom".to_owned())
}

type TaskResult = Result<(), MyErr>;

#[task]
async fn aliased(_state: AppState, items: Vec<(String, Option<u64>)>) -> TaskResult {
    let _ = items;
    Ok(())
}

/// Accepts any task of the given state, like `Durable::spawn` does.
fn spawn<T: Task<State = AppState>>(task: T) -> &'static str {
    let _ = serde_json::to_string(&task).expect("serializable");
    T::NAME
}

fn main() {
    let _registry = Registry::new()
        .register::<by_value>(AppState::default())
        .register::<by_ref>(AppState::default())
        .register::<context>(AppState::default())
        .register::<context_ref>(AppState::default())
        .register::<no_state>(())
        .register::<boxed_error>(AppState::default())
        .register::<string_error>(AppState::default())
        .register::<aliased>(AppState::default());

    assert_eq!(spawn(by_value::task(1, "a@b.c".to_owned())), "by_value");
    assert_eq!(spawn(by_ref::task(2)), "by_ref");
    assert_eq!(spawn(context::task("t".to_owned())), "context");
    assert_eq!(spawn(context_ref::task()), "context_ref");
    assert_eq!(spawn(boxed_error::task()), "boxed_error");
    assert_eq!(spawn(string_error::task(())), "string_error");
    assert_eq!(
        spawn(aliased::task(vec![("x".to_owned(), None)])),
        "aliased"
    );
    assert_eq!(<no_state as Task>::NAME, "no_state");

    // A raw identifier keeps its plain name in JSON.
    let json = serde_json::to_string(&context::task("t".to_owned())).expect("json");
    assert_eq!(json, r#"{"type":"t"}"#);

    // The functions are still ordinary functions.
    let _future = by_value(AppState::default(), 1, String::new());
    let state = AppState::default();
    let _future = by_ref(&state, 1);
}
