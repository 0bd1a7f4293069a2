//! The alerts page and what staff do to alerts: acknowledge (with a note and an until-time),
//! resolve, add a note, silence a terminal or a clinic. Every change needs an admin, the
//! session's CSRF token, and lands in the alert history and the audit log.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::format::{Nav, datetime_local, parse_datetime_local, query_string, time_ja};
use super::session::{Admin, AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::rules;
use crate::store::alerts::{AlertStatus, Silence};
use crate::store::desk::{AlertGroup, AlertQuery, AlertView, ResponseTimes};

const PAGE_SIZE: i64 = 200;

/// One alert as the pages list it (the overview's alerts page and the terminal page).
pub struct AlertRow {
    pub id: i64,
    pub rule: String,
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

pub fn status_label(s: AlertStatus) -> &'static str {
    match s {
        AlertStatus::Open => "未対応",
        AlertStatus::Acknowledged => "確認済み",
        AlertStatus::Resolved => "解決済み",
    }
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
                format!("{by}{until}")
            }
            _ => String::new(),
        };
        AlertRow {
            id: a.id,
            title: rules::title_ja(&a.rule),
            rule: a.rule,
            severity: a.severity.as_str(),
            severity_label: a.severity.label_ja(),
            status: a.status.as_str(),
            status_label: status_label(a.status),
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
        Some(m) if m < 60.0 => format!("{m:.0}分"),
        Some(m) if m < 48.0 * 60.0 => format!("{:.1}時間", m / 60.0),
        Some(m) => format!("{:.1}日", m / 1440.0),
    }
}

