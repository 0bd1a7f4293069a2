//! The audit log: every change staff made, every login, and the changes terminals reported to
//! accounts the clinic may change; filtered by who, what kind, clinic and terminal, a page at a
//! time (newest first).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;
use uuid::Uuid;

use super::format::{Nav, query_string};
use super::session::Staff;
use super::{AppState, PageFailure};
use crate::domain::{AuditRow, Reach, actor_label_ja};
use crate::jst::time_ja;
use crate::store::AUDIT_ACTIONS;
use crate::store::desk::AuditQuery;

/// Lines per page.
pub const PAGE_SIZE: i64 = 100;

/// One audit line as the pages show it: who, what, and the terminal, clinic and alert it
/// concerns, by name.
pub struct AuditLine {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub what: String,
    pub action: &'static str,
    pub terminal: Option<String>,
    pub hostname: String,
    pub clinic: Option<i64>,
    pub clinic_name: String,
    pub alert: Option<i64>,
}

/// The Japanese name of a stored action key.
pub fn action_label(key: Option<&str>) -> &'static str {
    key.and_then(|k| AUDIT_ACTIONS.iter().find(|(a, _)| *a == k))
        .map_or("", |(_, l)| l)
}

impl AuditLine {
    pub fn new(a: AuditRow) -> Self {
        AuditLine {
            id: a.id,
            at: time_ja(a.at),
            actor: actor_label_ja(&a.actor),
            what: a.what,
            action: action_label(a.action.as_deref()),
            hostname: a.hostname.unwrap_or_default(),
            terminal: a.terminal_id.map(|t| t.to_string()),
            clinic: a.clinic_id,
            clinic_name: a.clinic_name.unwrap_or_default(),
            alert: a.alert_id,
        }
    }
}

/// The audit page's query string.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuditFilter {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub clinic: String,
    #[serde(default)]
    pub terminal: String,
    #[serde(default)]
    pub alert: String,
    #[serde(default)]
    pub before: String,
}

impl AuditFilter {
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("actor", self.actor.clone()),
            ("action", self.action.clone()),
            ("clinic", self.clinic.clone()),
            ("terminal", self.terminal.clone()),
            ("alert", self.alert.clone()),
        ]
    }

    pub fn store_query(&self, limit: i64, reach: &Reach) -> AuditQuery {
        AuditQuery {
            actor: Some(self.actor.trim().to_string()).filter(|a| !a.is_empty()),
            action: AUDIT_ACTIONS
                .iter()
                .find(|(k, _)| *k == self.action)
                .map(|(k, _)| k.to_string()),
            clinic_id: self.clinic.trim().parse().ok(),
            terminal_id: Uuid::parse_str(self.terminal.trim()).ok(),
            alert_id: self.alert.trim().parse().ok(),
            before: self.before.trim().parse().ok(),
            limit,
            reach: reach.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub rows: Vec<AuditLine>,
    pub filter: AuditFilter,
    /// Actors in the log: stored name, label.
    pub actors: Vec<(String, String)>,
    pub actions: Vec<(&'static str, &'static str)>,
    pub next: String,
    pub first: String,
    pub csv: String,
}

/// `GET /audit`
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(filter): Query<AuditFilter>,
) -> Result<Html<String>, PageFailure> {
    let rows = state
        .store
        .staff()
        .audit_rows(&filter.store_query(PAGE_SIZE, &staff.reach))
        .await?;
    let next = match rows.last() {
        Some(last) if rows.len() as i64 == PAGE_SIZE => {
            let mut pairs = filter.pairs();
            pairs.push(("before", last.id.to_string()));
            format!("/audit{}", query_string(&pairs))
        }
        _ => String::new(),
    };
    let first = if filter.before.is_empty() {
        String::new()
    } else {
        format!("/audit{}", query_string(&filter.pairs()))
    };
    let actors = state
        .store
        .staff()
        .audit_actors(&staff.reach)
        .await?
        .into_iter()
        .map(|a| {
            let label = actor_label_ja(&a);
            (a, label)
        })
        .collect();
    Ok(Html(
        AuditPage {
            nav: Nav::new(&staff, "audit"),
            rows: rows.into_iter().map(AuditLine::new).collect(),
            csv: format!("/export/audit.csv{}", query_string(&filter.pairs())),
            filter,
            actors,
            actions: AUDIT_ACTIONS.to_vec(),
            next,
            first,
        }
        .render()?,
    ))
}
