//! CSV exports of the overview, the alerts page and the audit log, with the filters the page
//! had: UTF-8 with a byte-order mark (so Excel opens the Japanese correctly), streamed from the
//! store a page at a time, so 250,000 rows take no more memory than a page.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::stream::{self, Stream, StreamExt};

use super::AppState;
use super::alerts::AlertsQuery;
use super::audit::{AuditFilter, AuditLine, action_label};
use super::overview::{OverviewQuery, Problem, fleet_query};
use super::session::Staff;
use crate::domain::{SeverityFilter, actor_label_ja};
use crate::jst::{opt_time_ja, time_ja};
use crate::store::StoreResult;

/// One CSV field: quoted when it holds a comma, a quote or a line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
pub fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One CSV line, CRLF-terminated (RFC 4180).
pub fn line(fields: &[String]) -> String {
    let mut out = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// The response: a BOM and the header line, then each row as the store yields it. An error in
/// the middle ends the file with a line that says so (the status is already sent).
fn csv_response<T: Send + 'static>(
    name: &str,
    header_line: &[&str],
    rows: impl Stream<Item = StoreResult<T>> + Send + 'static,
    to_fields: fn(T) -> Vec<String>,
) -> Response {
    let head = format!(
        "\u{feff}{}",
        line(
            &header_line
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        )
    );
    let body = stream::once(async move { Ok::<Bytes, Infallible>(Bytes::from(head)) }).chain(
        rows.map(move |r| {
            let text = match r {
                Ok(row) => line(&to_fields(row)),
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed");
                    line(&["（書き出しの途中でエラーが発生しました）".to_string()])
                }
            };
            Ok::<Bytes, Infallible>(Bytes::from(text))
        }),
    );
    let stamp = Utc::now()
        .with_timezone(&crate::jst::offset())
        .format("%Y%m%d-%H%M");
    let disposition = format!("attachment; filename=\"{name}-{stamp}.csv\"");
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `GET /export/terminals.csv` with the overview's filters.
pub async fn terminals(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let rows = state
        .store
        .fleet()
        .export_fleet(fleet_query(&q, 1, &staff.reach));
    csv_response(
        "terminals",
        &[
            "端末ID",
            "端末名",
            "医療機関",
            "医療機関コード",
            "都道府県",
            "状態",
            "問題",
            "対応",
            "受信",
            "最終受信",
            "最終起動",
            "証明書の期限",
            "バックアップ",
            "遅れているアプリ",
            "未解決アラート",
        ],
        rows,
        |r| {
            let l = &r.line;
            let problems: Vec<&str> = Problem::of(l).iter().map(|p| p.label).collect();
            vec![
                l.terminal_id.to_string(),
                l.hostname.clone(),
                l.clinic_name.clone(),
                r.clinic_code.clone().unwrap_or_default(),
                l.prefecture.clone().unwrap_or_default(),
                SeverityFilter::of(l.severity).label_ja().to_string(),
                problems.join(" / "),
                l.handling.kind().label_ja().to_string(),
                l.liveness.label_ja().to_string(),
                opt_time_ja(r.last_seen),
                opt_time_ja(l.last_start),
                opt_time_ja(l.cert_not_after),
                l.backup.label_ja().to_string(),
                l.apps_behind.to_string(),
                l.open_alerts.to_string(),
            ]
        },
    )
}

/// `GET /export/alerts.csv` with the alerts page's filters.
pub async fn alerts(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<AlertsQuery>,
) -> Response {
    let rows = state
        .store
        .fleet()
        .export_alerts(q.store_query(Utc::now(), &staff.reach));
    csv_response(
        "alerts",
        &[
            "アラート#",
            "重要度",
            "ルール",
            "内容",
            "状態",
            "確認した人",
            "確認の期限",
            "端末名",
            "端末ID",
            "医療機関",
            "発生",
            "最後のメモ",
        ],
        rows,
        |v| {
            let a = &v.alert;
            vec![
                a.id.to_string(),
                a.severity.label_ja().to_string(),
                a.rule.title_ja().to_string(),
                a.detail.clone(),
                a.status.label_ja().to_string(),
                a.ack_by.as_deref().map(actor_label_ja).unwrap_or_default(),
                opt_time_ja(a.ack_until),
                v.hostname.clone(),
                a.terminal_id.to_string(),
                v.clinic_name.clone(),
                time_ja(a.opened_at),
                v.last_note.clone().unwrap_or_default(),
            ]
        },
    )
}

/// `GET /export/audit.csv` with the audit page's filters.
pub async fn audit(
    State(state): State<AppState>,
    staff: Staff,
    Query(f): Query<AuditFilter>,
) -> Response {
    let rows = state
        .store
        .staff()
        .export_audit(f.store_query(1_000, &staff.reach));
    csv_response(
        "audit",
        &[
            "#",
            "日時",
            "誰が",
            "種類",
            "何を",
            "端末",
            "端末ID",
            "医療機関",
            "医療機関ID",
            "アラート#",
        ],
        rows,
        |a| {
            let action = action_label(a.action.as_deref()).to_string();
            let l = AuditLine::new(a);
            vec![
                l.id.to_string(),
                l.at,
                l.actor,
                action,
                l.what,
                l.hostname,
                l.terminal.unwrap_or_default(),
                l.clinic_name,
                l.clinic.map(|c| c.to_string()).unwrap_or_default(),
                l.alert.map(|a| a.to_string()).unwrap_or_default(),
            ]
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("さくら内科"), "さくら内科");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
        assert_eq!(line(&["a".into(), "b,c".into()]), "a,\"b,c\"\r\n");
    }
}
