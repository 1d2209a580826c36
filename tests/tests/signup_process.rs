//! Whole-system tests of `example-signup`: the real binary as a child process, on a fresh
//! SQLite file or PostgreSQL database per test, killed with SIGKILL or stopped with SIGTERM.
//!
//! Each scenario runs on both backends. The PostgreSQL variants need
//! `DURABLE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` (skipped without it,
//! except in CI where they are required).

use std::time::{Duration, Instant};

use durable_tests::{
    wait_until, Backend, Burst, BurstReport, Inspector, Request, Server, Snapshot, TestDb,
};

/// Deadline for any condition that should hold "soon" (generous: 2 cores, parallel tests).
const DEADLINE: Duration = Duration::from_secs(30);

/// The example's task type name.
const TASK_NAME: &str = "send_welcome_email";

macro_rules! on_both_backends {
    ($scenario:ident => $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $scenario(Backend::Sqlite).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $scenario(Backend::Postgres).await;
        }
    };
}

on_both_backends!(sigkill_mid_task => sqlite_sigkill_mid_task, postgres_sigkill_mid_task);
on_both_backends!(
    sigterm_during_long_tasks => sqlite_sigterm_requeues_long_tasks, postgres_sigterm_requeues_long_tasks
);
on_both_backends!(
    sigterm_drain => sqlite_sigterm_drains_short_tasks, postgres_sigterm_drains_short_tasks
);
on_both_backends!(
    sigterm_drain_running => sqlite_sigterm_drains_running_tasks, postgres_sigterm_drains_running_tasks
);
on_both_backends!(
    acknowledged_means_stored => sqlite_acknowledged_means_stored, postgres_acknowledged_means_stored
);
on_both_backends!(
    second_signal_forces_requeue => sqlite_second_signal_forces_requeue, postgres_second_signal_forces_requeue
);
on_both_backends!(
    bodies_that_are_not_objects => sqlite_bodies_that_are_not_objects, postgres_bodies_that_are_not_objects
);
on_both_backends!(
    invite_that_cannot_be_stored => sqlite_invite_that_cannot_be_stored, postgres_invite_that_cannot_be_stored
);

/// A second SIGTERM skips the rest of a long grace period: the process requeues at once and
/// exits 0, leaving every unfinished task `pending`, attempt not counted.
async fn second_signal_forces_requeue(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut server = Server::start(
        &db,
        &[("EMAIL_DELAY_MS", "30000"), ("SHUTDOWN_GRACE_MS", "60000")],
    )
    .await;
    let inspector = Inspector::connect(&db).await;
    let report = Burst::start(server.base_url(), signups(3), Duration::ZERO)
        .finish()
        .await;
    assert_eq!(report.acknowledged_count(), 3, "{report}");
    wait_until("all 3 tasks are processing", DEADLINE, async || {
        let snapshot = inspector.snapshot().await;
        if snapshot.count("processing") == 3 {
            Ok(())
        } else {
            Err(snapshot.counts())
        }
    })
    .await;
    server.sigterm();
    // The first signal starts a 60 s drain; the second must cut it short.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forced = Instant::now();
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(10)).await;
    let took = forced.elapsed();
    eprintln!("[{backend}] second SIGTERM: exited {status} {took:.2?} after it");
    assert!(status.success(), "exit status {status} (expected 0)");
    assert!(
        took < Duration::from_secs(5),
        "forced shutdown took {took:?}"
    );
    let after = inspector.snapshot().await;
    assert_eq!(after.count("processing"), 0, "rows: {:?}", after.tasks);
    for (_, task_id) in report.acknowledged() {
        let task = after.task(task_id).expect("acknowledged task row exists");
        assert_eq!(
            (task.state.as_str(), task.attempts),
            ("pending", 0),
            "{task:?}"
        );
    }
}

/// `n` requests: mostly signups, every sixth an invite (distinct addresses).
fn mixed_requests(n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| {
            if i % 6 == 5 {
                Request::invite(format!("invitee-{i}@example.com"))
            } else {
                Request::signup(format!("user-{i}@example.com"))
            }
        })
        .collect()
}

fn signups(n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| Request::signup(format!("user-{i}@example.com")))
        .collect()
}

