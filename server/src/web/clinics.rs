//! Clinics: the list, create and edit (details, business hours), contacts, enrollment codes,
//! the clinic's terminals, mail and audit log. Every change goes through [`crate::desk`].

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use onshi_shared::{AccountRole, AccountSpec};
use serde::Deserialize;

use super::audit::AuditLine;
use super::format::{Nav, query_string};
use super::outbox::OutboxLine;
use super::overview::Status;
use super::session::{Admin, AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::Error;
use crate::calendar::{BusinessHours, Closure, Window, format_day, parse_day};
use crate::desk::validate::opt;
use crate::domain::{
    ClinicDetail, ClinicRules, ClinicSettings, Contact, PREFECTURES, actor_label_ja,
};
use crate::jst::{datetime_local, time_ja};
use crate::store::desk::{AuditQuery, ClinicListRow, CodeRow, FleetQuery, FleetSort, OutboxQuery};

const PAGE_SIZE: i64 = 100;

/// The weekdays of the hours form: field suffix and label, Monday first.
const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "月"),
    ("tue", "火"),
    ("wed", "水"),
    ("thu", "木"),
    ("fri", "金"),
    ("sat", "土"),
    ("sun", "日"),
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
        .fleet()
        .clinic_list(search, (page - 1) * PAGE_SIZE, PAGE_SIZE, &staff.reach)
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
    /// Per weekday: field suffix, label, the windows as typed (`09:00-12:30, 15:00-18:30`).
    pub hours: Vec<(&'static str, &'static str, String)>,
    pub closed_on_holidays: bool,
    pub closed_new_year: bool,
    pub closed_obon: bool,
    pub desk_name: String,
    pub desk_phone: String,
    pub notes: String,
    /// Per protected role: field, label, the clinic's name (empty: the server's).
    pub accounts: Vec<(&'static str, &'static str, String)>,
    pub restart_warning_hours: String,
    pub restart_critical_hours: String,
    pub offline_after_intervals: String,
    pub offline_critical_days: String,
    pub file_rename_counts: bool,
}

