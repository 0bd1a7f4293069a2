//! [`AlertStore`] on PostgreSQL: the same reads and writes as `sqlite::alerts`, each write one
//! pooled transaction. Only the leader evaluates, but staff change alerts from any replica at
//! the same time: the evaluator's upsert locks the existing rows it rewrites in id order first,
//! the order every transaction that locks several alerts takes them in.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use onshi_shared::{AccountRole, AccountSpec};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{PgStore, clinics, outbox};
use crate::domain::{
    AUTO_ACTOR, Alert, AlertAction, AlertStatus, ClinicSettings, DailyWindow, ExpectedVersionRow,
    HistoryEntry, NewMail, RuleKey, Severity, Silence, SilenceScope, VersionSource,
};
use crate::rules::{AccountRecord, AuditEntry, BaselineWrite};
use crate::store::alerts::*;
pub(super) use crate::store::alerts::{minute_of, roles_of, roles_text, time_of};
use crate::store::{StoreError, StoreResult, from_millis, millis};

/// Events the rules read; the rest stay out of the evaluator's memory.
const RULE_EVENT_KINDS: &str = "('account_changed', 'network_changed', 'cert_changed')";

/// The columns [`alert_from`] reads.
pub(super) const ALERT_COLUMNS: &str = "id, terminal_id, clinic_id, rule, severity, status, detail, occurrence, \
     opened_at, updated_at, clear_since, ack_by, ack_note, ack_until, resolved_at, resolved_by, \
     mail_held";

/// The columns [`silences_from`] reads.
pub(super) const SILENCE_COLUMNS: &str = "id, terminal_id, clinic_id, prefecture, fleet, rule, \
     starts_at, ends_at, daily_from, daily_to, weekdays, reason, created_by, ended_by";

pub(super) fn opt_time(row: &PgRow, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_millis))
}

