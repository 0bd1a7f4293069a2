//! The desk's paged lists on PostgreSQL (the overview and the alerts page), the same queries
//! as `sqlite::pages`, and their CSV exports: a cursor over the page's query, read a page at a
//! time inside one read-only REPEATABLE READ transaction (one consistent snapshot, one page in
//! memory, no page read twice).

use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};

use super::alerts::{alert_from, opt_time};
use super::desk::{LINE_COLUMNS, line_from, order_by, push_fleet_filters};
use crate::domain::{HandlingKind, Severity};
use crate::store::desk::{ALERT_COUNT_CAP, AlertQuery, AlertView, FleetQuery, FleetRead, FleetRow};
use crate::store::{StoreError, StoreResult, millis};

/// Rows per page of an export.
const EXPORT_PAGE: usize = 1_000;

// The pages' LIMITs are written into the SQL (an integer, never text), not bound: sqlx
// prepares each statement, and after five executions on a connection PostgreSQL may switch to
// a generic plan, which cannot know `LIMIT $n` and plans for a tenth of the rows instead. On
// the alerts page by prefecture that made one request in thirty take 15 s (an ordered walk of
// every unresolved alert, each compared with every clinic of the prefecture). The limits are
// a few constants (the page sizes), so the statements stay few.

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
pub(super) async fn fleet_page(pool: &PgPool, f: &FleetQuery) -> StoreResult<Vec<FleetRow>> {
    // Two steps: the page's ids from the index alone (OFFSET skips index entries, not joined
    // rows), then the joins for those ids only.
    let order = order_by(f.sort, f.descending);
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {LINE_COLUMNS}, s.received_at, c.code, c.phone FROM \
         (SELECT ts.terminal_id FROM overview_line ts"
    ));
    // Read from the end: the same lines in the opposite order, then put back in order below.
    let (inner, offset, limit) = match f.read {
        FleetRead::Reversed { matching } => (
            order_by(f.sort, !f.descending),
            (matching - f.offset - f.limit).max(0),
            f.limit.min(matching - f.offset).max(0),
        ),
        FleetRead::Sorted | FleetRead::InOrder => (order, f.offset, f.limit),
    };
    push_fleet_filters(&mut q, f);
    q.push(inner);
    q.push(format!(" LIMIT {}", limit.max(0)))
        .push(" OFFSET ")
        .push_bind(offset.max(0));
    q.push(
        ") page JOIN overview_line ts ON ts.terminal_id = page.terminal_id \
         LEFT JOIN latest_report s ON s.terminal_id = ts.terminal_id \
         LEFT JOIN clinics c ON c.id = ts.clinic_id",
    );
    q.push(order);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(fleet_row).collect()
}

/// The read API's page of terminals: by terminal id, after the cursor.
pub(super) async fn terminals_after(
    pool: &PgPool,
    f: &FleetQuery,
    after: Option<uuid::Uuid>,
) -> StoreResult<Vec<FleetRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {LINE_COLUMNS}, s.received_at, c.code, c.phone FROM overview_line ts \
         LEFT JOIN latest_report s ON s.terminal_id = ts.terminal_id \
         LEFT JOIN clinics c ON c.id = ts.clinic_id"
    ));
    push_fleet_filters(&mut q, f);
    if let Some(after) = after {
        q.push(" AND ts.terminal_id > ").push_bind(after);
    }
    q.push(format!(" ORDER BY ts.terminal_id LIMIT {}", f.limit.max(0)));
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(fleet_row).collect()
}

fn fleet_row(r: &PgRow) -> Result<FleetRow, StoreError> {
    Ok(FleetRow {
        line: line_from(r)?,
        last_seen: opt_time(r, "received_at")?,
        clinic_code: r.try_get("code")?,
        clinic_phone: r.try_get("phone")?,
    })
}

