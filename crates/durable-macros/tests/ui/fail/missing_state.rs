use durable_macros::task;

#[task]
async fn no_parameters() {}

#[task]
async fn argument_first(user_id: i64, email: String) {
    let _ = (user_id, email);
}

#[task]
async fn unnamed_context(cx: durable_core::TaskContext) {
    let _ = cx;
}

fn main() {}
