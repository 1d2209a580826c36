//! [`When`]: a point in time given as a duration ago (`1h`) or an RFC 3339 time.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A time on the command line: `--since 1h` reads better than a timestamp at a terminal,
/// while scripts pass exact RFC 3339 times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// This long before now.
    Ago(Duration),
    /// This instant.
    At(DateTime<Utc>),
}

impl When {
    /// The instant, counting `Ago` back from `now`.
    pub(crate) fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            When::At(at) => at,
            When::Ago(ago) => chrono::Duration::from_std(ago)
                .ok()
                .and_then(|ago| now.checked_sub_signed(ago))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

/// Why a `When` could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WhenError(String);

impl fmt::Display for WhenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is neither a duration (1h, 30m, 2d) nor an RFC 3339 time (2026-01-31T12:00:00Z)",
            self.0
        )
    }
}

impl std::error::Error for WhenError {}

impl FromStr for When {
    type Err = WhenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(s) {
            return Ok(When::At(at.with_timezone(&Utc)));
        }
        humantime::parse_duration(s)
            .map(When::Ago)
            .map_err(|_| WhenError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_count_back_from_now_and_times_are_kept() {
        let now = DateTime::parse_from_rfc3339("2026-01-31T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let hour: When = "1h".parse().unwrap();
        assert_eq!(hour.resolve(now).to_rfc3339(), "2026-01-31T11:00:00+00:00");
        let at: When = "2026-01-01T00:00:00+02:00".parse().unwrap();
        assert_eq!(at.resolve(now).to_rfc3339(), "2025-12-31T22:00:00+00:00");
        assert!("yesterday".parse::<When>().is_err());
    }
}
