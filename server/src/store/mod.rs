//! Persistence. Every query lives behind [`Store`], so handlers never see a dialect; SQLite is the
//! embedded default and a PostgreSQL implementation slots in beside it.

pub mod alerts;
pub mod desk;
mod error;
pub mod outbox;
mod postgres;
pub mod retention;
mod sqlite;
pub mod staff;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onshi_shared::{Snapshot, StartKind};
use uuid::Uuid;

pub use alerts::AlertStore;
pub use desk::FleetView;
pub use error::StoreError;
pub use outbox::OutboxStore;
pub use postgres::PgStore;
pub use retention::RetentionStore;
pub use sqlite::SqliteStore;
#[cfg(test)]
pub(crate) use sqlite::test_support;
pub use staff::{AUDIT_ACTIONS, Applied, BulkAction, BulkOutcome, StaffChange, StaffStore};

use crate::Error;
pub use crate::domain::Clinic;

pub type StoreResult<T> = Result<T, StoreError>;

/// Where the data lives, parsed from `--database-url` / `--data-dir`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, Error> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            Ok(DatabaseUrl::Sqlite(path.into()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_string()))
        } else {
            Err(Error::Config(format!(
                "database URL must start with sqlite:// or postgres:// (got {})",
                redact_url(url)
            )))
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => write!(f, "{}", redact_url(u)),
        }
    }
}

/// Hides the password in `scheme://user:password@host/...` (a password may itself hold `@`:
/// the URL parser finds where it ends). A URL that does not parse is not shown at all.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<a URL that does not parse>".into(),
    }
}

/// Opens the store a URL names and runs its migrations.
pub async fn connect(url: &DatabaseUrl) -> Result<Arc<dyn Store>, Error> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(PgStore::open(url).await?)),
    }
}

/// A terminal as the agent introduced itself at enrollment.
#[derive(Debug, Clone)]
pub struct NewTerminal {
    pub id: Uuid,
    pub token_hash: String,
    pub hostname: String,
    pub agent_version: String,
    pub os: String,
}

/// Who a valid agent token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentAuth {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub revoked: bool,
}

/// One validated report, flattened for the writer: all serialisation is done by the request
/// task, so the single writer only runs SQL.
#[derive(Debug, Clone)]
pub struct IngestRow {
    pub terminal_id: Uuid,
    pub seq: i64,
    pub received_at: DateTime<Utc>,
    pub collected_at: DateTime<Utc>,
    pub hostname: String,
    pub last_start: DateTime<Utc>,
    pub last_start_kind: StartKind,
    pub last_boot: DateTime<Utc>,
    pub uptime_secs: i64,
    pub cert_not_after: Option<DateTime<Utc>>,
    /// The snapshot without its per-report fields (see [`normalize_snapshot`]); serialised by
    /// the store only when `write_snapshot` says it changed.
    pub snapshot: Snapshot,
    pub snapshot_hash: i64,
    /// Whether the body differs from what the writer last stored for this terminal.
    pub write_snapshot: bool,
    /// Whether this is the terminal's first report in this hour (as far as the writer knows):
    /// the terminal page's timeline keeps one row per terminal and hour.
    pub new_hour: bool,
    pub events: Vec<EventRow>,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub body_json: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: Uuid,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub body_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRow {
    pub started_at: DateTime<Utc>,
    pub kind: StartKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetCounts {
    pub terminals: i64,
    pub offline: i64,
}

/// What makes a clinic's or a terminal's agent policy differ from the server's (see
/// [`crate::policy::PolicyBook`]).
#[derive(Debug, Clone, Default)]
pub struct PolicyOverrides {
    pub clinic_accounts: std::collections::HashMap<i64, Vec<onshi_shared::AccountSpec>>,
    /// Terminal → (its clinic, its own names).
    pub terminal_accounts: std::collections::HashMap<Uuid, (i64, Vec<onshi_shared::AccountSpec>)>,
    pub backup_passwords: Vec<(i64, staff::SealedSecret)>,
}

/// What `/readyz` learns of the database: it answered, and how many of this build's
/// migrations it has applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub migrations_applied: i64,
    pub migrations_known: i64,
}

/// Every query the server runs. One implementation per SQL dialect.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Asks the database (a cheap query) how many of this build's migrations it has applied.
    async fn readiness(&self) -> StoreResult<Readiness>;
    async fn clinic_by_name(&self, name: &str) -> StoreResult<Option<Clinic>>;
    /// Enrolls terminals with a code, atomically (an installer pre-provisioning a batch of PCs
    /// enrolls many at once). `None` when the code is unknown, revoked or expired.
    async fn enroll(
        &self,
        code_hash: &str,
        terminals: &[NewTerminal],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Clinic>>;
    async fn agent_by_token(&self, token_hash: &str) -> StoreResult<Option<AgentAuth>>;
    /// Every token hash that is not revoked, to warm the token cache at start-up.
    async fn active_tokens(&self) -> StoreResult<Vec<(String, AgentAuth)>>;
    /// Terminals revoked at or after `since` (by any process sharing the database).
    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>>;
    async fn fleet_counts(&self, offline_before: DateTime<Utc>) -> StoreResult<FleetCounts>;
    /// The account names and backup passwords that make agents' policies differ.
    async fn policy_overrides(&self) -> StoreResult<PolicyOverrides>;
    /// The ingest writer's way into this store.
    fn ingest_sink(&self) -> Arc<dyn crate::ingest::BatchSink>;
    /// The latest snapshot and its seq.
    async fn latest_snapshot(&self, terminal_id: Uuid) -> StoreResult<Option<(i64, Snapshot)>>;
    /// Events of one terminal in the order they were stored.
    async fn events(&self, terminal_id: Uuid, limit: i64) -> StoreResult<Vec<StoredEvent>>;
    async fn starts(&self, terminal_id: Uuid, limit: i64) -> StoreResult<Vec<StartRow>>;
    /// What the evaluator reads and writes: its inputs, alerts with their history, silences.
    fn alerts(&self) -> &dyn AlertStore;
    /// The mail queue: queued, claimed, settled, and read by the desk.
    fn outbox(&self) -> &dyn OutboxStore;
    /// The support desk's pages: overview, terminals, clinics, alerts, exports.
    fn fleet(&self) -> &dyn FleetView;
    /// Staff: users, sessions, the audit log, and every change staff make with its audit
    /// entry.
    fn staff(&self) -> &dyn StaffStore;
    /// Deleting old history.
    fn retention(&self) -> &dyn RetentionStore;
    /// How the processes sharing this store choose the one that runs the evaluator, the mail
    /// sender and retention.
    fn election(&self) -> Arc<dyn crate::leader::Election>;
}

/// The start of the UTC hour `t` falls in, in Unix ms.
pub fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis().div_euclid(3_600_000) * 3_600_000
}

