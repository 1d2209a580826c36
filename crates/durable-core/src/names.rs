//! Task names are global: one name, one Rust type, in the whole process.
//!
//! Two types under one name decode each other's rows: `users::send_email` and
//! `billing::send_email` made by `#[task]` both store `send_email`, and whichever is
//! registered runs the other's payloads. A registry refuses a second type under a name it
//! holds; this table extends that to every registry and every enqueue of the process, so a
//! collision is an error the first time both types are used, not a wrong task run later.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

use crate::error::{Error, Result};

/// The type first seen under each name.
type Table = HashMap<&'static str, (TypeId, &'static str)>;

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Records `T` under `name` (its task name), or fails if another type holds the name.
pub(crate) fn claim<T: 'static>(name: &'static str) -> Result<()> {
    let id = TypeId::of::<T>();
    // The common case — the name is known and ours — takes only the read lock.
    if let Some(&(held, holder)) = table()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
    {
        return check::<T>(name, held, holder);
    }
    let mut table = table().write().unwrap_or_else(PoisonError::into_inner);
    let &mut (held, holder) = table
        .entry(name)
        .or_insert((id, std::any::type_name::<T>()));
    check::<T>(name, held, holder)
}

fn check<T: 'static>(name: &'static str, held: TypeId, holder: &'static str) -> Result<()> {
    if held == TypeId::of::<T>() {
        return Ok(());
    }
    Err(Error::NameCollision {
        name,
        first: holder,
        second: std::any::type_name::<T>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Task, TaskContext, TaskError};
    use serde::{Deserialize, Serialize};

    mod users {
        use super::*;
        #[derive(Serialize, Deserialize)]
        pub(super) struct SendEmail;
        impl Task for SendEmail {
            const NAME: &'static str = "names_test_send_email";
            type State = ();
            async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
                Ok(())
            }
        }
    }

    mod billing {
        use super::*;
        #[derive(Serialize, Deserialize)]
        pub(super) struct SendEmail;
        impl Task for SendEmail {
            const NAME: &'static str = "names_test_send_email";
            type State = ();
            async fn run(self, _cx: TaskContext<()>) -> Result<(), TaskError> {
                Ok(())
            }
        }
    }

    #[test]
    fn a_second_type_under_a_name_is_refused() {
        assert!(claim::<users::SendEmail>("names_test_send_email").is_ok());
        assert!(
            claim::<users::SendEmail>("names_test_send_email").is_ok(),
            "the same type again is fine"
        );
        let error = claim::<billing::SendEmail>("names_test_send_email").expect_err("collision");
        let message = error.to_string();
        assert!(
            message.contains("names_test_send_email")
                && message.contains("users::SendEmail")
                && message.contains("billing::SendEmail"),
            "{message}"
        );
    }
}
