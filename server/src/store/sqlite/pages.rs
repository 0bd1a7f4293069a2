//! The desk's paged lists on SQLite (the overview, the alerts page, the audit log, the outbox)
//! as functions of one connection, so a page is the same query whether the page asks for it or
//! a CSV export reads every page inside one read transaction.

use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::alerts::{alert_from, opt_time};
use super::desk::{LINE_COLUMNS, line_from, order_by, order_index, push_fleet_filters};
use super::push_reach;
use crate::domain::{AuditRow, HandlingKind, MailKind, OutboxRow, OutboxStatus, Severity};
use crate::store::StoreError;
use crate::store::desk::{
    ALERT_COUNT_CAP, AlertQuery, AlertView, AuditQuery, FleetQuery, FleetRead, FleetRow,
    OutboxQuery,
};
use crate::store::{StoreResult, from_millis, millis};

/// Rows per page of an export.
const EXPORT_PAGE: usize = 1_000;

/// The rank the alerts' order sorts by first (the expression of the `alerts_unresolved` index).
const SEVERITY_RANK: &str =
    "(CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END)";

fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Critical => 0,
        Severity::Warning => 1,
        Severity::Info => 2,
    }
}

/// One page of the overview; `f.offset` and `f.limit` say which.
pub(super) async fn fleet_page(
    conn: &mut SqliteConnection,
    f: &FleetQuery,
) -> StoreResult<Vec<FleetRow>> {
    // Two steps: the page's ids from the index alone (OFFSET skips index entries, not joined
    // rows), then the joins for those ids only.
    let order = order_by(f.sort, f.descending);
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT {LINE_COLUMNS}, s.received_at, c.code, c.phone FROM \
         (SELECT ts.terminal_id FROM overview_line ts"
    ));
    // Read from the end: the same lines in the opposite order, then put back in order below.
    let (inner, offset, limit) = match f.read {
        FleetRead::Reversed { matching } => (
            order_by(f.sort, !f.descending),
            (matching - f.offset - f.limit).max(0),
            // Past the end: no lines (a negative LIMIT would mean no limit).
            f.limit.min(matching - f.offset).max(0),
        ),
        FleetRead::Sorted | FleetRead::InOrder => (order, f.offset, f.limit),
    };
    if f.read != FleetRead::Sorted {
        q.push(order_index(f.sort));
    }
    push_fleet_filters(&mut q, f);
    q.push(inner);
    q.push(" LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    q.push(
        ") page JOIN overview_line ts ON ts.terminal_id = page.terminal_id \
         LEFT JOIN latest_report s ON s.terminal_id = ts.terminal_id \
         LEFT JOIN clinics c ON c.id = ts.clinic_id",
    );
    q.push(order);
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter().map(fleet_row).collect()
}

/// The read API's page of terminals: by terminal id (a UUID's text sorts as its bytes), after
/// the cursor.
pub(super) async fn terminals_after(
    conn: &mut SqliteConnection,
    f: &FleetQuery,
    after: Option<uuid::Uuid>,
) -> StoreResult<Vec<FleetRow>> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT {LINE_COLUMNS}, s.received_at, c.code, c.phone FROM overview_line ts \
         LEFT JOIN latest_report s ON s.terminal_id = ts.terminal_id \
         LEFT JOIN clinics c ON c.id = ts.clinic_id"
    ));
    push_fleet_filters(&mut q, f);
    if let Some(after) = after {
        q.push(" AND ts.terminal_id > ")
            .push_bind(after.to_string());
    }
    q.push(" ORDER BY ts.terminal_id LIMIT ").push_bind(f.limit);
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter().map(fleet_row).collect()
}

fn fleet_row(r: &SqliteRow) -> Result<FleetRow, StoreError> {
    Ok(FleetRow {
        line: line_from(r)?,
        last_seen: opt_time(r, "received_at")?,
        clinic_code: r.try_get("code")?,
        clinic_phone: r.try_get("phone")?,
    })
}

