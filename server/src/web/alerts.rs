//! The alerts page and what staff do to alerts: acknowledge (with a note and an until-time),
//! resolve, add a note, one at a time from a row's menu or many at once (check boxes, or every
//! alert the filters match); silences are [`super::silences`]. Every change needs an admin and
//! the session's CSRF token, and goes through [`crate::desk`] (alert history and audit log in
//! the same transaction).

use crate::notify::channels::Announcer;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::format::{Nav, query_string};
use super::overview::tel_link;
use super::session::{Admin, AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::Error;
use crate::domain::{AlertStatus, Contact, HandlingKind, Reach, RuleKey, Severity, actor_label_ja};
use crate::jst::{datetime_local, duration_ja, parse_datetime_local, time_ja};
use crate::store::BulkAction;
use crate::store::desk::{AlertCursor, AlertGroup, AlertQuery, AlertView, ResponseTimes};

/// Alerts per page.
pub const PAGE_SIZE: i64 = 100;

/// One alert as the pages list it (the alerts page and the terminal page).
pub struct AlertRow {
    pub id: i64,
    pub rule: &'static str,
    pub title: &'static str,
    pub short: &'static str,
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
    pub clinic_phone: String,
    pub clinic_tel: String,
    pub opened: String,
    /// How long it has been open: 「3日と4時間」.
    pub age: String,
    pub ack: String,
    pub last_note: String,
    /// When the channels will be reminded of it and it is escalated, if nobody takes it.
    pub followup: String,
    /// What went out about it (the terminal page fills it in).
    pub messages: Vec<MessageLine>,
}

/// A mail or channel message about an alert, as the alert shows it.
pub struct MessageLine {
    pub id: i64,
    pub kind: &'static str,
    pub recipient: String,
    pub subject: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub at: String,
}

impl MessageLine {
    pub fn new(r: &crate::domain::OutboxRow) -> Self {
        MessageLine {
            id: r.id,
            kind: r.kind.label_ja(),
            recipient: r.recipient.clone(),
            subject: r.subject.clone(),
            status: r.status.as_str(),
            status_label: r.status.label_ja(),
            at: time_ja(r.sent_at.unwrap_or(r.created_at)),
        }
    }
}

impl AlertRow {
    pub fn new(v: AlertView, now: DateTime<Utc>, announcer: &Announcer) -> Self {
        let followup = announcer.schedule_ja(&v.alert, v.clinic_prefecture.as_deref(), now);
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
        let phone = v.clinic_phone.unwrap_or_default();
        AlertRow {
            id: a.id,
            title: a.rule.title_ja(),
            short: a.rule.short_ja(),
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
            clinic_tel: tel_link(&phone),
            clinic_phone: phone,
            opened: time_ja(a.opened_at),
            age: duration_ja(now - a.opened_at),
            ack,
            last_note: v.last_note.unwrap_or_default(),
            followup,
            messages: Vec::new(),
        }
    }
}

/// A group of the alerts page: a rule, or a clinic with whom to call there.
pub struct AlertGroupView {
    pub title: String,
    /// The clinic's phone (grouped by clinic).
    pub phone: String,
    pub tel: String,
    pub contacts: Vec<(String, String, String)>,
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
    /// Matches of the filters.
    pub total: i64,
    pub shown: usize,
    pub query: AlertsQuery,
    /// The next page (empty: none).
    pub next: String,
    /// The first page, when this one is not.
    pub first: String,
    pub back: String,
    /// Where a bulk action returns: the first page of the same filters.
    pub bulk_back: String,
    pub ack_default: String,
    /// The rows have check boxes for the bulk actions.
    pub selectable: bool,
    /// What the last bulk action did.
    pub done: String,
    pub clinic_name: Option<String>,
    pub prefectures: Vec<String>,
    pub all_rules: Vec<(&'static str, &'static str)>,
    pub all_severities: Vec<(&'static str, &'static str)>,
    pub all_handlings: Vec<(&'static str, &'static str)>,
    pub all_ages: Vec<(&'static str, &'static str)>,
}

impl AlertsPage {
    /// 「1,234 件」, or 「50,000 件以上」 past the count's cap.
    pub fn total_label(&self) -> String {
        if self.total > crate::store::desk::ALERT_COUNT_CAP {
            format!(
                "{} 件以上",
                crate::wording::thousands(crate::store::desk::ALERT_COUNT_CAP)
            )
        } else {
            format!("{} 件", crate::wording::thousands(self.total.max(0)))
        }
    }

    /// The filters as hidden fields of the bulk form ("every alert that matches").
    pub fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        self.query.filter_pairs()
    }
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
    let desk = state.store.fleet();
    let days = 30;
    let since = Utc::now() - Duration::days(days);
    let by_rule = desk
        .response_times(AlertGroup::Rule, since, &staff.reach)
        .await?
        .into_iter()
        .map(|t| TimesRow::new(t, AlertGroup::Rule))
        .collect();
    let by_clinic = desk
        .response_times(AlertGroup::Clinic, since, &staff.reach)
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

/// The alerts page's query string.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AlertsQuery {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub clinic: String,
    #[serde(default)]
    pub prefecture: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub handling: String,
    /// Open for at least: `1d`, `3d`, `7d`, `30d`.
    #[serde(default)]
    pub age: String,
    /// The page starts after this alert ([`AlertCursor::encode`]).
    #[serde(default)]
    pub after: String,
    /// What the last bulk action did (`ack:12`), for its message.
    #[serde(default)]
    pub done: String,
}

