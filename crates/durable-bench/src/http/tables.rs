//! The `http` mode's tables: throughput and latency per design, and where `Durable`'s store
//! traffic went.

use std::collections::HashMap;

use super::{met, Point, Traffic, Variant, CONCURRENCY};
use crate::backend::Backend;
use crate::stats::{median, ms, num, ratio, Table};
use crate::{Settings, Summary};

/// Median over runs of `f(point of variant a, point of variant b in the same run)`.
fn paired(
    points: &HashMap<(Variant, usize), Vec<Point>>,
    a: Variant,
    b: Variant,
    c: usize,
    f: impl Fn(&Point, &Point) -> f64,
) -> f64 {
    let (Some(xs), Some(ys)) = (points.get(&(a, c)), points.get(&(b, c))) else {
        return f64::NAN;
    };
    let values: Vec<f64> = xs.iter().zip(ys).map(|(x, y)| f(x, y)).collect();
    median(&values)
}

fn of(
    points: &HashMap<(Variant, usize), Vec<Point>>,
    v: Variant,
    c: usize,
    f: fn(&Point) -> f64,
) -> f64 {
    points
        .get(&(v, c))
        .map_or(f64::NAN, |ps| median(&ps.iter().map(f).collect::<Vec<_>>()))
}

pub(super) fn print_table(
    settings: &Settings,
    variants: &[Variant],
    points: &HashMap<(Variant, usize), Vec<Point>>,
    fsync: &[f64],
    incomplete: &[String],
    summary: &mut Summary,
) {
    let mut table = Table::new(
        format!(
            "http: one no-op task per request ({} s per point, medians of {} runs)",
            settings.duration.as_secs_f64(),
            settings.runs
        ),
        &[
            "design",
            "conns",
            "req/s",
            "p50 ms",
            "p99 ms",
            "vs tokio::spawn",
            "vs naive",
            "errors",
        ],
    );
    for c in settings.points(&CONCURRENCY) {
        for v in variants {
            let vs_naive = match v {
                Variant::Durable(b) | Variant::DurableUnique(b) | Variant::EnqueueOnly(b) => {
                    paired(points, *v, Variant::Naive(*b), c, |x, y| x.rps / y.rps)
                }
                _ => f64::NAN,
            };
            let errors: u64 = points
                .get(&(*v, c))
                .map_or(0, |ps| ps.iter().map(|p| p.errors).sum());
            table.row(vec![
                v.label(),
                c.to_string(),
                num(of(points, *v, c, |p| p.rps)),
                ms(of(points, *v, c, |p| p.p50)),
                ms(of(points, *v, c, |p| p.p99)),
                ratio(paired(points, *v, Variant::Spawn, c, |x, y| x.rps / y.rps)),
                ratio(vs_naive),
                errors.to_string(),
            ]);
        }
    }
    let fsync_ms = median(fsync);
    table.note(format!(
        "fdatasync of a 4 KiB append on this disk (the wait of one SQLite FULL commit): median {} ms, measured at the start of each run",
        ms(fsync_ms)
    ));
    for v in variants {
        if let Variant::Durable(b) = v {
            let added = paired(points, *v, Variant::Spawn, 1, |x, y| x.p50 - y.p50);
            let naive_added = paired(points, Variant::Naive(*b), Variant::Spawn, 1, |x, y| {
                x.p50 - y.p50
            });
            let at64 = paired(points, *v, Variant::Spawn, 64, |x, y| x.rps / y.rps);
            let naive64 = paired(points, *v, Variant::Naive(*b), 64, |x, y| x.rps / y.rps);
            let (target_ratio, latency_ok, latency_target) = match b {
                Backend::Sqlite => (
                    0.5,
                    added <= fsync_ms,
                    format!("≤ one fsync ({} ms)", ms(fsync_ms)),
                ),
                Backend::Postgres => (0.35, added < 1.0, "< 1 ms".to_owned()),
            };
            table.note(format!(
                "{b}: added p50 latency at c=1 = {} ms (target {latency_target}: {}; the naive single-row commit adds {} ms); c=64: {} of tokio::spawn (target ≥ {target_ratio}x: {}), {} of naive (target ≥ 3x: {})",
                ms(added),
                met(latency_ok),
                ms(naive_added),
                ratio(at64),
                met(at64 >= target_ratio),
                ratio(naive64),
                met(naive64 >= 3.0),
            ));
            for (name, design, conns) in [
                ("durable", *v, 1),
                ("durable", *v, 64),
                ("naive", Variant::Naive(*b), 1),
                ("naive", Variant::Naive(*b), 64),
            ] {
                let rps = of(points, design, conns, |p| p.rps);
                summary.add(format!("http {name} {b} c={conns} req/s"), rps, "req/s");
            }
            summary.add(format!("http durable {b} added p50 c=1"), added, "ms");
        }
    }
    summary.add(
        "http tokio::spawn c=64 req/s",
        of(points, Variant::Spawn, 64, |p| p.rps),
        "req/s",
    );
    for line in incomplete {
        table.note(line.clone());
    }
    table.print();
    print_traffic(settings, variants, points);
}

fn print_traffic(
    settings: &Settings,
    variants: &[Variant],
    points: &HashMap<(Variant, usize), Vec<Point>>,
) {
    let mut table = Table::new(
        format!(
            "http: where Durable's writes went (store calls counted by a decorator; medians of {} runs)",
            settings.runs
        ),
        &[
            "store",
            "conns",
            "tasks stored",
            "rows per insert tx",
            "rows per completion tx",
            "claims per 100 tasks",
            "write tx per 100 tasks",
            "dispatched locally",
        ],
    );
    for c in settings.points(&CONCURRENCY) {
        for v in variants {
            let Variant::Durable(b) = v else { continue };
            let Some(ps) = points.get(&(*v, c)) else {
                continue;
            };
            let ts: Vec<Traffic> = ps.iter().filter_map(|p| p.traffic).collect();
            let m = |f: fn(&Traffic) -> f64| median(&ts.iter().map(f).collect::<Vec<_>>());
            table.row(vec![
                b.to_string(),
                c.to_string(),
                num(m(|t| t.tasks as f64)),
                num(m(|t| t.rows_per_insert)),
                num(m(|t| t.rows_per_complete)),
                num(m(|t| t.claims_per_100)),
                num(m(|t| t.writes_per_100)),
                format!("{}%", num(m(|t| t.local_pct))),
            ]);
        }
    }
    table.note("warm-up included; a task not dispatched locally at insert (no free slot) is claimed by the runtime's claim loop; inserts, completions and claims queued together share one write transaction");
    table.print();
}
