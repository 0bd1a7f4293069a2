//! The PostgreSQL store, for fleets that outgrow one machine: several `onshi-server` replicas on
//! one database. The schema is `migrations/postgres`; each reader's trait has its module, and
//! every contract runs against both engines (`tests/it/engines.rs`, and the integration tests
//! with `ONSHI_TEST_ENGINE=postgres`).
//!
//! Unlike SQLite, any number of connections write at once: every write is one transaction on a
//! pooled connection, committed with `synchronous_commit` on (an answered write is on disk),
//! and rows several writers may touch are locked in a fixed order.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onshi_shared::Snapshot;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{
    AgentAuth, Clinic, FleetCounts, NewTerminal, PolicyOverrides, Readiness, StartRow, Store,
    StoreResult, StoredEvent, from_millis, millis, restore_snapshot,
};

mod alerts;
mod batch;
mod clinics;
mod desk;
mod lease;
mod outbox;
mod pages;
mod retention;
mod staff;

/// This build's schema.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The ingest batch's connections (see [`PgStore::open_with`]).
    ingest: PgPool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl PgStore {
    /// Connects and runs the migrations. Every connection commits with `synchronous_commit`
    /// on, whatever the server's default: an acknowledged report is on disk.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("onshi-server");
        Self::open_with(options).await
    }

    /// Like [`PgStore::open`], with options already parsed (a test's own schema as
    /// `search_path`, say).
    ///
    /// Besides `synchronous_commit`, every connection plans each statement for its values
    /// (`plan_cache_mode`): sqlx prepares statements, and the generic plan PostgreSQL may switch
    /// to after five executions cannot see a filter's selectivity (one request in thirty of the
    /// alerts page by prefecture took 15 s on one); and compiles nothing (`jit`): the desk's
    /// queries are short, and a JIT compile cost up to 200 ms on the clinics list.
    ///
    /// The ingest batch has connections of its own that keep PostgreSQL's plan cache: its one
    /// statement has the same shape every time, and planning it afresh for each batch cost a
    /// tenth of the throughput (ingest-bench: 32 % of the ceiling against 37 %).
    pub async fn open_with(options: PgConnectOptions) -> StoreResult<Self> {
        let options = options.options([("synchronous_commit", "on"), ("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                options
                    .clone()
                    .options([("plan_cache_mode", "force_custom_plan")]),
            )
            .await?;
        MIGRATOR.run(&pool).await?;
        let ingest = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name("onshi-server ingest"))
            .await?;
        Ok(PgStore { pool, ingest })
    }

    /// The connection pool (for the tests that check what was written).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// ` AND <column> IN (<the reach's clinics>)`; nothing for the whole fleet. The ids go as one
/// array parameter, however many there are.
pub(super) fn push_reach(
    q: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    column: &str,
    reach: &crate::domain::Reach,
) {
    if let Some(ids) = reach.ids() {
        q.push(format!(" AND {column} IN (SELECT unnest("))
            .push_bind(ids.to_vec())
            .push("::int8[]))");
    }
}

fn clinic_from(row: &PgRow) -> Result<Clinic, sqlx::Error> {
    Ok(Clinic {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
    })
}

#[async_trait]
impl Store for PgStore {
    async fn readiness(&self) -> StoreResult<Readiness> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(Readiness {
            migrations_applied: applied,
            migrations_known: MIGRATOR.iter().count() as i64,
        })
    }

    async fn clinic_by_name(&self, name: &str) -> StoreResult<Option<Clinic>> {
        let row =
            sqlx::query("SELECT id, name, email FROM clinics WHERE name = $1 ORDER BY id LIMIT 1")
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
        let mut tx = self.pool.begin().await?;
        let clinic = sqlx::query(
            "SELECT c.id, c.name, c.email FROM enrollment_codes e JOIN clinics c ON c.id = e.clinic_id \
             WHERE e.code_hash = $1 AND e.revoked_at IS NULL AND e.expires_at > $2",
        )
        .bind(code_hash)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(clinic) = clinic.as_ref().map(clinic_from).transpose()? else {
            return Ok(None);
        };
        let ids: Vec<Uuid> = terminals.iter().map(|t| t.id).collect();
        let tokens: Vec<&str> = terminals.iter().map(|t| t.token_hash.as_str()).collect();
        let hosts: Vec<&str> = terminals.iter().map(|t| t.hostname.as_str()).collect();
        let versions: Vec<&str> = terminals.iter().map(|t| t.agent_version.as_str()).collect();
        let oses: Vec<&str> = terminals.iter().map(|t| t.os.as_str()).collect();
        sqlx::query(
            "INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, \
             enrolled_at) SELECT id, $1, token_hash, hostname, agent_version, os, $2 \
             FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[]) \
             AS u(id, token_hash, hostname, agent_version, os)",
        )
        .bind(clinic.id)
        .bind(millis(now))
        .bind(&ids)
        .bind(&tokens)
        .bind(&hosts)
        .bind(&versions)
        .bind(&oses)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(clinic))
    }

    async fn agent_by_token(&self, token_hash: &str) -> StoreResult<Option<AgentAuth>> {
        let row = sqlx::query(
            "SELECT id, clinic_id, revoked_at IS NOT NULL AS revoked FROM terminals \
             WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AgentAuth {
                terminal_id: row.try_get("id")?,
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
                    terminal_id: row.try_get("id")?,
                    clinic_id: row.try_get("clinic_id")?,
                    revoked: false,
                };
                Ok((row.try_get("token_hash")?, auth))
            })
            .collect()
    }

    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM terminals WHERE revoked_at >= $1")
                .bind(millis(since))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn fleet_counts(&self, offline_before: DateTime<Utc>) -> StoreResult<FleetCounts> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS terminals, \
                    COUNT(*) FILTER (WHERE s.received_at IS NULL OR s.received_at < $1) AS offline \
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

    async fn policy_overrides(&self) -> StoreResult<PolicyOverrides> {
        let clinic_accounts = clinics::clinic_accounts(&self.pool, None).await?;
        let mut own = clinics::terminal_accounts(&self.pool, None).await?;
        let mut terminal_accounts = std::collections::HashMap::new();
        if !own.is_empty() {
            let rows = sqlx::query(
                "SELECT id, clinic_id FROM terminals WHERE revoked_at IS NULL AND id IN \
                 (SELECT terminal_id FROM account_names WHERE terminal_id IS NOT NULL)",
            )
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                let id: Uuid = r.try_get("id")?;
                if let Some(specs) = own.remove(&id) {
                    terminal_accounts.insert(id, (r.try_get("clinic_id")?, specs));
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

    fn ingest_sink(&self) -> Arc<dyn crate::ingest::BatchSink> {
        Arc::new(self.clone())
    }

    async fn latest_snapshot(&self, terminal_id: Uuid) -> StoreResult<Option<(i64, Snapshot)>> {
        let row = sqlx::query(
            "SELECT s.seq, s.collected_at, s.uptime_secs, b.body FROM latest_report s \
             JOIN terminal_snapshot b ON b.terminal_id = s.terminal_id WHERE s.terminal_id = $1",
        )
        .bind(terminal_id)
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
            "SELECT id, seq, at, kind, body FROM events WHERE terminal_id = $1 ORDER BY n LIMIT $2",
        )
        .bind(terminal_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    id: row.try_get("id")?,
                    seq: row.try_get("seq")?,
                    at: from_millis(row.try_get("at")?),
                    kind: row.try_get("kind")?,
                    body_json: row.try_get("body")?,
                })
            })
            .collect()
    }

    async fn starts(&self, terminal_id: Uuid, limit: i64) -> StoreResult<Vec<StartRow>> {
        let rows = sqlx::query(
            "SELECT started_at, kind FROM starts WHERE terminal_id = $1 \
             ORDER BY started_at DESC LIMIT $2",
        )
        .bind(terminal_id)
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

    fn alerts(&self) -> &dyn super::AlertStore {
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

    fn retention(&self) -> &dyn super::RetentionStore {
        self
    }

    fn election(&self) -> Arc<dyn crate::leader::Election> {
        Arc::new(lease::PgElection::new(self))
    }
}
