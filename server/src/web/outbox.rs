//! The outbox: every mail and where it is in delivery, searched and filtered a page at a time,
//! and each mail as it is sent (headers, text and HTML parts, the whole message).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::format::{Nav, query_string};
use super::session::Staff;
use super::{AppState, PageFailure};
use crate::domain::{OutboxCounts, OutboxRow, OutboxStatus};
use crate::jst::{opt_time_ja, time_ja};
use crate::store::desk::OutboxQuery;

/// Mails per page.
pub const PAGE_SIZE: i64 = 100;

/// One mail as the outbox and the clinic page list it.
pub struct OutboxLine {
    pub id: i64,
    pub kind: &'static str,
    pub clinic: String,
    pub recipient: String,
    pub subject: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub attempts: i64,
    pub error: String,
    pub created: String,
    pub sent: String,
}

impl OutboxLine {
    pub fn new(o: OutboxRow) -> Self {
        OutboxLine {
            id: o.id,
            kind: o.kind.label_ja(),
            clinic: o.clinic_name.unwrap_or_default(),
            recipient: o.recipient,
            subject: o.subject,
            status: o.status.as_str(),
            status_label: o.status.label_ja(),
            attempts: o.attempts,
            error: o.last_error.unwrap_or_default(),
            created: time_ja(o.created_at),
            sent: opt_time_ja(o.sent_at),
        }
    }
}

/// The outbox page's query string.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct OutboxFilter {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub clinic: String,
    #[serde(default)]
    pub before: String,
}

impl OutboxFilter {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("q", self.q.trim().to_string()),
            ("status", self.status.clone()),
            ("clinic", self.clinic.clone()),
        ]
    }
}

#[derive(Template)]
#[template(path = "outbox.html")]
pub struct OutboxPage {
    pub nav: Nav,
    pub counts: OutboxCounts,
    pub rows: Vec<OutboxLine>,
    pub filter: OutboxFilter,
    pub statuses: Vec<(&'static str, &'static str)>,
    pub next: String,
    pub first: String,
}

/// `GET /outbox`
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(filter): Query<OutboxFilter>,
) -> Result<Html<String>, PageFailure> {
    let query = OutboxQuery {
        clinic_id: filter.clinic.trim().parse().ok(),
        status: OutboxStatus::parse(&filter.status),
        search: Some(filter.q.trim().to_string()).filter(|q| !q.is_empty()),
        before: filter.before.trim().parse().ok(),
        limit: PAGE_SIZE,
        reach: staff.reach.clone(),
    };
    let rows = state.store.outbox().outbox_rows(&query).await?;
    let next = match rows.last() {
        Some(last) if rows.len() as i64 == PAGE_SIZE => {
            let mut pairs = filter.pairs();
            pairs.push(("before", last.id.to_string()));
            format!("/outbox{}", query_string(&pairs))
        }
        _ => String::new(),
    };
    let first = if filter.before.is_empty() {
        String::new()
    } else {
        format!("/outbox{}", query_string(&filter.pairs()))
    };
    Ok(Html(
        OutboxPage {
            nav: Nav::new(&staff, "outbox"),
            counts: state.store.outbox().outbox_counts(&staff.reach).await?,
            rows: rows.into_iter().map(OutboxLine::new).collect(),
            statuses: OutboxStatus::ALL
                .iter()
                .map(|s| (s.as_str(), s.label_ja()))
                .collect(),
            filter,
            next,
            first,
        }
        .render()?,
    ))
}

#[derive(Template)]
#[template(path = "mail.html")]
pub struct MailPage {
    pub nav: Nav,
    pub line: OutboxLine,
    pub message_id: String,
    pub text: String,
    pub html: String,
    /// The whole message as the server hands it to SMTP (its Date is set when it is sent).
    pub raw: String,
}

/// `GET /outbox/{id}`: one mail as it is sent.
pub async fn mail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
) -> Result<Response, PageFailure> {
    // Mail to a clinic outside the scope, or to no clinic, is not found for a limited scope.
    let found = state
        .store
        .outbox()
        .outbox_mail(id)
        .await?
        .filter(|(row, _)| staff.reach.is_all() || row.clinic_id.is_some_and(|c| staff.reaches(c)));
    let Some((row, mail)) = found else {
        return Ok(super::message_in_layout(
            &staff,
            StatusCode::NOT_FOUND,
            "見つかりません",
            "このメールは見つかりません。",
            "/outbox",
        ));
    };
    let raw = crate::notify::build_message(&state.config.smtp.from, &mail)
        .map(|m| String::from_utf8_lossy(&m.formatted()).into_owned())
        .unwrap_or_else(|e| format!("(このメールは組み立てられません: {e})"));
    Ok(Html(
        MailPage {
            nav: Nav::new(&staff, "outbox"),
            line: OutboxLine::new(row),
            message_id: mail.message_id,
            text: mail.body_text,
            html: mail.body_html,
            raw,
        }
        .render()?,
    )
    .into_response())
}