/// The age filter's choices.
const AGES: [(&str, &str, i64); 4] = [
    ("1d", "1日以上", 1),
    ("3d", "3日以上", 3),
    ("7d", "7日以上", 7),
    ("30d", "30日以上", 30),
];

impl AlertsQuery {
    /// The filters (grouping, paging and messages aside).
    pub fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("rule", self.rule.clone()),
            ("clinic", self.clinic.clone()),
            ("prefecture", self.prefecture.clone()),
            ("severity", self.severity.clone()),
            ("handling", self.handling.clone()),
            ("age", self.age.clone()),
        ]
    }

    fn link(&self, after: &str) -> String {
        let mut pairs = self.filter_pairs();
        pairs.push(("group", self.group.clone()));
        pairs.push(("after", after.to_string()));
        format!("/alerts{}", query_string(&pairs))
    }

    /// The store's query for these filters.
    pub fn store_query(&self, now: DateTime<Utc>, reach: &Reach) -> AlertQuery {
        AlertQuery {
            rule: RuleKey::parse(&self.rule),
            clinic_id: self.clinic.trim().parse().ok(),
            prefecture: Some(self.prefecture.trim().to_string()).filter(|p| !p.is_empty()),
            severity: Severity::parse(&self.severity),
            handling: HandlingKind::parse(&self.handling).filter(|h| *h != HandlingKind::None),
            opened_before: AGES
                .iter()
                .find(|(k, _, _)| *k == self.age)
                .map(|(_, _, days)| now - Duration::days(*days)),
            after: AlertCursor::decode(&self.after),
            limit: PAGE_SIZE,
            reach: reach.clone(),
            ..AlertQuery::default()
        }
    }

    fn unfiltered(&self) -> bool {
        self.filter_pairs().iter().all(|(_, v)| v.trim().is_empty())
    }
}

/// What a finished bulk action said: `ack:12` → 「12 件を確認済みにしました」.
fn done_message(done: &str) -> String {
    let Some((what, n)) = done.split_once(':') else {
        return String::new();
    };
    let Ok(n) = n.parse::<usize>() else {
        return String::new();
    };
    let what = match what {
        "ack" => "を確認済みにしました",
        "resolve" => "を解決済みにしました",
        "note" => "にメモを追加しました",
        "silence" => "の通知を停止しました",
        _ => return String::new(),
    };
    format!("{n} 件のアラート{what}")
}

