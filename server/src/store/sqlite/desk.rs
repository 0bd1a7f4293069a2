//! [`FleetView`] for SQLite. The overview reads `overview_line` only through its indexes:
//! every filter and every sort order has one, so a page costs the same at 250,000 terminals as
//! at 300.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::alerts::{SILENCE_COLUMNS, opt_time, roles_of, silences_from};
use super::{ROWS_PER_STATEMENT, SqliteStore, clinics, pages, push_reach, uuid_col};
use crate::domain::{
    BackupKind, ClinicDetail, Contact, FleetTally, Handling, HandlingKind, Liveness, OverviewLine,
    Reach, RuleKey, Silence, severity_of_rank,
};
use crate::store::StoreError;
use crate::store::desk::*;
use crate::store::{StoreResult, from_millis, millis};
use futures_util::stream::BoxStream;

pub(super) const LINE_COLUMNS: &str = "ts.terminal_id, ts.clinic_id, ts.clinic_name, ts.prefecture, \
     ts.hostname, ts.severity_rank, ts.handling, ts.handling_by, ts.handling_until, \
     ts.handling_note, ts.liveness, ts.open_alerts, ts.open_rules, ts.apps_behind, ts.backup, \
     ts.last_start, ts.cert_not_after, ts.neglected";

/// The stored handling columns: kind, by, until, note.
fn handling_columns(h: &Handling) -> (&'static str, Option<&str>, Option<i64>, Option<&str>) {
    match h {
        Handling::None => ("none", None, None, None),
        Handling::Unhandled => ("unhandled", None, None, None),
        Handling::InProgress { by, until } => {
            ("in_progress", Some(by.as_str()), until.map(millis), None)
        }
        Handling::Silenced { by, until, reason } => (
            "silenced",
            Some(by.as_str()),
            Some(millis(*until)),
            Some(reason.as_str()),
        ),
    }
}

fn handling_from(r: &SqliteRow) -> Result<Handling, StoreError> {
    let kind: String = r.try_get("handling")?;
    let by: Option<String> = r.try_get("handling_by")?;
    let until = opt_time(r, "handling_until")?;
    let note: Option<String> = r.try_get("handling_note")?;
    Ok(match HandlingKind::parse(&kind) {
        Some(HandlingKind::None) => Handling::None,
        Some(HandlingKind::Unhandled) => Handling::Unhandled,
        Some(HandlingKind::InProgress) => Handling::InProgress {
            by: by.unwrap_or_default(),
            until,
        },
        Some(HandlingKind::Silenced) => Handling::Silenced {
            by: by.unwrap_or_default(),
            until: until.unwrap_or_default(),
            reason: note.unwrap_or_default(),
        },
        None => return Err(StoreError::Corrupt(format!("overview handling {kind:?}"))),
    })
}

pub(super) fn line_from(r: &SqliteRow) -> Result<OverviewLine, StoreError> {
    let backup: String = r.try_get("backup")?;
    let liveness: String = r.try_get("liveness")?;
    Ok(OverviewLine {
        terminal_id: uuid_col(r, "terminal_id")?,
        clinic_id: r.try_get("clinic_id")?,
        clinic_name: r.try_get("clinic_name")?,
        prefecture: r.try_get("prefecture")?,
        hostname: r.try_get("hostname")?,
        severity: severity_of_rank(r.try_get("severity_rank")?),
        handling: handling_from(r)?,
        liveness: Liveness::parse(&liveness)
            .ok_or_else(|| StoreError::Corrupt(format!("overview liveness {liveness:?}")))?,
        open_alerts: r.try_get("open_alerts")?,
        open_rules: u32::try_from(r.try_get::<i64, _>("open_rules")?).unwrap_or(0),
        apps_behind: r.try_get("apps_behind")?,
        backup: BackupKind::parse(&backup),
        last_start: opt_time(r, "last_start")?,
        cert_not_after: opt_time(r, "cert_not_after")?,
        neglected: r.try_get("neglected")?,
    })
}

/// The upper bound of a prefix range: every string that starts with `prefix` sorts below it.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

