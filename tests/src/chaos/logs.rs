//! Reading the servers' logs (`tracing` fmt lines: `... message key=value key="value"`).

use std::collections::BTreeMap;

/// The value of `key=...` in `line` (quotes stripped), if present as a whole key.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("{key}=");
    let mut from = 0;
    while let Some(found) = line[from..].find(&pattern) {
        let start = from + found;
        let whole_key = start == 0
            || line[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c == ' ' || c == '{' || c == ',' || c == ':');
        let value_start = start + pattern.len();
        if whole_key {
            let rest = &line[value_start..];
            let value = if let Some(quoted) = rest.strip_prefix('"') {
                quoted.split('"').next().unwrap_or_default()
            } else {
                rest.split([' ', '}', ',']).next().unwrap_or_default()
            };
            return Some(value);
        }
        from = value_start;
    }
    None
}

/// For the lines containing `needle`, how many carry each value of `key`.
pub fn count_by(text: &str, needle: &str, key: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains(needle)) {
        if let Some(value) = field(line, key) {
            *counts.entry(value.to_ascii_lowercase()).or_default() += 1;
        }
    }
    counts
}

/// Lines containing `needle`.
pub fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// The runtime's lease owner id, from its "durable runtime started" line.
pub fn owner(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.contains("durable runtime started"))
        .and_then(|l| field(l, "owner"))
        .map(str::to_ascii_lowercase)
}

/// The log's "welcome email sent" lines per email: how often each email actually went out.
pub fn sends(text: &str) -> BTreeMap<String, usize> {
    count_by(text, "welcome email sent", "email")
}

#[cfg(test)]
mod tests {
    use super::{count_by, field, owner};

    const LOG: &str = "2025-01-01T00:00:00.000001Z  WARN durable_core::runtime::execute: task attempt failed; will retry task_id=0193-AA task_name=\"send_welcome_email\" attempt=1 error=simulated\n\
        2025-01-01T00:00:00.000002Z  INFO durable_core::runtime: durable runtime started owner=ab-cd backend=\"sqlite\"\n\
        2025-01-01T00:00:00.000003Z  WARN durable_core::runtime::execute: task attempt failed; will retry task_id=0193-aa attempt=2 x_task_id=zz";

    #[test]
    fn fields() {
        let first = LOG.lines().next().expect("a line");
        assert_eq!(field(first, "task_id"), Some("0193-AA"));
        assert_eq!(field(first, "task_name"), Some("send_welcome_email"));
        assert_eq!(field(first, "attempt"), Some("1"));
        assert_eq!(field(first, "missing"), None);
        assert_eq!(owner(LOG).as_deref(), Some("ab-cd"));
        let counts = count_by(LOG, "will retry", "task_id");
        assert_eq!(counts.get("0193-aa"), Some(&2));
        assert_eq!(counts.len(), 1);
    }
}
