//! Clinics: the list, create and edit (details, business hours), contacts, enrollment codes,
//! the clinic's terminals, mail and audit log. Every change goes through [`crate::desk`].

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{NaiveTime, Utc, Weekday};
use serde::Deserialize;

use super::audit::AuditLine;
use super::format::{Nav, query_string};
use super::outbox::OutboxLine;
use super::session::{Admin, AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::Error;
use crate::calendar::BusinessHours;
use crate::desk::validate::opt;
use crate::domain::{ClinicDetail, ClinicSettings, Contact, PREFECTURES};
use crate::jst::{datetime_local, time_ja};
use crate::store::desk::{ClinicListRow, CodeRow, FleetQuery, FleetSort};

const PAGE_SIZE: i64 = 100;

const WEEKDAYS: [(Weekday, &str, &str); 7] = [
    (Weekday::Mon, "mon", "月"),
    (Weekday::Tue, "tue", "火"),
    (Weekday::Wed, "wed", "水"),
    (Weekday::Thu, "thu", "木"),
    (Weekday::Fri, "fri", "金"),
    (Weekday::Sat, "sat", "土"),
    (Weekday::Sun, "sun", "日"),
];

#[derive(Template)]
#[template(path = "clinics.html")]
pub struct ClinicsPage {
    pub nav: Nav,
    pub rows: Vec<ClinicListRow>,
    pub total: i64,
    pub q: String,
    pub page: i64,
    pub pages: i64,
}

impl ClinicsPage {
    pub fn link_page(&self, page: i64) -> String {
        format!(
            "/clinics{}",
            query_string(&[("q", self.q.clone()), ("page", page.to_string())])
        )
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    page: Option<i64>,
}

/// `GET /clinics`
pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, PageFailure> {
    let page = q.page.unwrap_or(1).max(1);
    let search = Some(q.q.trim()).filter(|s| !s.is_empty());
    let (total, rows) = state
        .store
        .desk()
        .clinic_list(search, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        .await?;
    Ok(Html(
        ClinicsPage {
            nav: Nav::new(&staff, "clinics"),
            rows,
            total,
            q: q.q,
            page,
            pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
        }
        .render()?,
    ))
}

/// What the clinic form shows (and shows again, with the error, when it did not validate).
pub struct ClinicFormView {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub code: String,
    pub prefecture: String,
    pub phone: String,
    pub open: String,
    pub close: String,
    pub closed: Vec<(&'static str, &'static str, bool)>,
    pub closed_on_holidays: bool,
    pub desk_name: String,
    pub desk_phone: String,
    pub notes: String,
}

impl ClinicFormView {
    fn from_detail(c: &ClinicDetail) -> Self {
        let s = &c.settings;
        ClinicFormView {
            id: s.id,
            name: s.name.clone(),
            email: s.email.clone(),
            code: c.code.clone().unwrap_or_default(),
            prefecture: s.prefecture.clone().unwrap_or_default(),
            phone: c.phone.clone().unwrap_or_default(),
            open: s.hours.open.format("%H:%M").to_string(),
            close: s.hours.close.format("%H:%M").to_string(),
            closed: WEEKDAYS
                .iter()
                .map(|(d, key, label)| (*key, *label, s.hours.closed_weekdays.contains(d)))
                .collect(),
            closed_on_holidays: s.hours.closed_on_holidays,
            desk_name: s.desk_name.clone().unwrap_or_default(),
            desk_phone: s.desk_phone.clone().unwrap_or_default(),
            notes: c.notes.clone(),
        }
    }

    fn empty() -> Self {
        Self::from_detail(&crate::desk::new_clinic("", ""))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ClinicForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    prefecture: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    open: String,
    #[serde(default)]
    close: String,
    closed_mon: Option<String>,
    closed_tue: Option<String>,
    closed_wed: Option<String>,
    closed_thu: Option<String>,
    closed_fri: Option<String>,
    closed_sat: Option<String>,
    closed_sun: Option<String>,
    closed_on_holidays: Option<String>,
    #[serde(default)]
    desk_name: String,
    #[serde(default)]
    desk_phone: String,
    #[serde(default)]
    notes: String,
}

impl ClinicForm {
    /// The closed-weekday checkboxes, in the order of `WEEKDAYS`.
    fn closed_flags(&self) -> [bool; 7] {
        [
            &self.closed_mon,
            &self.closed_tue,
            &self.closed_wed,
            &self.closed_thu,
            &self.closed_fri,
            &self.closed_sat,
            &self.closed_sun,
        ]
        .map(Option::is_some)
    }
}

/// Reads the clinic form into a clinic: the times and the check boxes. What the values must
/// be is [`crate::desk`]'s to say, the same for the form and the command line; a time that
/// does not read is reported after the fields above it in the form.
pub fn parse_clinic_form(id: i64, f: &ClinicForm) -> Result<ClinicDetail, Error> {
    let time = |label: &str, s: &str| {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| Error::Invalid(format!("{label}は 09:00 の形式で入力してください")))
    };
    let (open, close) = (time("診療開始", &f.open), time("診療終了", &f.close));
    let defaults = BusinessHours::default();
    let closed_weekdays = WEEKDAYS
        .iter()
        .zip(f.closed_flags())
        .filter(|(_, on)| *on)
        .map(|((d, _, _), _)| *d)
        .collect();
    let detail = ClinicDetail {
        settings: ClinicSettings {
            id,
            name: f.name.clone(),
            email: f.email.clone(),
            hours: BusinessHours {
                open: open.as_ref().map_or(defaults.open, |t| *t),
                close: close.as_ref().map_or(defaults.close, |t| *t),
                closed_weekdays,
                closed_on_holidays: f.closed_on_holidays.is_some(),
            },
            desk_name: opt(&f.desk_name),
            desk_phone: opt(&f.desk_phone),
            prefecture: opt(&f.prefecture),
        },
        code: opt(&f.code),
        phone: opt(&f.phone),
        notes: f.notes.clone(),
    };
    if let (Err(e), _) | (_, Err(e)) = (&open, &close) {
        crate::desk::clinics_check(&detail)?;
        return Err(Error::Invalid(e.to_string()));
    }
    Ok(detail)
}

pub struct TerminalLine {
    pub id: String,
    pub hostname: String,
    pub state: &'static str,
    pub state_label: &'static str,
    pub open_alerts: i64,
    pub last_seen: String,
}

pub struct CodeLine {
    pub hash: String,
    pub short: String,
    pub created: String,
    pub expires: String,
    pub state: &'static str,
    pub active: bool,
}

impl CodeLine {
    fn new(c: CodeRow) -> Self {
        let now = Utc::now();
        let (state, active) = match c.revoked_at {
            Some(_) => ("無効化済み", false),
            None if c.expires_at <= now => ("期限切れ", false),
            None => ("有効", true),
        };
        CodeLine {
            short: c.code_hash.chars().take(8).collect(),
            hash: c.code_hash,
            created: time_ja(c.created_at),
            expires: time_ja(c.expires_at),
            state,
            active,
        }
    }
}

#[derive(Template)]
#[template(path = "clinic.html")]
pub struct ClinicPage {
    pub nav: Nav,
    pub form: ClinicFormView,
    pub error: Option<String>,
    pub prefectures: &'static [&'static str],
    pub contacts: Vec<Contact>,
    pub codes: Vec<CodeLine>,
    pub new_code: Option<String>,
    pub code_days: u32,
    pub terminals: Vec<TerminalLine>,
    pub terminal_count: i64,
    pub outbox: Vec<OutboxLine>,
    pub audit: Vec<AuditLine>,
    pub back: String,
    pub silence_start: String,
    pub silence_end: String,
}

async fn clinic_page(
    state: &AppState,
    staff: &Staff,
    form: ClinicFormView,
    error: Option<String>,
    new_code: Option<String>,
) -> Result<ClinicPage, crate::Error> {
    let id = form.id;
    let desk = state.store.desk();
    let (contacts, codes, (terminal_count, terminals), outbox, audit) = if id == 0 {
        (
            Vec::new(),
            Vec::new(),
            (0, Vec::new()),
            Vec::new(),
            Vec::new(),
        )
    } else {
        (
            desk.contacts(id).await?,
            desk.enrollment_codes(id).await?,
            {
                let q = FleetQuery {
                    clinic_id: Some(id),
                    sort: FleetSort::State,
                    limit: 200,
                    ..FleetQuery::default()
                };
                (desk.fleet_count(&q).await?, desk.fleet_rows(&q).await?)
            },
            desk.outbox_rows(Some(id), 30).await?,
            desk.audit_rows(Some(id), None, 30).await?,
        )
    };
    let now = Utc::now();
    Ok(ClinicPage {
        nav: Nav::new(staff, "clinics"),
        form,
        error,
        prefectures: &PREFECTURES,
        contacts,
        codes: codes.into_iter().map(CodeLine::new).collect(),
        new_code,
        code_days: state.config.enrollment_code_days,
        terminals: terminals
            .into_iter()
            .map(|t| TerminalLine {
                id: t.line.terminal_id.to_string(),
                hostname: t.line.hostname,
                state: t.line.state.as_str(),
                state_label: t.line.state.label_ja(),
                open_alerts: t.line.open_alerts,
                last_seen: t.last_seen.map_or_else(|| "未受信".into(), time_ja),
            })
            .collect(),
        terminal_count,
        outbox: outbox.into_iter().map(OutboxLine::new).collect(),
        audit: audit.into_iter().map(AuditLine::new).collect(),
        back: format!("/clinics/{id}"),
        silence_start: datetime_local(now),
        silence_end: datetime_local(now + chrono::Duration::hours(4)),
    })
}

/// The clinic page as a response: 422 when it shows a refused form again, else 200.
async fn render_clinic(
    state: &AppState,
    staff: &Staff,
    form: ClinicFormView,
    error: Option<String>,
    new_code: Option<String>,
) -> Result<Response, crate::Error> {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let html = clinic_page(state, staff, form, error, new_code)
        .await?
        .render()?;
    Ok((status, Html(html)).into_response())
}

fn not_found() -> Response {
    super::message_page(
        StatusCode::NOT_FOUND,
        "この医療機関は見つかりません。",
        "/clinics",
        "医療機関一覧へ",
    )
}

/// `GET /clinics/new`
pub async fn new_form(
    State(state): State<AppState>,
    Admin(staff): Admin,
) -> Result<Response, PageFailure> {
    Ok(render_clinic(&state, &staff, ClinicFormView::empty(), None, None).await?)
}

/// `GET /clinics/{id}`
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
) -> Result<Response, PageFailure> {
    let Some(detail) = state.store.desk().clinic_detail(id).await? else {
        return Ok(not_found());
    };
    Ok(render_clinic(
        &state,
        &staff,
        ClinicFormView::from_detail(&detail),
        None,
        None,
    )
    .await?)
}

/// Saves the form through the desk; a refusal shows the form again with what was typed.
async fn save(
    state: &AppState,
    staff: &Staff,
    id: i64,
    form: ClinicForm,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let saved = match parse_clinic_form(id, &form) {
        Ok(detail) => {
            state
                .desk
                .save_clinic(&staff.actor(), &detail, Utc::now())
                .await
        }
        Err(e) => Err(e),
    };
    match saved {
        Ok(saved) => Ok(Redirect::to(&format!("/clinics/{saved}")).into_response()),
        Err(e) => match e.refusal() {
            Some(message) => refill(state, staff, id, &form, message.to_string()).await,
            None => Err(e.into()),
        },
    }
}

/// Shows the form again with what was typed and why it was refused.
async fn refill(
    state: &AppState,
    staff: &Staff,
    id: i64,
    f: &ClinicForm,
    error: String,
) -> Result<Response, AuthFailure> {
    let flags = f.closed_flags();
    let view = ClinicFormView {
        id,
        name: f.name.clone(),
        email: f.email.clone(),
        code: f.code.clone(),
        prefecture: f.prefecture.clone(),
        phone: f.phone.clone(),
        open: f.open.clone(),
        close: f.close.clone(),
        closed: WEEKDAYS
            .iter()
            .zip(flags)
            .map(|((_, key, label), on)| (*key, *label, on))
            .collect(),
        closed_on_holidays: f.closed_on_holidays.is_some(),
        desk_name: f.desk_name.clone(),
        desk_phone: f.desk_phone.clone(),
        notes: f.notes.clone(),
    };
    Ok(render_clinic(state, staff, view, Some(error), None).await?)
}

/// `POST /clinics`
pub async fn create(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Form(form): Form<ClinicForm>,
) -> Result<Response, AuthFailure> {
    save(&state, &staff, 0, form).await
}

/// `POST /clinics/{id}`
pub async fn update(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<ClinicForm>,
) -> Result<Response, AuthFailure> {
    if state.store.desk().clinic_detail(id).await?.is_none() {
        return Ok(not_found());
    }
    save(&state, &staff, id, form).await
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// `POST /clinics/{id}/codes`: a new enrollment code, shown once on the page that answers.
pub async fn issue_code(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let Some(detail) = state.store.desk().clinic_detail(id).await? else {
        return Ok(not_found());
    };
    let code = state
        .desk
        .issue_code(&staff.actor(), id, Utc::now())
        .await?;
    Ok(render_clinic(
        &state,
        &staff,
        ClinicFormView::from_detail(&detail),
        None,
        Some(code),
    )
    .await?)
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: String,
    code_hash: String,
}

/// `POST /clinics/{id}/codes/revoke`: only a code of this clinic.
pub async fn revoke_code(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let revoked = state
        .desk
        .revoke_code(&staff.actor(), Some(id), &form.code_hash, Utc::now())
        .await;
    match revoked {
        Ok(()) | Err(Error::NotFound(_)) => {
            Ok(Redirect::to(&format!("/clinics/{id}")).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct ContactForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
}

/// `POST /clinics/{id}/contacts`
pub async fn add_contact(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<ContactForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let Some(detail) = state.store.desk().clinic_detail(id).await? else {
        return Ok(not_found());
    };
    let contact = Contact {
        id: 0,
        clinic_id: id,
        name: form.name,
        role: form.role,
        email: opt(&form.email),
        phone: opt(&form.phone),
    };
    match state
        .desk
        .add_contact(&staff.actor(), &contact, Utc::now())
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/clinics/{id}")).into_response()),
        Err(e) => match e.refusal() {
            Some(message) => {
                let view = ClinicFormView::from_detail(&detail);
                Ok(render_clinic(&state, &staff, view, Some(message.to_string()), None).await?)
            }
            None => Err(e.into()),
        },
    }
}

/// `POST /clinics/{id}/contacts/{contact}/delete`
pub async fn delete_contact(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path((id, contact)): Path<(i64, i64)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    match state
        .desk
        .delete_contact(&staff.actor(), id, contact, Utc::now())
        .await
    {
        Ok(()) | Err(Error::NotFound(_)) => {
            Ok(Redirect::to(&format!("/clinics/{id}")).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::clinics_check;

    fn form() -> ClinicForm {
        ClinicForm {
            csrf: String::new(),
            name: "山田内科クリニック".into(),
            email: "info@yamada.example.jp".into(),
            code: "13-1 2345678".into(),
            prefecture: "東京都".into(),
            open: "08:30".into(),
            close: "19:00".into(),
            closed_sun: Some("on".into()),
            closed_thu: Some("on".into()),
            closed_on_holidays: Some("on".into()),
            ..ClinicForm::default()
        }
    }

    #[test]
    fn a_valid_clinic_form_parses() {
        let c = clinics_check(&parse_clinic_form(7, &form()).unwrap()).unwrap();
        assert_eq!(c.settings.id, 7);
        assert_eq!(c.code.as_deref(), Some("1312345678"));
        assert_eq!(c.settings.prefecture.as_deref(), Some("東京都"));
        assert_eq!(
            c.settings.hours.closed_weekdays,
            vec![Weekday::Thu, Weekday::Sun]
        );
        assert!(c.settings.hours.closed_on_holidays);
        assert_eq!(c.settings.hours.open.format("%H:%M").to_string(), "08:30");
    }

    #[test]
    fn bad_clinic_forms_say_why() {
        type Change = Box<dyn Fn(&mut ClinicForm)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|f| f.name = " ".into()), "医療機関名を入力"),
            (Box::new(|f| f.name = "A\r\nBcc: x@y.z".into()), "改行"),
            (
                Box::new(|f| f.email = "a@b.jp\r\nBcc: c@d.jp".into()),
                "メールアドレス",
            ),
            (Box::new(|f| f.open = "9時".into()), "09:00 の形式"),
            (Box::new(|f| f.close = "08:00".into()), "より後"),
        ];
        for (change, expected) in cases {
            let mut f = form();
            change(&mut f);
            let e = parse_clinic_form(1, &f)
                .and_then(|c| clinics_check(&c))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{e} should mention {expected}");
        }
    }
}
