//! Identifiers: of a task (its row) and of a worker (a runtime instance).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifier of a task: a UUID v7, generated client-side so `spawn` can return it before the
/// row is written, and time-ordered so ids sort roughly by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }
    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// When the id was made, to the millisecond: for a task, when it was enqueued (the
    /// client makes the id then, on its own clock). `None` for an id that is not a UUID v7
    /// (one made elsewhere and wrapped with [`from_uuid`](Self::from_uuid)).
    ///
    /// # Examples
    ///
    /// ```
    /// use durable_core::TaskId;
    ///
    /// let before = chrono::Utc::now() - chrono::Duration::milliseconds(1);
    /// let made = TaskId::new().created_at().expect("a v7 id");
    /// assert!(made >= before && made <= chrono::Utc::now());
    /// assert_eq!(TaskId::from_uuid(uuid::Uuid::nil()).created_at(), None);
    /// ```
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        if self.0.get_version_num() != 7 {
            return None;
        }
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hyphenated lowercase: the form stored in SQLite and shown in logs.
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl From<Uuid> for TaskId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

/// Identifier of one running runtime instance: the lease owner written on the rows it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(Uuid);

impl WorkerId {
    /// A fresh random worker id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }
    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// When the id was made, to the millisecond: for a task, when it was enqueued (the
    /// client makes the id then, on its own clock). `None` for an id that is not a UUID v7
    /// (one made elsewhere and wrapped with [`from_uuid`](Self::from_uuid)).
    ///
    /// # Examples
    ///
    /// ```
    /// use durable_core::TaskId;
    ///
    /// let before = chrono::Utc::now() - chrono::Duration::milliseconds(1);
    /// let made = TaskId::new().created_at().expect("a v7 id");
    /// assert!(made >= before && made <= chrono::Utc::now());
    /// assert_eq!(TaskId::from_uuid(uuid::Uuid::nil()).created_at(), None);
    /// ```
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        if self.0.get_version_num() != 7 {
            return None;
        }
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
    }
}

impl Default for WorkerId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for WorkerId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_hyphenated_and_ordered() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert_eq!(a.to_string().len(), 36);
        assert!(a < b, "UUID v7 ids sort by creation");
        assert_eq!(a.to_string().parse::<TaskId>().ok(), Some(a));
    }
}