/// Every overview line the filters match, in the overview's order.
pub(super) fn fleet_export(
    pool: PgPool,
    f: FleetQuery,
) -> BoxStream<'static, StoreResult<FleetRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "{DECLARE_EXPORT}SELECT {LINE_COLUMNS}, s.received_at, c.code, c.phone \
         FROM overview_line ts LEFT JOIN latest_report s ON s.terminal_id = ts.terminal_id \
         LEFT JOIN clinics c ON c.id = ts.clinic_id"
    ));
    push_fleet_filters(&mut q, &f);
    q.push(order_by(f.sort, f.descending));
    stream_pages(pool, q, fleet_row)
}

/// The alerts' filters, after `WHERE`.
fn push_alert_filters(q: &mut QueryBuilder<Postgres>, f: &AlertQuery) {
    if f.include_resolved {
        q.push(" WHERE TRUE");
    } else {
        q.push(" WHERE a.status IN ('open', 'acknowledged')");
    }
    super::push_reach(q, "a.clinic_id", &f.reach);
    if let Some(rule) = &f.rule {
        q.push(" AND a.rule = ").push_bind(rule.as_str());
    }
    if let Some(c) = f.clinic_id {
        q.push(" AND a.clinic_id = ").push_bind(c);
    }
    if let Some(t) = f.terminal_id {
        q.push(" AND a.terminal_id = ").push_bind(t);
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
/// index, the id breaking ties).
fn alert_order(include_resolved: bool) -> String {
    if include_resolved {
        format!(" ORDER BY a.status = 'resolved', {SEVERITY_RANK}, a.opened_at DESC, a.id")
    } else {
        format!(" ORDER BY {SEVERITY_RANK}, a.opened_at DESC, a.id")
    }
}

/// How many alerts match (the page and the cursor aside), up to one past
/// [`ALERT_COUNT_CAP`].
pub(super) async fn alerts_count(pool: &PgPool, f: &AlertQuery) -> StoreResult<i64> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1 FROM alerts a");
    let all = AlertQuery {
        after: None,
        ..f.clone()
    };
    push_alert_filters(&mut q, &all);
    q.push(format!(" LIMIT {}) matching", ALERT_COUNT_CAP + 1));
    Ok(q.build_query_scalar().fetch_one(pool).await?)
}

/// An alert with the names the desk reads it by (`a`, `t`, `c`, `ts` joined).
const ALERT_VIEW_COLUMNS: &str = "SELECT a.id, a.terminal_id, a.clinic_id, a.rule, a.severity, \
     a.status, a.detail, a.occurrence, a.opened_at, a.updated_at, a.clear_since, a.ack_by, \
     a.ack_note, a.ack_until, a.resolved_at, a.resolved_by, a.mail_held, \
     COALESCE(ts.hostname, t.hostname) AS hostname, c.name AS clinic_name, \
     c.phone AS clinic_phone, c.prefecture AS clinic_prefecture, (SELECT h.note FROM alert_history h WHERE h.alert_id = a.id \
     AND h.note IS NOT NULL ORDER BY h.id DESC LIMIT 1) AS last_note";

fn alert_view(r: &PgRow) -> Result<AlertView, StoreError> {
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
pub(super) async fn alerts_page(pool: &PgPool, f: &AlertQuery) -> StoreResult<Vec<AlertView>> {
    // The page's ids first (off an index, in order), then the joins for those ids only.
    let order = alert_order(f.include_resolved);
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "{ALERT_VIEW_COLUMNS} FROM (SELECT a.id FROM alerts a"
    ));
    push_alert_filters(&mut q, f);
    q.push(order.as_str())
        .push(format!(" LIMIT {}", f.limit.max(0)));
    q.push(
        ") page JOIN alerts a ON a.id = page.id JOIN terminals t ON t.id = a.terminal_id \
         JOIN clinics c ON c.id = a.clinic_id \
         LEFT JOIN overview_line ts ON ts.terminal_id = a.terminal_id",
    );
    q.push(order.as_str());
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(alert_view).collect()
}

