//! The rolling-deploy test: two releases of one service (`example-rollout`, chosen by
//! `SERVICE_VERSION`) on one database under steady traffic. Two instances are rolled forward
//! one by one (start a new instance, take the old one out of rotation, SIGTERM it, SIGKILL
//! it a fixed time later if still running, like an orchestrator), rolled back the same way,
//! and rolled forward again; each instance being stopped holds a long-lived streaming
//! connection (one that ends on `Runtime::stopping`, or one that ignores it).
//!
//! Checks: every acknowledged task ends `completed`, and no task had a failed attempt (none
//! failed because of its type, its payload or a migration); every instance started; every
//! shutdown exited 0 inside its grace, before the SIGKILL; no task waited out a lease because
//! of a shutdown. The figures (shutdown times, tasks requeued, longest waits) are printed.
//!
//! Both backends; the PostgreSQL variant needs
//! `DURABLE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` (skipped without it,
//! except in CI where it is required).

use std::time::{Duration, Instant};

use durable_tests::chaos::load::Targets;
use durable_tests::rollout::tables::{self, Tables};
use durable_tests::rollout::{HeldStream, Traffic, TrafficReport, TrafficSpec};
use durable_tests::{wait_until, Backend, Inspector, Program, Server, Termination, TestDb};

/// Each instance's shutdown budget (`SHUTDOWN_GRACE_MS`).
const GRACE: Duration = Duration::from_secs(3);
/// The orchestrator's SIGKILL comes this long after its SIGTERM.
const KILL_AFTER: Duration = Duration::from_secs(5);
/// From the end of `serve` to the process's exit: logging, dropping the pools.
const EXIT_MARGIN: Duration = Duration::from_millis(500);
/// A lease far longer than anything a clean rollout waits: a task left to wait out a lease
/// after a shutdown would stand out in the waits, and make the final drain time out.
const LEASE: Duration = Duration::from_secs(30);
/// Once the traffic stops, the last instances finish every task within this (less than a
/// lease).
const FINAL_DRAIN: Duration = Duration::from_secs(25);
/// Most requests' `work` runs this long.
const TASK_MS: u64 = 150;
/// Every `LONG_EVERY`-th request's `work` runs `LONG_MS`, longer than the grace, so
/// shutdowns find tasks they must hand back. Odd, so the round robin over two instances
/// spreads them.
const LONG_EVERY: usize = 7;
const LONG_MS: u64 = 4000;
/// Every `DELAY_EVERY`-th request's tasks are due `DELAY_MS` later, and are claimed by
/// whichever instance is up then: across releases, and, for `audit`, not before an instance
/// of release 2 is back.
const DELAY_EVERY: usize = 5;
const DELAY_MS: u64 = 2500;
/// Requests per second.
const RATE: f64 = 25.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rolling_deploy_forward_back_forward() {
    rollout(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rolling_deploy_forward_back_forward() {
    rollout(Backend::Postgres).await;
}

/// The stream a client holds on the instance being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Ends when `Runtime::stopping` fires.
    EndsOnStopping,
    /// Ignores it (`?ignore_stop=true`): the HTTP drain deadline must cut it.
    IgnoresStopping,
}

/// One stop of an instance.
#[derive(Debug)]
struct Stop {
    phase: &'static str,
    instance: String,
    version: &'static str,
    /// How the orchestrator's stop ended (exit status, time from SIGTERM, SIGKILL or not).
    ended: Termination,
    /// Tasks the instance handed back, as it logged.
    requeued: u64,
    held: Held,
    /// From SIGTERM to the end of the held stream.
    stream_end: Duration,
    stream_clean: bool,
    /// The instance logged that the HTTP drain deadline cut requests.
    drain_cut: bool,
    /// How long its replacement took to become healthy.
    replacement_startup: Option<Duration>,
}

async fn start(db: &TestDb, version: &'static str) -> Server {
    let grace = GRACE.as_millis().to_string();
    let lease = LEASE.as_millis().to_string();
    let task = TASK_MS.to_string();
    Server::start_program(
        db,
        &Program::rollout(),
        &[
            ("SERVICE_VERSION", version),
            ("SHUTDOWN_GRACE_MS", &grace),
            ("LEASE_MS", &lease),
            ("TASK_MS", &task),
            ("RUST_LOG", "info,durable_core=debug"),
        ],
    )
    .await
}

/// The number after `field=` in the last log line containing `message`.
fn logged(server: &Server, message: &str, field: &str) -> Option<u64> {
    let text = server.log_text();
    let line = text.lines().rev().find(|l| l.contains(message))?;
    let start = line.find(&format!("{field}="))? + field.len() + 1;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Opens a stream on `server`, stops it like an orchestrator (SIGTERM, SIGKILL after
/// [`KILL_AFTER`]), and notes how the stop and the stream went.
async fn stop(server: &mut Server, phase: &'static str, version: &'static str, held: Held) -> Stop {
    let stream = HeldStream::open(server.base_url(), held == Held::IgnoresStopping).await;
    let signalled = Instant::now();
    let ended = server.terminate(KILL_AFTER).await;
    let end = stream.ended(KILL_AFTER).await;
    Stop {
        phase,
        instance: server.name().to_owned(),
        version,
        ended,
        requeued: logged(server, "example-rollout stopped", "requeued").unwrap_or(0),
        held,
        stream_end: end.at.saturating_duration_since(signalled),
        stream_clean: end.clean,
        drain_cut: server.log_count("HTTP drain deadline reached") > 0,
        replacement_startup: None,
    }
}

/// Replaces `old` by a new instance of `version`: the new one starts and enters the rotation,
/// the old one leaves it and is stopped while a client streams from it. Then waits for the
/// traffic to go on over the new rotation.
async fn replace(
    db: &TestDb,
    targets: &Targets,
    traffic: &Traffic,
    old: &mut Server,
    (phase, version, old_version): (&'static str, &'static str, &'static str),
    held: Held,
) -> (Server, Stop) {
    let new = start(db, version).await;
    targets.add(new.base_url());
    targets.remove(old.base_url());
    let mut stopped = stop(old, phase, old_version, held).await;
    stopped.replacement_startup = Some(new.startup_time());
    let before = traffic.acknowledged_so_far();
    wait_until(
        "the traffic goes on over the new rotation",
        Duration::from_secs(10),
        async || {
            let now = traffic.acknowledged_so_far();
            if now >= before + 10 {
                Ok(())
            } else {
                Err(now - before)
            }
        },
    )
    .await;
    (new, stopped)
}

async fn rollout(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    Program::rollout(); // built before the clock starts
    let started = Instant::now();
    let first = start(&db, "1").await;
    let second = start(&db, "1").await;
    let inspector = Inspector::connect(&db).await;
    let targets = Targets::new([first.base_url().to_owned(), second.base_url().to_owned()]);
    let traffic = Traffic::start(
        &targets,
        TrafficSpec {
            rate: RATE,
            count: 2000,
            duration: Duration::from_secs(60),
            long_every: LONG_EVERY,
            long_ms: LONG_MS,
            delay_every: DELAY_EVERY,
            delay_ms: DELAY_MS,
        },
    );
    wait_until(
        "traffic is acknowledged",
        Duration::from_secs(10),
        async || {
            let n = traffic.acknowledged_so_far();
            if n >= 50 {
                Ok(())
            } else {
                Err(n)
            }
        },
    )
    .await;

    let mut instances = [first, second];
    // Release 2 also runs on a newer library, whose next durable migration declares
    // compatibility with this schema version: its first instance applies it, and every
    // instance started from then on (release 1 during the rollback too) starts through the
    // migrator's "newer but compatible" path.
    tables::apply_next_durable_migration(&inspector)
        .await
        .expect("apply the next durable migration");
    let (mut stops, retired) = roll(&db, &targets, &traffic, &mut instances).await;
    let report = traffic.stop().await;
    let rolled = started.elapsed();

    // The last instances (release 2) finish the work, within far less than a lease.
    let drain_started = Instant::now();
    let done: Tables =
        wait_until(
            "every task is finished",
            FINAL_DRAIN,
            async || match tables::read(&inspector).await {
                Ok(t) if t.unfinished() == 0 => Ok(t),
                Ok(t) => Err(format!("{:?}", t.counts())),
                Err(e) => Err(e.to_string()),
            },
        )
        .await;
    let final_drain = drain_started.elapsed();
    for server in &mut instances {
        stops.push(stop(server, "final stop", "2", Held::EndsOnStopping).await);
    }

    let figures = Figures::of(&report, &done);
    let timing = (rolled, final_drain);
    print_figures(backend, &report, &done, &figures, &stops, timing);
    let servers: Vec<&Server> = retired.iter().chain(instances.iter()).collect();
    check_tasks(&report, &done, &figures);
    check_logs(&servers);
    check_stops(&stops);
}

/// Forward, back, forward again: each instance replaced in turn, the one being stopped
/// holding a stream (alternately one that ends on `stopping` and one that ignores it).
/// Returns the stops and the stopped instances (for their logs).
async fn roll(
    db: &TestDb,
    targets: &Targets,
    traffic: &Traffic,
    instances: &mut [Server; 2],
) -> (Vec<Stop>, Vec<Server>) {
    let plan = [
        ("forward", "2", "1"),
        ("back", "1", "2"),
        ("forward again", "2", "1"),
    ];
    let mut stops = Vec::new();
    let mut retired = Vec::new();
    for step in plan {
        for (i, slot) in instances.iter_mut().enumerate() {
            let held = if i == 0 {
                Held::EndsOnStopping
            } else {
                Held::IgnoresStopping
            };
            let (new, stopped) = replace(db, targets, traffic, slot, step, held).await;
            eprintln!("[{}] {}", db.backend(), row(&stopped));
            stops.push(stopped);
            retired.push(std::mem::replace(slot, new));
        }
    }
    (stops, retired)
}

fn print_figures(
    backend: Backend,
    report: &TrafficReport,
    done: &Tables,
    figures: &Figures,
    stops: &[Stop],
    (rolled, final_drain): (Duration, Duration),
) {
    eprintln!(
        "[{backend}] rollout: {} requests ({} acknowledged, {} rejected, {} without answer, \
         slowest answer {:.2?}), {} tasks {:?}; rolled in {rolled:.1?}, the last tasks \
         done {final_drain:.2?} after the traffic stopped",
        report.sent.len(),
        report.acknowledged_requests(),
        report.rejected().len(),
        report.failed().len(),
        report.max_latency(),
        done.tasks.len(),
        done.counts(),
    );
    eprintln!(
        "[{backend}] requeued: {} tasks, {} hand-backs ({} logged by the stops); ran to their \
         end twice: {}; longest wait from due to completed: {} ms (short work {} ms, delayed \
         work {} ms, long work {} ms, audit {} ms); v2 work run by v1: {}; v1 work run by v2: \
         {}",
        figures.requeued_tasks,
        figures.hand_backs,
        stops.iter().map(|s| s.requeued).sum::<u64>(),
        figures.reran,
        figures.longest_wait_ms(),
        figures.longest_short_ms,
        figures.longest_delayed_ms,
        figures.longest_long_ms,
        figures.longest_audit_ms,
        figures.v2_work_by_v1,
        figures.v1_work_by_v2,
    );
    eprintln!(
        "[{backend}] | phase | instance | release | shutdown (budget {GRACE:?}) | SIGKILL | \
         requeued | held stream | stream ended | replacement started in |"
    );
    for s in stops {
        eprintln!("[{backend}] {}", row(s));
    }
}

/// One line of the figures table.
fn row(s: &Stop) -> String {
    format!(
        "| {} | {} | v{} | {:.2?} | {} | {} | {} | {:.2?} ({}) | {} |",
        s.phase,
        s.instance,
        s.version,
        s.ended.took,
        if s.ended.killed { "yes" } else { "no" },
        s.requeued,
        match s.held {
            Held::EndsOnStopping => "ends on stopping",
            Held::IgnoresStopping => "ignores stopping",
        },
        s.stream_end,
        if s.stream_clean { "clean end" } else { "cut" },
        s.replacement_startup
            .map_or_else(|| "-".to_owned(), |d| format!("{d:.2?}")),
    )
}

/// What the tables say about the rollout.
#[derive(Debug, Default)]
struct Figures {
    requeued_tasks: usize,
    hand_backs: i64,
    /// Completions recorded more than once.
    reran: usize,
    /// From due (stored + requested delay) to completed, per kind of task.
    longest_short_ms: i64,
    longest_delayed_ms: i64,
    longest_long_ms: i64,
    longest_audit_ms: i64,
    /// `work` stored by one release and run by the other.
    v2_work_by_v1: usize,
    v1_work_by_v2: usize,
}

impl Figures {
    fn of(report: &TrafficReport, done: &Tables) -> Figures {
        let mut figures = Figures {
            requeued_tasks: done.tasks.iter().filter(|t| t.requeues > 0).count(),
            hand_backs: done.tasks.iter().map(|t| t.requeues).sum(),
            reran: done.completions.iter().filter(|c| c.runs > 1).count(),
            ..Figures::default()
        };
        for acked in report.acknowledged() {
            let id = acked.task_id;
            let (Some(task), Some(completion)) = (done.task(id), done.completion(id)) else {
                continue;
            };
            let wait = task.wait_ms().unwrap_or(0) - i64::try_from(acked.delay_ms).unwrap_or(0);
            let longest = match task.name.as_str() {
                "audit" => &mut figures.longest_audit_ms,
                _ if acked.long => &mut figures.longest_long_ms,
                _ if acked.delay_ms > 0 => &mut figures.longest_delayed_ms,
                _ => &mut figures.longest_short_ms,
            };
            *longest = (*longest).max(wait);
            if task.name == "work" {
                match (acked.version, completion.version) {
                    (2, 1) => figures.v2_work_by_v1 += 1,
                    (1, 2) => figures.v1_work_by_v2 += 1,
                    _ => {}
                }
            }
        }
        figures
    }

    fn longest_wait_ms(&self) -> i64 {
        self.longest_short_ms
            .max(self.longest_delayed_ms)
            .max(self.longest_long_ms)
            .max(self.longest_audit_ms)
    }
}

/// Every acknowledged task completed, its completion recorded once; no task had a failed
/// attempt; both releases ran the other's payloads; none waited as long as a lease.
fn check_tasks(report: &TrafficReport, done: &Tables, figures: &Figures) {
    assert!(
        report.rejected().is_empty() && report.failed().is_empty(),
        "requests refused or unanswered during the rollout: {:?}",
        report
            .rejected()
            .iter()
            .chain(report.failed().iter())
            .take(5)
            .collect::<Vec<_>>()
    );
    let mut acknowledged = 0;
    for acked in report.acknowledged() {
        let (id, version) = (acked.task_id, acked.version);
        acknowledged += 1;
        let task = done
            .task(id)
            .unwrap_or_else(|| panic!("acknowledged task {id} (v{version}) has no row"));
        assert_eq!(task.state, "completed", "acknowledged task: {task:?}");
        let completion = done
            .completion(id)
            .unwrap_or_else(|| panic!("completed task {id} has no completion row: {task:?}"));
        match (task.name.as_str(), version, completion.version) {
            ("audit", _, ran_by) => assert_eq!(ran_by, 2, "only release 2 runs `audit`"),
            // Release 2 stored the `tag`, ran it and wrote it to the column its migration
            // added; release 1 decoded the payload without it.
            ("work", 2, 2) => assert!(completion.tag.is_some(), "{completion:?}"),
            ("work", _, _) => assert_eq!(completion.tag, None, "{completion:?}"),
            _ => panic!("unexpected task type: {task:?}"),
        }
    }
    assert!(acknowledged > 0, "nothing was acknowledged");
    // Not one failed attempt: not because of a task's type (claims take registered types
    // only), its payload (each release decodes the other's), or a migration; and no lease
    // expired (that would be a counted attempt with its `last_error`).
    for task in &done.tasks {
        assert_eq!(
            (
                task.state.as_str(),
                task.attempts,
                task.last_error.as_deref()
            ),
            ("completed", 1, None),
            "every stored task completes in one counted attempt: {task:?}"
        );
    }
    assert_eq!(figures.reran, 0, "tasks whose code ran to its end twice");
    assert!(
        figures.v2_work_by_v1 > 0 && figures.v1_work_by_v2 > 0,
        "each release must have run work the other stored: {figures:?}"
    );
    assert!(
        figures.longest_wait_ms() < millis(LEASE),
        "a task waited as long as a lease: {figures:?}"
    );
}

/// No instance logged a failed attempt, an undecodable payload, an unknown type, a lease
/// rescue or a fenced-off write; every instance started after the newer durable migration
/// went through the compatible path.
fn check_logs(servers: &[&Server]) {
    for server in servers {
        for bad in [
            "unknown task type",
            "cannot decode payload",
            "task attempt failed",
            "recovered tasks whose lease expired",
            "stale write rejected",
            "will be recovered when their lease expires",
        ] {
            assert_eq!(
                server.log_count(bad),
                0,
                "{} logged `{bad}`:\n{}",
                server.name(),
                server.log_tail(40)
            );
        }
    }
    // The first two started before it; the six replacements after.
    for server in &servers[2..] {
        assert!(
            server.log_count("the database's durable schema is newer than this build's") > 0,
            "{} did not start through the compatible newer-schema path",
            server.name()
        );
    }
}

/// Every shutdown exited 0 inside its grace, before the SIGKILL; a stream that ends on
/// `stopping` ended at once and cleanly, one that ignores it was cut at the HTTP drain
/// deadline (half the grace).
fn check_stops(stops: &[Stop]) {
    for s in stops {
        assert!(
            s.ended.status.success() && !s.ended.killed,
            "not a clean exit: {s:?}"
        );
        assert!(
            s.ended.took <= GRACE + EXIT_MARGIN,
            "stopped in {:?}, over its {GRACE:?} grace: {s:?}",
            s.ended.took
        );
        if s.held == Held::IgnoresStopping {
            assert!(
                s.drain_cut && !s.stream_clean && s.stream_end <= GRACE / 2 + EXIT_MARGIN,
                "a stream that ignores `stopping` must be cut at the HTTP drain deadline: {s:?}"
            );
        } else {
            assert!(
                !s.drain_cut && s.stream_clean && s.stream_end < Duration::from_secs(1),
                "a stream that ends on `stopping` must end at once, cleanly: {s:?}"
            );
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
