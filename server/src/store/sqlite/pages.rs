//! The desk's paged lists on SQLite (the overview, the alerts page, the audit log, the outbox)
//! as functions of one connection, so a page is the same query whether the page asks for it or
//! a CSV export reads every page inside one read transaction.

use std::collections::VecDeque;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::alerts::{alert_from, opt_time};
use super::desk::{LINE_COLUMNS, line_from, order_by, push_fleet_filters};
use crate::Error;
use crate::domain::{AuditRow, HandlingKind, MailKind, OutboxRow, OutboxStatus, Severity};
use crate::store::desk::{AlertQuery, AlertView, AuditQuery, FleetQuery, FleetRow, OutboxQuery};
use crate::store::{StoreResult, from_millis, millis};

/// Rows per page of an export.
const EXPORT_PAGE: i64 = 1_000;

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
    push_fleet_filters(&mut q, f);
    q.push(order);
    q.push(" LIMIT ")
        .push_bind(f.limit)
        .push(" OFFSET ")
        .push_bind(f.offset);
    q.push(
        ") page JOIN overview_line ts ON ts.terminal_id = page.terminal_id \
         LEFT JOIN latest_report s ON s.terminal_id = ts.terminal_id \
         LEFT JOIN clinics c ON c.id = ts.clinic_id",
    );
    q.push(order);
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok(FleetRow {
                line: line_from(r)?,
                last_seen: opt_time(r, "received_at")?,
                clinic_code: r.try_get("code")?,
                clinic_phone: r.try_get("phone")?,
            })
        })
        .collect()
}

/// The alerts' filters, after `WHERE`.
fn push_alert_filters(q: &mut QueryBuilder<Sqlite>, f: &AlertQuery) {
    if f.include_resolved {
        q.push(" WHERE 1 = 1");
    } else {
        q.push(" WHERE a.status IN ('open', 'acknowledged')");
    }
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
        q.push(" AND a.severity = ").push_bind(s.as_str());
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

fn unfiltered(f: &AlertQuery) -> bool {
    !f.include_resolved
        && f.rule.is_none()
        && f.clinic_id.is_none()
        && f.terminal_id.is_none()
        && f.prefecture.is_none()
        && f.severity.is_none()
        && f.handling.is_none()
}

/// How many alerts match (the page and the cursor aside).
pub(super) async fn alerts_count(conn: &mut SqliteConnection, f: &AlertQuery) -> StoreResult<i64> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*) FROM alerts a");
    let all = AlertQuery {
        after: None,
        ..f.clone()
    };
    push_alert_filters(&mut q, &all);
    Ok(q.build_query_scalar().fetch_one(&mut *conn).await?)
}

/// One page of alerts after `f.after`, with the names the desk reads them by.
pub(super) async fn alerts_page(
    conn: &mut SqliteConnection,
    f: &AlertQuery,
) -> StoreResult<Vec<AlertView>> {
    let order = alert_order(f.include_resolved);
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT a.id, a.terminal_id, a.clinic_id, a.rule, a.severity, a.status, a.detail, \
         a.occurrence, a.opened_at, a.updated_at, a.clear_since, a.ack_by, a.ack_note, \
         a.ack_until, a.resolved_at, a.resolved_by, a.mail_held, \
         COALESCE(ts.hostname, t.hostname) AS hostname, c.name AS clinic_name, \
         c.phone AS clinic_phone, (SELECT h.note FROM alert_history h WHERE h.alert_id = a.id AND h.note IS NOT NULL \
          ORDER BY h.id DESC LIMIT 1) AS last_note \
         FROM (SELECT a.id FROM alerts a",
    );
    // The whole fleet's unresolved alerts come straight off their index, already in order
    // (the planner, without statistics, would sort them); a filtered list uses the filter's
    // index instead.
    if unfiltered(f) {
        q.push(" INDEXED BY alerts_unresolved");
    }
    push_alert_filters(&mut q, f);
    q.push(order.as_str()).push(" LIMIT ").push_bind(f.limit);
    q.push(
        ") page JOIN alerts a ON a.id = page.id JOIN terminals t ON t.id = a.terminal_id \
         JOIN clinics c ON c.id = a.clinic_id \
         LEFT JOIN overview_line ts ON ts.terminal_id = a.terminal_id",
    );
    q.push(order.as_str());
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok(AlertView {
                alert: alert_from(r)?,
                hostname: r.try_get("hostname")?,
                clinic_name: r.try_get("clinic_name")?,
                clinic_phone: r.try_get("clinic_phone")?,
                last_note: r.try_get("last_note")?,
            })
        })
        .collect()
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
    if unfiltered(&f) {
        q.push(" INDEXED BY alerts_unresolved");
    }
    push_alert_filters(&mut q, &f);
    q.push(alert_order(false)).push(" LIMIT ").push_bind(limit);
    Ok(q.build_query_scalar().fetch_all(&mut *conn).await?)
}

