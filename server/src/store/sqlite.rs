//! The embedded store: SQLite in WAL mode, through sqlx, except the ingest batch, which runs on
//! a connection of its own driven synchronously by the ingest writer's thread ([`batch`]).
//! sqlx's SQLite driver costs a round trip to its own thread per statement, so the other bulk
//! writes (enrollment, alerts) use multi-row statements rather than one statement per row.
//!
//! Durability is split from the commit: ingest commits run with `synchronous=NORMAL` (the WAL is
//! written but not flushed), and [`crate::ingest::BatchSink::sync_committed`] flushes the WAL file afterwards,
//! before the batch is answered (a flush on this virtual disk costs about 200 µs whatever it
//! covers, so it is done once per batch and never per statement). Every commit that returned
//! before a flush started is on disk when the flush returns: SQLite only rewrites WAL frames
//! after a checkpoint, and in NORMAL mode a checkpoint flushes the WAL before it copies it and
//! the database after. Writes outside the ingest batch (enrollment, clinics) flush before they
//! return.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onshi_shared::Snapshot;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{
    AgentAuth, Clinic, FleetCounts, IngestRow, NewTerminal, PolicyOverrides, StartRow, Store,
    StoreResult, StoredEvent, from_millis, millis, restore_snapshot,
};
use crate::store::StoreError;

mod alerts;
mod batch;
mod clinics;
mod desk;
mod outbox;
mod pages;
mod retention;
mod staff;

/// Rows per multi-row statement in the sqlx writes: one statement covers a typical batch (each
/// statement costs a round trip to sqlx's SQLite thread), and 100 rows × 11 columns stays far
/// below SQLite's variable limit.
pub(super) const ROWS_PER_STATEMENT: usize = 100;

/// Settings every connection of the store opens with, sqlx's and the batch writer's: commits
/// write the WAL without flushing it (see the module documentation), foreign keys are checked.
/// The database itself is put in WAL mode once, by the first sqlx connection.
pub(super) const PRAGMAS: [(&str, &str); 3] = [
    ("synchronous", "NORMAL"),
    ("foreign_keys", "ON"),
    ("temp_store", "MEMORY"),
];

/// How long a connection waits for another process's write (a command-line tool on the same
/// database); within this process, writes take turns on the writer lock instead.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// This build's schema.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    /// Readers (the dashboard, lookups).
    pool: SqlitePool,
    /// The connection every write except the ingest batch goes through. Its lock is the
    /// store's write lock: SQLite has one writer at a time anyway, and taking turns here
    /// spares both write connections SQLite's sleeping busy handler.
    writer: Writer,
    /// The ingest batch's own connection (see [`batch`]), used under the writer's lock. It
    /// does nearly all the writing, so it has the large page cache: another connection's
    /// commit makes a connection's cache start cold, which is rare for this one.
    batch: Arc<batch::BatchWriter>,
    wal: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and runs the migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::backend(format_args!("creating {}", dir.display()), e))?;
        }
        let options = PRAGMAS.into_iter().fold(
            SqliteConnectOptions::from_str("sqlite://")?
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(BUSY_TIMEOUT),
            |options, (name, value)| options.pragma(name, value),
        );
        let mut writer =
            SqliteConnection::connect_with(&options.clone().pragma("cache_size", "-32768")).await?;
        MIGRATOR.run(&mut writer).await?;
        // Local connections do not go stale: no ping before each read.
        let batch = batch::BatchWriter::open(path)?;
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.pragma("cache_size", "-32768"))
            .await?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(SqliteStore {
            pool,
            writer: Writer(Arc::new(tokio::sync::Mutex::new(writer))),
            batch: Arc::new(batch),
            wal: PathBuf::from(wal),
        })
    }

    /// Flushes the WAL file: every transaction committed before this call is durable after it.
    async fn flush_wal(&self) -> StoreResult<()> {
        let wal = self.wal.clone();
        // One trip to the blocking pool for open + flush.
        tokio::task::spawn_blocking(move || sync_file(&wal))
            .await
            .map_err(|e| StoreError::backend("flushing the WAL", e))?
    }
}

/// Flushes a file's data to disk. Opened each time: the WAL file is deleted when the last
/// connection closes and made again, so a kept handle could flush a file SQLite no longer uses.
fn sync_file(path: &Path) -> StoreResult<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_data())
        .map_err(|e| StoreError::backend(format_args!("flushing {}", path.display()), e))
}

/// The writer connection, held directly rather than in a pool: sqlx's pool pings a connection
/// when it is taken and again when it is given back, two more round trips to the SQLite thread
/// for every statement. A write future dropped halfway leaves nothing behind: sqlx queues the
/// rollback of an unfinished transaction on the connection before the next command.
#[derive(Clone)]
pub(super) struct Writer(Arc<tokio::sync::Mutex<SqliteConnection>>);

impl Writer {
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, SqliteConnection> {
        self.0.lock().await
    }
}

