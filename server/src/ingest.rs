//! Report ingest: decode and validate in the request task, then hand the flattened row to one
//! writer (a thread of its own) that commits whole batches (group commit), makes each commit
//! durable and only then answers its requests. Nothing is acknowledged that is not on disk;
//! nothing is dropped silently.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onshi_shared::{Report, Validate, limits};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::Error;
use crate::evaluator::ChangeSignal;
use crate::metrics::Metrics;
use crate::store::{EventRow, IdMap, IngestRow, StoreResult, normalize_snapshot};

/// Where the writer puts its batches: the one write path that is not a store query, kept
/// apart so each engine can make it as fast as it can (SQLite: its own connection and an
/// explicit WAL flush; see `store::sqlite::batch`).
#[async_trait::async_trait]
pub trait BatchSink: Send + Sync + 'static {
    /// Writes a batch of reports in one transaction: latest report (highest seq wins), events
    /// (once per id) and starts. Committed, but durable only after
    /// [`BatchSink::sync_committed`].
    async fn write_batch(&self, rows: &[IngestRow]) -> StoreResult<()>;
    /// Makes every batch committed before this call durable. Blocks: the writer calls it on its
    /// own thread after each commit, before it answers the batch's requests.
    fn sync_committed(&self) -> StoreResult<()>;
    /// (terminal, seq, hash) of every stored snapshot body, to warm the writer at start-up.
    async fn snapshot_hashes(&self) -> StoreResult<Vec<(Uuid, i64, i64)>>;
    /// (terminal, hour) of every report hour recorded at or after `since`, so a restarted
    /// writer does not record them again.
    async fn report_hours_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<(Uuid, i64)>>;
}

/// Why a report was refused; each maps to one precise HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("the request body is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("unsupported Content-Encoding {0:?}; send identity or gzip")]
    Encoding(String),
    #[error("the gzip body could not be decoded: {0}")]
    BadGzip(String),
    #[error("the body is not a valid report: {0}")]
    BadJson(String),
    #[error(transparent)]
    Protocol(#[from] onshi_shared::ProtocolError),
}

/// Undoes `Content-Encoding`, refusing anything that decodes past the body limit.
pub fn decode_body(encoding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, Rejection> {
    match encoding.map(str::trim) {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::GzDecoder::new(body)
                .take(limits::MAX_BODY_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Rejection::BadGzip(e.to_string()))?;
            if out.len() > limits::MAX_BODY_BYTES {
                return Err(Rejection::TooLarge {
                    max: limits::MAX_BODY_BYTES,
                });
            }
            Ok(out)
        }
        Some(other) => Err(Rejection::Encoding(other.to_string())),
    }
}

/// Parses and validates a report body.
pub fn parse_report(body: &[u8]) -> Result<Report, Rejection> {
    let report: Report =
        serde_json::from_slice(body).map_err(|e| Rejection::BadJson(e.to_string()))?;
    report.validate()?;
    Ok(report)
}