/// The stored form of a snapshot: the fields that change on every report (collection time,
/// uptime, probe latency) are blanked so that an unchanged terminal's body hashes the same and is
/// not rewritten; `latest_report` keeps the per-report values and [`restore_snapshot`] puts
/// them back.
///
/// The hash is taken over the parsed value (no serialisation on the request path); the body is
/// serialised only when it changed. It is stored, so its algorithm is fixed: SipHash-1-3 with
/// zero keys (the `siphasher` crate, whose output is stable across releases) over the byte
/// stream of the protocol types' derived `Hash`, integers in little-endian order. Rust's
/// `DefaultHasher` gives the same values today (so stored hashes carried over) but promises
/// nothing across releases. Should the stream
/// ever change (a new field, another chrono), every body is written once more and parsed once
/// more; `the_body_hash_is_pinned` says so before it ships.
pub fn normalize_snapshot(mut body: Snapshot) -> (Snapshot, i64) {
    use std::hash::{Hash, Hasher};
    body.collected_at = DateTime::UNIX_EPOCH;
    body.uptime.uptime_secs = 0;
    for p in &mut body.network.probes {
        p.latency_ms = None;
    }
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0, 0);
    body.hash(&mut h);
    let hash = h.finish() as i64;
    (body, hash)
}

/// Parses a stored body and puts back the per-report fields.
pub fn restore_snapshot(
    body: &str,
    collected_at: DateTime<Utc>,
    uptime_secs: i64,
) -> StoreResult<Snapshot> {
    let mut s: Snapshot = serde_json::from_str(body)?;
    s.collected_at = collected_at;
    s.uptime.uptime_secs = u64::try_from(uptime_secs).unwrap_or(0);
    Ok(s)
}

/// Maps keyed by terminal id on the ingest path: the ids are the server's own (a report's id
/// is checked against its token first), so a fast hash with a per-process seed is enough.
pub(crate) type IdMap<V> = std::collections::HashMap<Uuid, V, foldhash::fast::RandomState>;

/// The highest-seq row per terminal, in first-seen order: a batch writes each terminal's state
/// and body once, from its newest report (a multi-row upsert in PostgreSQL may not touch the
/// same row twice).
pub(crate) fn latest_per_terminal(rows: &[IngestRow]) -> Vec<&IngestRow> {
    let mut index: IdMap<usize> = IdMap::default();
    let mut out: Vec<&IngestRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.terminal_id) {
            Some(&i) if out[i].seq >= row.seq => {}
            Some(&i) => out[i] = row,
            None => {
                index.insert(row.terminal_id, out.len());
                out.push(row);
            }
        }
    }
    out
}

/// `%text%` for `LIKE … ESCAPE '\\'`, with the text's own `\\`, `%` and `_` escaped.
pub(crate) fn like_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Changed with the protocol's `accounts.policy_key` and `pending_reboot.markers`: every
    // stored body is written once more after that upgrade.
    const PINNED_SAMPLE_HASH: i64 = 2_968_740_948_992_073_550;

    #[test]
    fn snapshot_bodies_ignore_per_report_fields() {
        let a = onshi_shared::sample::snapshot();
        let mut b = a.clone();
        b.collected_at += chrono::Duration::minutes(1);
        b.uptime.uptime_secs += 60;
        let (body_a, hash_a) = normalize_snapshot(a.clone());
        let (_, hash_b) = normalize_snapshot(b.clone());
        assert_eq!(hash_a, hash_b);
        b.hostname = "OTHER".into();
        assert_ne!(hash_a, normalize_snapshot(b).1);
        let json = serde_json::to_string(&body_a).unwrap();
        let restored = restore_snapshot(&json, a.collected_at, 5 * 3600).unwrap();
        assert_eq!(restored, a);
    }

    #[test]
    fn the_body_hash_is_pinned() {
        let (_, hash) = normalize_snapshot(onshi_shared::sample::snapshot());
        // Changing this value means every stored body is rewritten once after the upgrade:
        // say so in the release notes.
        assert_eq!(
            hash, PINNED_SAMPLE_HASH,
            "the stored body hash of the sample changed"
        );
    }

    #[test]
    fn urls_parse_and_redact() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        let pg = DatabaseUrl::parse("postgres://onshi:hunter2@127.0.0.1/onshi").unwrap();
        assert!(!format!("{pg:?}").contains("hunter2"));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        let at_in_password = redact_url("postgres://onshi:p@ss@word@127.0.0.1:5432/onshi");
        assert_eq!(at_in_password, "postgres://onshi:***@127.0.0.1:5432/onshi");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert!(!redact_url("postgres://u:secret@[bad").contains("secret"));
    }
}