fn clinic_from(row: &sqlx::sqlite::SqliteRow) -> Result<Clinic, sqlx::Error> {
    Ok(Clinic {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
    })
}

/// ` AND <column> IN (<the reach's clinics>)`; nothing for the whole fleet. The ids go as one
/// JSON parameter, however many there are.
pub(super) fn push_reach(
    q: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
    column: &str,
    reach: &crate::domain::Reach,
) {
    if let Some(ids) = reach.ids_json() {
        q.push(format!(" AND {column} IN (SELECT value FROM json_each("))
            .push_bind(ids)
            .push("))");
    }
}

pub(super) fn uuid_col(row: &sqlx::sqlite::SqliteRow, col: &str) -> Result<Uuid, StoreError> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{col} {s:?}: {e}")))
}

#[async_trait]
impl Store for SqliteStore {
    async fn readiness(&self) -> StoreResult<super::Readiness> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(super::Readiness {
            migrations_applied: applied,
            migrations_known: MIGRATOR.iter().count() as i64,
        })
    }

    async fn clinic_by_name(&self, name: &str) -> StoreResult<Option<Clinic>> {
        let row =
            sqlx::query("SELECT id, name, email FROM clinics WHERE name = ? ORDER BY id LIMIT 1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(clinic_from).transpose()?)
    }

    async fn enroll(
        &self,
        code_hash: &str,
        terminals: &[NewTerminal],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Clinic>> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        let clinic = sqlx::query(
            "SELECT c.id, c.name, c.email FROM enrollment_codes e JOIN clinics c ON c.id = e.clinic_id \
             WHERE e.code_hash = ? AND e.revoked_at IS NULL AND e.expires_at > ?",
        )
        .bind(code_hash)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(clinic) = clinic.as_ref().map(clinic_from).transpose()? else {
            return Ok(None);
        };
        for chunk in terminals.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, \
                 enrolled_at) ",
            );
            q.push_values(chunk, |mut b, t| {
                b.push_bind(t.id.to_string())
                    .push_bind(clinic.id)
                    .push_bind(t.token_hash.clone())
                    .push_bind(t.hostname.clone())
                    .push_bind(t.agent_version.clone())
                    .push_bind(t.os.clone())
                    .push_bind(millis(now));
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.flush_wal().await?;
        Ok(Some(clinic))
    }

    async fn agent_by_token(&self, token_hash: &str) -> StoreResult<Option<AgentAuth>> {
        let row = sqlx::query(
            "SELECT id, clinic_id, revoked_at IS NOT NULL AS revoked FROM terminals WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AgentAuth {
                terminal_id: uuid_col(&row, "id")?,
                clinic_id: row.try_get("clinic_id")?,
                revoked: row.try_get("revoked")?,
            })
        })
        .transpose()
    }

    async fn active_tokens(&self) -> StoreResult<Vec<(String, AgentAuth)>> {
        let rows =
            sqlx::query("SELECT token_hash, id, clinic_id FROM terminals WHERE revoked_at IS NULL")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let auth = AgentAuth {
                    terminal_id: uuid_col(row, "id")?,
                    clinic_id: row.try_get("clinic_id")?,
                    revoked: false,
                };
                Ok((row.try_get("token_hash")?, auth))
            })
            .collect()
    }

    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>> {
        let rows = sqlx::query("SELECT id FROM terminals WHERE revoked_at >= ?")
            .bind(millis(since))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| uuid_col(r, "id")).collect()
    }

    async fn fleet_counts(&self, offline_before: DateTime<Utc>) -> StoreResult<FleetCounts> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS terminals, \
                    COALESCE(SUM(s.received_at IS NULL OR s.received_at < ?), 0) AS offline \
             FROM terminals t LEFT JOIN latest_report s ON s.terminal_id = t.id \
             WHERE t.revoked_at IS NULL",
        )
        .bind(millis(offline_before))
        .fetch_one(&self.pool)
        .await?;
        Ok(FleetCounts {
            terminals: row.try_get("terminals")?,
            offline: row.try_get("offline")?,
        })
    }

    fn ingest_sink(&self) -> Arc<dyn crate::ingest::BatchSink> {
        Arc::new(self.clone())
    }

    async fn policy_overrides(&self) -> StoreResult<PolicyOverrides> {
        let clinic_accounts = clinics::clinic_accounts(&self.pool, None).await?;
        let own = clinics::terminal_accounts(&self.pool, None).await?;
        let mut terminal_accounts = std::collections::HashMap::new();
        if !own.is_empty() {
            let rows = sqlx::query(
                "SELECT id, clinic_id FROM terminals WHERE revoked_at IS NULL AND id IN \
                 (SELECT terminal_id FROM account_names WHERE terminal_id IS NOT NULL)",
            )
            .fetch_all(&self.pool)
            .await?;
            let mut own = own;
            for r in &rows {
                let id: String = r.try_get("id")?;
                if let Some(specs) = own.remove(&id) {
                    terminal_accounts.insert(uuid_col(r, "id")?, (r.try_get("clinic_id")?, specs));
                }
            }
        }
        let rows = sqlx::query("SELECT clinic_id, nonce, sealed FROM backup_passwords")
            .fetch_all(&self.pool)
            .await?;
        let mut backup_passwords = Vec::with_capacity(rows.len());
        for r in &rows {
            backup_passwords.push((
                r.try_get("clinic_id")?,
                super::staff::SealedSecret {
                    nonce: r.try_get("nonce")?,
                    sealed: r.try_get("sealed")?,
                },
            ));
        }
        Ok(PolicyOverrides {
            clinic_accounts,
            terminal_accounts,
            backup_passwords,
        })
    }

    async fn latest_snapshot(&self, terminal_id: Uuid) -> StoreResult<Option<(i64, Snapshot)>> {
        let row = sqlx::query(
            "SELECT s.seq, s.collected_at, s.uptime_secs, b.body FROM latest_report s \
             JOIN terminal_snapshot b ON b.terminal_id = s.terminal_id WHERE s.terminal_id = ?",
        )
        .bind(terminal_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let body: String = r.try_get("body")?;
            let snapshot = restore_snapshot(
                &body,
                from_millis(r.try_get("collected_at")?),
                r.try_get("uptime_secs")?,
            )?;
            Ok((r.try_get("seq")?, snapshot))
        })
        .transpose()
    }

    async fn events(&self, terminal_id: Uuid, limit: i64) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT id, seq, at, kind, body FROM events WHERE terminal_id = ? ORDER BY rowid LIMIT ?",
        )
        .bind(terminal_id.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    id: uuid_col(row, "id")?,
                    seq: row.try_get("seq")?,
                    at: from_millis(row.try_get("at")?),
                    kind: row.try_get("kind")?,
                    body_json: row.try_get("body")?,
                })
            })
            .collect()
    }

    fn alerts(&self) -> &dyn super::AlertStore {
        self
    }

    fn retention(&self) -> &dyn super::RetentionStore {
        self
    }

    fn outbox(&self) -> &dyn super::OutboxStore {
        self
    }

    fn fleet(&self) -> &dyn super::FleetView {
        self
    }

    fn staff(&self) -> &dyn super::StaffStore {
        self
    }

    fn election(&self) -> Arc<dyn crate::leader::Election> {
        // One process per SQLite database: it leads.
        Arc::new(crate::leader::Sole)
    }

    async fn starts(&self, terminal_id: Uuid, limit: i64) -> StoreResult<Vec<StartRow>> {
        let rows = sqlx::query(
            "SELECT started_at, kind FROM starts WHERE terminal_id = ? \
             ORDER BY started_at DESC LIMIT ?",
        )
        .bind(terminal_id.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                Ok(StartRow {
                    started_at: from_millis(row.try_get("started_at")?),
                    kind: onshi_shared::StartKind::parse(&kind),
                })
            })
            .collect()
    }
}

