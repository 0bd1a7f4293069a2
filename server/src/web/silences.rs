//! Silences (maintenance windows): the page that lists them with who, why and until, the form
//! that adds one (a terminal, a clinic, a prefecture or the whole fleet; every rule or one;
//! once or every day within its dates) and ending one early. Changes need an admin and the
//! session's CSRF token and go through [`crate::desk`].

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{Html, Response};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::alerts::{back_to, finish};
use super::format::Nav;
use super::session::{Admin, AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::Error;
use crate::desk::SilenceRequest;
use crate::domain::{DailyWindow, PREFECTURES, RuleKey, Silence, SilenceScope, actor_label_ja};
use crate::jst::{datetime_local, parse_datetime_local, time_ja};

/// One silence as the page lists it.
pub struct SilenceRow {
    pub id: i64,
    pub state: &'static str,
    pub state_label: &'static str,
    pub scope: String,
    pub scope_link: Option<String>,
    pub rule: String,
    pub when: String,
    pub daily: String,
    pub reason: String,
    pub by: String,
    pub ended_by: String,
    pub open: bool,
}

impl SilenceRow {
    /// `name`: the clinic's name or the terminal's host name (with its clinic), when the
    /// scope is one.
    fn new(s: Silence, name: Option<String>, now: DateTime<Utc>) -> SilenceRow {
        let (state, state_label) = if s.ends_at <= now {
            ("ended", "終了")
        } else if s.starts_at > now {
            ("upcoming", "予定")
        } else if s.active_at(now) {
            ("active", "抑止中")
        } else {
            ("waiting", "期間中 (時間帯外)")
        };
        let (scope, scope_link) = match &s.scope {
            SilenceScope::Terminal(id) => (
                name.unwrap_or_else(|| format!("端末 {id}")),
                Some(format!("/terminals/{id}")),
            ),
            SilenceScope::Clinic(id) => (
                name.unwrap_or_else(|| format!("医療機関 #{id}")),
                Some(format!("/clinics/{id}")),
            ),
            SilenceScope::Prefecture(p) => (format!("{p}の全端末"), None),
            SilenceScope::Fleet => ("全端末".to_string(), None),
        };
        SilenceRow {
            id: s.id,
            state,
            state_label,
            scope,
            scope_link,
            rule: s
                .rule
                .map_or_else(|| "すべて".to_string(), |r| r.title_ja().to_string()),
            when: format!("{} 〜 {}", time_ja(s.starts_at), time_ja(s.ends_at)),
            daily: s.daily.map(|d| d.label_ja()).unwrap_or_default(),
            reason: s.reason,
            by: actor_label_ja(&s.created_by),
            ended_by: s
                .ended_by
                .as_deref()
                .map(actor_label_ja)
                .unwrap_or_default(),
            open: s.ends_at > now,
        }
    }
}

#[derive(Template)]
#[template(path = "silences.html")]
pub struct SilencesPage {
    pub nav: Nav,
    pub rows: Vec<SilenceRow>,
    pub prefectures: Vec<&'static str>,
    pub rules: Vec<(&'static str, &'static str)>,
    pub weekdays: [(&'static str, &'static str); 7],
    pub start: String,
    pub end: String,
}

/// `GET /silences`: in force and to come first, then those that ended in the last week.
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Html<String>, PageFailure> {
    let now = Utc::now();
    let desk = state.store.fleet();
    let silences = desk.silences(now, now - Duration::days(7)).await?;
    let mut rows = Vec::with_capacity(silences.len());
    for s in silences {
        // The fleet's own windows hold for every terminal, so everyone sees them.
        if s.scope != SilenceScope::Fleet && !covers(&state, &staff, &s.scope).await? {
            continue;
        }
        let name = match s.scope {
            SilenceScope::Clinic(id) => desk.clinic_detail(id).await?.map(|c| c.settings.name),
            SilenceScope::Terminal(id) => desk
                .terminal_detail(id)
                .await?
                .map(|t| format!("{} ({})", t.hostname, t.clinic_name)),
            _ => None,
        };
        rows.push(SilenceRow::new(s, name, now));
    }
    let html = SilencesPage {
        nav: Nav::new(&staff, "silences"),
        rows,
        prefectures: PREFECTURES.to_vec(),
        rules: RuleKey::ALL
            .iter()
            .filter(|r| !r.desk_only())
            .map(|r| (r.as_str(), r.title_ja()))
            .collect(),
        weekdays: WEEKDAYS,
        start: datetime_local(now),
        end: datetime_local(now + Duration::hours(2)),
    }
    .render()?;
    Ok(Html(html))
}

/// The weekday check boxes of the form: field and label.
const WEEKDAYS: [(&str, &str); 7] = [
    ("wd_mon", "月"),
    ("wd_tue", "火"),
    ("wd_wed", "水"),
    ("wd_thu", "木"),
    ("wd_fri", "金"),
    ("wd_sat", "土"),
    ("wd_sun", "日"),
];

#[derive(Debug, Default, Deserialize)]
pub struct SilenceForm {
    #[serde(default)]
    csrf: String,
    /// `terminal`, `clinic`, `prefecture` or `fleet`; without it the terminal or clinic given.
    #[serde(default)]
    scope: String,
    terminal: Option<String>,
    clinic: Option<i64>,
    #[serde(default)]
    prefecture: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    starts: String,
    #[serde(default)]
    ends: String,
    /// A daily window (`HH:MM`), both or neither.
    #[serde(default)]
    daily_from: String,
    #[serde(default)]
    daily_to: String,
    wd_mon: Option<String>,
    wd_tue: Option<String>,
    wd_wed: Option<String>,
    wd_thu: Option<String>,
    wd_fri: Option<String>,
    wd_sat: Option<String>,
    wd_sun: Option<String>,
    #[serde(default)]
    reason: String,
    back: Option<String>,
}

impl SilenceForm {
    fn scope(&self) -> Result<SilenceScope, Error> {
        let terminal = || -> Result<SilenceScope, Error> {
            let t = self.terminal.as_deref().unwrap_or("").trim();
            Uuid::parse_str(t)
                .map(SilenceScope::Terminal)
                .map_err(|_| Error::Invalid("端末の指定が正しくありません".into()))
        };
        let clinic = || {
            self.clinic
                .map(SilenceScope::Clinic)
                .ok_or_else(|| Error::Invalid("医療機関を指定してください".into()))
        };
        match self.scope.as_str() {
            "terminal" => terminal(),
            "clinic" => clinic(),
            "prefecture" => Ok(SilenceScope::Prefecture(self.prefecture.trim().to_string())),
            "fleet" => Ok(SilenceScope::Fleet),
            "" if self.terminal.as_deref().is_some_and(|t| !t.is_empty()) => terminal(),
            "" if self.clinic.is_some() => clinic(),
            other => Err(Error::Invalid(format!("対象「{other}」は選べません"))),
        }
    }

    fn daily(&self) -> Result<Option<DailyWindow>, Error> {
        let (from, to) = (self.daily_from.trim(), self.daily_to.trim());
        if from.is_empty() && to.is_empty() {
            return Ok(None);
        }
        let time = |s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| {
                Error::Invalid("毎日の時間帯は 03:30 のように開始と終了を入力してください".into())
            })
        };
        let days = [
            &self.wd_mon,
            &self.wd_tue,
            &self.wd_wed,
            &self.wd_thu,
            &self.wd_fri,
            &self.wd_sat,
            &self.wd_sun,
        ];
        let mut weekdays = days
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_some())
            .fold(0u8, |bits, (i, _)| bits | (1 << i));
        if weekdays == 0 {
            weekdays = 0x7f;
        }
        Ok(Some(DailyWindow {
            from: time(from)?,
            to: time(to)?,
            weekdays,
        }))
    }

    /// The request the form makes; a missing start means now.
    fn request(&self, now: DateTime<Utc>) -> Result<SilenceRequest, Error> {
        let starts_at = parse_datetime_local(&self.starts)
            .map_err(Error::Invalid)?
            .unwrap_or(now);
        let ends_at = parse_datetime_local(&self.ends)
            .map_err(Error::Invalid)?
            .ok_or_else(|| Error::Invalid("終了日時を指定してください".into()))?;
        let rule = match self.rule.trim() {
            "" => None,
            key => Some(
                RuleKey::parse(key)
                    .ok_or_else(|| Error::Invalid("ルールの指定が正しくありません".into()))?,
            ),
        };
        Ok(SilenceRequest {
            scope: self.scope()?,
            rule,
            starts_at,
            ends_at,
            daily: self.daily()?,
            reason: self.reason.clone(),
        })
    }
}

