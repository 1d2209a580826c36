//! Attribute arguments, `#[serde]` on parameters, the crate override and `Debug`.

use std::time::Duration;

use durable_core::{Task, TaskOptions};
use durable_macros::task;

#[derive(Clone)]
struct AppState;

/// A serde type that is not `Debug`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Opaque {
    secret: String,
}

#[task(
    name = "billing.charge",
    max_attempts = 5,
    timeout = "1m30s",
    queue = "billing",
    priority = -7
)]
async fn charge(_state: AppState, cents: u64, card: Opaque) {
    let _ = (cents, card.secret);
}

#[task(timeout = "none", priority = 32767, crate = "::durable_core")]
async fn no_timeout(_state: AppState) {}

#[task(crate = durable_core)]
async fn bare_crate_path(_state: AppState) {}

#[task]
async fn evolving(
    _state: AppState,
    user_id: i64,
    #[serde(default)] locale: String,
    #[serde(rename = "mail")] email: String,
) {
    let _ = (user_id, locale, email);
}

fn main() {
    assert_eq!(<charge as Task>::NAME, "billing.charge");
    assert_eq!(charge::NAME, "billing.charge");
    let expected = TaskOptions::default()
        .max_attempts(5)
        .timeout(Duration::from_secs(90))
        .queue("billing")
        .priority(-7);
    assert_eq!(charge::options(), expected);

    let options = no_timeout::options();
    assert_eq!(options.timeout, None);
    assert_eq!(options.priority, i16::MAX);
    assert_eq!(bare_crate_path::options(), TaskOptions::default());

    // Fields that are not `Debug` print as `..`.
    let task = charge::task(
        250,
        Opaque {
            secret: "4242".to_owned(),
        },
    );
    assert_eq!(format!("{task:?}"), "charge { cents: 250, card: .. }");

    // `#[serde(default)]`: rows stored before `locale` existed still decode.
    let old: evolving =
        serde_json::from_str(r#"{"user_id":1,"mail":"a@b.c"}"#).expect("old row decodes");
    assert_eq!(old.locale, "");
    assert_eq!(old.email, "a@b.c");
    let json = serde_json::to_string(&evolving::task(2, "fr".to_owned(), "x@y.z".to_owned()))
        .expect("json");
    assert_eq!(json, r#"{"user_id":2,"locale":"fr","mail":"x@y.z"}"#);
}