fn audit_from(r: &SqliteRow) -> Result<AuditRow, Error> {
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

/// One page of the audit log, newest first, before `f.before`.
pub(super) async fn audit_page(
    conn: &mut SqliteConnection,
    f: &AuditQuery,
) -> StoreResult<Vec<AuditRow>> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT l.id, l.at, l.actor, l.terminal_id, l.clinic_id, l.alert_id, l.what, l.action, \
         COALESCE(s.hostname, t.hostname) AS hostname, c.name AS clinic_name \
         FROM (SELECT id FROM audit_log a WHERE 1 = 1",
    );
    if let Some(actor) = &f.actor {
        q.push(" AND a.actor = ").push_bind(actor.clone());
    }
    if let Some(c) = f.clinic_id {
        q.push(" AND a.clinic_id = ").push_bind(c);
    }
    if let Some(t) = f.terminal_id {
        q.push(" AND a.terminal_id = ").push_bind(t.to_string());
    }
    if let Some(id) = f.alert_id {
        q.push(" AND a.alert_id = ").push_bind(id);
    }
    if let Some(action) = &f.action {
        q.push(" AND a.action = ").push_bind(action.clone());
    }
    if let Some(before) = f.before {
        q.push(" AND a.id < ").push_bind(before);
    }
    q.push(" ORDER BY a.id DESC LIMIT ").push_bind(f.limit);
    q.push(
        ") page JOIN audit_log l ON l.id = page.id \
         LEFT JOIN terminals t ON t.id = l.terminal_id \
         LEFT JOIN latest_report s ON s.terminal_id = l.terminal_id \
         LEFT JOIN clinics c ON c.id = l.clinic_id ORDER BY l.id DESC",
    );
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter().map(audit_from).collect()
}

pub(super) fn outbox_from(r: &SqliteRow) -> Result<OutboxRow, Error> {
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("status")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        kind: MailKind::parse(&kind)
            .ok_or_else(|| Error::Corrupt(format!("mail kind {kind:?}")))?,
        clinic_id: r.try_get("clinic_id")?,
        clinic_name: r.try_get("clinic_name")?,
        recipient: r.try_get("recipient")?,
        subject: r.try_get("subject")?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| Error::Corrupt(format!("mail status {status:?}")))?,
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
    if let Some(c) = f.clinic_id {
        q.push(" AND o.clinic_id = ").push_bind(c);
    }
    if let Some(s) = f.status {
        q.push(" AND o.status = ").push_bind(s.as_str());
    }
    if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // A search reads the rows it pages through; the newest match first, page by page.
        let like = format!(
            "%{}%",
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
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

/// What an export reads next: a page from its query, which moves its own position on.
type PageFn<Q, T> =
    for<'c> fn(&'c mut SqliteConnection, &'c mut Q) -> BoxFuture<'c, StoreResult<Vec<T>>>;

struct Export<Q, T> {
    pool: SqlitePool,
    tx: Option<sqlx::Transaction<'static, Sqlite>>,
    query: Q,
    rows: VecDeque<T>,
    done: bool,
}

/// Every row of a paged list, read page by page inside one read transaction: a consistent
/// snapshot, one page in memory at a time.
pub(super) fn export<Q, T>(
    pool: SqlitePool,
    query: Q,
    page: PageFn<Q, T>,
) -> BoxStream<'static, StoreResult<T>>
where
    Q: Send + 'static,
    T: Send + 'static,
{
    let start = Export {
        pool,
        tx: None,
        query,
        rows: VecDeque::new(),
        done: false,
    };
    stream::unfold(start, move |mut e| async move {
        loop {
            if let Some(row) = e.rows.pop_front() {
                return Some((Ok(row), e));
            }
            if e.done {
                return None;
            }
            if e.tx.is_none() {
                match e.pool.begin().await {
                    Ok(tx) => e.tx = Some(tx),
                    Err(err) => {
                        e.done = true;
                        return Some((Err(err.into()), e));
                    }
                }
            }
            let Export { tx, query, .. } = &mut e;
            let tx = tx.as_mut()?;
            match page(tx, query).await {
                Ok(rows) => {
                    e.done = (rows.len() as i64) < EXPORT_PAGE;
                    e.rows.extend(rows);
                }
                Err(err) => {
                    e.done = true;
                    return Some((Err(err), e));
                }
            }
        }
    })
    .boxed()
}

/// The next page of the overview (by offset, inside the export's snapshot).
pub(super) fn fleet_export_page<'c>(
    conn: &'c mut SqliteConnection,
    q: &'c mut FleetQuery,
) -> BoxFuture<'c, StoreResult<Vec<FleetRow>>> {
    Box::pin(async move {
        q.limit = EXPORT_PAGE;
        let rows = fleet_page(conn, q).await?;
        q.offset += rows.len() as i64;
        Ok(rows)
    })
}

/// The next page of alerts (after the last one read).
pub(super) fn alerts_export_page<'c>(
    conn: &'c mut SqliteConnection,
    q: &'c mut AlertQuery,
) -> BoxFuture<'c, StoreResult<Vec<AlertView>>> {
    Box::pin(async move {
        q.limit = EXPORT_PAGE;
        let rows = alerts_page(conn, q).await?;
        if let Some(last) = rows.last() {
            q.after = Some(crate::store::desk::AlertCursor::of(&last.alert));
        }
        Ok(rows)
    })
}

/// The next page of the audit log (before the last line read).
pub(super) fn audit_export_page<'c>(
    conn: &'c mut SqliteConnection,
    q: &'c mut AuditQuery,
) -> BoxFuture<'c, StoreResult<Vec<AuditRow>>> {
    Box::pin(async move {
        q.limit = EXPORT_PAGE;
        let rows = audit_page(conn, q).await?;
        if let Some(last) = rows.last() {
            q.before = Some(last.id);
        }
        Ok(rows)
    })
}