/// `POST /silences`
pub async fn add(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Form(form): Form<SilenceForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let back = back_to(form.back.as_deref().or(Some("/silences")));
    let now = Utc::now();
    let done = async {
        let r = form.request(now)?;
        if !covers(&state, &staff, &r.scope).await? {
            return Err(outside(&r.scope));
        }
        state
            .desk
            .silence(&staff.actor(), &r, now)
            .await
            .map(|_| ())
    }
    .await;
    finish(&staff, done, &back)
}

/// Whether the staff member's scope covers all a silence holds back: a terminal or clinic it
/// reaches, one of its own prefectures; the whole fleet only for an unlimited scope.
async fn covers(
    state: &AppState,
    staff: &Staff,
    scope: &SilenceScope,
) -> Result<bool, crate::Error> {
    Ok(match scope {
        _ if staff.reach.is_all() => true,
        SilenceScope::Terminal(t) => super::reach::terminal(state, &staff.reach, *t)
            .await
            .is_ok(),
        SilenceScope::Clinic(c) => staff.reaches(*c),
        SilenceScope::Prefecture(p) => staff
            .user
            .scope
            .as_ref()
            .is_some_and(|s| s.prefectures.contains(p)),
        SilenceScope::Fleet => false,
    })
}

/// The refusal for a silence outside the scope: a terminal or clinic is "not found", as on
/// every page.
fn outside(scope: &SilenceScope) -> crate::Error {
    match scope {
        SilenceScope::Terminal(_) => crate::Error::NotFound(super::reach::NO_TERMINAL.into()),
        SilenceScope::Clinic(_) => crate::Error::NotFound(super::reach::NO_CLINIC.into()),
        SilenceScope::Prefecture(_) | SilenceScope::Fleet => crate::Error::Invalid(
            "担当範囲の外（ほかの都道府県、全体）の通知は止められません".into(),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct EndSilenceForm {
    #[serde(default)]
    csrf: String,
    back: Option<String>,
}

/// `POST /silences/{id}/end`: ends a maintenance window early.
pub async fn end(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<EndSilenceForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let back = back_to(form.back.as_deref().or(Some("/silences")));
    let now = Utc::now();
    let done = async {
        if !staff.reach.is_all() {
            let found = state.store.fleet().silences(now, now).await?;
            let reached = match found.iter().find(|s| s.id == id) {
                Some(s) => covers(&state, &staff, &s.scope).await?,
                None => false,
            };
            if !reached {
                return Err(crate::Error::NotFound(
                    "この通知の停止は見つからないか、終わっています".into(),
                ));
            }
        }
        state.desk.end_silence(&staff.actor(), id, now).await
    }
    .await;
    finish(&staff, done, &back)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_makes_scoped_and_recurring_requests() {
        let now = Utc::now();
        let form = SilenceForm {
            scope: "prefecture".into(),
            prefecture: "東京都".into(),
            rule: "offline".into(),
            ends: "2030-01-01T05:00".into(),
            daily_from: "03:30".into(),
            daily_to: "05:00".into(),
            wd_mon: Some("on".into()),
            wd_sun: Some("on".into()),
            reason: "自動再起動".into(),
            ..SilenceForm::default()
        };
        let r = form.request(now).unwrap();
        assert_eq!(r.scope, SilenceScope::Prefecture("東京都".into()));
        assert_eq!(r.rule, Some(RuleKey::Offline));
        let d = r.daily.unwrap();
        assert_eq!(d.weekdays, 0b100_0001);
        assert_eq!(d.label_ja(), "毎週月・日 03:30〜05:00");
        // No weekday ticked: every day. A terminal given without a scope: that terminal.
        let t = Uuid::now_v7();
        let form = SilenceForm {
            terminal: Some(t.to_string()),
            ends: "2030-01-01T05:00".into(),
            daily_from: "22:00".into(),
            daily_to: "02:00".into(),
            ..SilenceForm::default()
        };
        let r = form.request(now).unwrap();
        assert_eq!(r.scope, SilenceScope::Terminal(t));
        assert_eq!(r.daily.unwrap().weekdays, 0x7f);
        for (bad, want) in [
            (
                SilenceForm {
                    scope: "galaxy".into(),
                    ends: "2030-01-01T05:00".into(),
                    ..SilenceForm::default()
                },
                "選べません",
            ),
            (
                SilenceForm {
                    scope: "fleet".into(),
                    ends: "2030-01-01T05:00".into(),
                    daily_from: "3時".into(),
                    daily_to: "05:00".into(),
                    ..SilenceForm::default()
                },
                "03:30 のように",
            ),
            (
                SilenceForm {
                    scope: "fleet".into(),
                    ..SilenceForm::default()
                },
                "終了日時",
            ),
        ] {
            let e = bad.request(now).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