/// Every overview line the filters match, in the overview's order.
pub(super) fn fleet_export(
    pool: SqlitePool,
    f: FleetQuery,
) -> BoxStream<'static, StoreResult<FleetRow>> {
    stream_rows(
        pool,
        move || {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "SELECT {LINE_COLUMNS}, s.received_at, c.code, c.phone FROM overview_line ts \
                 LEFT JOIN latest_report s ON s.terminal_id = ts.terminal_id \
                 LEFT JOIN clinics c ON c.id = ts.clinic_id"
            ));
            push_fleet_filters(&mut q, &f);
            q.push(order_by(f.sort, f.descending));
            q
        },
        fleet_row,
    )
}

/// The alerts' filters, after `WHERE`.
fn push_alert_filters(q: &mut QueryBuilder<Sqlite>, f: &AlertQuery) {
    if f.include_resolved {
        q.push(" WHERE 1 = 1");
    } else {
        q.push(" WHERE a.status IN ('open', 'acknowledged')");
    }
    push_reach(q, "a.clinic_id", &f.reach);
    if let Some(rule) = &f.rule {
        q.push(" AND a.rule = ").push_bind(rule.as_str());
    }
    if let Some(c) = f.clinic_id {
        q.push(" AND a.clinic_id = ").push_bind(c);
    }
    if let Some(t) = f.terminal_id {
        q.push(" AND a.terminal_id = ").push_bind(t.to_string());
    }
    if let Some(p) = &f.prefecture {
        q.push(" AND a.clinic_id IN (SELECT id FROM clinics WHERE prefecture = ")
            .push_bind(p.clone())
            .push(")");
    }
    if let Some(s) = f.severity {
        // As the indexes' rank, so the page is a range of them, already in order.
        q.push(format!(" AND {SEVERITY_RANK} = "))
            .push_bind(severity_rank(s));
    }
    let silenced =
        " a.terminal_id IN (SELECT terminal_id FROM overview_line WHERE handling = 'silenced')";
    match f.handling {
        Some(HandlingKind::Unhandled) => {
            q.push(" AND a.status = 'open' AND NOT").push(silenced);
        }
        Some(HandlingKind::InProgress) => {
            q.push(" AND a.status = 'acknowledged'");
        }
        Some(HandlingKind::Silenced) => {
            q.push(" AND a.status = 'open' AND").push(silenced);
        }
        Some(HandlingKind::None) | None => {}
    }
    if let Some(before) = f.opened_before {
        q.push(" AND a.opened_at <= ").push_bind(millis(before));
    }
    if let Some(c) = f.after {
        let rank = severity_rank(c.severity);
        let at = millis(c.opened_at);
        q.push(format!(" AND ({SEVERITY_RANK} > "))
            .push_bind(rank)
            .push(format!(" OR ({SEVERITY_RANK} = "))
            .push_bind(rank)
            .push(" AND (a.opened_at < ")
            .push_bind(at)
            .push(" OR (a.opened_at = ")
            .push_bind(at)
            .push(" AND a.id > ")
            .push_bind(c.id)
            .push("))))");
    }
}

/// The alerts' order: most severe, newest, then by id (the order of the `alerts_unresolved`
/// index, whose entries end in the rowid).
fn alert_order(include_resolved: bool) -> String {
    if include_resolved {
        format!(" ORDER BY a.status = 'resolved', {SEVERITY_RANK}, a.opened_at DESC, a.id")
    } else {
        format!(" ORDER BY {SEVERITY_RANK}, a.opened_at DESC, a.id")
    }
}

/// The index to read unresolved alerts by when no clinic, terminal or prefecture narrows them:
/// the fleet's (or one rule's) unresolved alerts in the page's order, the other filters
/// checked as the index is read, so a page stops after its rows instead of sorting every match
/// (the planner, without statistics, would sort them). Narrowed lists use the clinic's or the
/// terminal's index and sort their few alerts.
fn in_order_index(f: &AlertQuery) -> Option<&'static str> {
    if f.include_resolved
        || f.clinic_id.is_some()
        || f.terminal_id.is_some()
        || f.prefecture.is_some()
    {
        return None;
    }
    Some(if f.rule.is_some() {
        " INDEXED BY alerts_unresolved_rule"
    } else {
        " INDEXED BY alerts_unresolved"
    })
}

