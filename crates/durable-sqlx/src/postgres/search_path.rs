//! The `search_path` of a store with a schema of its own: that schema, then the path the
//! connection would have had.

use super::quote_ident;

/// `schema` first, then the elements of `session` (a `search_path` value as
/// `current_setting` shows it) that do not name it.
pub(super) fn prepend(schema: &str, session: &str) -> String {
    let mut path = vec![quote_ident(schema)];
    path.extend(
        elements(session)
            .filter(|e| name_of(e) != schema)
            .map(str::to_owned),
    );
    path.join(", ")
}

/// The comma-separated elements of a `search_path` value, trimmed (commas inside double
/// quotes belong to the name).
fn elements(path: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in path.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&path[start..]);
    parts.into_iter().map(str::trim).filter(|e| !e.is_empty())
}

/// The schema name an element stands for: unquoted names fold to lower case.
fn name_of(element: &str) -> String {
    match element.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => element.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::prepend;

    #[test]
    fn the_schema_goes_in_front_of_the_session_path() {
        assert_eq!(
            prepend("durable", "\"$user\", public"),
            "\"durable\", \"$user\", public"
        );
        assert_eq!(prepend("durable", "app,public"), "\"durable\", app, public");
        assert_eq!(prepend("durable", ""), "\"durable\"");
        assert_eq!(prepend("durable", "  "), "\"durable\"");
    }

    #[test]
    fn the_schema_is_not_repeated() {
        assert_eq!(prepend("durable", "durable, public"), "\"durable\", public");
        assert_eq!(prepend("durable", "DURABLE, public"), "\"durable\", public");
        assert_eq!(
            prepend("Durable", "DURABLE, public"),
            "\"Durable\", DURABLE, public"
        );
        assert_eq!(
            prepend("a,b \"c\"", "\"a,b \"\"c\"\"\", public"),
            "\"a,b \"\"c\"\"\", public"
        );
    }
}