pub(super) fn alert_from(row: &PgRow) -> Result<Alert, StoreError> {
    let severity: String = row.try_get("severity")?;
    let status: String = row.try_get("status")?;
    let rule: String = row.try_get("rule")?;
    Ok(Alert {
        id: row.try_get("id")?,
        terminal_id: row.try_get("terminal_id")?,
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

/// A key as the database stores it (the same 64 bits, signed).
pub(super) fn key_col(key: u64) -> i64 {
    key as i64
}

fn key_of(col: Option<i64>) -> Option<u64> {
    col.map(|k| k as u64)
}

pub(super) fn silence_from(r: &PgRow) -> Result<Silence, StoreError> {
    let id: i64 = r.try_get("id")?;
    let terminal: Option<Uuid> = r.try_get("terminal_id")?;
    let clinic: Option<i64> = r.try_get("clinic_id")?;
    let prefecture: Option<String> = r.try_get("prefecture")?;
    let scope = match (terminal, clinic, prefecture) {
        (Some(t), _, _) => SilenceScope::Terminal(t),
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

pub(super) fn silences_from(rows: &[PgRow]) -> Result<Vec<Silence>, StoreError> {
    rows.iter().map(silence_from).collect()
}

/// Adds a history entry to an alert (with its current severity) by someone other than the
/// evaluator; an empty note is stored as none. Nothing is added for an alert that is gone.
pub(super) async fn history(
    tx: &mut PgConnection,
    id: i64,
    now: DateTime<Utc>,
    who: &str,
    action: &str,
    note: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO alert_history (alert_id, at, actor, action, severity, note) \
         SELECT id, $1, $2, $3, severity, $4 FROM alerts WHERE id = $5",
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

/// Writes a run of alert changes with no (terminal, rule) twice (PostgreSQL's upsert touches a
/// row once per statement), then their history and mails.
async fn write_changes(
    tx: &mut PgConnection,
    changes: &[&AlertChange],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let terminals: Vec<Uuid> = changes.iter().map(|c| c.alert.terminal_id).collect();
    let rules: Vec<&str> = changes.iter().map(|c| c.alert.rule.as_str()).collect();
    // The rows this run rewrites, locked in id order before the upsert takes them in the
    // run's order: a staff action on several alerts takes them in id order too.
    sqlx::query(
        "SELECT a.id FROM alerts a \
         JOIN UNNEST($1::uuid[], $2::text[]) AS k(terminal_id, rule) \
           ON a.terminal_id = k.terminal_id AND a.rule = k.rule \
         ORDER BY a.id FOR NO KEY UPDATE OF a",
    )
    .bind(&terminals)
    .bind(&rules)
    .execute(&mut *tx)
    .await?;
    let alerts: Vec<&Alert> = changes.iter().map(|c| &c.alert).collect();
    let text = |f: fn(&Alert) -> &str| -> Vec<&str> { alerts.iter().map(|a| f(a)).collect() };
    let opt_text = |f: fn(&Alert) -> Option<&str>| -> Vec<Option<&str>> {
        alerts.iter().map(|a| f(a)).collect()
    };
    let opt_ms = |f: fn(&Alert) -> Option<DateTime<Utc>>| -> Vec<Option<i64>> {
        alerts.iter().map(|a| f(a).map(millis)).collect()
    };
    let returned = sqlx::query(
        "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, \
         occurrence, opened_at, updated_at, clear_since, ack_by, ack_note, ack_until, \
         resolved_at, resolved_by, mail_held) \
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::text[], $12::text[], \
         $13::int8[], $14::int8[], $15::text[], $16::bool[]) \
         ON CONFLICT (terminal_id, rule) DO UPDATE SET clinic_id = excluded.clinic_id, \
         severity = excluded.severity, status = excluded.status, detail = excluded.detail, \
         occurrence = excluded.occurrence, updated_at = excluded.updated_at, \
         clear_since = excluded.clear_since, ack_by = excluded.ack_by, \
         ack_note = excluded.ack_note, ack_until = excluded.ack_until, \
         resolved_at = excluded.resolved_at, resolved_by = excluded.resolved_by, \
         mail_held = excluded.mail_held, \
         times_opened = alerts.times_opened + (excluded.opened_at <> alerts.opened_at)::int, \
         opened_at = excluded.opened_at \
         RETURNING id, terminal_id, rule, times_opened",
    )
    .bind(&terminals)
    .bind(alerts.iter().map(|a| a.clinic_id).collect::<Vec<i64>>())
    .bind(&rules)
    .bind(text(|a| a.severity.as_str()))
    .bind(text(|a| a.status.as_str()))
    .bind(text(|a| &a.detail))
    .bind(opt_text(|a| a.occurrence.as_deref()))
    .bind(
        alerts
            .iter()
            .map(|a| millis(a.opened_at))
            .collect::<Vec<i64>>(),
    )
    .bind(
        alerts
            .iter()
            .map(|a| millis(a.updated_at))
            .collect::<Vec<i64>>(),
    )
    .bind(opt_ms(|a| a.clear_since))
    .bind(opt_text(|a| a.ack_by.as_deref()))
    .bind(opt_text(|a| a.ack_note.as_deref()))
    .bind(opt_ms(|a| a.ack_until))
    .bind(opt_ms(|a| a.resolved_at))
    .bind(opt_text(|a| a.resolved_by.as_deref()))
    .bind(alerts.iter().map(|a| a.mail_held).collect::<Vec<bool>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut ids: HashMap<(Uuid, String), (i64, i64)> = HashMap::with_capacity(returned.len());
    for r in &returned {
        ids.insert(
            (r.try_get("terminal_id")?, r.try_get("rule")?),
            (r.try_get("id")?, r.try_get("times_opened")?),
        );
    }
    let mut history_ids = Vec::new();
    let mut history_actions = Vec::new();
    let mut history_severities = Vec::new();
    let mut mails: Vec<(Option<i64>, &NewMail)> = Vec::new();
    for c in changes {
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
            history_ids.push(id);
            history_actions.push(action);
            history_severities.push(c.alert.severity.as_str());
        }
        mails.extend(c.mails.iter().map(|m| (Some(id), m)));
    }
    if !history_ids.is_empty() {
        // In the run's order, as SQLite numbers them.
        sqlx::query(
            "INSERT INTO alert_history (alert_id, at, actor, action, severity) \
             SELECT alert_id, $4, $5, action, severity \
             FROM UNNEST($1::int8[], $2::text[], $3::text[]) WITH ORDINALITY \
               AS u(alert_id, action, severity, n) ORDER BY n",
        )
        .bind(&history_ids)
        .bind(&history_actions)
        .bind(&history_severities)
        .bind(millis(now))
        .bind(AUTO_ACTOR)
        .execute(&mut *tx)
        .await?;
    }
    outbox::insert_mails(&mut *tx, &mails, now).await?;
    Ok(())
}

#[async_trait]
impl AlertStore for PgStore {
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
        let row =
            sqlx::query("SELECT coalesce(sum(settings_version), 0)::bigint, count(*) FROM clinics")
                .fetch_one(&self.pool)
                .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    async fn terminal_heads(
        &self,
        selection: InputSelection<'_>,
    ) -> StoreResult<Vec<TerminalHead>> {
        // Read by position: at 250,000 terminals a lookup by name per column is measurable.
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT t.id, t.clinic_id, t.enrolled_at, s.received_at, s.collected_at, b.hash, \
             t.accounts_version \
             FROM terminals t \
             LEFT JOIN latest_report s ON s.terminal_id = t.id \
             LEFT JOIN terminal_snapshot b ON b.terminal_id = t.id \
             WHERE t.revoked_at IS NULL ",
        );
        match selection {
            InputSelection::Page { after, limit } => {
                if let Some(after) = after {
                    q.push("AND t.id > ").push_bind(after);
                }
                q.push(" ORDER BY t.id LIMIT ").push_bind(limit);
            }
            InputSelection::Ids(ids) => {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                q.push("AND t.id = ANY(")
                    .push_bind(ids)
                    .push(") ORDER BY t.id");
            }
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut heads = Vec::with_capacity(rows.len());
        for r in &rows {
            let collected: Option<i64> = r.try_get(4)?;
            let hash: Option<i64> = r.try_get(5)?;
            heads.push(TerminalHead {
                terminal_id: r.try_get(0)?,
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
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id, accounts_version, baseline_key, baseline_at, baseline_missing, \
             accounts_confirmed_at IS NOT NULL, accounts_confirmed_key FROM terminals \
             WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let record = AccountRecord {
                baseline_key: key_of(r.try_get(2)?),
                baseline_at: r.try_get::<Option<i64>, _>(3)?.map(from_millis),
                baseline_missing: roles_of(r.try_get::<&str, _>(4)?),
                confirmed: r.try_get(5)?,
                confirmed_key: key_of(r.try_get(6)?),
                version: r.try_get(1)?,
            };
            out.push((r.try_get(0)?, record));
        }
        Ok(out)
    }

    async fn snapshot_bodies(&self, ids: &[Uuid]) -> StoreResult<Vec<(Uuid, i64, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT terminal_id, hash, body FROM terminal_snapshot WHERE terminal_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    async fn rule_extras(
        &self,
        span: TerminalSpan<'_>,
        events_since: DateTime<Utc>,
    ) -> StoreResult<RuleExtras> {
        let range = |q: &mut QueryBuilder<Postgres>| match span {
            TerminalSpan::Between(first, last) => {
                q.push("terminal_id BETWEEN ")
                    .push_bind(first)
                    .push(" AND ")
                    .push_bind(last);
            }
            TerminalSpan::Ids(ids) => {
                q.push("terminal_id = ANY(").push_bind(ids).push(")");
            }
        };
        if let TerminalSpan::Ids([]) = span {
            return Ok(RuleExtras::default());
        }
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT terminal_id, role, name FROM account_names WHERE ");
        range(&mut q);
        let mut own: HashMap<Uuid, Vec<AccountSpec>> = HashMap::new();
        for r in q.build().fetch_all(&self.pool).await? {
            let role: String = r.try_get("role")?;
            let Some(role) = AccountRole::parse(&role) else {
                return Err(StoreError::Corrupt(format!("account role {role:?}")));
            };
            own.entry(r.try_get("terminal_id")?)
                .or_default()
                .push(AccountSpec {
                    role,
                    name: r.try_get("name")?,
                });
        }
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT terminal_id, body FROM events WHERE ");
        range(&mut q);
        q.push(" AND at >= ")
            .push_bind(millis(events_since))
            .push(" AND kind IN ")
            .push(RULE_EVENT_KINDS)
            // `n` as SQLite's rowid breaks ties: the order they were stored in.
            .push(" ORDER BY terminal_id, at, n");
        let mut events = Vec::new();
        for r in q.build().fetch_all(&self.pool).await? {
            let body: &str = r.try_get("body")?;
            events.push((r.try_get("terminal_id")?, serde_json::from_str(body)?));
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
             VALUES ($1, $2, $3, $4, $2) ON CONFLICT (app, source) DO UPDATE SET \
             version = excluded.version, since = excluded.since, set_by = excluded.set_by \
             WHERE expected_versions.version <> excluded.version",
        )
        .bind(app)
        .bind(VersionSource::Fleet.as_str())
        .bind(version)
        .bind(millis(since))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn active_alerts(&self, terminals: Option<&[Uuid]>) -> StoreResult<Vec<Alert>> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE (status <> 'resolved' OR \
             (occurrence IS NOT NULL AND resolved_by <> "
        ));
        q.push_bind(AUTO_ACTOR).push("))");
        if let Some(ids) = terminals {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND terminal_id = ANY(").push_bind(ids).push(")");
        }
        q.push(" ORDER BY id");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(alert_from).collect()
    }

    async fn history_mark(&self) -> StoreResult<i64> {
        // Ids may commit out of order here: the evaluator's watermark reads below the mark
        // again for the ones still to come (see `evaluator::watermark`).
        let mark: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM alert_history")
            .fetch_one(&self.pool)
            .await?;
        Ok(mark.unwrap_or(0))
    }

    async fn history_heads(&self, ranges: &[(i64, i64)]) -> StoreResult<Vec<HistoryHead>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT id, alert_id, actor <> ");
        q.push_bind(AUTO_ACTOR).push(" FROM alert_history WHERE ");
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
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ANY($1) ORDER BY id"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_from).collect()
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<Alert>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"
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
        let mut tx = self.pool.begin().await?;
        // One statement per run of distinct (terminal, rule): a second change to the same
        // alert starts the next run, so it applies over the first as it does on SQLite.
        let mut run: Vec<&AlertChange> = Vec::new();
        let mut keys: HashSet<(Uuid, RuleKey)> = HashSet::new();
        for c in changes {
            if !keys.insert((c.alert.terminal_id, c.alert.rule)) {
                write_changes(&mut tx, &run, now).await?;
                run.clear();
                keys.clear();
                keys.insert((c.alert.terminal_id, c.alert.rule));
            }
            run.push(c);
        }
        if !run.is_empty() {
            write_changes(&mut tx, &run, now).await?;
        }
        if !audit.is_empty() {
            let terminals: Vec<Uuid> = audit.iter().map(|e| e.terminal_id).collect();
            let whats: Vec<&str> = audit.iter().map(|e| e.what.as_str()).collect();
            let events: Vec<String> = audit.iter().map(|e| e.event_id.to_string()).collect();
            let ats: Vec<i64> = audit.iter().map(|e| millis(e.at)).collect();
            sqlx::query(
                "INSERT INTO audit_log (at, actor, terminal_id, what, event_id, action) \
                 SELECT at, 'agent', terminal_id, what, event_id, 'agent' \
                 FROM UNNEST($1::int8[], $2::uuid[], $3::text[], $4::text[]) WITH ORDINALITY \
                   AS u(at, terminal_id, what, event_id, n) ORDER BY n \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&ats)
            .bind(&terminals)
            .bind(&whats)
            .bind(&events)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn alert_history(&self, id: i64) -> StoreResult<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, severity, note FROM alert_history WHERE alert_id = $1 \
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
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > $1 AND starts_at <= $1 \
             ORDER BY id"
        )))
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
        // One conditional statement: a baseline is written only over the record version it
        // was taken from, so a confirmation committed meanwhile (on any replica) wins. Staff
        // change one terminal per transaction, so the order rows are taken in cannot deadlock.
        let ids: Vec<Uuid> = baselines.iter().map(|b| b.terminal_id).collect();
        let keys: Vec<i64> = baselines.iter().map(|b| key_col(b.key)).collect();
        let ats: Vec<i64> = baselines.iter().map(|b| millis(b.taken_at)).collect();
        let missing: Vec<String> = baselines.iter().map(|b| roles_text(&b.missing)).collect();
        let versions: Vec<i64> = baselines.iter().map(|b| b.version).collect();
        let rows = sqlx::query(
            "UPDATE terminals SET baseline_key = v.key, baseline_at = v.at, \
             baseline_missing = v.missing, accounts_version = terminals.accounts_version + 1, \
             accounts_confirmed_key = CASE \
             WHEN terminals.accounts_confirmed_at IS NOT NULL \
             THEN coalesce(terminals.accounts_confirmed_key, v.key) END \
             FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::text[], $5::int8[]) \
               AS v(id, key, at, missing, version) \
             WHERE terminals.id = v.id AND terminals.accounts_version = v.version \
             RETURNING terminals.id, terminals.accounts_version, \
             terminals.accounts_confirmed_at IS NOT NULL, terminals.accounts_confirmed_key",
        )
        .bind(&ids)
        .bind(&keys)
        .bind(&ats)
        .bind(&missing)
        .bind(&versions)
        .fetch_all(&self.pool)
        .await?;
        let by_id: HashMap<Uuid, &BaselineWrite> =
            baselines.iter().map(|b| (b.terminal_id, b)).collect();
        let mut stored = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: Uuid = r.try_get(0)?;
            let Some(b) = by_id.get(&id) else { continue };
            let record = AccountRecord {
                baseline_key: Some(b.key),
                baseline_at: Some(b.taken_at),
                baseline_missing: b.missing.clone(),
                confirmed: r.try_get(2)?,
                confirmed_key: key_of(r.try_get(3)?),
                version: r.try_get(1)?,
            };
            stored.push((id, record));
        }
        Ok(stored)
    }

    async fn alert_counts(&self) -> StoreResult<AlertCounts> {
        // Ordered as SQLite's GROUP BY returns them.
        let rows = sqlx::query(
            "SELECT rule, severity, COUNT(*) AS n FROM alerts WHERE status <> 'resolved' \
             GROUP BY rule, severity ORDER BY rule COLLATE \"C\", severity COLLATE \"C\"",
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
