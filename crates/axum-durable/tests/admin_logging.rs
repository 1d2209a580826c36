//! Every action is logged under `durable::admin`: who, what, which task, the outcome.
//!
//! A test binary of its own: a subscriber set for one thread misses events whose call
//! sites other tests' threads meet at the same time, so nothing else may run beside it.

// The harness of the admin tests; this test uses part of it.
#[allow(dead_code)]
#[path = "admin/support.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum_durable::TaskState;

use crate::support::Harness;

/// The log lines written while it is the thread's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn actions_and_refusals_are_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("durable::admin=info")
        .finish();
    // The runtime runs on this thread only, so the subscriber sees every request.
    let _guard = tracing::subscriber::set_default(subscriber);

    let t = axum_durable::testing::TestDurable::new(support::registry())
        .await
        .expect("harness");
    let h = Harness::new(t);
    let id = h.enqueue().await;
    let path = format!("/admin/tasks/{id}/cancel");
    let viewer = h.login("viewer", "viewer-pw").await;
    let fields = |csrf: &str| {
        [
            ("csrf", csrf.to_owned()),
            ("state", "pending".into()),
            ("attempts", "0".into()),
        ]
    };
    let as_refs = |f: &[(&'static str, String); 3]| {
        f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let send = |cookies: String, f: Vec<(&'static str, String)>| {
        let h = &h;
        let path = path.clone();
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.post_form(&path, &cookies, &f, &[]).await
        }
    };
    send(viewer.cookies.clone(), as_refs(&fields(&viewer.csrf))).await;
    let operator = h.login("oncall", "oncall-pw").await;
    send(operator.cookies.clone(), as_refs(&fields(&operator.csrf))).await;
    assert_eq!(h.state(id).await, Some(TaskState::Cancelled));

    // A user name is the one thing an anonymous client writes into the log: it must not
    // start a line of its own (a forged entry).
    let page = h.get("/admin/login", "").await;
    let csrf = page.cookie("durable_admin_csrf").expect("csrf cookie");
    let forged = "mallory\nFORGED durable::admin: admin action principal=oncall";
    h.post_form(
        "/admin/login",
        &format!("durable_admin_csrf={csrf}"),
        &[("csrf", &csrf), ("username", forged), ("password", "guess")],
        &[],
    )
    .await;

    let log = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8");
    assert!(log.contains("admin login refused"), "{log}");
    assert!(
        !log.lines().any(|line| line.starts_with("FORGED")),
        "a user name wrote a line of its own:\n{log}"
    );
    let refused = log
        .lines()
        .find(|line| line.contains("read-only"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(
        refused.contains("durable::admin") && refused.contains("principal=viewer"),
        "{refused}"
    );
    let done = log
        .lines()
        .find(|line| line.contains("admin action") && line.contains("principal=oncall"))
        .unwrap_or_else(|| panic!("no action logged:\n{log}"));
    for part in [
        "action=\"cancel\"",
        &format!("task_id={id}"),
        "outcome=\"done\"",
    ] {
        assert!(done.contains(part), "{part} missing: {done}");
    }
}
