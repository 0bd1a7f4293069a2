//! The alerts page and what staff do to alerts: acknowledge (with a note and an until-time),
//! resolve, add a note (silences are [`super::silences`]). Every change needs an
//! admin and the session's CSRF token, and goes through [`crate::desk`] (alert history and
//! audit log in the same transaction).

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::format::{Nav, query_string};
use super::session::{Admin, AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::Error;
use crate::domain::{AlertStatus, RuleKey, actor_label_ja};
use crate::jst::{datetime_local, parse_datetime_local, time_ja};
use crate::store::desk::{AlertGroup, AlertQuery, AlertView, ResponseTimes};

const PAGE_SIZE: i64 = 200;

/// One alert as the pages list it (the overview's alerts page and the terminal page).
pub struct AlertRow {
    pub id: i64,
    pub rule: &'static str,
    pub title: &'static str,
    pub severity: &'static str,
    pub severity_label: &'static str,
    pub status: &'static str,
    pub status_label: &'static str,
    pub resolved: bool,
    pub detail: String,
    pub terminal_id: String,
    pub hostname: String,
    pub clinic_id: i64,
    pub clinic: String,
    pub opened: String,
    pub ack: String,
    pub last_note: String,
}

impl From<AlertView> for AlertRow {
    fn from(v: AlertView) -> Self {
        let a = v.alert;
        let ack = match (&a.ack_by, a.status) {
            (Some(by), AlertStatus::Acknowledged) => {
                let until = a
                    .ack_until
                    .map(|u| format!(" ({} まで)", time_ja(u)))
                    .unwrap_or_default();
                format!("{}{until}", actor_label_ja(by))
            }
            _ => String::new(),
        };
        AlertRow {
            id: a.id,
            title: a.rule.title_ja(),
            rule: a.rule.as_str(),
            severity: a.severity.as_str(),
            severity_label: a.severity.label_ja(),
            status: a.status.as_str(),
            status_label: a.status.label_ja(),
            resolved: a.status == AlertStatus::Resolved,
            detail: a.detail,
            terminal_id: a.terminal_id.to_string(),
            hostname: v.hostname,
            clinic_id: a.clinic_id,
            clinic: v.clinic_name,
            opened: time_ja(a.opened_at),
            ack,
            last_note: v.last_note.unwrap_or_default(),
        }
    }
}

pub struct AlertGroupView {
    pub title: String,
    pub rows: Vec<AlertRow>,
}

pub struct TimesRow {
    pub key: String,
    pub alerts: i64,
    pub acknowledged: i64,
    pub mean_ack: String,
    pub resolved: i64,
    pub mean_resolve: String,
}

fn minutes_ja(m: Option<f64>) -> String {
    match m {
        None => "—".into(),
        Some(m) => crate::jst::duration_ja(chrono::Duration::minutes(m.round() as i64)),
    }
}

impl TimesRow {
    fn new(t: ResponseTimes, group: AlertGroup) -> Self {
        TimesRow {
            key: match group {
                AlertGroup::Rule => {
                    RuleKey::parse(&t.key).map_or(t.key.clone(), |r| r.title_ja().to_string())
                }
                AlertGroup::Clinic => t.key,
            },
            alerts: t.alerts,
            acknowledged: t.acknowledged,
            mean_ack: minutes_ja(t.mean_ack_minutes),
            resolved: t.resolved,
            mean_resolve: minutes_ja(t.mean_resolve_minutes),
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    pub nav: Nav,
    pub groups: Vec<AlertGroupView>,
    pub total: i64,
    pub shown: usize,
    pub truncated: bool,
    pub by_clinic: bool,
    pub rule: String,
    pub back: String,
    pub ack_default: String,
    pub all_rules: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "alert_times.html")]
pub struct AlertTimesPage {
    pub nav: Nav,
    pub days: i64,
    pub by_rule: Vec<TimesRow>,
    pub by_clinic: Vec<TimesRow>,
}

/// `GET /alerts/times`: how long acknowledging and resolving took, per rule and per clinic
/// (the 100 clinics with the most alerts), over the last 30 days. A report: it aggregates
/// every alert of the window, so it is not on the alerts page itself.
pub async fn times_page(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Html<String>, PageFailure> {
    let desk = state.store.desk();
    let days = 30;
    let since = Utc::now() - Duration::days(days);
    let by_rule = desk
        .response_times(AlertGroup::Rule, since)
        .await?
        .into_iter()
        .map(|t| TimesRow::new(t, AlertGroup::Rule))
        .collect();
    let by_clinic = desk
        .response_times(AlertGroup::Clinic, since)
        .await?
        .into_iter()
        .map(|t| TimesRow::new(t, AlertGroup::Clinic))
        .collect();
    Ok(Html(
        AlertTimesPage {
            nav: Nav::new(&staff, "alerts"),
            days,
            by_rule,
            by_clinic,
        }
        .render()?,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct AlertsQuery {
    #[serde(default)]
    group: String,
    #[serde(default)]
    rule: String,
    clinic: Option<i64>,
}

/// `GET /alerts`: open and acknowledged alerts, grouped by rule (default) or clinic.
pub async fn alerts_page(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<AlertsQuery>,
) -> Result<Html<String>, PageFailure> {
    let desk = state.store.desk();
    let rule = RuleKey::parse(&q.rule);
    // Unresolved alerts per rule are the evaluator's running counts (one alert per terminal
    // and rule); only a clinic filter needs a count query.
    let tally = state.tally().filter(|_| q.clinic.is_none());
    let (total, views) = desk
        .alert_views(&AlertQuery {
            rule,
            clinic_id: q.clinic,
            terminal_id: None,
            include_resolved: false,
            count: tally.is_none(),
            offset: 0,
            limit: PAGE_SIZE,
        })
        .await?;
    let total = match (&tally, &rule) {
        (Some(t), Some(r)) => t.rule(*r),
        (Some(t), None) => t.rules.iter().sum(),
        (None, _) => total,
    };
    let shown = views.len();
    let by_clinic = q.group == "clinic";
    let mut groups: Vec<AlertGroupView> = Vec::new();
    for v in views {
        let row = AlertRow::from(v);
        let title = if by_clinic {
            row.clinic.clone()
        } else {
            row.title.to_string()
        };
        match groups.iter_mut().find(|g| g.title == title) {
            Some(g) => g.rows.push(row),
            None => groups.push(AlertGroupView {
                title,
                rows: vec![row],
            }),
        }
    }
    let back = format!(
        "/alerts{}",
        query_string(&[
            ("group", q.group.clone()),
            ("rule", q.rule.clone()),
            (
                "clinic",
                q.clinic.map(|c| c.to_string()).unwrap_or_default()
            ),
        ])
    );
    let html = AlertsPage {
        nav: Nav::new(&staff, "alerts"),
        groups,
        total,
        shown,
        truncated: (shown as i64) < total,
        by_clinic,
        rule: rule.map(|r| r.as_str().to_string()).unwrap_or_default(),
        back,
        ack_default: datetime_local(Utc::now() + Duration::days(1)),
        all_rules: RuleKey::ALL
            .iter()
            .map(|r| (r.as_str(), r.title_ja()))
            .collect(),
    }
    .render()?;
    Ok(Html(html))
}

/// Only our own pages are returned to after an action.
pub(super) fn back_to(back: Option<&str>) -> String {
    match back {
        Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') => b.into(),
        _ => "/alerts".into(),
    }
}

/// Where an action ends: back to the page the form was on, or (when the desk refused it) a
/// short page that says why, with a way back.
pub(super) fn finish(done: Result<(), Error>, back: &str) -> Result<Response, AuthFailure> {
    match done {
        Ok(()) => Ok(Redirect::to(back).into_response()),
        Err(e) => match e.refusal() {
            Some(message) => Ok(super::message_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                message,
                back,
                "戻る",
            )),
            None => Err(e.into()),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct AckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    until: String,
    back: Option<String>,
}

/// `POST /alerts/{id}/ack`
pub async fn acknowledge(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<AckForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let back = back_to(form.back.as_deref());
    let done = match parse_datetime_local(&form.until) {
        Ok(until) => {
            state
                .desk
                .acknowledge(&staff.actor(), id, &form.note, until, Utc::now())
                .await
        }
        Err(e) => Err(Error::Invalid(e)),
    };
    finish(done, &back)
}

#[derive(Debug, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
    back: Option<String>,
}

/// `POST /alerts/{id}/resolve`
pub async fn resolve(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<NoteForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let back = back_to(form.back.as_deref());
    let done = state
        .desk
        .resolve(&staff.actor(), id, &form.note, Utc::now())
        .await;
    finish(done, &back)
}

/// `POST /alerts/{id}/note`
pub async fn note(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<NoteForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let back = back_to(form.back.as_deref());
    let done = state
        .desk
        .note(&staff.actor(), id, &form.note, Utc::now())
        .await;
    finish(done, &back)
}
