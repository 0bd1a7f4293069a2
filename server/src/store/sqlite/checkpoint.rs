//! Checkpoints on a thread of their own. Automatic checkpoints are off on every connection of
//! the store (`wal_autocheckpoint = 0`): with them on, whichever commit crossed 1,000 WAL pages
//! copied the WAL back into the database and flushed it, and that was most often an ingest
//! batch, whose agents then waited for it. Here a connection of its own runs a PASSIVE
//! checkpoint every [`EVERY`]: it copies what no reader still needs without blocking readers or
//! writers, and the next writer starts the WAL over once all of it was copied.
//!
//! Passive checkpoints copy the WAL back but never start it over: under a sustained load the
//! file grows without end (the test below saw 100 MB in a second). So a checkpoint that left
//! frames behind runs again at once, up to [`PASSES`] times, and when the WAL holds more than
//! [`WAL_PAGES_HELD`] pages, a TRUNCATE checkpoint runs while holding the store's write lock:
//! it has little left to copy (the passive ones did the bulk), and it empties the file. Ingest
//! waits for that one only, once per 64 MiB of WAL.
//!
//! Durability is unchanged: in `synchronous = NORMAL` a checkpoint flushes the WAL before it
//! copies frames and the database after, so WAL frames are only overwritten once they are in
//! the flushed database (the ingest flush argument in the store's module documentation).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::{StoreError, StoreResult};

/// Between two checkpoints. At 20,000 reports/s the WAL grows by some tens of MB a second;
/// this keeps it to a few MB.
pub(super) const EVERY: Duration = Duration::from_millis(250);

/// WAL pages (4 KiB each) before a checkpoint holds the write lock to empty it: 64 MiB.
pub(super) const WAL_PAGES_HELD: i64 = 16_384;

/// Passive checkpoints run one after the other before one holds the write lock.
const PASSES: usize = 3;

/// What the WAL file is cut back to when it starts over.
pub(super) const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// `PRAGMA wal_checkpoint(PASSIVE)`: (pages in the WAL, pages copied to the database).
fn passive(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    })
}

/// The checkpoint thread; it stops when this is dropped (with the last clone of the store).
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the thread; `writer` is the store's write lock, held for a checkpoint that has
    /// to finish.
    pub(super) fn start(
        path: &Path,
        every: Duration,
        held: i64,
        writer: super::Writer,
    ) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A reader in the middle of a long read (an export) makes the truncating checkpoint
        // give up at once, rather than hold the write lock while it waits; it is tried again
        // at the next turn.
        conn.busy_timeout(Duration::ZERO)?;
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}"
        ))?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("onshi-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(e) = checkpoint(&conn, &writer, held) {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::backend("starting the checkpoint thread", e))?;
        Ok(Checkpointer { _stop: stop })
    }
}

/// Passive checkpoints until one copies everything (or [`PASSES`] of them); when the WAL
/// holds more than `held` pages, one that truncates it, under the write lock.
fn checkpoint(conn: &Connection, writer: &super::Writer, held: i64) -> rusqlite::Result<()> {
    let mut wal = 0;
    for _ in 0..PASSES {
        let copied;
        (wal, copied) = passive(conn)?;
        if copied == wal {
            break;
        }
    }
    if wal > held {
        let _writes = writer.blocking_lock();
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        tracing::debug!(wal, busy, "WAL checkpointed and truncated under the write lock");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Arc;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions, Executor};

    use super::*;

    /// Commits one after the other, as fast as they go, for a second: the WAL stays within
    /// the bound (here 64 pages, 256 KiB) and is cut back; a reader does not stop it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_constant_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("synchronous", "NORMAL")
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", "1048576");
        let mut conn = options.connect().await.unwrap();
        conn.execute("CREATE TABLE t (b BLOB)").await.unwrap();
        let writer = super::super::Writer(Arc::new(tokio::sync::Mutex::new(conn)));
        let _checkpoints =
            Checkpointer::start(&path, Duration::from_millis(10), 64, writer.clone()).unwrap();
        let mut reader = options.connect().await.unwrap();
        let wal = dir.path().join("wal.db-wal");
        let started = std::time::Instant::now();
        let (mut largest, mut commits) = (0, 0u64);
        while started.elapsed() < Duration::from_secs(1) {
            writer
                .lock()
                .await
                .execute("INSERT INTO t VALUES (randomblob(8000))")
                .await
                .unwrap();
            commits += 1;
            if commits % 50 == 0 {
                let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
                    .fetch_one(&mut reader)
                    .await
                    .unwrap();
                largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            }
        }
        // Without checkpoints the WAL would hold every commit (8 KB each, two pages and more).
        let written = commits * 8_000;
        assert!(written > 8 << 20, "only {commits} commits: the test proves nothing");
        assert!(
            largest < 4 << 20,
            "the WAL reached {largest} bytes after {written} bytes of commits"
        );
    }
}