/// Waits until no task is `pending` or `processing`, and returns the final tables.
async fn wait_all_finished(inspector: &Inspector) -> Snapshot {
    wait_until("no task is pending or processing", DEADLINE, async || {
        let snapshot = inspector.snapshot().await;
        if snapshot.unfinished() == 0 {
            Ok(snapshot)
        } else {
            Err(snapshot.counts())
        }
    })
    .await
}

/// Every acknowledged request's task exists (and, for a signup, its user), right now.
fn assert_acknowledged_stored(report: &BurstReport, snapshot: &Snapshot, when: &str) {
    for (request, task_id) in report.acknowledged() {
        let task = snapshot.task(task_id).unwrap_or_else(|| {
            panic!("{when}: acknowledged {request:?} (task {task_id}) has no durable_tasks row")
        });
        assert_eq!(
            task.name, TASK_NAME,
            "{when}: task {task_id} has the wrong type"
        );
        if request.kind == durable_tests::Kind::Signup {
            assert!(
                snapshot.has_user(&request.email),
                "{when}: acknowledged signup of {} has no users row",
                request.email
            );
        }
    }
}

/// After the work is done: every acknowledged request's email was sent exactly once, by its
/// own task for a signup; no task unfinished or failed.
fn assert_all_sent_once(report: &BurstReport, done: &Snapshot) {
    assert_eq!(
        done.unfinished(),
        0,
        "unfinished tasks: {:?}",
        done.counts()
    );
    assert_eq!(
        done.count("failed"),
        0,
        "failed tasks: {:?}",
        done.tasks
            .iter()
            .filter(|t| t.state == "failed")
            .collect::<Vec<_>>()
    );
    for (request, task_id) in report.acknowledged() {
        assert_eq!(
            done.sent_count(&request.email),
            1,
            "acknowledged {request:?} (task {task_id}) must have exactly one sent_emails row"
        );
        let task = done.task(task_id).expect("acknowledged task row exists");
        assert_eq!(task.state, "completed", "task {task_id}: {task:?}");
        if request.kind == durable_tests::Kind::Signup {
            let (_, sent_by) = done
                .sent
                .iter()
                .find(|(email, _)| *email == request.email)
                .expect("sent row exists");
            assert_eq!(
                sent_by, task_id,
                "{}'s email sent by another task",
                request.email
            );
        }
    }
    // Unacknowledged but stored work (committed, answer lost to the kill) completes too.
    for task in &done.tasks {
        assert_eq!(task.state, "completed", "every task completes: {task:?}");
    }
}

/// (a) SIGKILL while tasks run: the next process recovers them after the lease, and every
/// acknowledged email is sent exactly once.
async fn sigkill_mid_task(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut server = Server::start(&db, &[("EMAIL_DELAY_MS", "400"), ("LEASE_MS", "2000")]).await;
    let inspector = Inspector::connect(&db).await;

    // 60 requests spread over ~600 ms, each task taking 400 ms: when the first email is
    // out, later tasks are still running (and a few requests may not be sent yet).
    let burst = Burst::start(
        server.base_url(),
        mixed_requests(60),
        Duration::from_millis(10),
    );
    wait_until("the first welcome email is sent", DEADLINE, async || {
        let snapshot = inspector.snapshot().await;
        if snapshot.sent.is_empty() {
            Err(snapshot.counts())
        } else {
            Ok(())
        }
    })
    .await;
    server.sigkill();
    let killed_at = Instant::now();
    let report = burst.finish().await;
    let at_kill = inspector.snapshot().await;
    eprintln!(
        "[{backend}] SIGKILL: burst {report}; rows at kill {:?}, {} emails sent",
        at_kill.counts(),
        at_kill.sent.len()
    );
    assert!(
        report.rejected().is_empty(),
        "unexpected answers: {:?}",
        report.rejected()
    );
    assert!(
        report.acknowledged_count() > 0,
        "nothing was acknowledged before the kill"
    );
    assert!(
        at_kill.count("processing") > 0,
        "the kill should hit running tasks: {:?}",
        at_kill.counts()
    );
    assert_acknowledged_stored(&report, &at_kill, "right after SIGKILL");

    let restarted = Server::start(&db, &[("EMAIL_DELAY_MS", "100"), ("LEASE_MS", "2000")]).await;
    let done = wait_all_finished(&inspector).await;
    let since_ready = restarted.ready_at().elapsed();
    eprintln!(
        "[{backend}] SIGKILL: recovered {} unfinished tasks {:.2?} after the restart was healthy \
         ({:.2?} after the kill; restart took {:.2?}); {} tasks ran more than once (attempts > 1); \
         restart log: {} emails sent, {} re-runs found their email already sent, {} lease rescues",
        at_kill.unfinished(),
        since_ready,
        killed_at.elapsed(),
        restarted.startup_time(),
        done.rerun(),
        restarted.log_count("welcome email sent"),
        restarted.log_count("already sent; nothing to do"),
        restarted.log_count("recovered tasks whose lease expired"),
    );
    assert_all_sent_once(&report, &done);
    assert_eq!(
        done.sent.len(),
        done.tasks.len(),
        "one email per task (every address distinct)"
    );
}

