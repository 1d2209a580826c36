//! The `last_error` texts the stores' sweeps and requeues write, as SQL expressions both
//! backends share (`||` concatenates text and integers in SQLite and PostgreSQL alike), so the
//! two stores say the same thing about the same event. Each macro takes the column prefix of
//! its statement (`""`, or `"t."` for an aliased table).

/// A lease expired during an attempt that was not the task's last: rescued, counted.
macro_rules! lease_expired {
    ($p:literal) => {
        concat!(
            "'lease expired during attempt ' || ",
            $p,
            "attempts || ' (worker stopped heart-beating)'"
        )
    };
}

/// A lease expired during a task's last attempt, which had started: dead.
macro_rules! lease_expired_last {
    ($p:literal) => {
        concat!(
            "'lease expired during attempt ' || ",
            $p,
            "attempts || ' of ' || ",
            $p,
            "max_attempts || ' (worker stopped heart-beating); no attempts left'
                || coalesce('; previous error: ' || ",
            $p,
            "last_error, '')"
        )
    };
}

/// A lease expired on a task's last attempt before it started: handed back, not counted.
macro_rules! lease_expired_unstarted {
    ($p:literal) => {
        concat!(
            "'lease expired on attempt ' || ",
            $p,
            "attempts || ' of ' || ",
            $p,
            "max_attempts || ', which never started (its worker stopped before running it); \
             the attempt is not counted'"
        )
    };
}

/// A shutdown requeue past the limit (`$limit`, a bound parameter): the attempt counted.
macro_rules! requeue_counted {
    ($p:literal, $limit:literal) => {
        concat!(
            "'stopped by shutdown ' || (",
            $p,
            "requeues + 1) || ' times; past ' || ",
            $limit,
            " || ' requeues an interrupted attempt counts (attempt ' || ",
            $p,
            "attempts || ' of ' || ",
            $p,
            "max_attempts || ')'"
        )
    };
}

/// A shutdown requeue past the limit, of the task's last attempt: dead.
macro_rules! requeue_dead {
    ($p:literal, $limit:literal) => {
        concat!(
            "'stopped by shutdown ' || (",
            $p,
            "requeues + 1) || ' times; past ' || ",
            $limit,
            " || ' requeues an interrupted attempt counts, and attempt ' || ",
            $p,
            "attempts || ' of ' || ",
            $p,
            "max_attempts || ' was the last: no attempts left'"
        )
    };
}

/// The `last_error` of a claimed row the store cannot read (failed without running). Only
/// SQLite fails such a row on its own; on PostgreSQL's typed columns no single row can be
/// unreadable (see the PostgreSQL claim).
#[cfg(feature = "sqlite")]
pub(crate) fn unreadable_row(reason: &dyn std::fmt::Display) -> String {
    format!("cannot read the stored task row ({reason}); failed without running")
}