/// `GET /alerts`: open and acknowledged alerts, most severe and newest first, one compact line
/// each, grouped by rule (default) or clinic, a page at a time.
pub async fn alerts_page(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<AlertsQuery>,
) -> Result<Html<String>, PageFailure> {
    let desk = state.store.fleet();
    let now = Utc::now();
    let mut query = q.store_query(now, &staff.reach);
    // Unresolved alerts per rule are the evaluator's running counts (one alert per terminal
    // and rule); any other filter counts in the store.
    let only_rule = {
        let mut rest = q.clone();
        rest.rule.clear();
        rest.unfiltered()
    };
    let tally = state.tally(&staff.reach).filter(|_| only_rule);
    query.count = tally.is_none();
    let (total, views) = desk.alert_views(&query).await?;
    let total = match (&tally, &query.rule) {
        (Some(t), Some(r)) => t.rule(*r),
        (Some(t), None) => t.rules.iter().sum(),
        (None, _) => total,
    };
    let next = match views.last() {
        Some(last) if views.len() as i64 == PAGE_SIZE => {
            q.link(&AlertCursor::of(&last.alert).encode())
        }
        _ => String::new(),
    };
    let shown = views.len();
    let by_clinic = q.group == "clinic";
    let mut groups: Vec<AlertGroupView> = Vec::new();
    let announcer = state.desk.announcer().await?;
    for v in views {
        let row = AlertRow::new(v, now, announcer);
        let title = if by_clinic {
            row.clinic.clone()
        } else {
            row.title.to_string()
        };
        match groups.iter_mut().find(|g| g.title == title) {
            Some(g) => g.rows.push(row),
            None => groups.push(AlertGroupView {
                title,
                phone: if by_clinic {
                    row.clinic_phone.clone()
                } else {
                    String::new()
                },
                tel: if by_clinic {
                    row.clinic_tel.clone()
                } else {
                    String::new()
                },
                contacts: Vec::new(),
                rows: vec![row],
            }),
        }
    }
    if by_clinic {
        for g in &mut groups {
            if let Some(first) = g.rows.first() {
                g.contacts = desk
                    .contacts(first.clinic_id)
                    .await?
                    .into_iter()
                    .map(|c: Contact| {
                        let phone = c.phone.unwrap_or_default();
                        let who = if c.role.is_empty() {
                            c.name
                        } else {
                            format!("{} ({})", c.name, c.role)
                        };
                        (who, tel_link(&phone), phone)
                    })
                    .collect();
            }
        }
    }
    let clinic_name = match q.clinic.trim().parse::<i64>() {
        Ok(id) if staff.reaches(id) => desk.clinic_detail(id).await?.map(|c| c.settings.name),
        _ => None,
    };
    let mut here = q.filter_pairs();
    here.push(("group", q.group.clone()));
    here.push(("after", q.after.clone()));
    let back = format!("/alerts{}", query_string(&here));
    let html = AlertsPage {
        nav: Nav::new(&staff, "alerts"),
        groups,
        total,
        shown,
        first: if q.after.is_empty() {
            String::new()
        } else {
            q.link("")
        },
        bulk_back: q.link(""),
        next,
        back,
        ack_default: datetime_local(now + Duration::days(1)),
        selectable: staff.is_admin(),
        done: done_message(&q.done),
        clinic_name,
        prefectures: desk.prefectures(&staff.reach).await?,
        query: q,
        all_rules: RuleKey::ALL
            .iter()
            .map(|r| (r.as_str(), r.title_ja()))
            .collect(),
        all_severities: Severity::ALL
            .iter()
            .rev()
            .map(|s| (s.as_str(), s.label_ja()))
            .collect(),
        all_handlings: HandlingKind::OF_ALERTS
            .iter()
            .map(|h| (h.as_str(), h.label_ja()))
            .collect(),
        all_ages: AGES.iter().map(|(k, l, _)| (*k, *l)).collect(),
    }
    .render()?;
    Ok(Html(html))
}