/// (b) SIGTERM while tasks run longer than the grace: exit 0 within grace + margin, the
/// interrupted tasks handed back as `pending` with the attempt not counted; a restart
/// finishes them.
async fn sigterm_during_long_tasks(backend: Backend) {
    const GRACE_MS: u64 = 1000;
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let grace = GRACE_MS.to_string();
    let mut server = Server::start(
        &db,
        &[("EMAIL_DELAY_MS", "30000"), ("SHUTDOWN_GRACE_MS", &grace)],
    )
    .await;
    let inspector = Inspector::connect(&db).await;

    let report = Burst::start(server.base_url(), signups(5), Duration::ZERO)
        .finish()
        .await;
    assert_eq!(
        report.acknowledged_count(),
        5,
        "{report}: {:?}",
        report.results
    );
    wait_until("all 5 tasks are processing", DEADLINE, async || {
        let snapshot = inspector.snapshot().await;
        if snapshot.count("processing") == 5 {
            Ok(())
        } else {
            Err(snapshot.counts())
        }
    })
    .await;

    server.sigterm();
    let signalled = Instant::now();
    let limit = Duration::from_millis(GRACE_MS) + Duration::from_secs(3);
    let status = server.wait_exit(limit).await;
    let took = signalled.elapsed();
    let after = inspector.snapshot().await;
    eprintln!(
        "[{backend}] SIGTERM with 30 s tasks, grace {GRACE_MS} ms: exited {status} after {took:.2?}; \
         rows {:?}",
        after.counts()
    );
    assert!(status.success(), "exit status {status} (expected 0)");
    assert!(took < limit, "shutdown took {took:?}");
    assert_eq!(after.count("processing"), 0, "rows: {:?}", after.tasks);
    assert!(
        after.sent.is_empty(),
        "no email can be sent yet: {:?}",
        after.sent
    );
    for (request, task_id) in report.acknowledged() {
        let task = after.task(task_id).expect("acknowledged task row exists");
        assert_eq!(task.state, "pending", "{request:?} after SIGTERM: {task:?}");
        assert_eq!(
            task.attempts, 0,
            "interrupted attempt must not count: {task:?}"
        );
        assert_eq!(task.lease_owner, None, "lease must be released: {task:?}");
    }

    let restarted = Server::start(&db, &[("EMAIL_DELAY_MS", "50")]).await;
    let done = wait_all_finished(&inspector).await;
    eprintln!(
        "[{backend}] SIGTERM with 30 s tasks: restart finished them {:.2?} after it was healthy",
        restarted.ready_at().elapsed()
    );
    assert_all_sent_once(&report, &done);
    for task in &done.tasks {
        assert_eq!(
            task.attempts, 1,
            "one counted attempt after the requeue: {task:?}"
        );
    }
}

/// (c) SIGTERM right after a few signups were acknowledged (their tasks may still be being
/// claimed): they finish within the grace, nothing is requeued or left behind.
async fn sigterm_drain(backend: Backend) {
    drain(backend, false).await;
}

/// (c') Like (c), but SIGTERM only once every task is `processing` (claimed and running), so
/// this checks the drain itself, apart from the claim-in-flight window that (c) exercises.
async fn sigterm_drain_running(backend: Backend) {
    drain(backend, true).await;
}