/// Flattens a validated report into the row the writer stores. Runs in the request task so the
/// serialisation cost is spread over all cores.
pub fn prepare(report: Report, terminal_id: Uuid, now: DateTime<Utc>) -> Result<IngestRow, Error> {
    let s = &report.snapshot;
    let events = report
        .events
        .iter()
        .map(|e| {
            Ok(EventRow {
                id: e.id,
                at: e.at,
                kind: e.kind.name(),
                body_json: serde_json::to_string(e)?,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    let seq = i64::try_from(report.seq).unwrap_or(i64::MAX);
    let collected_at = s.collected_at;
    let hostname = s.hostname.clone();
    let (last_start, last_boot) = (s.uptime.last_start, s.uptime.last_boot);
    let last_start_kind = s.uptime.last_start_kind;
    let uptime_secs = i64::try_from(s.uptime.uptime_secs).unwrap_or(i64::MAX);
    let cert_not_after = s.certificates.current().map(|c| c.not_after);
    let (snapshot, snapshot_hash) = normalize_snapshot(report.snapshot);
    Ok(IngestRow {
        terminal_id,
        seq,
        received_at: now,
        collected_at,
        hostname,
        last_start,
        last_start_kind,
        last_boot,
        uptime_secs,
        cert_not_after,
        snapshot,
        snapshot_hash,
        write_snapshot: true,
        new_hour: true,
        events,
    })
}

struct Job {
    row: IngestRow,
    done: Reply,
}

/// What became of a submitted report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Committed and durable.
    Stored,
    /// Its `seq` is below the one stored for the terminal (an agent restored from an older
    /// copy of its data directory): nothing was written.
    Stale { stored_seq: i64 },
    /// The queue stayed full: nothing was written.
    Busy,
}

/// The handle request handlers use to submit rows to the writer.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    /// The process's metrics, which the writer counts its batches in.
    pub metrics: Arc<Metrics>,
}

/// How long a request waits for room in a full queue before answering 503.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);

impl Ingest {
    /// Whether the writer still takes reports (it stops only with the process, or when it
    /// failed).
    pub fn writer_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Starts the writer; it stops when every `Ingest` handle is dropped and the queue is
    /// drained, and the returned handle completes then.
    pub async fn start(
        store: Arc<dyn BatchSink>,
        capacity: usize,
        max_batch: usize,
    ) -> Result<(Ingest, tokio::task::JoinHandle<()>), Error> {
        Self::start_with_signal(store, capacity, max_batch, None, Arc::default()).await
    }

    /// Like [`Ingest::start`]; after each committed batch the writer marks the terminals whose
    /// report changed something (a new snapshot body or events) on `changes`, so the evaluator
    /// looks at them soon without running inside the writer.
    pub async fn start_with_signal(
        store: Arc<dyn BatchSink>,
        capacity: usize,
        max_batch: usize,
        changes: Option<Arc<ChangeSignal>>,
        metrics: Arc<Metrics>,
    ) -> Result<(Ingest, tokio::task::JoinHandle<()>), Error> {
        let (tx, rx) = mpsc::channel(capacity);
        let bodies: IdMap<(i64, i64)> = store
            .snapshot_hashes()
            .await?
            .into_iter()
            .map(|(id, seq, hash)| (id, (seq, hash)))
            .collect();
        let hours: IdMap<i64> = store
            .report_hours_since(chrono::Utc::now())
            .await?
            .into_iter()
            .collect();
        // The writer runs on a thread of its own: on the shared runtime a committed batch waited
        // behind the request tasks queued on the same worker before the writer could start the
        // next one, and the writer is the one serial step of ingest.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io("starting the ingest writer's runtime".into(), e))?;
        let task = writer(
            store,
            rx,
            max_batch,
            WriterCache { bodies, hours },
            metrics.clone(),
            changes,
        );
        let (stopped_tx, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("onshi-ingest".into())
            .spawn(move || {
                runtime.block_on(task);
                let _ = stopped_tx.send(());
            })
            .map_err(|e| Error::Io("starting the ingest writer's thread".into(), e))?;
        let handle = tokio::spawn(async move {
            let _ = stopped.await;
        });
        Ok((
            Ingest {
                tx,
                capacity,
                metrics,
            },
            handle,
        ))
    }

    /// Reports waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// How long a refused agent should wait, by how full the queue is: from 5 s when it has
    /// room to 60 s when it is full (the agents add their own jitter), so a fleet refused
    /// together does not come back together.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.queue_depth(), self.capacity)
    }

    /// Whether agents should stretch their interval: the queue is more than half full.
    pub fn congested(&self) -> bool {
        self.queue_depth() * 2 > self.capacity
    }

    /// Queues a row and waits until it is committed, or found stale.
    pub async fn submit(&self, row: IngestRow) -> Result<Submitted, Error> {
        let (done, wait) = oneshot::channel();
        // The usual case has room: no timer. A full queue waits, but not forever.
        match self.tx.try_send(Job { row, done }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Error::WriterGone),
            Err(mpsc::error::TrySendError::Full(job)) => {
                match tokio::time::timeout(ENQUEUE_TIMEOUT, self.tx.send(job)).await {
                    Err(_) => return Ok(Submitted::Busy),
                    Ok(Err(_)) => return Err(Error::WriterGone),
                    Ok(Ok(())) => {}
                }
            }
        }
        match wait.await {
            // The row comes back to be freed here, where it was allocated, not in the writer.
            Ok(Ok((_row, outcome))) => Ok(outcome),
            Ok(Err(e)) => Err(Error::Batch(e)),
            Err(_) => Err(Error::WriterGone),
        }
    }
}

/// 5 s with an empty queue, 60 s with a full one, in between by depth.
pub fn retry_after_secs(depth: usize, capacity: usize) -> u64 {
    let capacity = capacity.max(1) as u64;
    5 + 55 * (depth as u64).min(capacity) / capacity
}

/// Answers a request once its row is durable, handing the row back: dropping a report's parsed
/// snapshot is a few hundred frees, which belong in the request's task rather than on the
/// writer's critical path (and in the allocator arena of the thread that made them).
type Reply = oneshot::Sender<Result<(IngestRow, Submitted), Arc<Error>>>;

/// What the writer remembers between batches, warmed from the store at start-up.
struct WriterCache {
    /// (seq, body hash) of the snapshot body last committed per terminal, so an unchanged body
    /// is not sent to the database again.
    bodies: IdMap<(i64, i64)>,
    /// The hour of each terminal's last recorded report (see `IngestRow::new_hour`).
    hours: IdMap<i64>,
}

/// Commits batches and flushes each commit to disk before answering it (group commit). Reports
/// that arrive during a commit and its flush queue up and make the next batch, so the batch
/// grows with the load; the flush blocks this thread, which does nothing else.
async fn writer(
    store: Arc<dyn BatchSink>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    cache: WriterCache,
    metrics: Arc<Metrics>,
    changes: Option<Arc<ChangeSignal>>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    let WriterCache {
        mut bodies,
        mut hours,
    } = cache;
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        let mut rows: Vec<IngestRow> = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            let mut row = job.row;
            // Below the stored seq: written as it is, it would change nothing (the highest seq
            // wins), and the terminal would look stale until the agent's counter caught up.
            if let Some(&(stored_seq, _)) = bodies.get(&row.terminal_id)
                && row.seq < stored_seq
            {
                let _ = job.done.send(Ok((row, Submitted::Stale { stored_seq })));
                continue;
            }
            row.write_snapshot = match bodies.get(&row.terminal_id) {
                Some(&(seq, _)) if row.seq <= seq => false,
                Some(&(_, hash)) if hash == row.snapshot_hash => {
                    bodies.insert(row.terminal_id, (row.seq, hash));
                    false
                }
                _ => {
                    bodies.insert(row.terminal_id, (row.seq, row.snapshot_hash));
                    true
                }
            };
            let hour = crate::store::hour_of(row.received_at);
            row.new_hour = hours.insert(row.terminal_id, hour) != Some(hour);
            rows.push(row);
            replies.push(job.done);
        }
        if rows.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let written = store.write_batch(&rows).await;
        metrics.commit_seconds.record(started.elapsed());
        match written {
            Ok(()) => {
                let events: usize = rows.iter().map(|r| r.events.len()).sum();
                metrics.batch_reports.record(rows.len() as f64);
                metrics.reports_ingested.increment(rows.len() as u64);
                metrics.events_ingested.increment(events as u64);
                tracing::debug!(reports = rows.len(), events, "batch committed");
                if let Some(changes) = &changes {
                    changes.mark(
                        rows.iter()
                            .filter(|r| r.write_snapshot || !r.events.is_empty())
                            .map(|r| r.terminal_id),
                    );
                }
                let started = std::time::Instant::now();
                let flushed = store.sync_committed();
                metrics.flush_seconds.record(started.elapsed());
                match flushed {
                    Ok(()) => {
                        for (reply, row) in replies.into_iter().zip(rows) {
                            let _ = reply.send(Ok((row, Submitted::Stored)));
                        }
                    }
                    Err(e) => {
                        // Committed but maybe not durable: the agents resend, and replays are
                        // idempotent.
                        tracing::error!(error = %e, "flushing committed reports failed");
                        fail_all(replies, Arc::new(e.into()));
                    }
                }
            }
            Err(e) => {
                // What the cache says was written was not: forget it.
                for row in &rows {
                    bodies.remove(&row.terminal_id);
                    hours.remove(&row.terminal_id);
                }
                metrics.batches_failed.increment(1);
                tracing::error!(error = %e, reports = rows.len(), "batch commit failed");
                fail_all(replies, Arc::new(e.into()));
            }
        }
    }
    tracing::info!("ingest writer stopped");
}