impl TimesRow {
    fn new(t: ResponseTimes, group: AlertGroup) -> Self {
        TimesRow {
            key: match group {
                AlertGroup::Rule => rules::title_ja(&t.key).to_string(),
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
    let rule = rules::key::ALL
        .iter()
        .find(|r| **r == q.rule)
        .map(|r| r.to_string());
    // Unresolved alerts per rule are the evaluator's running counts (one alert per terminal
    // and rule); only a clinic filter needs a count query.
    let tally = state.tally().filter(|_| q.clinic.is_none());
    let (total, views) = desk
        .alert_views(&AlertQuery {
            rule: rule.clone(),
            clinic_id: q.clinic,
            terminal_id: None,
            include_resolved: false,
            count: tally.is_none(),
            offset: 0,
            limit: PAGE_SIZE,
        })
        .await?;
    let total = match (&tally, &rule) {
        (Some(t), Some(r)) => t.rule(r),
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
        rule: rule.unwrap_or_default(),
        back,
        ack_default: datetime_local(Utc::now() + Duration::days(1)),
        all_rules: rules::key::ALL
            .iter()
            .map(|r| (*r, rules::title_ja(r)))
            .collect(),
    }
    .render()?;
    Ok(Html(html))
}

/// Only our own pages are returned to after an action.
fn back_to(back: Option<&str>) -> String {
    match back {
        Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') => b.into(),
        _ => "/alerts".into(),
    }
}

/// A form problem the person can fix: shown as a short page with a way back.
fn form_error(message: &str, back: &str) -> Response {
    super::message_page(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        message,
        back,
        "戻る",
    )
}

#[derive(Debug, Deserialize)]
pub struct AckForm {
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
    let until = match parse_datetime_local(&form.until) {
        Ok(u) => u,
        Err(e) => return Ok(form_error(&e, &back)),
    };
    let now = Utc::now();
    if until.is_some_and(|u| u <= now) {
        return Ok(form_error(
            "「いつまで」には未来の日時を指定してください",
            &back,
        ));
    }
    let note = form.note.trim();
    let done = state
        .store
        .alerts()
        .acknowledge_alert(id, &staff.user.name, note, until, now)
        .await?;
    finish(
        &state,
        &staff,
        id,
        done,
        format!("アラート #{id} を確認済みに ({note})"),
        &back,
    )
    .await
}

/// The end of acknowledging or resolving: refused when the store changed nothing, else
/// audited, the evaluator woken for the terminal, and back to the page the form was on.
async fn finish(
    state: &AppState,
    staff: &Staff,
    id: i64,
    done: bool,
    what: String,
    back: &str,
) -> Result<Response, AuthFailure> {
    if !done {
        return Ok(form_error(
            "このアラートは見つからないか、解決済みです",
            back,
        ));
    }
    // The alert's terminal is evaluated again at once (its summary, the counts).
    if let (Some(changes), Some(terminal)) =
        (&state.changes, audit_alert(state, staff, id, what).await?)
    {
        changes.mark([terminal]);
    }
    Ok(Redirect::to(back).into_response())
}

#[derive(Debug, Deserialize)]
pub struct NoteForm {
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
    let note = form.note.trim();
    let done = state
        .store
        .alerts()
        .resolve_alert(id, &staff.user.name, note, Utc::now())
        .await?;
    finish(
        &state,
        &staff,
        id,
        done,
        format!("アラート #{id} を解決済みに ({note})"),
        &back,
    )
    .await
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
    let note = form.note.trim();
    if note.is_empty() {
        return Ok(form_error("メモが空です", &back));
    }
    if note.chars().count() > 2000 {
        return Ok(form_error("メモは 2000 文字までです", &back));
    }
    if !state
        .store
        .desk()
        .add_alert_note(id, &staff.user.name, note, Utc::now())
        .await?
    {
        return Ok(form_error("このアラートは見つかりません", &back));
    }
    audit_alert(&state, &staff, id, format!("アラート #{id} にメモ: {note}")).await?;
    Ok(Redirect::to(&back).into_response())
}

/// Records a staff action on an alert with its terminal and clinic; returns the terminal.
async fn audit_alert(
    state: &AppState,
    staff: &Staff,
    id: i64,
    what: String,
) -> Result<Option<uuid::Uuid>, crate::Error> {
    let alert = state.store.alerts().alert(id).await?;
    let mut entry = staff.audit(what);
    entry.terminal_id = alert.as_ref().map(|a| a.terminal_id);
    entry.clinic_id = alert.as_ref().map(|a| a.clinic_id);
    state.store.desk().record_audit(&entry).await?;
    Ok(entry.terminal_id)
}

#[derive(Debug, Deserialize)]
pub struct SilenceForm {
    csrf: String,
    terminal: Option<String>,
    clinic: Option<i64>,
    #[serde(default)]
    starts: String,
    #[serde(default)]
    ends: String,
    #[serde(default)]
    reason: String,
    back: Option<String>,
}

/// `POST /silences`: a maintenance window for one terminal or one clinic.
pub async fn silence(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Form(form): Form<SilenceForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let back = back_to(form.back.as_deref());
    let now = Utc::now();
    let terminal = match form.terminal.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => match Uuid::parse_str(t) {
            Ok(id) => Some(id),
            Err(_) => return Ok(form_error("端末の指定が正しくありません", &back)),
        },
        None => None,
    };
    if terminal.is_some() == form.clinic.is_some() {
        return Ok(form_error(
            "端末か医療機関のどちらか一方を指定してください",
            &back,
        ));
    }
    let (starts, ends) = match (
        parse_datetime_local(&form.starts),
        parse_datetime_local(&form.ends),
    ) {
        (Ok(s), Ok(Some(e))) => (s.unwrap_or(now), e),
        (Ok(_), Ok(None)) => return Ok(form_error("終了日時を指定してください", &back)),
        (Err(e), _) | (_, Err(e)) => return Ok(form_error(&e, &back)),
    };
    if ends <= starts || ends <= now {
        return Ok(form_error(
            "終了日時は開始日時と現在より後にしてください",
            &back,
        ));
    }
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Ok(form_error("理由を入力してください", &back));
    }
    let silence = Silence {
        id: 0,
        terminal_id: terminal,
        clinic_id: form.clinic,
        starts_at: starts,
        ends_at: ends,
        reason: reason.to_string(),
        created_by: staff.user.name.clone(),
    };
    state.store.alerts().add_silence(&silence, now).await?;
    let mut entry = staff.audit(format!(
        "通知を停止 {} 〜 {} ({reason})",
        time_ja(starts),
        time_ja(ends)
    ));
    entry.terminal_id = terminal;
    entry.clinic_id = form.clinic;
    state.store.desk().record_audit(&entry).await?;
    if let (Some(changes), Some(t)) = (&state.changes, terminal) {
        changes.mark([t]);
    }
    Ok(Redirect::to(&back).into_response())
}
