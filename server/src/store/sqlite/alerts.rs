//! [`AlertStore`] for SQLite. Every write goes through the one writer connection and is flushed
//! before it returns, like the other writes outside the ingest batch.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use onshi_shared::{AccountRole, AccountSpec};
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{ROWS_PER_STATEMENT, SqliteStore, clinics, uuid_col};
use crate::domain::{
    AUTO_ACTOR, Alert, AlertAction, AlertStatus, ClinicSettings, DailyWindow, ExpectedVersionRow,
    HistoryEntry, NewMail, RuleKey, Severity, Silence, SilenceScope, VersionSource,
};
use crate::rules::{AccountRecord, AuditEntry, BaselineWrite};
use crate::store::StoreError;
use crate::store::alerts::*;
pub(super) use crate::store::alerts::{minute_of, roles_of, roles_text, time_of};
use crate::store::{StoreResult, from_millis, millis};

/// Events the rules read; the rest stay out of the evaluator's memory.
const RULE_EVENT_KINDS: &str = "('account_changed', 'network_changed', 'cert_changed')";

pub(super) const ALERT_COLUMNS: &str = "id, terminal_id, clinic_id, rule, severity, status, detail, occurrence, \
     opened_at, updated_at, clear_since, ack_by, ack_note, ack_until, resolved_at, resolved_by, \
     mail_held";

pub(super) fn opt_time(row: &SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_millis))
}

pub(super) fn alert_from(row: &SqliteRow) -> Result<Alert, StoreError> {
    let severity: String = row.try_get("severity")?;
    let status: String = row.try_get("status")?;
    let rule: String = row.try_get("rule")?;
    Ok(Alert {
        id: row.try_get("id")?,
        terminal_id: uuid_col(row, "terminal_id")?,
        clinic_id: row.try_get("clinic_id")?,
        rule: RuleKey::parse(&rule)
            .ok_or_else(|| StoreError::Corrupt(format!("alert rule {rule:?}")))?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| StoreError::Corrupt(format!("alert severity {severity:?}")))?,
        status: AlertStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("alert status {status:?}")))?,
        detail: row.try_get("detail")?,
        occurrence: row.try_get("occurrence")?,
        opened_at: from_millis(row.try_get("opened_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        clear_since: opt_time(row, "clear_since")?,
        ack_by: row.try_get("ack_by")?,
        ack_note: row.try_get("ack_note")?,
        ack_until: opt_time(row, "ack_until")?,
        resolved_at: opt_time(row, "resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
        mail_held: row.try_get("mail_held")?,
    })
}

/// A key as SQLite stores it (the same 64 bits, signed).
pub(super) fn key_col(key: u64) -> i64 {
    key as i64
}

fn key_of(col: Option<i64>) -> Option<u64> {
    col.map(|k| k as u64)
}

fn silence_from(r: &SqliteRow) -> Result<Silence, StoreError> {
    let id: i64 = r.try_get("id")?;
    let terminal: Option<String> = r.try_get("terminal_id")?;
    let clinic: Option<i64> = r.try_get("clinic_id")?;
    let prefecture: Option<String> = r.try_get("prefecture")?;
    let scope = match (terminal, clinic, prefecture) {
        (Some(t), _, _) => SilenceScope::Terminal(
            Uuid::parse_str(&t).map_err(|e| StoreError::Corrupt(format!("silence {id}: {e}")))?,
        ),
        (None, Some(c), _) => SilenceScope::Clinic(c),
        (None, None, Some(p)) => SilenceScope::Prefecture(p),
        (None, None, None) => SilenceScope::Fleet,
    };
    let rule: Option<String> = r.try_get("rule")?;
    let rule = rule
        .map(|k| {
            RuleKey::parse(&k).ok_or_else(|| StoreError::Corrupt(format!("silence rule {k:?}")))
        })
        .transpose()?;
    let from: Option<i64> = r.try_get("daily_from")?;
    let to: Option<i64> = r.try_get("daily_to")?;
    let weekdays: Option<i64> = r.try_get("weekdays")?;
    let daily = match (from, to) {
        (Some(from), Some(to)) => Some(DailyWindow {
            from: time_of(from),
            to: time_of(to),
            weekdays: weekdays.map_or(0x7f, |w| (w & 0x7f) as u8),
        }),
        _ => None,
    };
    Ok(Silence {
        id,
        scope,
        rule,
        starts_at: from_millis(r.try_get("starts_at")?),
        ends_at: from_millis(r.try_get("ends_at")?),
        daily,
        reason: r.try_get("reason")?,
        created_by: r.try_get("created_by")?,
        ended_by: r.try_get("ended_by")?,
    })
}

