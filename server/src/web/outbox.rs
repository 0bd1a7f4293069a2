//! The outbox: every mail and where it is in delivery.

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use super::format::Nav;
use super::session::Staff;
use super::{AppState, PageFailure};
use crate::domain::{OutboxCounts, OutboxRow};
use crate::jst::{opt_time_ja, time_ja};

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

#[derive(Template)]
#[template(path = "outbox.html")]
pub struct OutboxPage {
    pub nav: Nav,
    pub counts: OutboxCounts,
    pub rows: Vec<OutboxLine>,
}

/// `GET /outbox`
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Html<String>, PageFailure> {
    let rows = state.store.desk().outbox_rows(None, 200).await?;
    Ok(Html(
        OutboxPage {
            nav: Nav::new(&staff, "outbox"),
            counts: state.store.alerts().outbox_counts().await?,
            rows: rows.into_iter().map(OutboxLine::new).collect(),
        }
        .render()?,
    ))
}
