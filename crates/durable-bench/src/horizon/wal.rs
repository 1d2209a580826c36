//! SQLite checkpoint progress, read from the WAL index (the `-shm` file) without taking a
//! lock or running a checkpoint: reading must not change what is measured.
//!
//! The WAL index starts with two copies of a 48-byte header (`mxFrame`, the last valid
//! frame, at byte 16) followed by the checkpoint information (`nBackfill`, the frames
//! already copied into the database, at byte 96), in the machine's byte order: see
//! "wal-index format" in SQLite's file format documentation.

use std::os::unix::fs::FileExt as _;
use std::path::Path;

use crate::Result;

/// Byte offset of `mxFrame` in the first header copy.
const MX_FRAME: usize = 16;
/// Byte offset of `nBackfill` in the checkpoint information.
const N_BACKFILL: usize = 96;

/// How far checkpoints have got through the WAL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Frames in the WAL since it last restarted.
    pub(crate) frames: u32,
    /// Frames of them already copied into the database file. Frames past this stay in the
    /// WAL; while a reader's snapshot needs them, no checkpoint can pass it and the WAL
    /// cannot restart, so it grows.
    pub(crate) backfilled: u32,
}

/// The WAL index of one database, open for as long as the run's sessions may hold locks.
///
/// SQLite's locks on the WAL index are POSIX record locks, and closing *any* descriptor of a
/// file drops every such lock the process holds on it: opening and closing the `-shm` file
/// at each sample would silently release the read lock of the parent's reader sessions (and
/// let other processes checkpoint and restart the WAL under them). So the file is opened
/// once and closed only when no session of the process is left.
#[derive(Debug)]
pub(crate) struct Shm {
    file: Option<std::fs::File>,
    path: std::path::PathBuf,
}

impl Shm {
    /// The WAL index of the database at `db` (opened at the first read that finds it).
    pub(crate) fn new(db: &Path) -> Self {
        let mut name = db.as_os_str().to_owned();
        name.push("-shm");
        Self {
            file: None,
            path: name.into(),
        }
    }

    /// The progress now (zeros before the WAL index exists or is initialised).
    pub(crate) fn progress(&mut self) -> Result<Progress> {
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Progress::default())
                }
                Err(error) => return Err(error.into()),
            }
        }
        let Some(file) = &self.file else {
            return Ok(Progress::default());
        };
        let mut head = [0u8; N_BACKFILL + 4];
        if file.read_exact_at(&mut head, 0).is_err() {
            return Ok(Progress::default()); // not initialised yet
        }
        let word =
            |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        Ok(Progress {
            frames: word(MX_FRAME),
            backfilled: word(N_BACKFILL),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions, Connection};

    use super::*;

    #[tokio::test]
    async fn follows_the_wal_and_its_checkpoints() {
        let file = durable_testkit::SqliteFile::create("durable-bench-wal", "wal.db")
            .expect("temporary file");
        let mut conn = SqliteConnectOptions::from_str(&file.url())
            .expect("url")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0")
            .connect()
            .await
            .expect("open");
        sqlx::raw_sql("CREATE TABLE t (v TEXT)")
            .execute(&mut conn)
            .await
            .expect("create");
        for _ in 0..20 {
            sqlx::query("INSERT INTO t VALUES (?)")
                .bind("x".repeat(2000))
                .execute(&mut conn)
                .await
                .expect("insert");
        }
        let mut shm = Shm::new(file.path());
        let written = shm.progress().expect("progress");
        assert!(written.frames >= 20, "{written:?}");
        assert_eq!(written.backfilled, 0, "no checkpoint ran: {written:?}");

        sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
            .expect("checkpoint");
        let copied = shm.progress().expect("progress");
        assert_eq!(copied.frames, written.frames);
        assert_eq!(copied.backfilled, written.frames, "{copied:?}");
        conn.close().await.expect("close");
    }
}