/// How many alerts match (the page and the cursor aside), up to one past
/// [`ALERT_COUNT_CAP`].
pub(super) async fn alerts_count(conn: &mut SqliteConnection, f: &AlertQuery) -> StoreResult<i64> {
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1 FROM alerts a");
    let all = AlertQuery {
        after: None,
        ..f.clone()
    };
    q.push(in_order_index(&all).unwrap_or(""));
    push_alert_filters(&mut q, &all);
    q.push(" LIMIT ").push_bind(ALERT_COUNT_CAP + 1).push(")");
    Ok(q.build_query_scalar().fetch_one(&mut *conn).await?)
}

/// An alert with the names the desk reads it by (`a`, `t`, `c`, `ts` joined).
const ALERT_VIEW_COLUMNS: &str = "SELECT a.id, a.terminal_id, a.clinic_id, a.rule, a.severity, \
     a.status, a.detail, a.occurrence, a.opened_at, a.updated_at, a.clear_since, a.ack_by, \
     a.ack_note, a.ack_until, a.resolved_at, a.resolved_by, a.mail_held, \
     COALESCE(ts.hostname, t.hostname) AS hostname, c.name AS clinic_name, \
     c.phone AS clinic_phone, c.prefecture AS clinic_prefecture, (SELECT h.note FROM alert_history h WHERE h.alert_id = a.id \
     AND h.note IS NOT NULL ORDER BY h.id DESC LIMIT 1) AS last_note";

fn alert_view(r: &SqliteRow) -> Result<AlertView, StoreError> {
    Ok(AlertView {
        alert: alert_from(r)?,
        hostname: r.try_get("hostname")?,
        clinic_name: r.try_get("clinic_name")?,
        clinic_phone: r.try_get("clinic_phone")?,
        clinic_prefecture: r.try_get("clinic_prefecture")?,
        last_note: r.try_get("last_note")?,
    })
}

/// One page of alerts after `f.after`, with the names the desk reads them by.
pub(super) async fn alerts_page(
    conn: &mut SqliteConnection,
    f: &AlertQuery,
) -> StoreResult<Vec<AlertView>> {
    // The page's ids first (off an index, in order), then the joins for those ids only.
    let order = alert_order(f.include_resolved);
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{ALERT_VIEW_COLUMNS} FROM (SELECT a.id FROM alerts a"
    ));
    q.push(in_order_index(f).unwrap_or(""));
    push_alert_filters(&mut q, f);
    q.push(order.as_str()).push(" LIMIT ").push_bind(f.limit);
    q.push(
        ") page JOIN alerts a ON a.id = page.id JOIN terminals t ON t.id = a.terminal_id \
         JOIN clinics c ON c.id = a.clinic_id \
         LEFT JOIN overview_line ts ON ts.terminal_id = a.terminal_id",
    );
    q.push(order.as_str());
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter().map(alert_view).collect()
}

/// Every alert the filters match, in the page's order: the alerts are the outer loop (`CROSS
/// JOIN` keeps the planner from reordering), read off the same index as the pages.
pub(super) fn alerts_export(
    pool: SqlitePool,
    f: AlertQuery,
) -> BoxStream<'static, StoreResult<AlertView>> {
    let f = AlertQuery { after: None, ..f };
    stream_rows(
        pool,
        move || {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("{ALERT_VIEW_COLUMNS} FROM alerts a"));
            q.push(in_order_index(&f).unwrap_or(""));
            q.push(
                " CROSS JOIN terminals t ON t.id = a.terminal_id \
                 CROSS JOIN clinics c ON c.id = a.clinic_id \
                 LEFT JOIN overview_line ts ON ts.terminal_id = a.terminal_id",
            );
            push_alert_filters(&mut q, &f);
            q.push(alert_order(f.include_resolved));
            q
        },
        alert_view,
    )
}