pub(super) fn push_fleet_filters(q: &mut QueryBuilder<Sqlite>, f: &FleetQuery) {
    q.push(" WHERE 1 = 1");
    push_reach(q, "ts.clinic_id", &f.reach);
    if let Some(id) = f.clinic_id {
        q.push(" AND ts.clinic_id = ").push_bind(id);
    }
    if let Some(p) = &f.prefecture {
        q.push(" AND ts.prefecture = ").push_bind(p.clone());
    }
    if let Some(s) = f.severity {
        q.push(" AND ts.severity_rank = ").push_bind(s.rank());
    }
    if let Some(h) = f.handling {
        q.push(" AND ts.handling = ").push_bind(h.as_str());
    }
    if let Some(l) = f.liveness {
        q.push(" AND ts.liveness = ").push_bind(l.as_str());
    }
    if let Some(rule) = &f.rule {
        q.push(
            " AND ts.terminal_id IN (SELECT terminal_id FROM alerts WHERE status <> 'resolved' \
             AND rule = ",
        )
        .push_bind(rule.as_str())
        .push(")");
    }
    if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let host = s.to_lowercase();
        q.push(" AND ((ts.host_key >= ")
            .push_bind(host.clone())
            .push(" AND ts.host_key < ")
            .push_bind(prefix_end(&host))
            .push(") OR ts.clinic_id IN (SELECT id FROM clinics WHERE (name >= ")
            .push_bind(s.to_string())
            .push(" AND name < ")
            .push_bind(prefix_end(s))
            .push(") OR (code >= ")
            .push_bind(s.to_string())
            .push(" AND code < ")
            .push_bind(prefix_end(s))
            .push(")))");
    }
}

/// ORDER BY for each sort; each matches an index of `overview_line` (the primary key is the
/// last column of every index of a WITHOUT ROWID table, so it breaks ties for free).
pub(super) fn order_by(sort: FleetSort, descending: bool) -> &'static str {
    match (sort, descending) {
        (FleetSort::State, false) => {
            " ORDER BY ts.severity_rank DESC, ts.neglected DESC, ts.open_alerts DESC, ts.host_key, \
             ts.terminal_id"
        }
        (FleetSort::State, true) => {
            " ORDER BY ts.severity_rank, ts.neglected, ts.open_alerts, ts.host_key DESC, \
             ts.terminal_id DESC"
        }
        (FleetSort::Clinic, false) => " ORDER BY ts.clinic_name, ts.host_key, ts.terminal_id",
        (FleetSort::Clinic, true) => {
            " ORDER BY ts.clinic_name DESC, ts.host_key DESC, ts.terminal_id DESC"
        }
        (FleetSort::Hostname, false) => " ORDER BY ts.host_key, ts.terminal_id",
        (FleetSort::Hostname, true) => " ORDER BY ts.host_key DESC, ts.terminal_id DESC",
        (FleetSort::LastStart, false) => " ORDER BY ts.last_start, ts.terminal_id",
        (FleetSort::LastStart, true) => " ORDER BY ts.last_start DESC, ts.terminal_id DESC",
        (FleetSort::CertExpiry, false) => " ORDER BY ts.cert_not_after, ts.terminal_id",
        (FleetSort::CertExpiry, true) => " ORDER BY ts.cert_not_after DESC, ts.terminal_id DESC",
        (FleetSort::Alerts, false) => {
            " ORDER BY ts.severity_rank DESC, ts.neglected DESC, ts.open_alerts DESC, ts.host_key, \
             ts.terminal_id"
        }
        (FleetSort::Alerts, true) => {
            " ORDER BY ts.severity_rank, ts.neglected, ts.open_alerts, ts.host_key DESC, \
             ts.terminal_id DESC"
        }
    }
}

