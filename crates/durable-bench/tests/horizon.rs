//! `durable-bench horizon` end to end, short: the binary with its worker processes on a real
//! SQLite file and a real PostgreSQL schema, read back through its CSV.

use std::process::Command;

/// One CSV value: (phase, metric, relation, value).
type Row = (String, String, String, f64);

/// Runs `horizon` with `args` plus short phases; returns stdout and the CSV rows.
fn run(args: &[&str]) -> (String, Vec<Row>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let csv = dir.path().join("horizon.csv");
    let output = Command::new(env!("CARGO_BIN_EXE_durable-bench"))
        .arg("horizon")
        .args(args)
        .args([
            "--phases",
            "clean,idle-tx",
            "--phase",
            "3s",
            "--sample",
            "1s",
        ])
        .args(["--rate", "300", "--processes", "2", "--workers", "4"])
        .arg("--csv")
        .arg(&csv)
        .output()
        .expect("run durable-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "horizon failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&csv).expect("the CSV was written");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("backend,phase,elapsed_s,metric,relation,value")
    );
    let rows = lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 6, "{line}");
            // Empty values are percentiles of intervals without a started attempt.
            let value = f[5].parse().ok()?;
            Some((f[1].to_owned(), f[3].to_owned(), f[4].to_owned(), value))
        })
        .collect();
    (stdout, rows)
}

/// The values of `metric` (of `relation`) in `phase`, in sample order.
fn values(rows: &[Row], phase: &str, metric: &str, relation: &str) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.0 == phase && r.1 == metric && r.2 == relation)
        .map(|r| r.3)
        .collect()
}

/// Both phases completed tasks that went through claims, and the claim latency was measured.
fn assert_work_done(rows: &[Row]) {
    for phase in ["clean", "idle-tx"] {
        let completed: f64 = values(rows, phase, "completed_per_s", "").iter().sum();
        assert!(completed > 0.0, "{phase}: nothing completed");
        assert_eq!(
            values(rows, phase, "offered_per_s", "").len(),
            3,
            "{phase}: 3 samples"
        );
        assert!(
            values(rows, phase, "claim_p99_ms", "")
                .iter()
                .any(|v| *v > 0.0),
            "{phase}: no claim latency"
        );
    }
}

#[test]
fn sqlite_run_reports_work_and_a_wal_that_does_not_restart_under_a_reader() {
    let (stdout, rows) = run(&["--backend", "sqlite", "--poll-interval", "20ms"]);
    assert!(stdout.contains("horizon, SQLite: phases"), "{stdout}");
    assert_work_done(&rows);
    // The idle read transaction pins the WAL: it cannot restart, so its frame count only grows.
    let frames = values(&rows, "idle-tx", "wal_frames", "");
    assert!(frames.iter().any(|f| *f > 0.0), "{frames:?}");
    assert!(frames.windows(2).all(|w| w[1] >= w[0]), "{frames:?}");
}

#[test]
fn postgres_run_reports_relations_and_a_held_back_horizon() {
    let Some(url) = durable_testkit::database_url() else {
        return;
    };
    let (stdout, rows) = run(&["--backend", "postgres", "--database-url", &url]);
    assert!(
        stdout.contains("horizon, PostgreSQL: tables and indexes"),
        "{stdout}"
    );
    assert_work_done(&rows);
    // The live partition's leaves: lane 0 and the lanes (schema 13).
    for table in [
        "durable_tasks_keyed",
        "durable_tasks_lane_1",
        "durable_tasks_history",
    ] {
        assert!(
            !values(&rows, "clean", "dead_tuples", table).is_empty(),
            "{table}"
        );
    }
    assert!(!values(&rows, "clean", "index_bytes", "durable_tasks_lane_1_ready").is_empty());
    // The idle REPEATABLE READ session keeps its snapshot: the oldest xmin ages with every
    // transaction of the load, past anything a clean phase's short statements hold.
    let clean = values(&rows, "clean", "xmin_age", "");
    let held = values(&rows, "idle-tx", "xmin_age", "");
    let clean_peak = clean.iter().copied().fold(0.0, f64::max);
    let held_last = held.last().copied().unwrap_or(0.0);
    assert!(
        held_last > clean_peak && held_last > 100.0,
        "clean {clean:?}, idle-tx {held:?}"
    );
}
