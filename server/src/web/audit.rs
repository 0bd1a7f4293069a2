//! The audit log: every change staff made, every login, and the changes terminals reported to
//! accounts the clinic may change.

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use super::format::Nav;
use super::session::Staff;
use super::{AppState, PageFailure};
use crate::domain::{AuditRow, actor_label_ja};
use crate::jst::time_ja;

/// One audit line as the pages show it.
pub struct AuditLine {
    pub at: String,
    pub actor: String,
    pub what: String,
    pub terminal: Option<String>,
    pub clinic: Option<i64>,
    pub alert: Option<i64>,
}

impl AuditLine {
    pub fn new(a: AuditRow) -> Self {
        AuditLine {
            at: time_ja(a.at),
            actor: actor_label_ja(&a.actor),
            what: a.what,
            terminal: a.terminal_id.map(|t| t.to_string()),
            clinic: a.clinic_id,
            alert: a.alert_id,
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub rows: Vec<AuditLine>,
}

/// `GET /audit`
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Html<String>, PageFailure> {
    let rows = state.store.desk().audit_rows(None, None, 300).await?;
    Ok(Html(
        AuditPage {
            nav: Nav::new(&staff, "audit"),
            rows: rows.into_iter().map(AuditLine::new).collect(),
        }
        .render()?,
    ))
}
