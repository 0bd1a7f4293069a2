//! Clinics (create, edit, contacts, enrollment codes, their terminals and mail), the outbox,
//! the audit log and the staff member's own password.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{NaiveTime, Utc, Weekday};
use serde::Deserialize;

use super::format::{Nav, opt_time_ja, query_string, time_ja};
use super::session::{Admin, AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::auth;
use crate::calendar::BusinessHours;
use crate::store::Clinic;
use crate::store::alerts::ClinicSettings;
use crate::store::desk::{
    ClinicDetail, ClinicListRow, CodeRow, Contact, FleetQuery, FleetSort, OutboxRow,
};

const PAGE_SIZE: i64 = 100;

pub const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

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
        Self::from_detail(&ClinicDetail {
            settings: ClinicSettings {
                id: 0,
                name: String::new(),
                email: String::new(),
                hours: BusinessHours::default(),
                desk_name: None,
                desk_phone: None,
                prefecture: None,
            },
            code: None,
            phone: None,
            notes: String::new(),
        })
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

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A single-line field: no control characters (a name ends up in mail headers).
fn single_line(label: &str, s: &str, max: usize) -> Result<(), String> {
    if s.chars().any(char::is_control) {
        return Err(format!("{label}に改行や制御文字は使えません"));
    }
    if s.chars().count() > max {
        return Err(format!("{label}は {max} 文字までです"));
    }
    Ok(())
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}

/// Validates the clinic form into what the store saves; the error is for the person typing.
pub fn parse_clinic_form(id: i64, f: &ClinicForm) -> Result<ClinicDetail, String> {
    let name = f.name.trim();
    if name.is_empty() {
        return Err("医療機関名を入力してください".into());
    }
    single_line("医療機関名", name, 200)?;
    let email = f.email.trim();
    if !valid_email(email) {
        return Err("メールアドレスが正しくありません".into());
    }
    let code = opt(&f.code).map(|c| c.replace(['-', ' '], ""));
    if let Some(c) = &code
        && (c.len() != 10 || !c.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("医療機関コードは10桁の数字です".into());
    }
    let prefecture = opt(&f.prefecture);
    if let Some(p) = &prefecture
        && !PREFECTURES.contains(&p.as_str())
    {
        return Err("都道府県を選んでください".into());
    }
    let time = |label: &str, s: &str| {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| format!("{label}は 09:00 の形式で入力してください"))
    };
    let open = time("診療開始", &f.open)?;
    let close = time("診療終了", &f.close)?;
    if close <= open {
        return Err("診療終了は診療開始より後にしてください".into());
    }
    let flags = f.closed_flags();
    let closed_weekdays = WEEKDAYS
        .iter()
        .zip(flags)
        .filter(|(_, on)| *on)
        .map(|((d, _, _), _)| *d)
        .collect();
    for (label, value) in [
        ("電話番号", &f.phone),
        ("担当サポート窓口", &f.desk_name),
        ("窓口の電話番号", &f.desk_phone),
    ] {
        single_line(label, value.trim(), 100)?;
    }
    if f.notes.chars().count() > 4000 {
        return Err("メモは 4000 文字までです".into());
    }
    Ok(ClinicDetail {
        settings: ClinicSettings {
            id,
            name: name.to_string(),
            email: email.to_string(),
            hours: BusinessHours {
                open,
                close,
                closed_weekdays,
                closed_on_holidays: f.closed_on_holidays.is_some(),
            },
            desk_name: opt(&f.desk_name),
            desk_phone: opt(&f.desk_phone),
            prefecture,
        },
        code,
        phone: opt(&f.phone),
        notes: f.notes.trim().to_string(),
    })
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

pub struct OutboxLine {
    pub id: i64,
    pub kind: String,
    pub clinic: String,
    pub recipient: String,
    pub subject: String,
    pub status: String,
    pub status_label: &'static str,
    pub attempts: i64,
    pub error: String,
    pub created: String,
    pub sent: String,
}

impl OutboxLine {
    fn new(o: OutboxRow) -> Self {
        OutboxLine {
            status_label: match o.status.as_str() {
                "pending" => "送信待ち",
                "sending" => "送信中",
                "sent" => "送信済み",
                "failed" => "失敗",
                _ => "不明",
            },
            id: o.id,
            kind: o.kind,
            clinic: o.clinic_name.unwrap_or_default(),
            recipient: o.recipient,
            subject: o.subject,
            status: o.status,
            attempts: o.attempts,
            error: o.last_error.unwrap_or_default(),
            created: time_ja(o.created_at),
            sent: opt_time_ja(o.sent_at),
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
    pub audit: Vec<(String, String)>,
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
                id: t.summary.terminal_id.to_string(),
                hostname: t.summary.hostname,
                state: t.summary.state.as_str(),
                state_label: t.summary.state.label_ja(),
                open_alerts: t.summary.open_alerts,
                last_seen: t.last_seen.map_or_else(|| "未受信".into(), time_ja),
            })
            .collect(),
        terminal_count,
        outbox: outbox.into_iter().map(OutboxLine::new).collect(),
        audit: audit
            .into_iter()
            .map(|a| (time_ja(a.at), format!("{}: {}", a.actor, a.what)))
            .collect(),
        back: format!("/clinics/{id}"),
        silence_start: super::format::datetime_local(now),
        silence_end: super::format::datetime_local(now + chrono::Duration::hours(4)),
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

async fn save(
    state: &AppState,
    staff: &Staff,
    id: i64,
    form: ClinicForm,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let detail = match parse_clinic_form(id, &form) {
        Ok(d) => d,
        Err(e) => return refill(state, staff, id, &form, e).await,
    };
    let saved = state.store.desk().save_clinic(&detail, Utc::now()).await?;
    let Some(saved) = saved else {
        return refill(
            state,
            staff,
            id,
            &form,
            "この医療機関コードは別の医療機関で使われています".into(),
        )
        .await;
    };
    let mut entry = staff.audit(format!(
        "医療機関「{}」を{}",
        detail.settings.name,
        if id == 0 { "登録" } else { "更新" }
    ));
    entry.clinic_id = Some(saved);
    state.store.desk().record_audit(&entry).await?;
    Ok(Redirect::to(&format!("/clinics/{saved}")).into_response())
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
    let clinic = Clinic {
        id,
        name: detail.settings.name.clone(),
        email: detail.settings.email.clone(),
    };
    let code = crate::enroll::issue_code(
        state.store.as_ref(),
        &clinic,
        Utc::now(),
        state.config.enrollment_code_days,
    )
    .await?;
    let mut entry = staff.audit(format!("医療機関「{}」の登録コードを発行", clinic.name));
    entry.clinic_id = Some(id);
    state.store.desk().record_audit(&entry).await?;
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

/// `POST /clinics/{id}/codes/revoke`
pub async fn revoke_code(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<i64>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let desk = state.store.desk();
    // Only a code of this clinic.
    let owned = desk
        .enrollment_codes(id)
        .await?
        .iter()
        .any(|c| c.code_hash == form.code_hash);
    if owned
        && state
            .store
            .revoke_enrollment_code(&form.code_hash, Utc::now())
            .await?
    {
        let short: String = form.code_hash.chars().take(8).collect();
        let mut entry = staff.audit(format!("登録コード {short}… を無効化"));
        entry.clinic_id = Some(id);
        desk.record_audit(&entry).await?;
    }
    Ok(Redirect::to(&format!("/clinics/{id}")).into_response())
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
    let email = opt(&form.email);
    let problem = if form.name.trim().is_empty() {
        Some("連絡先の名前を入力してください".to_string())
    } else if email.as_deref().is_some_and(|e| !valid_email(e)) {
        Some("メールアドレスが正しくありません".into())
    } else {
        [
            ("名前", &form.name),
            ("役割", &form.role),
            ("電話番号", &form.phone),
        ]
        .iter()
        .find_map(|(l, v)| single_line(l, v.trim(), 100).err())
    };
    if let Some(error) = problem {
        let view = ClinicFormView::from_detail(&detail);
        return Ok(render_clinic(&state, &staff, view, Some(error), None).await?);
    }
    let contact = Contact {
        id: 0,
        clinic_id: id,
        name: form.name.trim().to_string(),
        role: form.role.trim().to_string(),
        email,
        phone: opt(&form.phone),
    };
    state.store.desk().add_contact(&contact).await?;
    let mut entry = staff.audit(format!("連絡先「{}」を追加", contact.name));
    entry.clinic_id = Some(id);
    state.store.desk().record_audit(&entry).await?;
    Ok(Redirect::to(&format!("/clinics/{id}")).into_response())
}

/// `POST /clinics/{id}/contacts/{contact}/delete`
pub async fn delete_contact(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path((id, contact)): Path<(i64, i64)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    if state.store.desk().delete_contact(id, contact).await? {
        let mut entry = staff.audit(format!("連絡先 #{contact} を削除"));
        entry.clinic_id = Some(id);
        state.store.desk().record_audit(&entry).await?;
    }
    Ok(Redirect::to(&format!("/clinics/{id}")).into_response())
}

#[derive(Template)]
#[template(path = "outbox.html")]
pub struct OutboxPage {
    pub nav: Nav,
    pub counts: crate::store::alerts::OutboxCounts,
    pub rows: Vec<OutboxLine>,
}

/// `GET /outbox`
pub async fn outbox(
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

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub rows: Vec<(String, String, String)>,
}

/// `GET /audit`
pub async fn audit(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Html<String>, PageFailure> {
    let rows = state.store.desk().audit_rows(None, None, 300).await?;
    Ok(Html(
        AuditPage {
            nav: Nav::new(&staff, "audit"),
            rows: rows
                .into_iter()
                .map(|a| (time_ja(a.at), a.actor, a.what))
                .collect(),
        }
        .render()?,
    ))
}

#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub nav: Nav,
    pub error: Option<String>,
}

/// `GET /account/password`
pub async fn password_page(staff: Staff) -> Result<Html<String>, PageFailure> {
    Ok(Html(
        PasswordPage {
            nav: Nav::new(&staff, ""),
            error: None,
        }
        .render()?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

/// `POST /account/password`: every session of the user ends, this one too.
pub async fn change_password(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let desk = state.store.desk();
    let Some(user) = desk.user_by_name(&staff.user.name).await? else {
        return Err(AuthFailure::Forbidden);
    };
    let hash = user.password_hash.clone();
    let current = form.current.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&current, &hash))
        .await
        .unwrap_or(false);
    let problem = if !ok {
        Some("現在のパスワードが違います".to_string())
    } else if form.new != form.confirm {
        Some("新しいパスワードが確認用と一致しません".into())
    } else {
        auth::check_new_password(&form.new).err()
    };
    if let Some(error) = problem {
        let html = PasswordPage {
            nav: Nav::new(&staff, ""),
            error: Some(error),
        }
        .render()
        .map_err(crate::Error::from)?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response());
    }
    let new = form.new;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&new))
        .await
        .map_err(|e| crate::Error::Password(e.to_string()))??;
    desk.set_password(user.id, &hash, Utc::now()).await?;
    desk.record_audit(&staff.audit("自分のパスワードを変更".into()))
        .await?;
    Ok(Redirect::to("/login").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = parse_clinic_form(7, &form()).unwrap();
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
                Box::new(|f| f.email = "no-at-sign".into()),
                "メールアドレス",
            ),
            (
                Box::new(|f| f.email = "a@b.jp\r\nBcc: c@d.jp".into()),
                "メールアドレス",
            ),
            (Box::new(|f| f.code = "12345".into()), "10桁"),
            (Box::new(|f| f.prefecture = "火星".into()), "都道府県"),
            (Box::new(|f| f.open = "9時".into()), "09:00 の形式"),
            (Box::new(|f| f.close = "08:00".into()), "より後"),
        ];
        for (change, expected) in cases {
            let mut f = form();
            change(&mut f);
            let e = parse_clinic_form(1, &f).unwrap_err();
            assert!(e.contains(expected), "{e} should mention {expected}");
        }
    }
}
