//! The failure-mode runner: runs the scenarios of `durable_tests::chaos` against the real
//! `example-signup`, prints one result line per scenario and a markdown table, and exits
//! non-zero if any scenario failed or lost work.
//!
//! ```sh
//! DURABLE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run -p durable-tests --bin chaos -- --backend all --short
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use durable_tests::chaos::{self, Options, SCENARIOS};
use durable_tests::Backend;

const USAGE: &str = "\
usage: chaos [--backend sqlite|postgres|all] [--requests N] [--duration SECS] [--only SCENARIO] [--short]

  --backend    which database the example runs on (default: all; PostgreSQL needs
               DURABLE_TEST_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test)
  --requests   requests per scenario, scaled per scenario (default 2000; --short: 400)
  --duration   load duration of the time-based scenarios in seconds (default 20; --short: 5)
  --only       run the scenarios whose name contains this
  --short      small numbers, same checks (what CI runs through `cargo test`)
  CHAOS_VERBOSE=1 prints progress; failed scenarios keep their temporary directory (logs).

scenarios:";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        backends: vec![Backend::Sqlite, Backend::Postgres],
        requests: None,
        duration: None,
        only: None,
        short: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--backend" => {
                options.backends = match value("--backend")?.as_str() {
                    "sqlite" => vec![Backend::Sqlite],
                    "postgres" => vec![Backend::Postgres],
                    "all" => vec![Backend::Sqlite, Backend::Postgres],
                    other => return Err(format!("unknown backend {other:?}")),
                }
            }
            "--requests" => {
                let raw = value("--requests")?;
                options.requests = Some(raw.parse().map_err(|e| format!("--requests {raw}: {e}"))?);
            }
            "--duration" => {
                let raw = value("--duration")?;
                let secs: f64 = raw.parse().map_err(|e| format!("--duration {raw}: {e}"))?;
                options.duration = Some(Duration::from_secs_f64(secs));
            }
            "--only" => {
                let only = value("--only")?;
                if !SCENARIOS
                    .iter()
                    .any(|(name, _)| name.contains(only.as_str()))
                {
                    return Err(format!("no scenario matches {only:?}"));
                }
                options.only = Some(only);
            }
            "--short" => options.short = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn usage() -> String {
    let mut text = USAGE.to_owned();
    for (name, what) in SCENARIOS {
        let _ = write!(text, "\n  {name:<20} {what}");
    }
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            if message.is_empty() {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            eprintln!("{message}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the Tokio runtime");
    let started = Instant::now();
    let params = options.params();
    println!(
        "chaos: {} mode, requests {}, duration {:?}, backends {:?}",
        if options.short { "short" } else { "long" },
        params.requests,
        params.duration,
        options.backends
    );
    let reports = runtime.block_on(chaos::run(&options));
    println!();
    println!("{}", chaos::table(&reports));
    println!(
        "{} scenario runs in {:.0} s",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    if chaos::all_passed(&reports) {
        ExitCode::SUCCESS
    } else {
        eprintln!("chaos: some scenarios FAILED (see above)");
        ExitCode::FAILURE
    }
}