async fn drain(backend: Backend, wait_running: bool) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut server = Server::start(
        &db,
        &[("EMAIL_DELAY_MS", "300"), ("SHUTDOWN_GRACE_MS", "5000")],
    )
    .await;
    let inspector = Inspector::connect(&db).await;

    let report = Burst::start(server.base_url(), signups(5), Duration::ZERO)
        .finish()
        .await;
    assert_eq!(
        report.acknowledged_count(),
        5,
        "{report}: {:?}",
        report.results
    );
    if wait_running {
        wait_until("all 5 tasks are processing", DEADLINE, async || {
            let snapshot = inspector.snapshot().await;
            if snapshot.count("processing") == 5 {
                Ok(())
            } else {
                Err(snapshot.counts())
            }
        })
        .await;
    }
    server.sigterm();
    let signalled = Instant::now();
    let status = server.wait_exit(Duration::from_secs(8)).await;
    let took = signalled.elapsed();
    let after = inspector.snapshot().await;
    let when = if wait_running {
        "once running"
    } else {
        "right away"
    };
    eprintln!(
        "[{backend}] SIGTERM {when} (300 ms tasks, grace 5 s): exited {status} after {took:.2?}; \
         rows {:?}",
        after.counts()
    );
    assert!(status.success(), "exit status {status} (expected 0)");
    assert!(
        took < Duration::from_secs(5),
        "draining 300 ms tasks should not use up the 5 s grace: {took:?}"
    );
    assert_eq!(
        after.count("processing"),
        0,
        "SIGTERM {when}: a graceful exit must not leave `processing` rows (leased to a dead \
         process until the lease expires): {:?}",
        after.tasks
    );
    assert_eq!(
        after.count("completed"),
        5,
        "SIGTERM {when}: every acknowledged task must be drained (completed) before exit; \
         `pending` ones were committed but never claimed by the stopping runtime: {:?}",
        after.tasks
    );
    assert_all_sent_once(&report, &after);
    for task in &after.tasks {
        assert_eq!(task.attempts, 1, "drained in its first attempt: {task:?}");
    }
    assert_eq!(
        server.log_count("will be requeued"),
        0,
        "nothing should be requeued when draining within the grace"
    );
}

/// (d) SIGKILL in the middle of a burst: every 201/202 that reached the client is stored
/// (task row, user row), and completes after a restart.
async fn acknowledged_means_stored(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut server = Server::start(&db, &[("EMAIL_DELAY_MS", "200"), ("LEASE_MS", "2000")]).await;
    let inspector = Inspector::connect(&db).await;

    let burst = Burst::start(
        server.base_url(),
        mixed_requests(40),
        Duration::from_millis(5),
    );
    wait_until("5 requests are acknowledged", DEADLINE, async || {
        let acknowledged = burst.acknowledged_so_far();
        if acknowledged >= 5 {
            Ok(())
        } else {
            Err(acknowledged)
        }
    })
    .await;
    server.sigkill();
    let report = burst.finish().await;
    let at_kill = inspector.snapshot().await;
    let stored_unacknowledged = at_kill
        .tasks
        .len()
        .saturating_sub(report.acknowledged_count());
    eprintln!(
        "[{backend}] SIGKILL mid-burst: {report}; {} task rows stored ({stored_unacknowledged} of \
         them never acknowledged), rows {:?}",
        at_kill.tasks.len(),
        at_kill.counts()
    );
    assert!(
        report.rejected().is_empty(),
        "unexpected answers: {:?}",
        report.rejected()
    );
    assert_acknowledged_stored(&report, &at_kill, "right after SIGKILL");

    let _restarted = Server::start(&db, &[("EMAIL_DELAY_MS", "50"), ("LEASE_MS", "2000")]).await;
    let done = wait_all_finished(&inspector).await;
    assert_all_sent_once(&report, &done);
}

/// JSON bodies that are not objects. A derived `Deserialize` of a struct also accepts an array
/// of its fields in order, so `["a@example.test"]` must be refused explicitly.
const NOT_OBJECTS: &[&str] = &[
    r#"["a@example.test"]"#,
    r#"["a@example.test", "extra"]"#,
    "[]",
    r#""a@example.test""#,
    "42",
    "true",
    "null",
];