fn number(v: Option<u32>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
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
            hours: WEEKDAYS
                .iter()
                .zip(&s.hours.week)
                .map(|((key, label), w)| (*key, *label, format_day(w)))
                .collect(),
            closed_on_holidays: s.hours.closed_on_holidays,
            closed_new_year: s.hours.closed_new_year,
            closed_obon: s.hours.closed_obon,
            desk_name: s.desk_name.clone().unwrap_or_default(),
            desk_phone: s.desk_phone.clone().unwrap_or_default(),
            notes: c.notes.clone(),
            accounts: AccountRole::PROTECTED
                .iter()
                .map(|role| {
                    let name = s
                        .accounts
                        .iter()
                        .find(|a| a.role == *role)
                        .map(|a| a.name.clone())
                        .unwrap_or_default();
                    (role.as_str(), role.label_ja(), name)
                })
                .collect(),
            restart_warning_hours: number(s.rules.restart_warning_hours),
            restart_critical_hours: number(s.rules.restart_critical_hours),
            offline_after_intervals: number(s.rules.offline_after_intervals),
            offline_critical_days: number(s.rules.offline_critical_days),
            file_rename_counts: s.rules.file_rename_counts,
        }
    }

    fn empty() -> Self {
        Self::from_detail(&crate::desk::new_clinic("", ""))
    }

    fn from_form(id: i64, f: &ClinicForm) -> Self {
        ClinicFormView {
            id,
            name: f.name.clone(),
            email: f.email.clone(),
            code: f.code.clone(),
            prefecture: f.prefecture.clone(),
            phone: f.phone.clone(),
            hours: WEEKDAYS
                .iter()
                .zip(f.days())
                .map(|((key, label), text)| (*key, *label, text.to_string()))
                .collect(),
            closed_on_holidays: f.closed_on_holidays.is_some(),
            closed_new_year: f.closed_new_year.is_some(),
            closed_obon: f.closed_obon.is_some(),
            desk_name: f.desk_name.clone(),
            desk_phone: f.desk_phone.clone(),
            notes: f.notes.clone(),
            accounts: AccountRole::PROTECTED
                .iter()
                .zip(f.account_names())
                .map(|(role, name)| (role.as_str(), role.label_ja(), name.to_string()))
                .collect(),
            restart_warning_hours: f.restart_warning_hours.clone(),
            restart_critical_hours: f.restart_critical_hours.clone(),
            offline_after_intervals: f.offline_after_intervals.clone(),
            offline_critical_days: f.offline_critical_days.clone(),
            file_rename_counts: f.file_rename_counts.is_some(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ClinicForm {
    #[serde(default)]
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
    hours_mon: String,
    #[serde(default)]
    hours_tue: String,
    #[serde(default)]
    hours_wed: String,
    #[serde(default)]
    hours_thu: String,
    #[serde(default)]
    hours_fri: String,
    #[serde(default)]
    hours_sat: String,
    #[serde(default)]
    hours_sun: String,
    closed_on_holidays: Option<String>,
    closed_new_year: Option<String>,
    closed_obon: Option<String>,
    #[serde(default)]
    desk_name: String,
    #[serde(default)]
    desk_phone: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    account_windows: String,
    #[serde(default)]
    account_face_auth: String,
    #[serde(default)]
    account_linkage: String,
    #[serde(default)]
    restart_warning_hours: String,
    #[serde(default)]
    restart_critical_hours: String,
    #[serde(default)]
    offline_after_intervals: String,
    #[serde(default)]
    offline_critical_days: String,
    file_rename_counts: Option<String>,
}

impl ClinicForm {
    /// The hours fields, in the order of `WEEKDAYS`.
    fn days(&self) -> [&str; 7] {
        [
            &self.hours_mon,
            &self.hours_tue,
            &self.hours_wed,
            &self.hours_thu,
            &self.hours_fri,
            &self.hours_sat,
            &self.hours_sun,
        ]
        .map(String::as_str)
    }

    /// The account name fields, in the order of [`AccountRole::PROTECTED`].
    fn account_names(&self) -> [&str; 3] {
        [
            self.account_windows.as_str(),
            self.account_face_auth.as_str(),
            self.account_linkage.as_str(),
        ]
    }
}

/// Reads the clinic form into a clinic: the windows of each day, the check boxes, the names
/// and the numbers. What the values must be is [`crate::desk`]'s to say, the same for the
/// form and the command line; a field that does not read is reported after the fields above
/// it in the form.
pub fn parse_clinic_form(id: i64, f: &ClinicForm) -> Result<ClinicDetail, Error> {
    let mut week: [Vec<Window>; 7] = Default::default();
    let mut unreadable: Option<String> = None;
    for (i, ((_, label), text)) in WEEKDAYS.iter().zip(f.days()).enumerate() {
        match parse_day(text) {
            Ok(w) => week[i] = w,
            Err(e) => {
                unreadable.get_or_insert(format!("{label}曜日の診療時間: {e}"));
            }
        }
    }
    let number = |label: &str, s: &str| -> Result<Option<u32>, Error> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<u32>()
            .map(Some)
            .map_err(|_| Error::Invalid(format!("{label}は数字で入力してください")))
    };
    let numbers = (
        number("再起動の注意 (時間)", &f.restart_warning_hours),
        number("再起動の緊急 (時間)", &f.restart_critical_hours),
        number("オフラインとみなす回数", &f.offline_after_intervals),
        number("オフラインを緊急とする診療日数", &f.offline_critical_days),
    );
    let accounts = AccountRole::PROTECTED
        .iter()
        .zip(f.account_names())
        .filter(|(_, name)| !name.trim().is_empty())
        .map(|(role, name)| AccountSpec {
            role: *role,
            name: name.to_string(),
        })
        .collect();
    let detail = ClinicDetail {
        settings: ClinicSettings {
            id,
            name: f.name.clone(),
            email: f.email.clone(),
            hours: BusinessHours {
                week,
                closed_on_holidays: f.closed_on_holidays.is_some(),
                closed_new_year: f.closed_new_year.is_some(),
                closed_obon: f.closed_obon.is_some(),
                closures: Vec::new(),
            },
            desk_name: opt(&f.desk_name),
            desk_phone: opt(&f.desk_phone),
            prefecture: opt(&f.prefecture),
            accounts,
            rules: ClinicRules {
                restart_warning_hours: numbers.0.as_ref().ok().copied().flatten(),
                restart_critical_hours: numbers.1.as_ref().ok().copied().flatten(),
                offline_after_intervals: numbers.2.as_ref().ok().copied().flatten(),
                offline_critical_days: numbers.3.as_ref().ok().copied().flatten(),
                file_rename_counts: f.file_rename_counts.is_some(),
            },
        },
        code: opt(&f.code),
        phone: opt(&f.phone),
        notes: f.notes.clone(),
    };
    if let Some(e) = unreadable {
        crate::desk::clinics_check(&detail)?;
        return Err(Error::Invalid(e));
    }
    numbers.0?;
    numbers.1?;
    numbers.2?;
    numbers.3?;
    Ok(detail)
}

pub struct TerminalLine {
    pub id: String,
    pub hostname: String,
    pub status: Status,
    pub problems: Vec<super::overview::Problem>,
    pub open_alerts: i64,
    pub last_seen: String,
}

pub struct ClosureLine {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub past: bool,
}

pub struct CodeLine {
    pub hash: String,
    /// What staff called it, and its last characters: 「受付PC用 (…K7QX)」.
    pub label: String,
    pub last_chars: String,
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
            label: c.label,
            last_chars: if c.last_chars.is_empty() {
                "—".into()
            } else {
                format!("…{}", c.last_chars)
            },
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
    /// The install commands for the new code: Windows (the vendor's PowerShell installer) and
    /// Linux.
    pub install_windows: String,
    pub install_linux: String,
    /// The clinic was just saved.
    pub saved: bool,
    pub code_days: u32,
    pub terminals: Vec<TerminalLine>,
    pub terminal_count: i64,
    pub outbox: Vec<OutboxLine>,
    pub audit: Vec<AuditLine>,
    pub back: String,
    pub silence_start: String,
    pub silence_end: String,
    pub closures: Vec<ClosureLine>,
    /// The server's names, shown where the clinic has none.
    pub server_accounts: Vec<String>,
    pub server_restart_warning: u32,
    pub server_restart_critical: u32,
    pub server_offline_after: u32,
    pub server_offline_critical_days: u32,
    /// Who set the clinic's own backup password, and when (empty: the default 1357).
    pub backup_password: String,
}

/// What the clinic page shows beyond the clinic: a code just issued, with the address agents
/// reach this server at, or that the clinic was just saved.
#[derive(Debug, Default)]
pub struct Shown {
    pub code: Option<(String, String)>,
    pub saved: bool,
}

/// The commands that install and enroll an agent with `code` at `server`: Windows (the
/// vendor's installer script, with the clinic's account names) and Linux.
fn install_commands(server: &str, code: &str, names: &[String; 3]) -> (String, String) {
    let name = |n: &str| {
        if n.is_empty() {
            "<名前>".to_string()
        } else {
            n.to_string()
        }
    };
    let windows = format!(
        "powershell -ExecutionPolicy Bypass -File install.ps1 -Server {server} -Code {code} \
         -WindowsAccount {} -FaceAuthAccount {} -LinkageAccount {} -AdministratorAccount <名前>",
        name(&names[0]),
        name(&names[1]),
        name(&names[2])
    );
    let linux = format!(
        "onshi-agent --server {server} --data-dir /var/lib/onshi-agent enroll --code {code} && \
         onshi-agent --data-dir /var/lib/onshi-agent run"
    );
    (windows, linux)
}

/// The address agents and staff reach this server at: `[dashboard] public_url`, else the one
/// this request came to.
pub fn server_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    if let Some(url) = &state.config.dashboard.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let scheme = if state.config.dashboard.secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

async fn clinic_page(
    state: &AppState,
    staff: &Staff,
    form: ClinicFormView,
    error: Option<String>,
    shown: Shown,
) -> Result<ClinicPage, crate::Error> {
    let id = form.id;
    let desk = state.store.fleet();
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
            state
                .store
                .outbox()
                .outbox_rows(&OutboxQuery {
                    clinic_id: Some(id),
                    limit: 30,
                    ..OutboxQuery::default()
                })
                .await?,
            state
                .store
                .staff()
                .audit_rows(&AuditQuery {
                    clinic_id: Some(id),
                    limit: 30,
                    ..AuditQuery::default()
                })
                .await?,
        )
    };
    let now = Utc::now();
    let today = now.with_timezone(&crate::jst::offset()).date_naive();
    let (closures, backup_password) = if id == 0 {
        (Vec::new(), String::new())
    } else {
        let closures = desk
            .clinic_detail(id)
            .await?
            .map(|c| c.settings.hours.closures)
            .unwrap_or_default();
        let backup = desk
            .backup_password_set(id)
            .await?
            .map(|(by, at)| format!("{} が {} に設定", actor_label_ja(&by), time_ja(at)))
            .unwrap_or_default();
        (closures, backup)
    };
    let server = &state.config.policy.accounts;
    let rules = &state.config.rules;
    let install = match &shown.code {
        Some((code, url)) => {
            let names: [String; 3] = std::array::from_fn(|i| {
                let typed = form
                    .accounts
                    .get(i)
                    .map(|a| a.2.clone())
                    .unwrap_or_default();
                if typed.is_empty() {
                    let role = AccountRole::PROTECTED[i];
                    server
                        .iter()
                        .find(|a| a.role == role)
                        .map(|a| a.name.clone())
                        .unwrap_or_default()
                } else {
                    typed
                }
            });
            install_commands(url, code, &names)
        }
        None => (String::new(), String::new()),
    };
    Ok(ClinicPage {
        nav: Nav::new(staff, "clinics"),
        form,
        error,
        prefectures: &PREFECTURES,
        contacts,
        codes: codes.into_iter().map(CodeLine::new).collect(),
        install_windows: install.0,
        install_linux: install.1,
        saved: shown.saved,
        new_code: shown.code.map(|(code, _)| code),
        code_days: state.config.enrollment_code_days,
        terminals: terminals
            .into_iter()
            .map(|t| TerminalLine {
                id: t.line.terminal_id.to_string(),
                status: Status::of(Some(&t.line)),
                problems: super::overview::Problem::of(&t.line),
                hostname: t.line.hostname,
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
        closures: closures
            .into_iter()
            .map(|c| ClosureLine {
                id: c.id,
                from: crate::jst::date_ja(c.from),
                to: crate::jst::date_ja(c.to),
                reason: c.reason,
                past: c.to < today,
            })
            .collect(),
        server_accounts: AccountRole::PROTECTED
            .iter()
            .map(|role| {
                server
                    .iter()
                    .find(|a| a.role == *role)
                    .map(|a| a.name.clone())
                    .unwrap_or_default()
            })
            .collect(),
        server_restart_warning: rules.restart_warning_hours,
        server_restart_critical: rules.restart_critical_hours,
        server_offline_after: rules.offline_after_intervals,
        server_offline_critical_days: rules.offline_critical_days,
        backup_password,
    })
}

/// The clinic page as a response: 422 when it shows a refused form again, else 200.
async fn render_clinic(
    state: &AppState,
    staff: &Staff,
    form: ClinicFormView,
    error: Option<String>,
    shown: Shown,
) -> Result<Response, crate::Error> {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let html = clinic_page(state, staff, form, error, shown)
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
    Ok(render_clinic(
        &state,
        &staff,
        ClinicFormView::empty(),
        None,
        Shown::default(),
    )
    .await?)
}

#[derive(Debug, Default, Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: String,
}

/// `GET /clinics/{id}` (`?saved=1` after a save says so).
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<SavedQuery>,
) -> Result<Response, PageFailure> {
    let Some(detail) = state.store.fleet().clinic_detail(id).await? else {
        return Ok(not_found());
    };
    Ok(render_clinic(
        &state,
        &staff,
        ClinicFormView::from_detail(&detail),
        None,
        Shown {
            code: None,
            saved: q.saved == "1",
        },
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
    let saved = async {
        let detail = parse_clinic_form(id, &form)?;
        stays_in_scope(state, staff, id, detail.settings.prefecture.as_deref()).await?;
        state
            .desk
            .save_clinic(&staff.actor(), &detail, Utc::now())
            .await
    }
    .await;
    match saved {
        Ok(saved) => Ok(Redirect::to(&format!("/clinics/{saved}?saved=1")).into_response()),
        Err(e) => match e.refusal() {
            Some(message) => refill(state, staff, id, &form, message.to_string()).await,
            None => Err(e.into()),
        },
    }
}

/// A staff member limited to a scope registers clinics only in their prefectures, and moves
/// none out of their reach: a clinic keeps its place if one of their groups holds it.
async fn stays_in_scope(
    state: &AppState,
    staff: &Staff,
    id: i64,
    prefecture: Option<&str>,
) -> Result<(), crate::Error> {
    let Some(scope) = &staff.user.scope else {
        return Ok(());
    };
    if prefecture.is_some_and(|p| scope.prefectures.iter().any(|s| s == p)) {
        return Ok(());
    }
    if id != 0 && !scope.groups.is_empty() {
        let by_group = crate::domain::Scope {
            prefectures: Vec::new(),
            groups: scope.groups.clone(),
        };
        if state
            .store
            .staff()
            .scope_clinics(&by_group)
            .await?
            .contains(&id)
        {
            return Ok(());
        }
    }
    Err(crate::Error::Invalid(format!(
        "担当範囲（{}）の外になる医療機関は登録・変更できません",
        scope.prefectures.join("・")
    )))
}

/// Shows the form again with what was typed and why it was refused.
async fn refill(
    state: &AppState,
    staff: &Staff,
    id: i64,
    f: &ClinicForm,
    error: String,
) -> Result<Response, AuthFailure> {
    let view = ClinicFormView::from_form(id, f);
    Ok(render_clinic(state, staff, view, Some(error), Shown::default()).await?)
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
    if state.store.fleet().clinic_detail(id).await?.is_none() {
        return Ok(not_found());
    }
    save(&state, &staff, id, form).await
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    /// Who the code is for (e.g. 「受付PC」「山田さんに電話で」).
    #[serde(default)]
    label: String,
}

/// `POST /clinics/{id}/codes`: a new enrollment code, shown once on the page that answers,
/// with the commands that install an agent with it.
pub async fn issue_code(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let Some(detail) = state.store.fleet().clinic_detail(id).await? else {
        return Ok(not_found());
    };
    let issued = state
        .desk
        .issue_labelled_code(&staff.actor(), id, &form.label, Utc::now())
        .await;
    let view = ClinicFormView::from_detail(&detail);
    let code = match issued {
        Ok(code) => code,
        Err(e) => {
            return match e.refusal() {
                Some(m) => {
                    Ok(
                        render_clinic(&state, &staff, view, Some(m.to_string()), Shown::default())
                            .await?,
                    )
                }
                None => Err(e.into()),
            };
        }
    };
    let url = server_url(&state, &headers);
    Ok(render_clinic(
        &state,
        &staff,
        view,
        None,
        Shown {
            code: Some((code, url)),
            saved: false,
        },
    )
    .await?)
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub nav: Nav,
    pub title: &'static str,
    pub question: String,
    pub action: String,
    pub fields: Vec<(&'static str, String)>,
    pub button: &'static str,
    pub back: String,
}

/// `GET /clinics/{id}/codes/{hash}/revoke`: the second step before a code stops working.
pub async fn confirm_revoke_code(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path((id, hash)): Path<(i64, String)>,
) -> Result<Response, PageFailure> {
    let Some(code) = state
        .store
        .fleet()
        .enrollment_codes(id)
        .await?
        .into_iter()
        .find(|c| c.code_hash == hash && c.revoked_at.is_none())
    else {
        return Ok(not_found());
    };
    let line = CodeLine::new(code);
    let named = if line.label.is_empty() {
        String::new()
    } else {
        format!("「{}」 ", line.label)
    };
    Ok(Html(
        ConfirmPage {
            nav: Nav::new(&staff, "clinics"),
            title: "登録コードを無効にする",
            question: format!(
                "登録コード {named}({}、{} 発行) を無効にしますか。このコードでは端末を登録できなくなります (登録済みの端末はそのまま動きます)。",
                line.last_chars, line.created
            ),
            action: format!("/clinics/{id}/codes/revoke"),
            fields: vec![("code_hash", hash)],
            button: "無効にする",
            back: format!("/clinics/{id}"),
        }
        .render()?,
    )
    .into_response())
}

/// `GET /clinics/{id}/contacts/{contact}/delete`: the second step before a contact goes.
pub async fn confirm_delete_contact(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path((id, contact)): Path<(i64, i64)>,
) -> Result<Response, PageFailure> {
    let Some(c) = state
        .store
        .fleet()
        .contacts(id)
        .await?
        .into_iter()
        .find(|c| c.id == contact)
    else {
        return Ok(not_found());
    };
    Ok(Html(
        ConfirmPage {
            nav: Nav::new(&staff, "clinics"),
            title: "連絡先を削除する",
            question: format!("連絡先「{}」を削除しますか。", c.name),
            action: format!("/clinics/{id}/contacts/{contact}/delete"),
            fields: Vec::new(),
            button: "削除する",
            back: format!("/clinics/{id}"),
        }
        .render()?,
    )
    .into_response())
}

/// `GET /clinics/{id}/closures/{closure}/delete`: the second step before a closure goes.
pub async fn confirm_delete_closure(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path((id, closure)): Path<(i64, i64)>,
) -> Result<Response, PageFailure> {
    let Some(detail) = state.store.fleet().clinic_detail(id).await? else {
        return Ok(not_found());
    };
    let Some(c) = detail
        .settings
        .hours
        .closures
        .iter()
        .find(|c| c.id == closure)
    else {
        return Ok(not_found());
    };
    Ok(Html(
        ConfirmPage {
            nav: Nav::new(&staff, "clinics"),
            title: "休診日を削除する",
            question: format!(
                "休診日 {} 〜 {} ({}) を削除しますか。",
                crate::jst::date_ja(c.from),
                crate::jst::date_ja(c.to),
                c.reason
            ),
            action: format!("/clinics/{id}/closures/{closure}/delete"),
            fields: Vec::new(),
            button: "削除する",
            back: format!("/clinics/{id}#closures"),
        }
        .render()?,
    )
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
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
    #[serde(default)]
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
    let Some(detail) = state.store.fleet().clinic_detail(id).await? else {
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
                Ok(render_clinic(
                    &state,
                    &staff,
                    view,
                    Some(message.to_string()),
                    Shown::default(),
                )
                .await?)
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

#[derive(Debug, Deserialize)]
pub struct ClosureForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    reason: String,
}

/// A refused clinic action shows the clinic page with the reason; a done one goes back to it.
async fn clinic_result(
    state: &AppState,
    staff: &Staff,
    id: i64,
    done: Result<(), Error>,
) -> Result<Response, AuthFailure> {
    match done {
        Ok(()) => Ok(Redirect::to(&format!("/clinics/{id}")).into_response()),
        Err(e) => match e.refusal() {
            Some(message) => {
                let Some(detail) = state.store.fleet().clinic_detail(id).await? else {
                    return Ok(not_found());
                };
                let view = ClinicFormView::from_detail(&detail);
                Ok(render_clinic(
                    state,
                    staff,
                    view,
                    Some(message.to_string()),
                    Shown::default(),
                )
                .await?)
            }
            None => Err(e.into()),
        },
    }
}

/// `POST /clinics/{id}/closures`: one closure (臨時休診 and the like).
pub async fn add_closure(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<ClosureForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let date = |label: &str, s: &str| {
        crate::jst::parse_date_ja(s).map_err(|e| Error::Invalid(format!("{label}: {e}")))
    };
    let closure = date("休診の初日", &form.from).and_then(|from| {
        let to = match form.to.trim() {
            "" => from,
            t => date("休診の最終日", t)?,
        };
        Ok(Closure {
            id: 0,
            from,
            to,
            reason: form.reason.clone(),
        })
    });
    let done = match closure {
        Ok(c) => state
            .desk
            .add_closures(&staff.actor(), id, vec![c], Utc::now())
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    clinic_result(&state, &staff, id, done).await
}

#[derive(Debug, Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    csv: String,
}

/// `POST /clinics/{id}/closures/import`: closures pasted as CSV (`開始日,終了日,理由`).
pub async fn import_closures(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<ImportForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let done = state
        .desk
        .import_closures(&staff.actor(), id, &form.csv, Utc::now())
        .await
        .map(|_| ());
    clinic_result(&state, &staff, id, done).await
}

/// `POST /clinics/{id}/closures/{closure}/delete`
pub async fn delete_closure(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path((id, closure)): Path<(i64, i64)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let done = state
        .desk
        .delete_closure(&staff.actor(), id, closure, Utc::now())
        .await;
    clinic_result(&state, &staff, id, done).await
}

#[derive(Debug, Deserialize)]
pub struct BackupPasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    clear: Option<String>,
}

/// `POST /clinics/{id}/backup-password`: the clinic's own four digits, or back to 1357.
pub async fn backup_password(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<BackupPasswordForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let password = if form.clear.is_some() {
        None
    } else if form.password.trim().is_empty() {
        return clinic_result(
            &state,
            &staff,
            id,
            Err(Error::Invalid("パスワードを入力してください".into())),
        )
        .await;
    } else {
        Some(form.password.as_str())
    };
    let done = state
        .desk
        .set_backup_password(&staff.actor(), id, password, Utc::now())
        .await;
    clinic_result(&state, &staff, id, done).await
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
            hours_mon: "8:30-12:30, 14:30〜19:00".into(),
            hours_tue: "08:30-19:00".into(),
            hours_wed: "08:30-19:00".into(),
            hours_thu: "08:30-12:30".into(),
            hours_fri: "08:30-19:00".into(),
            hours_sat: "０９：００－１２：００".into(),
            closed_on_holidays: Some("on".into()),
            closed_new_year: Some("on".into()),
            account_linkage: " renkei ".into(),
            restart_warning_hours: "30".into(),
            ..ClinicForm::default()
        }
    }

    #[test]
    fn a_valid_clinic_form_parses() {
        let c = clinics_check(&parse_clinic_form(7, &form()).unwrap()).unwrap();
        assert_eq!(c.settings.id, 7);
        assert_eq!(c.code.as_deref(), Some("1312345678"));
        assert_eq!(c.settings.prefecture.as_deref(), Some("東京都"));
        let h = &c.settings.hours;
        assert_eq!(format_day(&h.week[0]), "08:30-12:30, 14:30-19:00");
        assert_eq!(
            format_day(&h.week[3]),
            "08:30-12:30",
            "Thursday afternoons off"
        );
        assert_eq!(
            format_day(&h.week[5]),
            "09:00-12:00",
            "full-width digits read"
        );
        assert!(h.week[6].is_empty(), "Sunday closed");
        assert!(h.closed_on_holidays && h.closed_new_year && !h.closed_obon);
        assert_eq!(
            c.settings.accounts,
            vec![AccountSpec {
                role: AccountRole::Linkage,
                name: "renkei".into()
            }]
        );
        assert_eq!(c.settings.rules.restart_warning_hours, Some(30));
        assert_eq!(c.settings.rules.offline_after_intervals, None);
        // What was typed comes back as typed.
        let view = ClinicFormView::from_form(7, &form());
        assert_eq!(view.hours[0].2, "8:30-12:30, 14:30〜19:00");
        assert_eq!(view.accounts[2].2, " renkei ");
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
            (
                Box::new(|f| f.hours_tue = "9時から".into()),
                "火曜日の診療時間",
            ),
            (
                Box::new(|f| f.hours_wed = "18:00-08:00".into()),
                "水曜日の診療時間",
            ),
            (
                Box::new(|f| f.restart_critical_hours = "三日".into()),
                "数字で入力",
            ),
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