/// `POST /alerts/bulk`: one action on the checked alerts, or on every alert the filters match
/// (`all_matching`). The form repeats `ids`, so it is read by hand.
pub async fn bulk(
    State(state): State<AppState>,
    Admin(staff): Admin,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let mut field = std::collections::HashMap::<String, String>::new();
    let mut ids: Vec<i64> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if k == "ids" {
            if let Ok(id) = v.parse() {
                ids.push(id);
            }
        } else {
            field.insert(k.into_owned(), v.into_owned());
        }
    }
    let get = |k: &str| field.get(k).map(String::as_str).unwrap_or("");
    staff.check_csrf(get("csrf"))?;
    let back = back_to(Some(get("back")));
    let now = Utc::now();
    let filters = AlertsQuery {
        rule: get("rule").into(),
        clinic: get("clinic").into(),
        prefecture: get("prefecture").into(),
        severity: get("severity").into(),
        handling: get("handling").into(),
        age: get("age").into(),
        ..AlertsQuery::default()
    };
    let action = match get("action") {
        "ack" => parse_datetime_local(get("until"))
            .map_err(Error::Invalid)
            .map(|until| BulkAction::Acknowledge {
                note: get("note").into(),
                until,
            }),
        "resolve" => Ok(BulkAction::Resolve {
            note: get("note").into(),
        }),
        "note" => Ok(BulkAction::Note {
            note: get("note").into(),
        }),
        "silence" => match parse_datetime_local(get("until")) {
            Ok(Some(until)) => Ok(BulkAction::Silence {
                until,
                reason: get("note").into(),
            }),
            Ok(None) => Err(Error::Invalid(
                "通知を止める「いつまで」を入力してください".into(),
            )),
            Err(e) => Err(Error::Invalid(e)),
        },
        _ => Err(Error::Invalid("操作を選んでください".into())),
    };
    let done = async {
        let action = action?;
        if get("all_matching") == "1" {
            let limit = crate::desk::MAX_BULK as i64 + 1;
            ids = state
                .store
                .fleet()
                .alert_ids(&filters.store_query(now, &staff.reach), limit)
                .await?;
        }
        // Checked boxes outside the scope (a form edited by hand) are dropped, not acted on.
        let ids = super::reach::alerts(&state, &staff.reach, ids).await?;
        let key = match &action {
            BulkAction::Acknowledge { .. } => "ack",
            BulkAction::Resolve { .. } => "resolve",
            BulkAction::Note { .. } => "note",
            BulkAction::Silence { .. } => "silence",
        };
        let outcome = state
            .desk
            .bulk_alerts(&staff.actor(), &ids, action, now)
            .await?;
        Ok::<_, Error>(format!("{key}:{}", outcome.alerts.len()))
    }
    .await;
    match done {
        Ok(done) => {
            let sep = if back.contains('?') { '&' } else { '?' };
            Ok(Redirect::to(&format!("{back}{sep}done={done}")).into_response())
        }
        Err(e) => finish(&staff, Err(e), &back),
    }
}

/// Only our own pages are returned to after an action.
pub(super) fn back_to(back: Option<&str>) -> String {
    match back {
        Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') => b.into(),
        _ => "/alerts".into(),
    }
}

/// Where an action ends: back to the page the form was on, or (when the desk refused it) a
/// page that says why, with a way back.
pub(super) fn finish(
    staff: &Staff,
    done: Result<(), Error>,
    back: &str,
) -> Result<Response, AuthFailure> {
    match done {
        Ok(()) => Ok(Redirect::to(back).into_response()),
        Err(Error::NotFound(message)) => Ok(super::message_in_layout(
            staff,
            StatusCode::NOT_FOUND,
            "見つかりません",
            &message,
            back,
        )),
        Err(e) => match e.refusal() {
            Some(message) => Ok(super::refusal_page(staff, message, back)),
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
    finish(&staff, done, &back)
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
    finish(&staff, done, &back)
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
    finish(&staff, done, &back)
}
