//! What the process costs, read from `/proc` (no `libc`, no `unsafe`), and the fsync probe.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Result;

/// The CPU model line of `/proc/cpuinfo`.
pub(crate) fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), as printed there.
pub(crate) fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that fails).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system) this process has used, in seconds.
pub(crate) fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: f64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok((utime + stime) / clock_ticks())
}

/// Resident memory now and its high-water mark, in MiB (`VmRSS`, `VmHWM`).
pub(crate) fn rss_mib() -> Result<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/self/status"))?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .ok_or("malformed status line")?
            .parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the `VmHWM` high-water mark to the current RSS (`echo 5 > /proc/self/clear_refs`).
/// Returns whether the kernel accepted it.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .is_ok()
}

/// Median time of one `fdatasync` after a 4 KiB append (one page), in a file under `dir` (what a SQLite
/// WAL commit with `synchronous=FULL` waits for).
pub(crate) fn fdatasync_ms(dir: &std::path::Path, samples: usize) -> Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        file.write_all(&[0u8; 4096])?;
        let start = Instant::now();
        file.sync_data()?;
        times.push(start.elapsed());
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    times.sort();
    Ok(crate::stats::percentile_ms(&times, 50.0))
}

/// Sleeps while sampling `VmRSS`; returns the highest sample in MiB.
pub(crate) async fn sample_rss_until<F>(mut done: F, every: Duration) -> f64
where
    F: FnMut() -> bool,
{
    let mut peak = 0.0_f64;
    loop {
        if let Ok((rss, _)) = rss_mib() {
            peak = peak.max(rss);
        }
        if done() {
            return peak;
        }
        tokio::time::sleep(every).await;
    }
}
