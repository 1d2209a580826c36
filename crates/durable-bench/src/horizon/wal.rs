//! SQLite checkpoint progress, read from the WAL index (the `-shm` file) without taking a
//! lock or running a checkpoint: reading must not change what is measured.
//!
//! The WAL index starts with two copies of a 48-byte header (`mxFrame`, the last valid
//! frame, at byte 16) followed by the checkpoint information (`nBackfill`, the frames
//! already copied into the database, at byte 96), in the machine's byte order: see
//! "wal-index format" in SQLite's file format documentation.

use std::io::Read as _;
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

/// Reads the progress of the database at `db` (zeros when it has no WAL index, as when no
/// connection has it open).
pub(crate) fn progress(db: &Path) -> Result<Progress> {
    let mut name = db.as_os_str().to_owned();
    name.push("-shm");
    let mut file = match std::fs::File::open(Path::new(&name)) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Progress::default())
        }
        Err(error) => return Err(error.into()),
    };
    let mut head = [0u8; N_BACKFILL + 4];
    if file.read_exact(&mut head).is_err() {
        return Ok(Progress::default()); // not initialised yet
    }
    let word = |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    Ok(Progress {
        frames: word(MX_FRAME),
        backfilled: word(N_BACKFILL),
    })
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
        let written = progress(file.path()).expect("progress");
        assert!(written.frames >= 20, "{written:?}");
        assert_eq!(written.backfilled, 0, "no checkpoint ran: {written:?}");

        sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
            .expect("checkpoint");
        let copied = progress(file.path()).expect("progress");
        assert_eq!(copied.frames, written.frames);
        assert_eq!(copied.backfilled, written.frames, "{copied:?}");
        conn.close().await.expect("close");
    }
}