/// The ids of the unresolved alerts that match, in the page's order, at most `limit`.
pub(super) async fn alert_ids(
    conn: &mut SqliteConnection,
    f: &AlertQuery,
    limit: i64,
) -> StoreResult<Vec<i64>> {
    let f = AlertQuery {
        include_resolved: false,
        after: None,
        ..f.clone()
    };
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT a.id FROM alerts a");
    q.push(in_order_index(&f).unwrap_or(""));
    push_alert_filters(&mut q, &f);
    q.push(alert_order(false)).push(" LIMIT ").push_bind(limit);
    Ok(q.build_query_scalar().fetch_all(&mut *conn).await?)
}

fn audit_from(r: &SqliteRow) -> Result<AuditRow, StoreError> {
    let terminal: Option<String> = r.try_get("terminal_id")?;
    Ok(AuditRow {
        id: r.try_get("id")?,
        at: from_millis(r.try_get("at")?),
        actor: r.try_get("actor")?,
        terminal_id: terminal.and_then(|t| Uuid::parse_str(&t).ok()),
        clinic_id: r.try_get("clinic_id")?,
        alert_id: r.try_get("alert_id")?,
        what: r.try_get("what")?,
        action: r.try_get("action")?,
        hostname: r.try_get("hostname")?,
        clinic_name: r.try_get("clinic_name")?,
    })
}

/// An audit line with the names of what it touched (`l`, `t`, `s`, `c` joined).
const AUDIT_COLUMNS: &str = "SELECT l.id, l.at, l.actor, l.terminal_id, l.clinic_id, \
     l.alert_id, l.what, l.action, COALESCE(s.hostname, t.hostname) AS hostname, \
     c.name AS clinic_name";

const AUDIT_JOINS: &str = " LEFT JOIN terminals t ON t.id = l.terminal_id \
     LEFT JOIN latest_report s ON s.terminal_id = l.terminal_id \
     LEFT JOIN clinics c ON c.id = l.clinic_id";

/// The audit log's filters on `alias`, after a `WHERE 1 = 1`.
fn push_audit_filters(q: &mut QueryBuilder<Sqlite>, f: &AuditQuery, alias: &str) {
    // A line about a terminal names its clinic, except the agent's own lines: those are found
    // through the terminal.
    if let Some(ids) = f.reach.ids_json() {
        q.push(format!(
            " AND ({alias}.clinic_id IN (SELECT value FROM json_each("
        ))
        .push_bind(ids.clone())
        .push(format!(
            ")) OR {alias}.terminal_id IN (SELECT id FROM terminals WHERE clinic_id IN \
             (SELECT value FROM json_each("
        ))
        .push_bind(ids)
        .push("))))");
    }
    if let Some(actor) = &f.actor {
        q.push(format!(" AND {alias}.actor = "))
            .push_bind(actor.clone());
    }
    if let Some(c) = f.clinic_id {
        q.push(format!(" AND {alias}.clinic_id = ")).push_bind(c);
    }
    if let Some(t) = f.terminal_id {
        q.push(format!(" AND {alias}.terminal_id = "))
            .push_bind(t.to_string());
    }
    if let Some(id) = f.alert_id {
        q.push(format!(" AND {alias}.alert_id = ")).push_bind(id);
    }
    if let Some(action) = &f.action {
        q.push(format!(" AND {alias}.action = "))
            .push_bind(action.clone());
    }
    if let Some(before) = f.before {
        q.push(format!(" AND {alias}.id < ")).push_bind(before);
    }
}

/// One page of the audit log, newest first, before `f.before`.
pub(super) async fn audit_page(
    conn: &mut SqliteConnection,
    f: &AuditQuery,
) -> StoreResult<Vec<AuditRow>> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{AUDIT_COLUMNS} FROM (SELECT id FROM audit_log a WHERE 1 = 1"
    ));
    push_audit_filters(&mut q, f, "a");
    q.push(" ORDER BY a.id DESC LIMIT ").push_bind(f.limit);
    q.push(") page JOIN audit_log l ON l.id = page.id")
        .push(AUDIT_JOINS)
        .push(" ORDER BY l.id DESC");
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter().map(audit_from).collect()
}

