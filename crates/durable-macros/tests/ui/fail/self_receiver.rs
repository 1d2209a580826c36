use durable_macros::task;

#[derive(Clone)]
struct Mailer;

impl Mailer {
    #[task]
    async fn send_welcome_email(&self, user_id: i64) {
        let _ = user_id;
    }
}

fn main() {}
