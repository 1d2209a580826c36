//! The filters of a list page, from a query string (the API's and the pages' alike).

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use durable_core::store::ListQuery;
use durable_core::{TaskId, TaskState};
use serde::Deserialize;

/// Longest search string: a search scans payloads, so keep it a needle, not a document.
pub(crate) const MAX_SEARCH: usize = 200;

/// A list page's filters as given (empty fields, as a form sends them, count as absent).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ListParams {
    pub(crate) state: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) search: Option<String>,
    /// `newest` (default) or `oldest`.
    pub(crate) order: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) limit: Option<u32>,
}

fn given(field: Option<&String>) -> Option<&str> {
    field.map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl ListParams {
    pub(crate) fn state(&self) -> Option<&str> {
        given(self.state.as_ref())
    }
    pub(crate) fn name(&self) -> Option<&str> {
        given(self.name.as_ref())
    }
    pub(crate) fn queue(&self) -> Option<&str> {
        given(self.queue.as_ref())
    }
    pub(crate) fn from(&self) -> Option<&str> {
        given(self.from.as_ref())
    }
    pub(crate) fn until(&self) -> Option<&str> {
        given(self.until.as_ref())
    }
    pub(crate) fn search(&self) -> Option<&str> {
        // Not trimmed: spaces may be part of what is searched.
        self.search.as_deref().filter(|s| !s.is_empty())
    }
    pub(crate) fn oldest_first(&self) -> bool {
        given(self.order.as_ref()) == Some("oldest")
    }

    /// The store query, or what is wrong with the parameters (a message for the user).
    pub(crate) fn to_query(
        &self,
        default_limit: u32,
        search_allowed: bool,
    ) -> Result<ListQuery, String> {
        let mut query = ListQuery::new(self.limit.unwrap_or(default_limit));
        if !self.oldest_first() {
            query = query.newest_first();
        }
        if let Some(state) = self.state() {
            let state: TaskState = state
                .parse()
                .map_err(|_| format!("unknown state `{state}`"))?;
            query = query.state(state);
        }
        if let Some(name) = self.name() {
            query = query.name(name);
        }
        if let Some(queue) = self.queue() {
            query = query.queue(queue);
        }
        if let Some(from) = self.from() {
            query = query.created_from(time(from)?);
        }
        if let Some(until) = self.until() {
            query.created_until = Some(time(until)?);
        }
        if let Some(search) = self.search() {
            if !search_allowed {
                return Err("payload search is off: payloads are redacted".to_owned());
            }
            if search.chars().count() > MAX_SEARCH {
                return Err(format!("search is at most {MAX_SEARCH} characters"));
            }
            query = query.search(search);
        }
        if let Some(after) = given(self.after.as_ref()) {
            let after: TaskId = after
                .parse()
                .map_err(|_| "`after` is not a task id".to_owned())?;
            query = query.after(after);
        }
        Ok(query)
    }

    /// The query string of these filters (without `after`), for links to other pages.
    pub(crate) fn query_string(&self) -> String {
        let fields = [
            ("state", self.state()),
            ("name", self.name()),
            ("queue", self.queue()),
            ("from", self.from()),
            ("until", self.until()),
            ("search", self.search()),
            ("order", self.oldest_first().then_some("oldest")),
        ];
        fields
            .into_iter()
            .filter_map(|(key, value)| {
                value.map(|value| format!("{key}={}", percent_encode(value)))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A time filter: RFC 3339, or a date and time (`2026-01-31T12:00`, as a `datetime-local`
/// input sends it) or a date, read as UTC.
fn time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .ok_or_else(|| format!("`{text}` is not a time (use 2026-01-31T12:00 or RFC 3339)"))
}

/// Percent-encodes a query string value (everything but unreserved characters).
pub(crate) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_a_store_query() {
        let params = ListParams {
            state: Some("failed".into()),
            name: Some(" send_email ".into()),
            queue: Some(String::new()),
            from: Some("2026-01-31T12:00".into()),
            search: Some("a b".into()),
            ..ListParams::default()
        };
        let query = params.to_query(50, true).unwrap();
        assert_eq!(query.state, Some(TaskState::Failed));
        assert_eq!(query.name.as_deref(), Some("send_email"));
        assert_eq!(query.queue, None);
        assert!(query.newest_first);
        assert_eq!(
            query.created_from.unwrap().to_rfc3339(),
            "2026-01-31T12:00:00+00:00"
        );
        assert_eq!(query.search.as_deref(), Some("a b"));
        assert_eq!(
            params.query_string(),
            "state=failed&name=send_email&from=2026-01-31T12%3A00&search=a%20b"
        );
        assert!(
            params.to_query(50, false).is_err(),
            "search refused when redacting"
        );
        let bad = ListParams {
            state: Some("done".into()),
            ..ListParams::default()
        };
        assert!(bad.to_query(50, true).is_err());
    }
}