/// Every audit line the filters match, newest first.
pub(super) fn audit_export(
    pool: SqlitePool,
    f: AuditQuery,
) -> BoxStream<'static, StoreResult<AuditRow>> {
    stream_rows(
        pool,
        move || {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("{AUDIT_COLUMNS} FROM audit_log l"));
            q.push(AUDIT_JOINS).push(" WHERE 1 = 1");
            push_audit_filters(&mut q, &f, "l");
            q.push(" ORDER BY l.id DESC");
            q
        },
        audit_from,
    )
}

pub(super) fn outbox_from(r: &SqliteRow) -> Result<OutboxRow, StoreError> {
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("status")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        kind: MailKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("mail kind {kind:?}")))?,
        clinic_id: r.try_get("clinic_id")?,
        clinic_name: r.try_get("clinic_name")?,
        recipient: r.try_get("recipient")?,
        subject: r.try_get("subject")?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("mail status {status:?}")))?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        created_at: from_millis(r.try_get("created_at")?),
        sent_at: opt_time(r, "sent_at")?,
        next_attempt_at: from_millis(r.try_get("next_attempt_at")?),
    })
}

pub(super) const OUTBOX_COLUMNS: &str = "o.id, o.kind, o.clinic_id, c.name AS clinic_name, \
     o.recipient, o.subject, o.status, o.attempts, o.last_error, o.created_at, o.sent_at, \
     o.next_attempt_at";

/// One page of the outbox, newest first, before `f.before`.
pub(super) async fn outbox_page(
    conn: &mut SqliteConnection,
    f: &OutboxQuery,
) -> StoreResult<Vec<OutboxRow>> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox o LEFT JOIN clinics c ON c.id = o.clinic_id \
         WHERE 1 = 1"
    ));
    push_reach(&mut q, "o.clinic_id", &f.reach);
    if let Some(c) = f.clinic_id {
        q.push(" AND o.clinic_id = ").push_bind(c);
    }
    if let Some(s) = f.status {
        q.push(" AND o.status = ").push_bind(s.as_str());
    }
    if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // A search reads the rows it pages through; the newest match first, page by page.
        let like = crate::store::like_pattern(s);
        q.push(" AND (o.recipient LIKE ")
            .push_bind(like.clone())
            .push(" ESCAPE '\\' OR o.subject LIKE ")
            .push_bind(like.clone())
            .push(" ESCAPE '\\' OR c.name LIKE ")
            .push_bind(like)
            .push(" ESCAPE '\\')");
    }
    if let Some(before) = f.before {
        q.push(" AND o.id < ").push_bind(before);
    }
    q.push(" ORDER BY o.id DESC LIMIT ").push_bind(f.limit);
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter().map(outbox_from).collect()
}

/// Every row of one statement, streamed: a task runs the statement and passes its rows
/// through a channel of one export page as they come, so an export of 250,000 rows holds a
/// page in memory, and one statement reads one consistent snapshot. (Pages by offset or by
/// key would read the first rows again for every page.) The task stops when the receiver is
/// dropped (the download was abandoned) or at the first error, which it passes on.
fn stream_rows<T: Send + 'static>(
    pool: SqlitePool,
    build: impl FnOnce() -> QueryBuilder<Sqlite> + Send + 'static,
    map: fn(&SqliteRow) -> Result<T, StoreError>,
) -> BoxStream<'static, StoreResult<T>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_PAGE);
    tokio::spawn(async move {
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = sender.send(Err(e.into())).await;
                return;
            }
        };
        let mut q = build();
        let mut rows = q.build().fetch(&mut *conn);
        while let Some(row) = rows.next().await {
            let row = row.map_err(StoreError::from).and_then(|r| map(&r));
            let failed = row.is_err();
            if sender.send(row).await.is_err() || failed {
                break;
            }
        }
    });
    stream::unfold(receiver, |mut r| async move {
        r.recv().await.map(|row| (row, r))
    })
    .boxed()
}