/// The index of `overview_line` that holds each sort's order.
pub(super) fn order_index(sort: FleetSort) -> &'static str {
    match sort {
        FleetSort::State | FleetSort::Alerts => " INDEXED BY overview_line_severity",
        FleetSort::Clinic => " INDEXED BY overview_line_clinic_name",
        FleetSort::Hostname => " INDEXED BY overview_line_host",
        FleetSort::LastStart => " INDEXED BY overview_line_start",
        FleetSort::CertExpiry => " INDEXED BY overview_line_cert",
    }
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl FleetView for SqliteStore {
    async fn overview_lines(&self) -> StoreResult<Vec<OverviewLine>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LINE_COLUMNS} FROM overview_line ts"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(line_from).collect()
    }

    async fn write_overview_lines(
        &self,
        rows: &[OverviewLine],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO overview_line (terminal_id, clinic_id, clinic_name, prefecture, \
                 hostname, host_key, severity_rank, handling, handling_by, handling_until, \
                 handling_note, liveness, open_alerts, open_rules, apps_behind, backup, \
                 last_start, cert_not_after, neglected, updated_at) ",
            );
            q.push_values(chunk, |mut b, s| {
                let (handling, by, until, note) = handling_columns(&s.handling);
                b.push_bind(s.terminal_id.to_string())
                    .push_bind(s.clinic_id)
                    .push_bind(s.clinic_name.clone())
                    .push_bind(s.prefecture.clone())
                    .push_bind(s.hostname.clone())
                    .push_bind(s.hostname.to_lowercase())
                    .push_bind(s.severity_rank())
                    .push_bind(handling)
                    .push_bind(by.map(str::to_string))
                    .push_bind(until)
                    .push_bind(note.map(str::to_string))
                    .push_bind(s.liveness.as_str())
                    .push_bind(s.open_alerts)
                    .push_bind(i64::from(s.open_rules))
                    .push_bind(s.apps_behind)
                    .push_bind(s.backup.as_str())
                    .push_bind(s.last_start.map(millis))
                    .push_bind(s.cert_not_after.map(millis))
                    .push_bind(s.neglected)
                    .push_bind(millis(now));
            });
            // Only terminals that are still enrolled: a revoked one left the overview.
            q.push(
                " ON CONFLICT (terminal_id) DO UPDATE SET clinic_id = excluded.clinic_id, \
                 clinic_name = excluded.clinic_name, prefecture = excluded.prefecture, \
                 hostname = excluded.hostname, host_key = excluded.host_key, \
                 severity_rank = excluded.severity_rank, handling = excluded.handling, \
                 handling_by = excluded.handling_by, handling_until = excluded.handling_until, \
                 handling_note = excluded.handling_note, liveness = excluded.liveness, \
                 open_alerts = excluded.open_alerts, open_rules = excluded.open_rules, \
                 apps_behind = excluded.apps_behind, neglected = excluded.neglected, \
                 backup = excluded.backup, last_start = excluded.last_start, \
                 cert_not_after = excluded.cert_not_after, updated_at = excluded.updated_at",
            );
            q.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "DELETE FROM overview_line WHERE terminal_id IN \
             (SELECT id FROM terminals WHERE revoked_at IS NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.flush_wal().await
    }

    async fn overview_counts(&self, reach: &Reach) -> StoreResult<FleetTally> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {LINE_COLUMNS}, COUNT(*) AS n FROM overview_line ts WHERE 1 = 1"
        ));
        push_reach(&mut q, "ts.clinic_id", reach);
        q.push(" GROUP BY ts.severity_rank, ts.handling, ts.liveness");
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut tally = FleetTally {
            ready: true,
            ..FleetTally::default()
        };
        for r in &rows {
            let mut line = line_from(r)?;
            // The rule counts come from the alerts below.
            line.open_rules = 0;
            let n: i64 = r.try_get("n")?;
            tally.apply(&line, n);
        }
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT rule, COUNT(DISTINCT terminal_id) AS n FROM alerts \
             WHERE status IN ('open', 'acknowledged')",
        );
        push_reach(&mut q, "clinic_id", reach);
        q.push(" GROUP BY rule");
        let rules = q.build().fetch_all(&self.pool).await?;
        for r in &rules {
            let rule: String = r.try_get("rule")?;
            let rule = RuleKey::parse(&rule)
                .ok_or_else(|| StoreError::Corrupt(format!("alert rule {rule:?}")))?;
            tally.rules[rule as usize] = r.try_get("n")?;
        }
        Ok(tally)
    }

    async fn fleet_count(&self, f: &FleetQuery) -> StoreResult<i64> {
        let mut count: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT COUNT(*) FROM overview_line ts");
        push_fleet_filters(&mut count, f);
        Ok(count.build_query_scalar().fetch_one(&self.pool).await?)
    }

    async fn fleet_rows(&self, f: &FleetQuery) -> StoreResult<Vec<FleetRow>> {
        let mut conn = self.pool.acquire().await?;
        pages::fleet_page(&mut conn, f).await
    }

    async fn prefectures(&self, reach: &Reach) -> StoreResult<Vec<String>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT DISTINCT prefecture FROM clinics WHERE prefecture IS NOT NULL \
             AND prefecture <> ''",
        );
        push_reach(&mut q, "id", reach);
        q.push(" ORDER BY prefecture");
        Ok(q.build_query_scalar().fetch_all(&self.pool).await?)
    }

    async fn terminal_detail(&self, id: Uuid) -> StoreResult<Option<TerminalDetail>> {
        let row = sqlx::query(
            "SELECT t.id, t.clinic_id, c.name AS clinic_name, COALESCE(s.hostname, t.hostname) \
             AS hostname, t.agent_version, t.os, t.enrolled_at, t.revoked_at, s.received_at, s.seq \
             FROM terminals t JOIN clinics c ON c.id = t.clinic_id \
             LEFT JOIN latest_report s ON s.terminal_id = t.id WHERE t.id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let summary = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LINE_COLUMNS} FROM overview_line ts WHERE ts.terminal_id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(Some(TerminalDetail {
            terminal_id: uuid_col(&r, "id")?,
            clinic_id: r.try_get("clinic_id")?,
            clinic_name: r.try_get("clinic_name")?,
            hostname: r.try_get("hostname")?,
            agent_version: r.try_get("agent_version")?,
            os: r.try_get("os")?,
            enrolled_at: from_millis(r.try_get("enrolled_at")?),
            revoked_at: opt_time(&r, "revoked_at")?,
            last_seen: opt_time(&r, "received_at")?,
            seq: r.try_get("seq")?,
            line: summary.as_ref().map(line_from).transpose()?,
        }))
    }

    async fn report_hours(
        &self,
        id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let hours: Vec<i64> = sqlx::query_scalar(
            "SELECT hour FROM report_hours WHERE terminal_id = ? AND hour >= ? ORDER BY hour",
        )
        .bind(id.to_string())
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(hours.into_iter().map(from_millis).collect())
    }

    async fn recent_events(
        &self,
        id: Uuid,
        since: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<crate::store::StoredEvent>> {
        let rows = sqlx::query(
            "SELECT id, seq, at, kind, body FROM events WHERE terminal_id = ? AND at >= ? \
             ORDER BY at DESC LIMIT ?",
        )
        .bind(id.to_string())
        .bind(millis(since))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::store::StoredEvent {
                    id: uuid_col(r, "id")?,
                    seq: r.try_get("seq")?,
                    at: from_millis(r.try_get("at")?),
                    kind: r.try_get("kind")?,
                    body_json: r.try_get("body")?,
                })
            })
            .collect()
    }

    async fn alert_views(&self, f: &AlertQuery) -> StoreResult<(i64, Vec<AlertView>)> {
        let mut conn = self.pool.acquire().await?;
        let total = if f.count {
            pages::alerts_count(&mut conn, f).await?
        } else {
            -1
        };
        Ok((total, pages::alerts_page(&mut conn, f).await?))
    }

    async fn alert_ids(&self, f: &AlertQuery, limit: i64) -> StoreResult<Vec<i64>> {
        let mut conn = self.pool.acquire().await?;
        pages::alert_ids(&mut conn, f, limit).await
    }

    async fn response_times(
        &self,
        group: AlertGroup,
        since: DateTime<Utc>,
        reach: &Reach,
    ) -> StoreResult<Vec<ResponseTimes>> {
        let key = match group {
            AlertGroup::Rule => "a.rule",
            AlertGroup::Clinic => "c.name",
        };
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {key} AS k, COUNT(*) AS alerts, COUNT(ack.at) AS acknowledged, \
             AVG(ack.at - a.opened_at) / 60000.0 AS mean_ack, \
             SUM(a.status = 'resolved') AS resolved, \
             AVG(CASE WHEN a.status = 'resolved' THEN a.resolved_at - a.opened_at END) / 60000.0 \
             AS mean_resolve \
             FROM alerts a JOIN clinics c ON c.id = a.clinic_id \
             LEFT JOIN (SELECT alert_id, MIN(at) AS at FROM alert_history \
                        WHERE action = 'acknowledged' GROUP BY alert_id) ack \
               ON ack.alert_id = a.id AND ack.at >= a.opened_at \
             WHERE a.opened_at >= "
        ));
        q.push_bind(millis(since));
        push_reach(&mut q, "a.clinic_id", reach);
        q.push(" GROUP BY k ORDER BY alerts DESC, k LIMIT 100");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ResponseTimes {
                    key: r.try_get("k")?,
                    alerts: r.try_get("alerts")?,
                    acknowledged: r.try_get("acknowledged")?,
                    mean_ack_minutes: r.try_get("mean_ack")?,
                    resolved: r.try_get("resolved")?,
                    mean_resolve_minutes: r.try_get("mean_resolve")?,
                })
            })
            .collect()
    }

    async fn clinic_list(
        &self,
        search: Option<&str>,
        offset: i64,
        limit: i64,
        reach: &Reach,
    ) -> StoreResult<(i64, Vec<ClinicListRow>)> {
        let search = search.map(str::trim).filter(|s| !s.is_empty());
        let filter = |q: &mut QueryBuilder<Sqlite>| {
            q.push(" WHERE 1 = 1");
            push_reach(q, "id", reach);
            if let Some(s) = search {
                q.push(" AND ((name >= ")
                    .push_bind(s.to_string())
                    .push(" AND name < ")
                    .push_bind(prefix_end(s))
                    .push(") OR (code >= ")
                    .push_bind(s.to_string())
                    .push(" AND code < ")
                    .push_bind(prefix_end(s))
                    .push("))");
            }
        };
        let mut count: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*) FROM clinics");
        filter(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, name, code, prefecture, email, \
             (SELECT COUNT(*) FROM terminals t WHERE t.clinic_id = clinics.id \
              AND t.revoked_at IS NULL) AS terminals, \
             (SELECT COUNT(*) FROM alerts a WHERE a.clinic_id = clinics.id \
              AND a.status IN ('open', 'acknowledged')) AS open_alerts FROM clinics",
        );
        filter(&mut q);
        q.push(" ORDER BY name, id LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        let rows = q.build().fetch_all(&self.pool).await?;
        let rows = rows
            .iter()
            .map(clinic_list_row)
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((total, rows))
    }

    async fn terminals_after(
        &self,
        f: &FleetQuery,
        after: Option<Uuid>,
    ) -> StoreResult<Vec<FleetRow>> {
        let mut conn = self.pool.acquire().await?;
        pages::terminals_after(&mut conn, f, after).await
    }

    async fn clinics_after(
        &self,
        reach: &Reach,
        prefecture: Option<&str>,
        after: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<ClinicListRow>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, name, code, prefecture, email, \
             (SELECT COUNT(*) FROM terminals t WHERE t.clinic_id = clinics.id \
              AND t.revoked_at IS NULL) AS terminals, \
             (SELECT COUNT(*) FROM alerts a WHERE a.clinic_id = clinics.id \
              AND a.status IN ('open', 'acknowledged')) AS open_alerts FROM clinics WHERE 1 = 1",
        );
        push_reach(&mut q, "id", reach);
        if let Some(p) = prefecture {
            q.push(" AND prefecture = ").push_bind(p.to_string());
        }
        if let Some(after) = after {
            q.push(" AND id > ").push_bind(after);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(limit);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(clinic_list_row).collect()
    }

    async fn clinic_detail(&self, id: i64) -> StoreResult<Option<ClinicDetail>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, code, phone, notes FROM clinics WHERE id = ?",
            clinics::SETTINGS_COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let mut closures = clinics::closures(&self.pool, Some(id), None).await?;
        let mut accounts = clinics::clinic_accounts(&self.pool, Some(id)).await?;
        let settings = clinics::settings_from(&r, &mut clinics::Weeks::default())?;
        Ok(Some(ClinicDetail {
            settings: clinics::complete(settings, &mut closures, &mut accounts),
            code: r.try_get("code")?,
            phone: r.try_get("phone")?,
            notes: r.try_get("notes")?,
        }))
    }

    async fn contacts(&self, clinic_id: i64) -> StoreResult<Vec<Contact>> {
        let rows = sqlx::query(
            "SELECT id, clinic_id, name, role, email, phone FROM clinic_contacts \
             WHERE clinic_id = ? ORDER BY id",
        )
        .bind(clinic_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Contact {
                    id: r.try_get("id")?,
                    clinic_id: r.try_get("clinic_id")?,
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    email: r.try_get("email")?,
                    phone: r.try_get("phone")?,
                })
            })
            .collect()
    }

    async fn enrollment_codes(&self, clinic_id: i64) -> StoreResult<Vec<CodeRow>> {
        let rows = sqlx::query(
            "SELECT code_hash, label, last_chars, created_at, expires_at, revoked_at \
             FROM enrollment_codes WHERE clinic_id = ? ORDER BY created_at DESC LIMIT 50",
        )
        .bind(clinic_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CodeRow {
                    code_hash: r.try_get("code_hash")?,
                    label: r.try_get("label")?,
                    last_chars: r.try_get("last_chars")?,
                    created_at: from_millis(r.try_get("created_at")?),
                    expires_at: from_millis(r.try_get("expires_at")?),
                    revoked_at: opt_time(r, "revoked_at")?,
                })
            })
            .collect()
    }

    fn export_fleet(&self, q: FleetQuery) -> BoxStream<'static, StoreResult<FleetRow>> {
        pages::fleet_export(self.pool.clone(), q)
    }

    fn export_alerts(&self, q: AlertQuery) -> BoxStream<'static, StoreResult<AlertView>> {
        pages::alerts_export(self.pool.clone(), q)
    }

    async fn silences(
        &self,
        now: DateTime<Utc>,
        ended_since: DateTime<Utc>,
    ) -> StoreResult<Vec<Silence>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > ? \
             ORDER BY ends_at <= ?, starts_at DESC, id DESC LIMIT 500"
        )))
        .bind(millis(ended_since))
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        silences_from(&rows)
    }

    async fn terminal_accounts(&self, id: Uuid) -> StoreResult<Vec<onshi_shared::AccountSpec>> {
        let id = id.to_string();
        let mut all = clinics::terminal_accounts(&self.pool, Some(&id)).await?;
        Ok(all.remove(&id).unwrap_or_default())
    }

    async fn terminal_baseline(&self, id: Uuid) -> StoreResult<Option<TerminalBaseline>> {
        let row = sqlx::query(
            "SELECT baseline_at, baseline_missing, accounts_confirmed_at, accounts_confirmed_by \
             FROM terminals WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let missing: String = r.try_get("baseline_missing")?;
        Ok(Some(TerminalBaseline {
            taken_at: opt_time(&r, "baseline_at")?,
            missing: roles_of(&missing),
            confirmed_at: opt_time(&r, "accounts_confirmed_at")?,
            confirmed_by: r.try_get("accounts_confirmed_by")?,
        }))
    }

    async fn backup_password_set(
        &self,
        clinic_id: i64,
    ) -> StoreResult<Option<(String, DateTime<Utc>)>> {
        let row = sqlx::query("SELECT set_by, set_at FROM backup_passwords WHERE clinic_id = ?")
            .bind(clinic_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("set_by")?, from_millis(r.try_get("set_at")?))))
            .transpose()
    }
}

fn clinic_list_row(r: &SqliteRow) -> Result<ClinicListRow, StoreError> {
    Ok(ClinicListRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        code: r.try_get("code")?,
        prefecture: r.try_get("prefecture")?,
        email: r.try_get("email")?,
        terminals: r.try_get("terminals")?,
        open_alerts: r.try_get("open_alerts")?,
    })
}