fn fail_all(replies: Vec<Reply>, error: Arc<Error>) {
    for reply in replies {
        let _ = reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use onshi_shared::StartKind;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_bodies_decode() {
        let json = serde_json::to_vec(&onshi_shared::sample::report(1)).unwrap();
        let decoded = decode_body(Some("gzip"), &gzip(&json)).unwrap();
        assert_eq!(decoded, json);
        parse_report(&decoded).unwrap();
    }

    #[test]
    fn gzip_bombs_are_refused() {
        let zeros = vec![b' '; limits::MAX_BODY_BYTES * 4];
        assert!(matches!(
            decode_body(Some("gzip"), &gzip(&zeros)),
            Err(Rejection::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_encodings_and_bad_json_are_refused() {
        assert!(matches!(
            decode_body(Some("br"), b"x"),
            Err(Rejection::Encoding(_))
        ));
        assert!(matches!(
            decode_body(Some("gzip"), b"not gzip"),
            Err(Rejection::BadGzip(_))
        ));
        assert!(matches!(parse_report(b"{"), Err(Rejection::BadJson(_))));
    }

    mod pipeline {
        use super::*;
        use crate::store::*;
        use async_trait::async_trait;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::{Condvar, Mutex};

        /// A SQLite batch sink whose flushes wait for the test to allow them.
        struct GatedFlush {
            inner: Arc<dyn BatchSink>,
            permits: Mutex<usize>,
            opened: Condvar,
            flushes: AtomicU64,
        }

        impl GatedFlush {
            fn allow(&self, flushes: usize) {
                *self.permits.lock().unwrap() += flushes;
                self.opened.notify_all();
            }
        }

        #[async_trait]
        impl BatchSink for GatedFlush {
            fn sync_committed(&self) -> StoreResult<()> {
                let mut permits = self.permits.lock().unwrap();
                while *permits == 0 {
                    permits = self.opened.wait(permits).unwrap();
                }
                *permits -= 1;
                self.flushes.fetch_add(1, Ordering::SeqCst);
                self.inner.sync_committed()
            }
            async fn write_batch(&self, rows: &[IngestRow]) -> StoreResult<()> {
                self.inner.write_batch(rows).await
            }
            async fn snapshot_hashes(&self) -> StoreResult<Vec<(Uuid, i64, i64)>> {
                self.inner.snapshot_hashes().await
            }
            async fn report_hours_since(
                &self,
                since: DateTime<Utc>,
            ) -> StoreResult<Vec<(Uuid, i64)>> {
                self.inner.report_hours_since(since).await
            }
        }

        #[tokio::test]
        async fn no_reply_before_the_flush_and_one_commit_per_flush() {
            let dir = tempfile::tempdir().unwrap();
            let inner = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
            let now = Utc::now();
            let (_, code) = crate::store::test_support::clinic_with_code(&inner).await;
            let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
            let terminals: Vec<NewTerminal> = ids
                .iter()
                .map(|&id| NewTerminal {
                    id,
                    token_hash: id.to_string(),
                    hostname: "h".into(),
                    agent_version: "v".into(),
                    os: "o".into(),
                })
                .collect();
            inner.enroll(&code, &terminals, now).await.unwrap().unwrap();
            let store = Arc::new(GatedFlush {
                inner: inner.ingest_sink(),
                permits: Mutex::new(0),
                opened: Condvar::new(),
                flushes: AtomicU64::new(0),
            });
            let (ingest, writer) = Ingest::start(store.clone(), 16, 16).await.unwrap();
            let submit = |i: usize| {
                let row = prepare(onshi_shared::sample::report(i as u64 + 1), ids[i], now).unwrap();
                let ingest = ingest.clone();
                tokio::spawn(async move { ingest.submit(row).await })
            };
            let visible = async |i: usize| inner.latest_snapshot(ids[i]).await.unwrap().is_some();

            // Committed (visible) but not flushed: no answer yet.
            let first = submit(0);
            for _ in 0..200 {
                if visible(0).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(visible(0).await);
            // Rows that arrive while that flush is pending are held, not committed one by one:
            // they would wait for the next flush anyway.
            let later = [submit(1), submit(2)];
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!first.is_finished(), "replied before the flush");
            assert!(!visible(1).await && !visible(2).await);

            store.allow(1);
            assert_eq!(first.await.unwrap().unwrap(), Submitted::Stored);
            store.allow(1);
            for w in later {
                assert_eq!(w.await.unwrap().unwrap(), Submitted::Stored);
            }
            assert!(visible(1).await && visible(2).await);
            assert!(
                ingest
                    .metrics
                    .render()
                    .contains("onshi_ingest_batch_reports_count 2\n")
            );
            assert_eq!(store.flushes.load(Ordering::SeqCst), 2);

            // A report below the stored seq (terminal 2 is at seq 3) changes nothing and says
            // so at once, without a commit; the same seq again is a replay and is stored.
            let stale = prepare(onshi_shared::sample::report(2), ids[2], now).unwrap();
            assert_eq!(
                ingest.submit(stale).await.unwrap(),
                Submitted::Stale { stored_seq: 3 }
            );
            assert!(
                ingest
                    .metrics
                    .render()
                    .contains("onshi_ingest_batch_reports_count 2\n")
            );
            store.allow(1);
            let replay = prepare(onshi_shared::sample::report(3), ids[2], now).unwrap();
            assert_eq!(ingest.submit(replay).await.unwrap(), Submitted::Stored);
            drop(ingest);
            writer.await.unwrap();
        }
    }

    #[test]
    fn the_wait_asked_of_refused_agents_grows_with_the_queue() {
        assert_eq!(retry_after_secs(0, 16_384), 5);
        assert_eq!(retry_after_secs(8_192, 16_384), 32);
        assert_eq!(retry_after_secs(16_384, 16_384), 60);
        assert_eq!(retry_after_secs(99_999, 16_384), 60);
    }

    #[test]
    fn prepare_flattens_the_report() {
        let report = onshi_shared::sample::report(9);
        let id = Uuid::now_v7();
        let sent_at = report.sent_at;
        let row = prepare(report, id, sent_at).unwrap();
        assert_eq!(row.seq, 9);
        assert_eq!(row.events.len(), 1);
        assert_eq!(row.events[0].kind, "account_changed");
        assert_eq!(row.hostname, "ONSHI-PC-01");
        assert_eq!(row.snapshot.hostname, "ONSHI-PC-01");
        assert_eq!(row.last_start_kind, StartKind::ColdBoot);
    }
}
