//! The ingest writer's own SQLite connection, driven synchronously on the writer's thread.
//!
//! Every sqlx call is a round trip to the thread sqlx runs its SQLite connection on: the writer
//! wakes that thread, parks, and is woken again when the statement is done. For the ingest
//! batch, the one serial step of the server, those wake-ups cost as much CPU as SQLite's own
//! work. Here the batch runs on the calling thread through rusqlite (which links the same
//! `libsqlite3-sys` as sqlx), with prepared statements kept between batches, one row per
//! execution inside one transaction. Everything else (migrations, reads, every other write)
//! stays on sqlx; the store holds its writer lock around a batch, so the two connections never
//! wait on SQLite's busy handler for each other.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use uuid::Uuid;

use super::{BUSY_TIMEOUT, PRAGMAS};
use crate::store::StoreError;
use crate::store::{IngestRow, StoreResult, hour_of, latest_per_terminal, millis};

const UPSERT_STATE: &str = "INSERT INTO latest_report (terminal_id, seq, received_at, \
     collected_at, uptime_secs, hostname, last_start, last_start_kind, last_boot, cert_not_after) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (terminal_id) DO UPDATE SET seq = excluded.seq, \
     received_at = excluded.received_at, collected_at = excluded.collected_at, \
     uptime_secs = excluded.uptime_secs, hostname = excluded.hostname, \
     last_start = excluded.last_start, last_start_kind = excluded.last_start_kind, \
     last_boot = excluded.last_boot, cert_not_after = excluded.cert_not_after \
     WHERE excluded.seq > latest_report.seq";

/// A late, older report must not overwrite a newer body: compare with the state row, which
/// the statement above already brought to the newest seq.
const UPSERT_BODY: &str = "INSERT INTO terminal_snapshot (terminal_id, seq, hash, body) \
     VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (terminal_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
     body = excluded.body WHERE terminal_snapshot.hash <> excluded.hash AND excluded.seq >= \
     (SELECT seq FROM latest_report WHERE terminal_id = excluded.terminal_id)";

const INSERT_EVENT: &str = "INSERT INTO events (id, terminal_id, seq, at, received_at, kind, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (terminal_id, id) DO NOTHING";

const INSERT_HOUR: &str = "INSERT OR IGNORE INTO report_hours (terminal_id, hour) VALUES (?1, ?2)";

/// The connection ingest batches are written through.
pub(super) struct BatchWriter(Mutex<Connection>);

impl BatchWriter {
    /// Opens the database sqlx has already created and migrated, with the store's connection
    /// settings and the large page cache (it does nearly all the writing).
    pub(super) fn open(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        for (name, value) in PRAGMAS.into_iter().chain([("cache_size", "-131072")]) {
            conn.execute_batch(&format!("PRAGMA {name} = {value}"))?;
        }
        let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::backend(
                "journal mode",
                format!(
                    "{} is in journal mode {mode:?}, not WAL: the ingest writer's flush would not \
                 make its commits durable",
                    path.display()
                ),
            ));
        }
        Ok(BatchWriter(Mutex::new(conn)))
    }

    /// Writes a batch in one transaction: latest state (highest seq wins), changed bodies,
    /// events (once per id) and report hours. Blocks; the caller holds the store's writer lock.
    pub(super) fn write(&self, rows: &[IngestRow]) -> StoreResult<()> {
        // A panic inside a batch rolled its transaction back while unwinding (rusqlite's
        // `Transaction` rolls back on drop): the connection is usable.
        let mut conn = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_rows(&tx, rows)?;
        tx.commit()?;
        Ok(())
    }
}

