//! Medians, percentiles and markdown tables.

use std::time::Duration;

use durable_testkit::percentile;

/// The median of `values` (mean of the two middle ones for an even count); `NaN` if empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        f64::midpoint(sorted[mid - 1], sorted[mid])
    } else {
        sorted[mid]
    }
}

/// The `p`-th percentile (0..=100, nearest rank) of `sorted` samples, in milliseconds;
/// `NaN` if empty.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    percentile(sorted, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// The `p`-th percentile (nearest rank) of signed samples in milliseconds, in any order;
/// `NaN` if empty.
pub(crate) fn percentile_signed(samples: &[f64], p: f64) -> f64 {
    let mut sorted: Vec<f64> = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, p).unwrap_or(f64::NAN)
}

/// A number for a table: no decimals from 100 up, two below 10, one between.
pub(crate) fn num(value: f64) -> String {
    if value.is_nan() {
        "–".to_owned()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A latency in milliseconds for a table, three decimals.
pub(crate) fn ms(value: f64) -> String {
    if value.is_nan() {
        "–".to_owned()
    } else {
        format!("{value:.3}")
    }
}

/// A ratio for a table, as `0.42x`.
pub(crate) fn ratio(value: f64) -> String {
    if value.is_nan() || value.is_infinite() {
        "–".to_owned()
    } else {
        format!("{value:.2}x")
    }
}

/// A markdown table under construction.
#[derive(Debug)]
pub(crate) struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    /// A table with a title line and column names.
    pub(crate) fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Appends a row (cells already formatted).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Appends a note printed under the table.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Prints the table as markdown.
    pub(crate) fn print(&self) {
        println!("### {}\n", self.title);
        println!("| {} |", self.header.join(" | "));
        println!(
            "|{}",
            self.header.iter().map(|_| " --- |").collect::<String>()
        );
        for row in &self.rows {
            println!("| {} |", row.join(" | "));
        }
        println!();
        for note in &self.notes {
            println!("- {note}");
        }
        if !self.notes.is_empty() {
            println!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < f64::EPSILON);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert!((percentile_ms(&samples, 50.0) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&samples, 99.0) - 99.0).abs() < 1e-9);
        assert!((percentile_signed(&[1.0, -1.0, 0.0], 50.0)).abs() < 1e-9);
        assert!(percentile_ms(&[], 50.0).is_nan());
    }
}
