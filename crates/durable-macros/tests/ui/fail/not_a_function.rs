use durable_macros::task;

#[task]
struct SendWelcomeEmail {
    user_id: i64,
}

fn main() {}