/// Every alert the filters match, in the page's order.
pub(super) fn alerts_export(
    pool: PgPool,
    f: AlertQuery,
) -> BoxStream<'static, StoreResult<AlertView>> {
    let f = AlertQuery { after: None, ..f };
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "{DECLARE_EXPORT}{ALERT_VIEW_COLUMNS} FROM alerts a JOIN terminals t ON t.id = a.terminal_id \
         JOIN clinics c ON c.id = a.clinic_id \
         LEFT JOIN overview_line ts ON ts.terminal_id = a.terminal_id"
    ));
    push_alert_filters(&mut q, &f);
    q.push(alert_order(f.include_resolved));
    stream_pages(pool, q, alert_view)
}

/// The ids of the unresolved alerts that match, in the page's order, at most `limit`.
pub(super) async fn alert_ids(pool: &PgPool, f: &AlertQuery, limit: i64) -> StoreResult<Vec<i64>> {
    let f = AlertQuery {
        include_resolved: false,
        after: None,
        ..f.clone()
    };
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT a.id FROM alerts a");
    push_alert_filters(&mut q, &f);
    q.push(alert_order(false))
        .push(format!(" LIMIT {}", limit.max(0)));
    Ok(q.build_query_scalar().fetch_all(pool).await?)
}

/// Where an export is.
enum Export {
    /// Not begun: the query to open a cursor for.
    Start(PgPool, QueryBuilder<Postgres>),
    /// The cursor is open in this transaction.
    Reading(Transaction<'static, Postgres>),
    Done,
}

/// What an export's query starts with: its rows are read off this cursor.
const DECLARE_EXPORT: &str = "DECLARE export NO SCROLL CURSOR FOR ";

/// Opens the cursor a query (beginning with [`DECLARE_EXPORT`]) declares, in a read-only
/// REPEATABLE READ transaction.
async fn open_cursor(
    pool: &PgPool,
    mut q: QueryBuilder<Postgres>,
) -> StoreResult<Transaction<'static, Postgres>> {
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    q.build().persistent(false).execute(&mut *tx).await?;
    Ok(tx)
}

/// Every row of a query that declares the export's cursor, read off it a page ([`EXPORT_PAGE`] rows) at a time inside one
/// read-only REPEATABLE READ transaction: one consistent snapshot however long the download
/// takes, one page in memory. The transaction is opened when the first row is asked for, and
/// ends (rolled back, it wrote nothing) when the last page is read, at the first error, or when
/// the stream is dropped (the download was abandoned).
fn stream_pages<T: Send + 'static>(
    pool: PgPool,
    q: QueryBuilder<Postgres>,
    map: fn(&PgRow) -> Result<T, StoreError>,
) -> BoxStream<'static, StoreResult<T>> {
    stream::unfold(Export::Start(pool, q), move |state| async move {
        let mut tx = match state {
            Export::Done => return None,
            Export::Reading(tx) => tx,
            Export::Start(pool, q) => match open_cursor(&pool, q).await {
                Ok(tx) => tx,
                Err(e) => return Some((vec![Err(e)], Export::Done)),
            },
        };
        let fetch = format!("FETCH {EXPORT_PAGE} FROM export");
        let rows = match sqlx::query(sqlx::AssertSqlSafe(fetch))
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
        {
            Ok(rows) => rows,
            Err(e) => return Some((vec![Err(e.into())], Export::Done)),
        };
        let last = rows.len() < EXPORT_PAGE;
        // Up to the first row that cannot be read, which ends the export.
        let mut page: Vec<StoreResult<T>> = Vec::with_capacity(rows.len());
        let mut failed = false;
        for r in &rows {
            let row = map(r);
            failed = row.is_err();
            page.push(row);
            if failed {
                break;
            }
        }
        if last || failed {
            // Read-only: nothing to commit; the connection goes back to the pool.
            let _ = tx.rollback().await;
            if page.is_empty() {
                return None;
            }
            return Some((page, Export::Done));
        }
        Some((page, Export::Reading(tx)))
    })
    .flat_map(stream::iter)
    .boxed()
}
