//! Checkpoints on a thread of their own. Automatic checkpoints are off on every connection of
//! the store (`wal_autocheckpoint = 0`): with them on, whichever commit crossed 1,000 WAL pages
//! copied the WAL back into the database and flushed it, and that was most often an ingest
//! batch, whose agents then waited for it. Here a connection of its own runs a PASSIVE
//! checkpoint every [`EVERY`]: it copies what no reader still needs without blocking readers or
//! writers, and the next writer starts the WAL over once all of it was copied.
//!
//! A passive checkpoint cannot finish while commits keep coming (it copies what was there
//! when it began), and the WAL is only started over once all of it was copied: under a
//! sustained load it would grow without end. When a passive checkpoint leaves more than
//! [`WAL_PAGES_HELD`] pages behind, a second one runs while holding the store's write lock:
//! it has only the frames since the first to copy, it completes, and the next commit starts
//! the WAL over. `journal_size_limit` then truncates the file. Ingest waits for that second,
//! short checkpoint only when the WAL has grown that far.
//!
//! Durability is unchanged: in `synchronous = NORMAL` a checkpoint flushes the WAL before it
//! copies frames and the database after, so WAL frames are only overwritten once they are in
//! the flushed database (the ingest flush argument in the store's module documentation).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::BUSY_TIMEOUT;
use crate::store::{StoreError, StoreResult};

/// Between two checkpoints. At 20,000 reports/s the WAL grows by some tens of MB a second;
/// this keeps it to a few MB.
pub(super) const EVERY: Duration = Duration::from_millis(250);

/// WAL pages (4 KiB each) a checkpoint may leave behind before the next one holds the write
/// lock to finish: 16 MiB.
pub(super) const WAL_PAGES_HELD: i64 = 4_096;

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
    pub(super) fn start(path: &Path, every: Duration, writer: super::Writer) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}"
        ))?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("onshi-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(e) = checkpoint(&conn, &writer) {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::backend("starting the checkpoint thread", e))?;
        Ok(Checkpointer { _stop: stop })
    }
}

/// One passive checkpoint, and a second under the write lock when the first left too much.
fn checkpoint(conn: &Connection, writer: &super::Writer) -> rusqlite::Result<()> {
    let (wal, copied) = passive(conn)?;
    if wal - copied > WAL_PAGES_HELD {
        let _writes = writer.blocking_lock();
        let (wal, copied) = passive(conn)?;
        tracing::debug!(wal, copied, "WAL checkpoint finished under the write lock");
    }
    Ok(())
}
