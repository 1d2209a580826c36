//! The temporary SQLite file of a harness.

use std::path::PathBuf;

/// A database file path in the system's temporary directory, removed (with its WAL and
/// shared-memory files) on drop.
#[derive(Debug)]
pub(super) struct TempFile {
    path: PathBuf,
}

impl TempFile {
    pub(super) fn new() -> Self {
        let name = format!("axum-durable-test-{}.db", uuid::Uuid::new_v4().simple());
        Self {
            path: std::env::temp_dir().join(name),
        }
    }

    pub(super) fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            // Missing files are fine: SQLite removes its WAL files when it closes cleanly.
            let _ = std::fs::remove_file(path);
        }
    }
}
