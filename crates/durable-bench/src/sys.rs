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

/// The machine's CPU counters at one moment: time in use, every core summed, from the first
/// line of `/proc/stat`, and time in which work waited for a CPU, from `/proc/pressure/cpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MachineCpu {
    /// Ticks spent running anything: user, nice, system, interrupts, stolen.
    busy: u64,
    /// Ticks in all: busy, idle and waiting on I/O.
    total: u64,
    /// µs since boot in which at least one runnable thread waited for a CPU (pressure
    /// stall information, `some ... total=`); `None` on a kernel without it.
    waited_us: Option<u64>,
    /// When it was read.
    at: Instant,
}

impl MachineCpu {
    /// Reads `/proc/stat` and `/proc/pressure/cpu`; `None` where there is no `/proc/stat`.
    pub(crate) fn read() -> Option<Self> {
        let pressure = std::fs::read_to_string("/proc/pressure/cpu").ok();
        Self::parse(
            &std::fs::read_to_string("/proc/stat").ok()?,
            pressure.as_deref(),
            Instant::now(),
        )
    }

    fn parse(stat: &str, pressure: Option<&str>, at: Instant) -> Option<Self> {
        let ticks: Vec<u64> = stat
            .lines()
            .find_map(|l| l.strip_prefix("cpu "))?
            .split_whitespace()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .ok()?;
        // user nice system idle iowait irq softirq steal (guest time is counted in user).
        let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
        let idle = field(3) + field(4);
        let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
        let waited_us = pressure
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("some ")))
            .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")))
            .and_then(|n| n.parse().ok());
        Some(Self {
            busy,
            total: busy + idle,
            waited_us,
            at,
        })
    }

    /// Percent of the machine's CPU time (all cores) that was busy between `earlier` and this
    /// reading; NaN when no tick passed.
    pub(crate) fn busy_percent_since(&self, earlier: &Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return f64::NAN;
        }
        self.busy.saturating_sub(earlier.busy) as f64 * 100.0 / total as f64
    }

    /// Percent of the wall time between `earlier` and this reading in which some runnable
    /// thread waited for a CPU (there was more work than cores); NaN without pressure stall
    /// information. Unlike a count of runnable threads read at one instant, it covers the
    /// whole interval.
    pub(crate) fn wait_percent_since(&self, earlier: &Self) -> f64 {
        let wall = self.at.saturating_duration_since(earlier.at).as_micros() as f64;
        match (self.waited_us, earlier.waited_us) {
            (Some(now), Some(then)) if wall > 0.0 => {
                (now.saturating_sub(then) as f64 * 100.0 / wall).min(100.0)
            }
            _ => f64::NAN,
        }
    }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::MachineCpu;

    const STAT: &str = "cpu  100 5 50 800 20 3 2 0 0 0\n\
                        cpu0 50 2 25 400 10 1 1 0 0 0\n\
                        intr 12345\n\
                        procs_running 7\n";
    const PRESSURE: &str = "some avg10=10.47 avg60=6.80 avg300=3.61 total=19069551\n\
                            full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";

    #[test]
    fn the_first_line_sums_every_core_and_io_wait_counts_as_idle() {
        let at = Instant::now();
        let cpu = MachineCpu::parse(STAT, Some(PRESSURE), at).expect("parsed");
        let later = MachineCpu::parse(
            "cpu  400 5 150 900 120 3 2 0 0 0\n",
            None,
            at + Duration::from_secs(1),
        )
        .expect("parsed");
        // 400 busy ticks (300 user, 100 system) out of 600.
        let busy = later.busy_percent_since(&cpu);
        assert!((busy - 400.0 / 6.0).abs() < 1e-9, "{busy}");
        assert!(cpu.busy_percent_since(&cpu).is_nan());
        assert_eq!(MachineCpu::parse("intr 1\n", Some(PRESSURE), at), None);
    }

    #[test]
    fn cpu_wait_is_the_share_of_the_interval_some_thread_waited() {
        let at = Instant::now();
        let cpu = MachineCpu::parse(STAT, Some(PRESSURE), at).expect("parsed");
        // 1.5 s of waiting in 5 s.
        let later = MachineCpu::parse(
            STAT,
            Some("some avg10=1 avg60=1 avg300=1 total=20569551\nfull total=0\n"),
            at + Duration::from_secs(5),
        )
        .expect("parsed");
        let wait = later.wait_percent_since(&cpu);
        assert!((wait - 30.0).abs() < 1e-9, "{wait}");
        // No pressure stall information on either side: unknown, not zero.
        let without = MachineCpu::parse(STAT, None, at + Duration::from_secs(5)).expect("parsed");
        assert!(without.wait_percent_since(&cpu).is_nan());
        assert!(later.wait_percent_since(&later).is_nan());
    }
}
