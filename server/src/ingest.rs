//! Report ingest: decode and validate in the request task, then hand the flattened row to one
//! writer task that commits whole batches (group commit) and answers each request after the
//! commit. Nothing is acknowledged that is not on disk; nothing is dropped silently.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use onshi_shared::{AgentPolicy, Report, StartKind, Validate, limits};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::Error;
use crate::rules;
use crate::store::{EventRow, IngestRow, Store, snapshot_body};

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

fn start_kind_name(kind: StartKind) -> &'static str {
    match kind {
        StartKind::ColdBoot => "cold_boot",
        StartKind::FastStartup => "fast_startup",
        StartKind::Resume => "resume",
        StartKind::Unknown => "unknown",
    }
}

/// Flattens a validated report into the row the writer stores. Runs in the request task so the
/// serialisation cost is spread over all cores.
pub fn prepare(
    report: &Report,
    terminal_id: Uuid,
    policy: &AgentPolicy,
    now: DateTime<Utc>,
) -> Result<IngestRow, Error> {
    let s = &report.snapshot;
    let findings = rules::evaluate_snapshot(s, policy, now);
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
    let (snapshot_body, snapshot_hash) = snapshot_body(s)?;
    Ok(IngestRow {
        terminal_id,
        seq: i64::try_from(report.seq).unwrap_or(i64::MAX),
        received_at: now,
        collected_at: s.collected_at,
        hostname: s.hostname.clone(),
        last_start: s.uptime.last_start,
        last_start_kind: start_kind_name(s.uptime.last_start_kind),
        last_boot: s.uptime.last_boot,
        uptime_secs: i64::try_from(s.uptime.uptime_secs).unwrap_or(i64::MAX),
        cert_not_after: s.certificates.current().map(|c| c.not_after),
        problems: rules::problem_count(&findings) as i64,
        snapshot_body,
        snapshot_hash,
        write_snapshot: true,
        events,
    })
}

struct Job {
    row: IngestRow,
    done: oneshot::Sender<Result<(), Arc<Error>>>,
}

/// Counters an operator would graph.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub reports: AtomicU64,
    pub events: AtomicU64,
    pub batches: AtomicU64,
    pub failed_batches: AtomicU64,
    pub rejected: AtomicU64,
}

/// The handle request handlers use to submit rows to the writer.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    pub stats: Arc<IngestStats>,
}

/// How long a request waits for room in a full queue before answering 503.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);

impl Ingest {
    /// Starts the writer task; it stops when every `Ingest` handle is dropped and the queue is
    /// drained.
    pub async fn start(
        store: Arc<dyn Store>,
        capacity: usize,
        max_batch: usize,
    ) -> Result<(Ingest, tokio::task::JoinHandle<()>), Error> {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(IngestStats::default());
        let bodies: HashMap<Uuid, (i64, i64)> = store
            .snapshot_hashes()
            .await?
            .into_iter()
            .map(|(id, seq, hash)| (id, (seq, hash)))
            .collect();
        let handle = tokio::spawn(writer(store, rx, max_batch, bodies, stats.clone()));
        Ok((
            Ingest {
                tx,
                capacity,
                stats,
            },
            handle,
        ))
    }

    /// Reports waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// Whether agents should stretch their interval: the queue is more than half full.
    pub fn congested(&self) -> bool {
        self.queue_depth() * 2 > self.capacity
    }

    /// Queues a row and waits until it is committed. `Ok(false)` when the queue stayed full.
    pub async fn submit(&self, row: IngestRow) -> Result<bool, Error> {
        let (done, wait) = oneshot::channel();
        match tokio::time::timeout(ENQUEUE_TIMEOUT, self.tx.send(Job { row, done })).await {
            Err(_) => return Ok(false),
            Ok(Err(_)) => return Err(Error::WriterGone),
            Ok(Ok(())) => {}
        }
        match wait.await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(Error::Corrupt(format!("batch commit failed: {e}"))),
            Err(_) => Err(Error::WriterGone),
        }
    }
}

async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    // (seq, body hash) of the snapshot body last committed per terminal, so an unchanged body is
    // not sent to the database again.
    mut bodies: HashMap<Uuid, (i64, i64)>,
    stats: Arc<IngestStats>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        let mut rows: Vec<IngestRow> = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            let mut row = job.row;
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
            rows.push(row);
            replies.push(job.done);
        }
        match store.write_batch(&rows).await {
            Ok(()) => {
                let events: usize = rows.iter().map(|r| r.events.len()).sum();
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .reports
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                stats.events.fetch_add(events as u64, Ordering::Relaxed);
                tracing::debug!(reports = rows.len(), events, "batch committed");
                for reply in replies {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                // What the cache says was written was not: forget it.
                for row in &rows {
                    bodies.remove(&row.terminal_id);
                }
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, reports = rows.len(), "batch commit failed");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
    tracing::info!("ingest writer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
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

    #[test]
    fn prepare_flattens_the_report() {
        let report = onshi_shared::sample::report(9);
        let id = Uuid::now_v7();
        let row = prepare(&report, id, &AgentPolicy::default(), report.sent_at).unwrap();
        assert_eq!(row.seq, 9);
        assert_eq!(row.events.len(), 1);
        assert_eq!(row.events[0].kind, "account_changed");
        assert_eq!(row.hostname, "ONSHI-PC-01");
        assert!(row.snapshot_body.contains("ONSHI-PC-01"));
        assert_eq!(row.last_start_kind, "cold_boot");
        // the sample has no backup: one warning
        assert_eq!(row.problems, 1);
    }
}
