//! The handlers, tested with `axum_durable::testing`: what a signup spawns, and the email it
//! sends once the task runs.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::Router;
use axum_durable::sqlite::SqliteStore;
use axum_durable::testing::TestDurable;
use axum_durable::Registry;
use tower::ServiceExt as _;

use crate::db::Db;
use crate::email::{Mailer, SendWelcomeEmail};
use crate::routes;

/// The app's database (its tables and the task store) on a temporary SQLite file, and the
/// harness over that store.
async fn harness(dir: &tempfile::TempDir) -> (Db, TestDurable) {
    let url = format!("sqlite://{}", dir.path().join("signup.db").display());
    let store = SqliteStore::connect(url).await.expect("open");
    let db = Db::Sqlite(store.clone());
    db.migrate().await.expect("migrate");
    let mailer = Mailer {
        db: db.clone(),
        delay: Duration::ZERO,
        fail_rate: 0.0,
        relay_ready_at: tokio::time::Instant::now(),
    };
    let registry = Registry::new().register::<SendWelcomeEmail>(mailer);
    let t = TestDurable::with_sqlite(store, registry)
        .await
        .expect("harness");
    (db, t)
}

async fn post_signup(app: &Router, email: &str) -> StatusCode {
    let request = Request::post("/signup")
        .header("content-type", "application/json")
        .body(Body::from(format!(r#"{{"email":"{email}"}}"#)))
        .expect("request");
    app.clone()
        .oneshot(request)
        .await
        .expect("response")
        .status()
}

#[tokio::test]
async fn a_signup_spawns_one_welcome_email_that_is_sent_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, t) = harness(&dir).await;
    let app = Router::new()
        .route("/signup", post(routes::signup))
        .with_state(db.clone())
        .layer(t.layer());

    assert_eq!(
        post_signup(&app, "ada@example.com").await,
        StatusCode::CREATED
    );
    let email = SendWelcomeEmail {
        email: "ada@example.com".into(),
    };
    t.assert_spawned(&email).await;
    assert!(!db.email_sent("ada@example.com").await.expect("read"));

    // A second signup with the same address is refused, and spawns nothing.
    assert_eq!(
        post_signup(&app, "ada@example.com").await,
        StatusCode::CONFLICT
    );
    assert_eq!(t.spawned::<SendWelcomeEmail>().await, [email]);

    let report = t.run_until_idle().await;
    assert_eq!(report.completed_names(), ["send_welcome_email"]);
    assert!(db.email_sent("ada@example.com").await.expect("read"));
}
