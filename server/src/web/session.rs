//! Staff sessions over HTTP: the session cookie, the [`Staff`] and [`Admin`] extractors, CSRF
//! checks, the login and logout handlers, and the security headers every page carries.

use askama::Template;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::client::ClientAddr;
use super::{AppState, PageFailure};
use crate::auth::{self, hash_session, new_secret, same_secret};
use crate::domain::{Actor, AuditRecord, Reach, Role, SessionUser};
use crate::store::desk::NewSession;

const COOKIE_SECURE: &str = "__Host-onshi_session";
const COOKIE_PLAIN: &str = "onshi_session";

/// The dashboard's Content-Security-Policy: our own script and style files only, no inline
/// script or style, no framing, forms post only to us.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.dashboard.secure_cookies {
        COOKIE_SECURE
    } else {
        COOKIE_PLAIN
    }
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn session_cookie(state: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.dashboard.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}",
        cookie_name(state)
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A signed-in staff member (any role), with the clinics their scope reaches (read on every
/// request, so a changed scope holds from the next click).
#[derive(Debug, Clone)]
pub struct Staff {
    pub user: SessionUser,
    pub reach: Reach,
}

impl Staff {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// An admin of the whole fleet: manages users and groups, fleet-wide and prefecture-wide
    /// silences, and anything that concerns no single clinic.
    pub fn is_fleet_admin(&self) -> bool {
        self.is_admin() && self.reach.is_all()
    }

    /// Whether the staff member may see (and, as an admin, change) the clinic. Pages answer
    /// 404 for one outside the scope, as for one that does not exist.
    pub fn reaches(&self, clinic_id: i64) -> bool {
        self.reach.allows(clinic_id)
    }

    /// Every state-changing form carries the session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), AuthFailure> {
        if same_secret(token, &self.user.csrf) {
            Ok(())
        } else {
            Err(AuthFailure::Csrf)
        }
    }

    /// Who acts when this staff member changes something.
    pub fn actor(&self) -> Actor {
        Actor::Staff {
            user_id: self.user.user_id,
            name: self.user.name.clone(),
        }
    }
}

/// A signed-in admin: viewers get 403.
#[derive(Debug, Clone)]
pub struct Admin(pub Staff);

/// A signed-in admin of the whole fleet: viewers and admins limited to a scope get 403.
#[derive(Debug, Clone)]
pub struct FleetAdmin(pub Staff);

#[derive(Debug)]
pub enum AuthFailure {
    /// No valid session: pages redirect to the login page, JSON answers 401.
    NoSession {
        json: bool,
        next: String,
    },
    /// A viewer tried to change something.
    Forbidden,
    /// A form without the session's CSRF token.
    Csrf,
    Internal(crate::Error),
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        match self {
            AuthFailure::NoSession { json: true, .. } => super::ApiFailure::new(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "sign in to the dashboard first",
            )
            .into_response(),
            AuthFailure::NoSession { json: false, next } => {
                let target = format!("/login?next={}", url_encode(&next));
                Redirect::to(&target).into_response()
            }
            AuthFailure::Forbidden => (
                StatusCode::FORBIDDEN,
                Html(
                    "<!doctype html><meta charset=utf-8><title>403</title>\
                     <p>この操作には管理者の権限が必要です（ユーザー・グループ・APIトークンの管理は、全体を担当する管理者だけが行えます）。</p><p><a href=\"/\">戻る</a></p>",
                ),
            )
                .into_response(),
            AuthFailure::Csrf => (
                StatusCode::FORBIDDEN,
                Html(
                    "<!doctype html><meta charset=utf-8><title>403</title>\
                     <p>フォームの有効期限が切れました。ページを読み込み直してから、もう一度操作してください。</p>\
                     <p><a href=\"/\">戻る</a></p>",
                ),
            )
                .into_response(),
            AuthFailure::Internal(e) => PageFailure::from(e).into_response(),
        }
    }
}

impl From<crate::Error> for AuthFailure {
    fn from(e: crate::Error) -> Self {
        AuthFailure::Internal(e)
    }
}

impl From<crate::store::StoreError> for AuthFailure {
    fn from(e: crate::store::StoreError) -> Self {
        AuthFailure::Internal(e.into())
    }
}

fn wants_json(parts: &Parts) -> bool {
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    parts.uri.path().starts_with("/api/")
        || (accept.contains("application/json") && !accept.contains("text/html"))
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = AuthFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Checked once already by the scope guard (`reach::guard`) for this request.
        if let Some(staff) = parts.extensions.get::<Staff>() {
            return Ok(staff.clone());
        }
        let no_session = || AuthFailure::NoSession {
            json: wants_json(parts),
            next: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        };
        let Some(id) = cookie_value(&parts.headers, cookie_name(state)) else {
            return Err(no_session());
        };
        match state
            .store
            .staff()
            .session(&hash_session(id), Utc::now())
            .await?
        {
            Some(user) => {
                let reach = super::reach_of(state, user.scope.as_ref()).await?;
                Ok(Staff { user, reach })
            }
            None => Err(no_session()),
        }
    }
}

