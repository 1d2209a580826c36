//! A whole writer cycle as one script of statements with bound parameters (no JSON to parse),
//! for cycles of up to [`MAX_BOUND_ROWS`] rows and fences: the shape of each script, and the
//! number of parameters each part binds.

/// Most rows (and most fences) a cycle binds as parameters; larger cycles use [`CYCLE`](super::sql::CYCLE)
/// (JSON arrays).
pub(super) const MAX_BOUND_ROWS: usize = 512;

/// Values bound per inserted row, in [`cycle_script`]'s order: id, name, queue, payload,
/// state, priority, attempts, max_attempts, run_at, lease_owner, lease_expires_at,
/// started_at, created_at, updated_at, trace_parent.
pub(super) const ROW_PARAMS: usize = 15;

/// Values bound per fence: id, owner, attempt.
pub(super) const FENCE_PARAMS: usize = 3;

/// Rounds a count up to the bucket (a power of two) its script is written for, so a
/// handful of scripts cover every cycle; the spare slots are bound to NULL and match nothing.
pub(super) fn bucket(n: usize) -> usize {
    n.next_power_of_two()
}

/// A whole writer cycle as one multi-statement query with bound parameters (no JSON to
/// parse), built once per shape and kept for the life of the process (a few dozen shapes):
///
/// 1. `BEGIN IMMEDIATE`;
/// 2. with `fences` slots: the completion — params now, now, the `fences` ids, then the
///    `fences` (id, owner, attempt) triples — and `SELECT changes()` (one row, one column);
/// 3. with `rows` slots: the insert — [`ROW_PARAMS`] per slot, a NULL id skips the slot;
/// 4. with `claim`: the any-queue claim — params owner, lease expiry, now, now, now, task
///    names (a JSON array), limit — returning rows of nine columns;
/// 5. `COMMIT`.
///
/// Parameters are anonymous (`?`), bound in the order they appear: sqlx looks each numbered
/// parameter's name up, which SQLite answers by a linear scan — quadratic in a script with
/// hundreds of them.
pub(super) fn cycle_script(
    fences: Option<usize>,
    rows: Option<usize>,
    claim: bool,
) -> &'static str {
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use std::sync::{Mutex, OnceLock, PoisonError};

    type Scripts = HashMap<(usize, usize, bool), &'static str>;
    static SCRIPTS: OnceLock<Mutex<Scripts>> = OnceLock::new();
    let key = (fences.unwrap_or(0), rows.unwrap_or(0), claim);
    let mut scripts = SCRIPTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(script) = scripts.get(&key) {
        return script;
    }
    let slots = |n: usize, width: usize| -> String {
        let one = format!("({})", vec!["?"; width].join(", "));
        vec![one; n].join(", ")
    };
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    if let Some(n) = fences {
        let _ = write!(
            sql,
            concat!(
                complete_set!("?"),
                "state = 'processing' AND id IN ({})
  AND (id, lease_owner, attempts) IN (VALUES {});
SELECT changes();\n"
            ),
            vec!["?"; n].join(", "),
            slots(n, FENCE_PARAMS)
        );
    }
    if let Some(n) = rows {
        let _ = write!(
            sql,
            concat!(
                insert_into!(),
                "
SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL;\n"
            ),
            slots(n, ROW_PARAMS)
        );
    }
    if claim {
        sql.push_str(super::sql::BOUND_CLAIM);
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT;");
    let script: &'static str = Box::leak(sql.into_boxed_str());
    scripts.insert(key, script);
    script
}