/// (e) A body that is not a JSON object is refused by both endpoints with 400 or 422 and a
/// JSON problem, and stores nothing.
async fn bodies_that_are_not_objects(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let server = Server::start(&db, &[]).await;
    let inspector = Inspector::connect(&db).await;
    let client = durable_tests::http::client();

    let mut wrong = Vec::new();
    for path in ["/signup", "/invite"] {
        for body in NOT_OBJECTS {
            let response = client
                .post(server.url(path))
                .header("content-type", "application/json")
                .body(*body)
                .send()
                .await
                .expect("the server answers");
            let status = response.status().as_u16();
            let text = response.text().await.expect("response body");
            let problem = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
            if !matches!(status, 400 | 422) || problem.is_none() {
                wrong.push(format!("POST {path} {body} -> {status} {text}"));
            }
        }
    }
    let after = inspector.snapshot().await;
    assert!(
        wrong.is_empty(),
        "bodies that are not JSON objects must get 400/422 with a JSON problem:\n{}\nstored: \
         {} task rows, users {:?}",
        wrong.join("\n"),
        after.tasks.len(),
        after.users
    );
    assert!(
        after.tasks.is_empty() && after.users.is_empty(),
        "refused requests stored something: {:?}, users {:?}",
        after.tasks,
        after.users
    );

    // An object is still accepted (the fix refuses only what is not one).
    let report = Burst::start(
        server.base_url(),
        vec![
            Request::signup("object@example.test"),
            Request::invite("invitee@example.test"),
        ],
        Duration::ZERO,
    )
    .finish()
    .await;
    assert_eq!(
        report.acknowledged_count(),
        2,
        "{report}: {:?}",
        report.results
    );
}

/// (f) An invite whose task cannot be prepared (its payload over the store's limit) is the
/// client's problem: 422 with a JSON problem naming the limit, without internals, and nothing
/// stored.
async fn invite_that_cannot_be_stored(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let server = Server::start(&db, &[]).await;
    let inspector = Inspector::connect(&db).await;
    let client = durable_tests::http::client();

    let huge = format!("{}@example.test", "x".repeat(300 * 1024));
    let response = client
        .post(server.url("/invite"))
        .json(&serde_json::json!({ "email": huge }))
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let problem = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    assert_eq!(status, 422, "oversized invite: {text}");
    let problem = problem.unwrap_or_else(|| panic!("not a JSON problem: {text}"));
    assert!(
        problem.contains("over the limit of 262144 bytes"),
        "the problem must name the limit: {problem}"
    );
    for internal in [TASK_NAME, "payload of task", "durable", "sqlx"] {
        assert!(
            !problem.contains(internal),
            "the problem shows internals ({internal}): {problem}"
        );
    }
    let after = inspector.snapshot().await;
    assert!(after.tasks.is_empty(), "stored: {:?}", after.tasks);
}

on_both_backends!(
    task_state_waits_for_the_email => sqlite_task_state_waits_for_the_email, postgres_task_state_waits_for_the_email
);

/// `GET /tasks/{id}` waits for the welcome email's task to finish, then reports it completed;
/// an unknown id is a 404.
async fn task_state_waits_for_the_email(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let server = Server::start(&db, &[("EMAIL_DELAY_MS", "700")]).await;
    let client = durable_tests::http::client();
    let answer: serde_json::Value = client
        .post(server.url("/signup"))
        .json(&serde_json::json!({ "email": "grace@example.com" }))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer");
    let task_id = answer["task_id"].as_str().expect("a task id").to_owned();
    let asked = Instant::now();
    let state: serde_json::Value = client
        .get(server.url(&format!("/tasks/{task_id}")))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer");
    assert_eq!(state["state"], "completed", "{state}");
    assert_eq!(state["task_id"], task_id.as_str());
    assert!(
        asked.elapsed() >= Duration::from_millis(300),
        "answered before the email could be sent: {:?}",
        asked.elapsed()
    );
    let unknown = client
        .get(server.url("/tasks/01a24759-a732-718c-9b9d-37fd5e8c52d9"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(unknown.status().as_u16(), 404);
}
