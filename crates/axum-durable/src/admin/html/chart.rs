//! The overview's chart of the last hour, as inline SVG drawn on the server: ended attempts
//! per minute (completed, retried, failed, stacked) and the failure rate as a line.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, DurationRound, Utc};
use durable_core::store::ThroughputBucket;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;
const MINUTES: usize = 60;

/// The per-minute totals of the hour ending at `now`, oldest first (minutes without any
/// ended attempt are zero).
fn minutes(
    now: DateTime<Utc>,
    buckets: &[ThroughputBucket],
) -> Vec<(DateTime<Utc>, u64, u64, u64)> {
    let end = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let first = end - Duration::minutes(MINUTES as i64 - 1);
    let mut slots: Vec<(DateTime<Utc>, u64, u64, u64)> = (0..MINUTES)
        .map(|i| (first + Duration::minutes(i as i64), 0, 0, 0))
        .collect();
    for bucket in buckets {
        let offset = (bucket.start - first).num_minutes();
        if let Some(slot) = usize::try_from(offset).ok().and_then(|i| slots.get_mut(i)) {
            slot.1 += bucket.completed;
            slot.2 += bucket.retried;
            slot.3 += bucket.failed;
        }
    }
    slots
}

/// The chart, or a line saying nothing ended in the last hour.
pub(crate) fn svg(now: DateTime<Utc>, buckets: &[ThroughputBucket]) -> String {
    let slots = minutes(now, buckets);
    let total: u64 = slots.iter().map(|s| s.1 + s.2 + s.3).sum();
    let failed: u64 = slots.iter().map(|s| s.2 + s.3).sum();
    let max = slots
        .iter()
        .map(|s| s.1 + s.2 + s.3)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot_w = plot_w / MINUTES as f64;
    let bar_w = (slot_w - 2.0).max(1.0);
    let y = |n: u64| TOP + plot_h - plot_h * n as f64 / max as f64;

    let mut svg = format!(
        "<svg id=\"throughput-chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" \
         aria-label=\"Ended attempts per minute, last hour\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    // Axes and labels.
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#ced4da\"/>\
         <text x=\"{lx}\" y=\"{ty}\" font-size=\"10\" text-anchor=\"end\" fill=\"#667085\">{max}</text>\
         <text x=\"{lx}\" y=\"{b}\" font-size=\"10\" text-anchor=\"end\" fill=\"#667085\">0</text>\
         <text x=\"{rx}\" y=\"{ty}\" font-size=\"10\" fill=\"#e03131\">100%</text>\
         <text x=\"{LEFT}\" y=\"{by}\" font-size=\"10\" fill=\"#667085\">−60 min</text>\
         <text x=\"{r}\" y=\"{by}\" font-size=\"10\" text-anchor=\"end\" fill=\"#667085\">now</text>",
        b = TOP + plot_h,
        r = WIDTH - RIGHT,
        lx = LEFT - 4.0,
        ty = TOP + 8.0,
        rx = WIDTH - RIGHT + 4.0,
        by = HEIGHT - 6.0,
    );
    let mut rate_points = Vec::new();
    for (i, (start, completed, retried, dead)) in slots.iter().enumerate() {
        let x = LEFT + i as f64 * slot_w + 1.0;
        let sum = completed + retried + dead;
        if sum > 0 {
            let _ = write!(
                svg,
                "<g><title>{} — completed {completed}, retried {retried}, failed {dead}</title>",
                start.format("%H:%M")
            );
            let mut base = 0;
            for (n, colour) in [
                (*completed, "#2f9e44"),
                (*retried, "#f08c00"),
                (*dead, "#e03131"),
            ] {
                if n > 0 {
                    let top = y(base + n);
                    let _ = write!(
                        svg,
                        "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                        y(base) - top
                    );
                    base += n;
                }
            }
            svg.push_str("</g>");
            let rate = (retried + dead) as f64 / sum as f64;
            rate_points.push(format!(
                "{:.1},{:.1}",
                x + bar_w / 2.0,
                TOP + plot_h - plot_h * rate
            ));
        }
    }
    if rate_points.len() > 1 {
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#e03131\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>",
            rate_points.join(" ")
        );
    }
    svg.push_str("</svg>");
    let rate = if total == 0 {
        0.0
    } else {
        failed as f64 * 100.0 / total as f64
    };
    format!(
        "<div class=\"legend\"><span><i style=\"background:#2f9e44\"></i>completed</span>\
         <span><i style=\"background:#f08c00\"></i>retried</span><span><i style=\"background:#e03131\">\
         </i>failed</span><span>- - failure rate</span><span id=\"hour-totals\">{total} ended, \
         {rate:.1}% failed attempts in the last hour</span></div>{svg}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_land_in_their_minute_and_old_ones_are_left_out() {
        let now: DateTime<Utc> = "2026-01-31T12:30:20Z".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let buckets = [
            ThroughputBucket::new(at("2026-01-31T12:30:00Z"), 3, 1, 0),
            ThroughputBucket::new(at("2026-01-31T11:31:00Z"), 2, 0, 1),
            ThroughputBucket::new(at("2026-01-31T11:00:00Z"), 99, 0, 0),
        ];
        let slots = minutes(now, &buckets);
        assert_eq!(slots.len(), 60);
        assert_eq!(slots[59], (at("2026-01-31T12:30:00Z"), 3, 1, 0));
        assert_eq!(slots[0], (at("2026-01-31T11:31:00Z"), 2, 0, 1));
        let svg = svg(now, &buckets);
        assert!(svg.contains("7 ended, 28.6% failed"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 4);
    }
}