/// The signed-in staff member when `allowed` says so; 403 otherwise.
async fn staff_if(
    parts: &mut Parts,
    state: &AppState,
    allowed: fn(&Staff) -> bool,
) -> Result<Staff, AuthFailure> {
    let staff = Staff::from_request_parts(parts, state).await?;
    if allowed(&staff) {
        Ok(staff)
    } else {
        Err(AuthFailure::Forbidden)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AuthFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        staff_if(parts, state, Staff::is_admin).await.map(Admin)
    }
}

impl FromRequestParts<AppState> for FleetAdmin {
    type Rejection = AuthFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        staff_if(parts, state, Staff::is_fleet_admin)
            .await
            .map(FleetAdmin)
    }
}

/// Percent-encodes a path for a query parameter.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Only local paths are followed after login (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub error: Option<&'static str>,
    pub next: String,
    pub username: String,
    /// The login form's own CSRF token (there is no session yet), also in a cookie.
    pub csrf: String,
}

/// The cookie that carries the login form's token ("double submit"): a page on another site
/// cannot read it, so it cannot post a login form (login CSRF, which would sign the victim in
/// as the attacker).
const LOGIN_COOKIE: &str = "onshi_login";

/// The login page with a fresh form token, and the cookie that carries it.
fn login_response(
    state: &AppState,
    status: StatusCode,
    error: Option<&'static str>,
    next: String,
    username: String,
) -> Result<Response, PageFailure> {
    let csrf = new_secret();
    let page = LoginPage {
        error,
        next,
        username,
        csrf: csrf.clone(),
    }
    .render()?;
    let secure = if state.config.dashboard.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{LOGIN_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    );
    let mut response = (status, Html(page)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`
pub async fn login_page(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PageFailure> {
    login_response(
        &state,
        StatusCode::OK,
        None,
        safe_next(q.next.as_deref()),
        String::new(),
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

const LOGIN_FAILED: &str = "ログインできませんでした。ユーザー名とパスワードを確かめてください。\
     続けて失敗した場合は、しばらく待ってからお試しください。";

const LOGIN_BUSY: &str = "ただいまログインが混み合っています。少し待ってからお試しください。";

const LOGIN_EXPIRED: &str =
    "ログイン画面の有効期限が切れました。もう一度ユーザー名とパスワードを入力してください。";

/// `POST /login`: a new session id on every login; one generic message for every failure.
/// The form's own token first; then a free password-check slot (429 at once when there is
/// none); then the attempt is counted, and refused when over the limit, before the password
/// is checked.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageFailure> {
    let now = Utc::now();
    let next = safe_next(form.next.as_deref());
    let username = form.username.trim().to_string();
    let refuse = |status: StatusCode, error: &'static str, username: String| {
        login_response(&state, status, Some(error), next.clone(), username)
    };
    let token_ok = cookie_value(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(c, &form.csrf));
    if !token_ok {
        return refuse(StatusCode::FORBIDDEN, LOGIN_EXPIRED, username);
    }
    let Ok(permit) = state.login_permits.clone().try_acquire_owned() else {
        tracing::warn!(%addr, "login refused: every password check slot is busy");
        let mut r = refuse(StatusCode::TOO_MANY_REQUESTS, LOGIN_BUSY, username)?;
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(r);
    };
    if let Err(wait) = state.throttle.begin(&username, &addr, now) {
        tracing::warn!(user = %username, %addr, retry_in_secs = wait.as_secs(), "login refused: too many failures");
        let mut r = refuse(StatusCode::TOO_MANY_REQUESTS, LOGIN_FAILED, username)?;
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(r);
    }
    let user = state.store.staff().user_by_name(&username).await?;
    let password = form.password;
    // Verify against a real hash even for unknown users, so timing does not tell them apart.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_hash.to_string());
    let matches = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        auth::verify_password(&password, &hash)
    })
    .await
    .unwrap_or(false);
    let user = match user {
        Some(u) if matches && !u.disabled => u,
        _ => {
            tracing::warn!(user = %username, %addr, "login failed");
            return refuse(StatusCode::UNAUTHORIZED, LOGIN_FAILED, username);
        }
    };
    state.throttle.succeeded(&username, &addr);
    let id = new_secret();
    let hours = i64::from(state.config.dashboard.session_hours);
    let actor = Actor::Staff {
        user_id: user.id,
        name: user.name.clone(),
    };
    let session = NewSession {
        id_hash: hash_session(&id),
        user_id: user.id,
        csrf: new_secret(),
        created_at: now,
        expires_at: now + Duration::hours(hours),
        address: addr.clone(),
    };
    let audit = AuditRecord::new(&actor, now, format!("ログイン ({addr})"));
    state.store.staff().create_session(&session, &audit).await?;
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &id, hours * 3600),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /logout`: ends the session here and in the database.
pub async fn logout(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    if let Some(id) = cookie_value(&headers, cookie_name(&state)) {
        state
            .store
            .staff()
            .delete_session(&hash_session(id))
            .await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}

/// Adds the security headers to every response.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; onshi_session=abc ; b=2"),
        );
        assert_eq!(cookie_value(&h, "onshi_session"), Some("abc"));
        assert_eq!(cookie_value(&h, "onshi"), None);
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/alerts?rule=x")), "/alerts?rule=x");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(url_encode("/a?b=c&d"), "/a%3Fb%3Dc%26d");
    }
}