pub(super) const SILENCE_COLUMNS: &str = "id, terminal_id, clinic_id, prefecture, fleet, rule, \
     starts_at, ends_at, daily_from, daily_to, weekdays, reason, created_by, ended_by";

pub(super) fn silences_from(rows: &[SqliteRow]) -> Result<Vec<Silence>, StoreError> {
    rows.iter().map(silence_from).collect()
}

fn push_ids(q: &mut QueryBuilder<Sqlite>, ids: &[Uuid]) {
    q.push("(");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id.to_string());
    }
    list.push_unseparated(")");
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn clinic_settings(&self, closures_from: NaiveDate) -> StoreResult<Vec<ClinicSettings>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM clinics ORDER BY id",
            clinics::SETTINGS_COLUMNS
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut closures = clinics::closures(&self.pool, None, Some(closures_from)).await?;
        let mut accounts = clinics::clinic_accounts(&self.pool, None).await?;
        let mut weeks = clinics::Weeks::default();
        rows.iter()
            .map(|r| {
                let c = clinics::settings_from(r, &mut weeks)?;
                Ok(clinics::complete(c, &mut closures, &mut accounts))
            })
            .collect()
    }

    async fn clinics_version(&self) -> StoreResult<(i64, i64)> {
        let row = sqlx::query("SELECT coalesce(sum(settings_version), 0), count(*) FROM clinics")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    async fn terminal_heads(
        &self,
        selection: InputSelection<'_>,
    ) -> StoreResult<Vec<TerminalHead>> {
        // Read by position: at 250,000 terminals a lookup by name per column is measurable.
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT t.id, t.clinic_id, t.enrolled_at, s.received_at, s.collected_at, b.hash, \
             t.accounts_version \
             FROM terminals t \
             LEFT JOIN latest_report s ON s.terminal_id = t.id \
             LEFT JOIN terminal_snapshot b INDEXED BY terminal_snapshot_hash \
               ON b.terminal_id = t.id \
             WHERE t.revoked_at IS NULL ",
        );
        match selection {
            InputSelection::Page { after, limit } => {
                if let Some(after) = after {
                    q.push("AND t.id > ").push_bind(after.to_string());
                }
                q.push(" ORDER BY t.id LIMIT ").push_bind(limit);
            }
            InputSelection::Ids(ids) => {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                q.push("AND t.id IN ");
                push_ids(&mut q, ids);
                q.push(" ORDER BY t.id");
            }
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut heads = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: &str = r.try_get(0)?;
            let terminal_id = Uuid::parse_str(id)
                .map_err(|e| StoreError::Corrupt(format!("terminal id {id:?}: {e}")))?;
            let collected: Option<i64> = r.try_get(4)?;
            let hash: Option<i64> = r.try_get(5)?;
            heads.push(TerminalHead {
                terminal_id,
                clinic_id: r.try_get(1)?,
                enrolled_at: from_millis(r.try_get(2)?),
                last_seen: r.try_get::<Option<i64>, _>(3)?.map(from_millis),
                body: collected.zip(hash).map(|(c, h)| (from_millis(c), h)),
                accounts_version: r.try_get(6)?,
            });
        }
        Ok(heads)
    }

    async fn account_records(&self, ids: &[Uuid]) -> StoreResult<Vec<(Uuid, AccountRecord)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT id, accounts_version, baseline_key, baseline_at, baseline_missing, \
                 accounts_confirmed_at IS NOT NULL, accounts_confirmed_key FROM terminals \
                 WHERE id IN ",
            );
            push_ids(&mut q, chunk);
            for r in q.build().fetch_all(&self.pool).await? {
                let record = AccountRecord {
                    baseline_key: key_of(r.try_get(2)?),
                    baseline_at: r.try_get::<Option<i64>, _>(3)?.map(from_millis),
                    baseline_missing: roles_of(r.try_get::<&str, _>(4)?),
                    confirmed: r.try_get(5)?,
                    confirmed_key: key_of(r.try_get(6)?),
                    version: r.try_get(1)?,
                };
                out.push((uuid_col(&r, "id")?, record));
            }
        }
        Ok(out)
    }

    async fn snapshot_bodies(&self, ids: &[Uuid]) -> StoreResult<Vec<(Uuid, i64, String)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT terminal_id, hash, body FROM terminal_snapshot WHERE terminal_id IN ",
            );
            push_ids(&mut q, chunk);
            for r in q.build().fetch_all(&self.pool).await? {
                out.push((
                    uuid_col(&r, "terminal_id")?,
                    r.try_get::<i64, _>(1)?,
                    r.try_get::<String, _>(2)?,
                ));
            }
        }
        Ok(out)
    }

    async fn rule_extras(
        &self,
        span: TerminalSpan<'_>,
        events_since: DateTime<Utc>,
    ) -> StoreResult<RuleExtras> {
        let range = |q: &mut QueryBuilder<Sqlite>| match span {
            TerminalSpan::Between(first, last) => {
                q.push("terminal_id BETWEEN ")
                    .push_bind(first.to_string())
                    .push(" AND ")
                    .push_bind(last.to_string());
            }
            TerminalSpan::Ids(ids) => {
                q.push("terminal_id IN ");
                push_ids(q, ids);
            }
        };
        if let TerminalSpan::Ids([]) = span {
            return Ok(RuleExtras::default());
        }
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT terminal_id, role, name FROM account_names WHERE ");
        range(&mut q);
        let mut own: HashMap<Uuid, Vec<AccountSpec>> = HashMap::new();
        for r in q.build().fetch_all(&self.pool).await? {
            let role: String = r.try_get("role")?;
            let Some(role) = AccountRole::parse(&role) else {
                return Err(StoreError::Corrupt(format!("account role {role:?}")));
            };
            own.entry(uuid_col(&r, "terminal_id")?)
                .or_default()
                .push(AccountSpec {
                    role,
                    name: r.try_get("name")?,
                });
        }
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT terminal_id, body FROM events WHERE ");
        range(&mut q);
        q.push(" AND at >= ")
            .push_bind(millis(events_since))
            .push(" AND kind IN ")
            .push(RULE_EVENT_KINDS)
            .push(" ORDER BY terminal_id, at");
        let mut events = Vec::new();
        for r in q.build().fetch_all(&self.pool).await? {
            let body: &str = r.try_get("body")?;
            events.push((uuid_col(&r, "terminal_id")?, serde_json::from_str(body)?));
        }
        Ok(RuleExtras {
            own_accounts: own.into_iter().collect(),
            events,
        })
    }

    async fn expected_versions(&self) -> StoreResult<Vec<ExpectedVersionRow>> {
        let rows = sqlx::query("SELECT app, source, version, since FROM expected_versions")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ExpectedVersionRow {
                    app: r.try_get("app")?,
                    source: {
                        let source: String = r.try_get("source")?;
                        VersionSource::parse(&source).ok_or_else(|| {
                            StoreError::Corrupt(format!("version source {source:?}"))
                        })?
                    },
                    version: r.try_get("version")?,
                    since: from_millis(r.try_get("since")?),
                })
            })
            .collect()
    }

    async fn set_fleet_version(
        &self,
        app: &str,
        version: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO expected_versions (app, source, version, since, set_by) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (app, source) DO UPDATE SET \
             version = excluded.version, since = excluded.since, set_by = excluded.set_by \
             WHERE expected_versions.version <> excluded.version",
        )
        .bind(app)
        .bind(VersionSource::Fleet.as_str())
        .bind(version)
        .bind(millis(since))
        .bind(VersionSource::Fleet.as_str())
        .execute(&mut *self.writer.lock().await)
        .await?;
        self.flush_wal().await
    }

    async fn active_alerts(&self, terminals: Option<&[Uuid]>) -> StoreResult<Vec<Alert>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE (status <> 'resolved' OR \
             (occurrence IS NOT NULL AND resolved_by <> '{AUTO_ACTOR}'))"
        ));
        if let Some(ids) = terminals {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND terminal_id IN ");
            push_ids(&mut q, ids);
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(alert_from).collect()
    }

    async fn history_mark(&self) -> StoreResult<i64> {
        let mark: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM alert_history")
            .fetch_one(&self.pool)
            .await?;
        Ok(mark.unwrap_or(0))
    }

    async fn history_heads(&self, ranges: &[(i64, i64)]) -> StoreResult<Vec<HistoryHead>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT id, alert_id, actor <> '{AUTO_ACTOR}' FROM alert_history WHERE "
        ));
        for (i, &(lo, hi)) in ranges.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push("id BETWEEN ")
                .push_bind(lo)
                .push(" AND ")
                .push_bind(hi);
        }
        q.push(" ORDER BY id");
        let rows: Vec<(i64, i64, bool)> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(id, alert_id, by_staff)| HistoryHead {
                id,
                alert_id,
                by_staff,
            })
            .collect())
    }

    async fn alerts_by_id(&self, ids: &[i64]) -> StoreResult<Vec<Alert>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id IN ("));
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            list.push_unseparated(")");
            for row in q.build().fetch_all(&self.pool).await? {
                out.push(alert_from(&row)?);
            }
        }
        Ok(out)
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<Alert>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(alert_from).transpose()
    }

    async fn apply_alert_changes(
        &self,
        changes: &[AlertChange],
        audit: &[AuditEntry],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if changes.is_empty() && audit.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        for chunk in changes.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, \
                 occurrence, opened_at, updated_at, clear_since, ack_by, ack_note, ack_until, \
                 resolved_at, resolved_by, mail_held) ",
            );
            q.push_values(chunk, |mut b, c| {
                let a = &c.alert;
                b.push_bind(a.terminal_id.to_string())
                    .push_bind(a.clinic_id)
                    .push_bind(a.rule.as_str())
                    .push_bind(a.severity.as_str())
                    .push_bind(a.status.as_str())
                    .push_bind(a.detail.clone())
                    .push_bind(a.occurrence.clone())
                    .push_bind(millis(a.opened_at))
                    .push_bind(millis(a.updated_at))
                    .push_bind(a.clear_since.map(millis))
                    .push_bind(a.ack_by.clone())
                    .push_bind(a.ack_note.clone())
                    .push_bind(a.ack_until.map(millis))
                    .push_bind(a.resolved_at.map(millis))
                    .push_bind(a.resolved_by.clone())
                    .push_bind(a.mail_held);
            });
            q.push(
                " ON CONFLICT (terminal_id, rule) DO UPDATE SET clinic_id = excluded.clinic_id, \
                 severity = excluded.severity, status = excluded.status, detail = excluded.detail, \
                 occurrence = excluded.occurrence, updated_at = excluded.updated_at, \
                 clear_since = excluded.clear_since, ack_by = excluded.ack_by, \
                 ack_note = excluded.ack_note, ack_until = excluded.ack_until, \
                 resolved_at = excluded.resolved_at, resolved_by = excluded.resolved_by, \
                 mail_held = excluded.mail_held, times_opened = alerts.times_opened + (excluded.opened_at <> alerts.opened_at), \
                 opened_at = excluded.opened_at \
                 RETURNING id, terminal_id, rule, times_opened",
            );
            let returned = q.build().fetch_all(&mut *tx).await?;
            let mut ids: HashMap<(Uuid, String), (i64, i64)> = HashMap::new();
            for r in &returned {
                ids.insert(
                    (uuid_col(r, "terminal_id")?, r.try_get("rule")?),
                    (r.try_get("id")?, r.try_get("times_opened")?),
                );
            }
            let mut history = Vec::new();
            let mut mails = Vec::new();
            for c in chunk {
                let key = (c.alert.terminal_id, c.alert.rule.as_str().to_string());
                let Some(&(id, times_opened)) = ids.get(&key) else {
                    return Err(StoreError::Corrupt(format!(
                        "alert upsert returned no row for {key:?}"
                    )));
                };
                let action = match c.action {
                    AlertAction::Quiet => None,
                    AlertAction::Opened if times_opened > 1 => Some("reopened"),
                    other => Some(other.as_str()),
                };
                if let Some(action) = action {
                    history.push((id, action, c.alert.severity.as_str()));
                }
                mails.extend(c.mails.iter().map(|m| (Some(id), m)));
            }
            if !history.is_empty() {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT INTO alert_history (alert_id, at, actor, action, severity) ",
                );
                q.push_values(&history, |mut b, (id, action, severity)| {
                    b.push_bind(*id)
                        .push_bind(millis(now))
                        .push_bind(AUTO_ACTOR)
                        .push_bind(*action)
                        .push_bind(*severity);
                });
                q.build().execute(&mut *tx).await?;
            }
            insert_mails(&mut tx, &mails, now).await?;
        }
        for chunk in audit.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO audit_log (at, actor, terminal_id, what, event_id, action) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(millis(e.at))
                    .push_bind("agent")
                    .push_bind(e.terminal_id.to_string())
                    .push_bind(e.what.clone())
                    .push_bind(e.event_id.to_string())
                    .push_bind("agent");
            });
            q.push(" ON CONFLICT (event_id) DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.flush_wal().await
    }

    async fn alert_history(&self, id: i64) -> StoreResult<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, severity, note FROM alert_history WHERE alert_id = ? \
             ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    at: from_millis(r.try_get("at")?),
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    severity: r.try_get("severity")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    async fn silences_in_force(&self, now: DateTime<Utc>) -> StoreResult<Vec<Silence>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > ? AND starts_at <= ?"
        )))
        .bind(millis(now))
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        silences_from(&rows)
    }

    async fn record_baselines(
        &self,
        baselines: &[BaselineWrite],
    ) -> StoreResult<Vec<(Uuid, AccountRecord)>> {
        if baselines.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        let mut stored = Vec::with_capacity(baselines.len());
        // A fleet's first pass takes every terminal's baseline: many rows per statement.
        for chunk in baselines.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("WITH v(id, key, at, missing, version) AS (");
            q.push_values(chunk, |mut row, b| {
                row.push_bind(b.terminal_id.to_string())
                    .push_bind(key_col(b.key))
                    .push_bind(millis(b.taken_at))
                    .push_bind(roles_text(&b.missing))
                    .push_bind(b.version);
            });
            q.push(
                ") UPDATE terminals SET baseline_key = v.key, baseline_at = v.at, \
                 baseline_missing = v.missing, accounts_version = terminals.accounts_version + 1, \
                 accounts_confirmed_key = CASE \
                 WHEN terminals.accounts_confirmed_at IS NOT NULL \
                 THEN coalesce(terminals.accounts_confirmed_key, v.key) END \
                 FROM v WHERE terminals.id = v.id AND terminals.accounts_version = v.version \
                 RETURNING terminals.id, terminals.accounts_version, \
                 terminals.accounts_confirmed_at IS NOT NULL, terminals.accounts_confirmed_key",
            );
            for r in q.build().fetch_all(&mut *tx).await? {
                stored.push((
                    uuid_col(&r, "id")?,
                    r.try_get::<i64, _>(1)?,
                    r.try_get::<bool, _>(2)?,
                    key_of(r.try_get(3)?),
                ));
            }
        }
        tx.commit().await?;
        drop(conn);
        self.flush_wal().await?;
        let by_id: HashMap<Uuid, &BaselineWrite> =
            baselines.iter().map(|b| (b.terminal_id, b)).collect();
        Ok(stored
            .into_iter()
            .filter_map(|(id, version, confirmed, confirmed_key)| {
                let b = by_id.get(&id)?;
                let record = AccountRecord {
                    baseline_key: Some(b.key),
                    baseline_at: Some(b.taken_at),
                    baseline_missing: b.missing.clone(),
                    confirmed,
                    confirmed_key,
                    version,
                };
                Some((id, record))
            })
            .collect())
    }

    async fn alert_counts(&self) -> StoreResult<AlertCounts> {
        let rows = sqlx::query(
            "SELECT rule, severity, COUNT(*) AS n FROM alerts WHERE status <> 'resolved' \
             GROUP BY rule, severity",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = AlertCounts::default();
        for r in &rows {
            let severity: String = r.try_get("severity")?;
            let severity = Severity::parse(&severity)
                .ok_or_else(|| StoreError::Corrupt(format!("alert severity {severity:?}")))?;
            let n: i64 = r.try_get("n")?;
            match severity {
                Severity::Critical => counts.critical += n,
                Severity::Warning => counts.warning += n,
                Severity::Info => counts.info += n,
            }
            counts.by_rule.push((r.try_get("rule")?, severity, n));
        }
        Ok(counts)
    }
}