/// The stored form of an id (hyphenated, lower case), without an allocation.
fn id_text(id: Uuid, buf: &mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &str {
    id.hyphenated().encode_lower(buf)
}

fn write_rows(conn: &Connection, rows: &[IngestRow]) -> StoreResult<()> {
    let mut id_buf = [0; uuid::fmt::Hyphenated::LENGTH];
    let latest = latest_per_terminal(rows);
    let mut state = conn.prepare_cached(UPSERT_STATE)?;
    for r in &latest {
        state.execute(params![
            id_text(r.terminal_id, &mut id_buf),
            r.seq,
            millis(r.received_at),
            millis(r.collected_at),
            r.uptime_secs,
            r.hostname,
            millis(r.last_start),
            r.last_start_kind.as_str(),
            millis(r.last_boot),
            r.cert_not_after.map(millis),
        ])?;
    }
    let mut body = conn.prepare_cached(UPSERT_BODY)?;
    for r in latest.iter().filter(|r| r.write_snapshot) {
        // Serialised here, and only for the bodies that changed.
        let json = serde_json::to_string(&r.snapshot)?;
        body.execute(params![
            id_text(r.terminal_id, &mut id_buf),
            r.seq,
            r.snapshot_hash,
            json,
        ])?;
    }
    let mut event = conn.prepare_cached(INSERT_EVENT)?;
    let mut event_id = [0; uuid::fmt::Hyphenated::LENGTH];
    for r in rows.iter().filter(|r| !r.events.is_empty()) {
        let terminal = id_text(r.terminal_id, &mut id_buf);
        for e in &r.events {
            event.execute(params![
                id_text(e.id, &mut event_id),
                terminal,
                r.seq,
                millis(e.at),
                millis(r.received_at),
                e.kind,
                e.body_json,
            ])?;
        }
    }
    let mut hour = conn.prepare_cached(INSERT_HOUR)?;
    for r in rows.iter().filter(|r| r.new_hour) {
        hour.execute(params![
            id_text(r.terminal_id, &mut id_buf),
            hour_of(r.received_at),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use onshi_shared::sample;
    use uuid::Uuid;

    use crate::ingest::{BatchSink, prepare};
    use crate::store::{NewTerminal, SqliteStore, Store};

    fn terminal(id: Uuid) -> NewTerminal {
        NewTerminal {
            id,
            token_hash: id.to_string(),
            hostname: format!("PC-{id}"),
            agent_version: "0.1.0".into(),
            os: "Windows 11".into(),
        }
    }

    /// A store with `n` enrolled terminals, and the hash of the code they enrolled with.
    async fn enrolled(n: usize) -> (tempfile::TempDir, Arc<SqliteStore>, Vec<Uuid>, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("t.db"))
                .await
                .expect("open"),
        );
        let now = Utc::now();
        let (_, code) = super::super::test_support::clinic_with_code(&store).await;
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        let terminals: Vec<NewTerminal> = ids.iter().copied().map(terminal).collect();
        store
            .enroll(&code, &terminals, now)
            .await
            .expect("enroll")
            .expect("clinic of the code");
        (dir, store, ids, code)
    }

    fn row(id: Uuid, seq: u64) -> crate::store::IngestRow {
        let mut report = sample::report(seq);
        report.agent_id = id;
        prepare(report, id, Utc::now()).expect("prepare")
    }

    /// A batch is one transaction: when one row fails (here a terminal the store does not
    /// know), nothing of the batch is stored, and the connection takes the next batch.
    #[tokio::test]
    async fn a_failed_batch_stores_nothing_and_the_next_one_succeeds() {
        let (_dir, store, ids, _) = enrolled(1).await;
        let known = ids[0];
        let failed = store
            .write_batch(&[row(known, 1), row(Uuid::now_v7(), 1)])
            .await;
        assert!(failed.is_err(), "a row for an unknown terminal was stored");
        // The known terminal's state row was written before the unknown one failed: its
        // start (recorded by a trigger on the state row) must be gone with the rest.
        assert!(store.starts(known, 10).await.expect("read").is_empty());
        assert_eq!(store.latest_snapshot(known).await.expect("read"), None);
        assert!(store.events(known, 10).await.expect("read").is_empty());

        store
            .write_batch(&[row(known, 2)])
            .await
            .expect("next batch");
        let (seq, _) = store
            .latest_snapshot(known)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(seq, 2);
        assert_eq!(store.events(known, 10).await.expect("read").len(), 1);
    }

    /// Event ids are the terminal's own: another terminal that sends the same id (a cloned
    /// disk image, a buggy agent) does not hide this one's event; a replay stores nothing.
    #[tokio::test]
    async fn event_ids_are_unique_per_terminal() {
        let (_dir, store, ids, _) = enrolled(2).await;
        let (a, mut b) = (row(ids[0], 1), row(ids[1], 1));
        b.events[0].id = a.events[0].id;
        store.write_batch(&[a.clone(), b]).await.expect("batch");
        let mut replay = a;
        replay.seq = 2;
        store.write_batch(&[replay]).await.expect("replay");
        for id in ids {
            assert_eq!(store.events(id, 10).await.expect("read").len(), 1, "{id}");
        }
    }

    /// The ingest batch and the sqlx writes use two connections. Enrollment reads, then
    /// inserts, in one transaction: without the shared write lock, a batch committed between
    /// its read and its write makes SQLite refuse the write (SQLITE_BUSY on a stale snapshot,
    /// which the busy timeout does not retry).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ingest_batches_and_other_writes_take_turns() {
        let (_dir, store, reporting, code) = enrolled(20).await;
        const BATCHES: u64 = 300;
        let batches = {
            let (store, ids) = (store.clone(), reporting.clone());
            tokio::spawn(async move {
                for seq in 1..=BATCHES {
                    let rows: Vec<_> = ids.iter().map(|&id| row(id, seq)).collect();
                    store.write_batch(&rows).await?;
                }
                Ok::<_, crate::Error>(())
            })
        };
        let mut enrolled = 0;
        while !batches.is_finished() {
            let more = [terminal(Uuid::now_v7()), terminal(Uuid::now_v7())];
            store
                .enroll(&code, &more, Utc::now())
                .await
                .expect("enrollment while batches commit")
                .expect("clinic of the code");
            enrolled += 1;
        }
        batches.await.expect("batch task").expect("batches");
        assert!(enrolled > 0, "no enrollment overlapped the batches");
        for id in &reporting {
            let (seq, _) = store
                .latest_snapshot(*id)
                .await
                .expect("read")
                .expect("stored");
            assert_eq!(seq, BATCHES as i64);
        }
    }
}
