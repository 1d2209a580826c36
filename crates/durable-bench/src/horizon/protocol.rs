//! The lines a worker process writes on its stdout for the parent: one word of kind, then
//! fields separated by spaces. Anything else on the stream is ignored by the parent.

use super::histogram::Histogram;
use super::starts::Starts;

/// Prefix of every protocol line.
const PREFIX: &str = "horizon";

/// What a worker process tells the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// The runtime is started and claiming.
    Ready,
    /// Since the previous report: attempts completed, tasks retried or failed, the time
    /// covered, and the claim latencies of the attempts started.
    Report {
        /// Attempts completed.
        completed: u64,
        /// Attempts that ended in a retry or `failed` (the task never fails: a non-zero
        /// figure means leases were lost or the store refused a write).
        unsuccessful: u64,
        /// µs of the worker's clock since its previous report (or since it was ready): what
        /// the parent divides by, so a window that caught one report more or less of a
        /// process does not read as a faster or slower rate.
        span_us: u64,
        /// Due → started latencies.
        claim: Histogram,
        /// The same starts by batch, for the parent to measure from the batches' commits.
        starts: Starts,
    },
    /// The runtime has shut down; nothing follows.
    Done,
}

impl Line {
    /// The line, without its newline.
    pub(crate) fn encode(&self) -> String {
        match self {
            Line::Ready => format!("{PREFIX} ready"),
            Line::Done => format!("{PREFIX} done"),
            Line::Report {
                completed,
                unsuccessful,
                span_us,
                claim,
                starts,
            } => format!(
                "{PREFIX} report {completed} {unsuccessful} {span_us} {} {}",
                claim.encode(),
                starts.encode()
            ),
        }
    }

    /// Reads a line; `None` for lines not meant for the parent, an error for a protocol line
    /// that does not parse.
    pub(crate) fn decode(line: &str) -> Option<Result<Self, String>> {
        let mut words = line.split_whitespace();
        if words.next() != Some(PREFIX) {
            return None;
        }
        let bad = || format!("malformed worker line {line:?}");
        Some(match words.next() {
            Some("ready") => Ok(Line::Ready),
            Some("done") => Ok(Line::Done),
            Some("report") => (|| {
                let completed = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                let unsuccessful = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                let span_us = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                let claim = Histogram::decode(words.next().ok_or_else(bad)?)?;
                let starts = Starts::decode(words.next().ok_or_else(bad)?)?;
                Ok(Line::Report {
                    completed,
                    unsuccessful,
                    span_us,
                    claim,
                    starts,
                })
            })(),
            _ => Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let mut claim = Histogram::default();
        claim.record(1_500);
        claim.record(20_000);
        let mut starts = Starts::default();
        starts.record(1_700_000_000_000_000, 1_500);
        starts.record(1_700_000_000_000_000, 20_000);
        for line in [
            Line::Ready,
            Line::Done,
            Line::Report {
                completed: 812,
                unsuccessful: 1,
                span_us: 500_100,
                claim,
                starts,
            },
        ] {
            assert_eq!(Line::decode(&line.encode()), Some(Ok(line)));
        }
    }

    #[test]
    fn other_output_is_ignored_and_broken_lines_are_errors() {
        assert_eq!(Line::decode("some log line"), None);
        assert!(matches!(
            Line::decode("horizon report 1"),
            Some(Err(message)) if message.contains("malformed")
        ));
        assert!(matches!(Line::decode("horizon what"), Some(Err(_))));
    }
}