pub(super) async fn history(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    now: DateTime<Utc>,
    who: &str,
    action: &str,
    note: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO alert_history (alert_id, at, actor, action, severity, note) \
         SELECT id, ?, ?, ?, severity, ? FROM alerts WHERE id = ?",
    )
    .bind(millis(now))
    .bind(who)
    .bind(action)
    .bind((!note.is_empty()).then_some(note))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(super) async fn insert_mails(
    tx: &mut sqlx::SqliteConnection,
    mails: &[(Option<i64>, &NewMail)],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let mut inserted = 0;
    for chunk in mails.chunks(ROWS_PER_STATEMENT / 2) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO outbox (kind, clinic_id, alert_id, recipient, subject, message_id, \
             body_text, body_html, dedupe_key, status, next_attempt_at, created_at) ",
        );
        q.push_values(chunk, |mut b, (alert_id, m)| {
            b.push_bind(m.kind.as_str())
                .push_bind(m.clinic_id)
                .push_bind(*alert_id)
                .push_bind(m.recipient.clone())
                .push_bind(m.subject.clone())
                .push_bind(m.message_id.clone())
                .push_bind(m.body_text.clone())
                .push_bind(m.body_html.clone())
                .push_bind(m.dedupe_key.clone())
                .push_bind(crate::domain::OutboxStatus::Pending.as_str())
                .push_bind(millis(now))
                .push_bind(millis(now));
        });
        q.push(" ON CONFLICT DO NOTHING");
        inserted += q.build().execute(&mut *tx).await?.rows_affected() as usize;
    }
    Ok(inserted)
}
