//! A fresh SQLite database file.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A path for a fresh SQLite database in a temporary directory of its own; the directory
/// (database, WAL and anything else put there) is removed when this is dropped.
///
/// The file itself is not created: the store creates it on connect.
#[derive(Debug)]
pub struct SqliteFile {
    dir: TempDir,
    path: PathBuf,
}

impl SqliteFile {
    /// `tasks.db` in a new temporary directory.
    ///
    /// # Panics
    ///
    /// If the temporary directory cannot be created.
    pub fn new() -> Self {
        Self::create("durable-test", "tasks.db").expect("create a temporary directory")
    }

    /// `file_name` in a new temporary directory whose name starts with `prefix`.
    pub fn create(prefix: &str, file_name: &str) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let path = dir.path().join(file_name);
        Ok(Self { dir, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database file as a plain path string (what `SqliteStore::connect` also accepts).
    pub fn path_string(&self) -> String {
        self.path.display().to_string()
    }

    /// The database as a `sqlite://` URL.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// The temporary directory holding the file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the directory on disk (for a failed test's evidence) and returns its path.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }
}

impl Default for SqliteFile {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::SqliteFile;

    #[test]
    fn a_path_in_a_directory_removed_on_drop() {
        let file = SqliteFile::new();
        let dir = file.dir().to_path_buf();
        assert!(dir.is_dir());
        assert_eq!(file.path(), dir.join("tasks.db"));
        assert_eq!(
            file.url(),
            format!("sqlite://{}", dir.join("tasks.db").display())
        );
        drop(file);
        assert!(!dir.exists());
    }
}