#[async_trait]
impl crate::ingest::BatchSink for SqliteStore {
    async fn write_batch(&self, rows: &[IngestRow]) -> StoreResult<()> {
        // One write at a time over both connections: neither waits in SQLite's busy handler.
        let _writes = self.writer.lock().await;
        self.batch.write(rows)
    }

    fn sync_committed(&self) -> StoreResult<()> {
        sync_file(&self.wal)
    }

    async fn report_hours_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<(Uuid, i64)>> {
        let rows = sqlx::query("SELECT terminal_id, hour FROM report_hours WHERE hour >= ?")
            .bind(super::hour_of(since))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((uuid_col(r, "terminal_id")?, r.try_get("hour")?)))
            .collect()
    }

    async fn snapshot_hashes(&self) -> StoreResult<Vec<(Uuid, i64, i64)>> {
        let rows = sqlx::query("SELECT terminal_id, seq, hash FROM terminal_snapshot")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    uuid_col(r, "terminal_id")?,
                    r.try_get("seq")?,
                    r.try_get("hash")?,
                ))
            })
            .collect()
    }
}

/// What the store's unit tests start from.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use super::SqliteStore;
    use crate::desk::Desk;
    use crate::domain::Actor;

    /// A clinic and the hash of an enrollment code for it, made through the desk.
    pub async fn clinic_with_code(store: &SqliteStore) -> (i64, String) {
        let desk = Desk::for_store(Arc::new(store.clone()));
        let actor = Actor::CommandLine {
            os_user: "test".into(),
        };
        let now = chrono::Utc::now();
        let clinic = desk
            .add_clinic(&actor, "さくら内科", "sakura@example.jp", now)
            .await
            .expect("clinic");
        let code = desk.issue_code(&actor, clinic.id, now).await.expect("code");
        (clinic.id, crate::enroll::hash_code(&code))
    }
}
