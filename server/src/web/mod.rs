//! HTTP: the agent API (`/api/v1/...`), the dashboard (one module per resource), health and
//! metrics. Handlers read through the store and change things only through [`crate::desk`].

mod account;
mod alerts;
pub mod api;
mod audit;
pub mod client;
mod clinics;
mod export;
mod format;
pub mod limits;
pub mod measure;
pub mod openapi;
mod outbox;
mod overview;
pub mod reach;
pub mod read_api;
pub mod session;
mod silences;
mod terminal;
pub mod timeline;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use onshi_shared::{ApiError, limits as wire_limits};

use crate::auth::LoginThrottle;
use crate::config::Config;
use crate::desk::Desk;
use crate::enroll::TokenCache;
use crate::evaluator::{ChangeSignal, FleetTally, SharedTally};
use crate::ingest::{Ingest, Rejection};
use crate::policy::PolicyBook;
use crate::secrets::SecretKey;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub tokens: Arc<TokenCache>,
    pub config: Arc<Config>,
    pub throttle: Arc<LoginThrottle>,
    /// Every staff action.
    pub desk: Desk,
    /// A real argon2id hash to verify against when the user name is unknown (equal timing).
    pub dummy_hash: Arc<str>,
    /// Wakes the evaluator for terminals whose alerts staff changed.
    pub changes: Option<Arc<ChangeSignal>>,
    /// The evaluator's counts (absent when this process runs none).
    pub tally: Option<SharedTally>,
    /// What each agent is told to watch.
    pub policies: Arc<PolicyBook>,
    /// Whose forwarding headers are believed.
    pub trusted_proxies: client::TrustedProxies,
    /// Password checks that may run at once (argon2id holds 19 MiB each).
    pub login_permits: Arc<tokio::sync::Semaphore>,
    /// Unauthenticated bodies (enrollment, login) that may be read at once.
    pub body_permits: Arc<tokio::sync::Semaphore>,
    /// Refused enrollment codes and agent tokens per client address.
    pub refusals: Arc<limits::Refusals>,
    /// Each API token's requests (`[limits] api_requests_per_minute`).
    pub api_buckets: Arc<limits::Buckets>,
    /// What `/metrics` shows (shared with the ingest writer, the evaluator and the sender).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether this process leads (runs the evaluator, the mail sender and retention).
    pub leading: crate::leader::Leading,
}

/// The running parts the handlers reach besides the store and the ingest queue.
pub struct Services {
    pub changes: Option<Arc<ChangeSignal>>,
    pub tally: Option<SharedTally>,
    pub policies: Arc<PolicyBook>,
    pub key: Arc<SecretKey>,
    /// Whether this process leads (`crate::leader`).
    pub leading: crate::leader::Leading,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        ingest: Ingest,
        tokens: Arc<TokenCache>,
        config: Config,
        services: Services,
    ) -> Result<AppState, crate::Error> {
        let d = &config.dashboard;
        let throttle = LoginThrottle::new(
            d.max_failed_logins,
            chrono::Duration::minutes(i64::from(d.lockout_minutes)),
        );
        let desk = Desk::new(store.clone(), services.changes.clone(), &config)
            .with_secrets(services.key)
            .with_policies(services.policies.clone());
        let trusted_proxies = client::TrustedProxies::parse(&d.trusted_proxies)?;
        let login_permits = Arc::new(tokio::sync::Semaphore::new(d.login_concurrency as usize));
        let l = &config.limits;
        let body_permits = Arc::new(tokio::sync::Semaphore::new(
            l.unauthenticated_bodies as usize,
        ));
        let refusals = Arc::new(limits::Refusals::new(l.refusals_per_minute));
        let api_buckets = Arc::new(limits::Buckets::new(l.api_requests_per_minute));
        Ok(AppState {
            desk,
            trusted_proxies,
            login_permits,
            body_permits,
            refusals,
            api_buckets,
            store,
            metrics: ingest.metrics.clone(),
            ingest,
            tokens,
            throttle: Arc::new(throttle),
            dummy_hash: crate::auth::hash_password(&crate::auth::new_secret())?.into(),
            config: Arc::new(config),
            changes: services.changes,
            tally: services.tally,
            policies: services.policies,
            leading: services.leading,
        })
    }

    /// The evaluator's counts of the clinics `reach` covers, once it has loaded them.
    pub fn tally(&self, reach: &crate::domain::Reach) -> Option<FleetTally> {
        let t = self.tally.as_ref()?.read().ok()?;
        t.fleet.ready.then(|| t.of(reach.ids()))
    }
}

/// The token of an `Authorization: Bearer …` header, trimmed; `None` when absent or empty.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The clinics a stored scope reaches now (`None`: the whole fleet).
pub async fn reach_of(
    state: &AppState,
    scope: Option<&crate::domain::Scope>,
) -> Result<crate::domain::Reach, crate::store::StoreError> {
    match scope {
        None => Ok(crate::domain::Reach::All),
        Some(s) => Ok(crate::domain::Reach::clinics(
            state.store.staff().scope_clinics(s).await?,
        )),
    }
}

/// Largest enrollment request or login form: a few short strings.
const UNAUTHENTICATED_BODY_BYTES: usize = 16 * 1024;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let unauthenticated =
        || axum::middleware::from_fn_with_state(state.clone(), limits::unauthenticated_body);
    let enroll = Router::new()
        .route("/api/v1/enroll", post(api::enroll))
        .layer(unauthenticated())
        .layer(DefaultBodyLimit::max(UNAUTHENTICATED_BODY_BYTES));
    let read = Router::new()
        .route("/api/v1/terminals", get(read_api::terminals))
        .route("/api/v1/alerts", get(read_api::alerts))
        .route("/api/v1/alerts/{id}", get(read_api::alert))
        .route(
            "/api/v1/alerts/{id}/acknowledge",
            post(read_api::acknowledge),
        )
        .route("/api/v1/alerts/{id}/resolve", post(read_api::resolve))
        .route("/api/v1/clinics", get(read_api::clinics))
        .route("/api/v1/audit", get(read_api::audit))
        .layer(DefaultBodyLimit::max(16 * 1024));
    let api = Router::new()
        .route("/api/v1/report", post(api::report))
        .layer(DefaultBodyLimit::max(wire_limits::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            measure::count_refusals,
        ))
        .merge(enroll);
    let login = Router::new()
        .route("/login", post(session::login))
        .layer(unauthenticated())
        .layer(DefaultBodyLimit::max(UNAUTHENTICATED_BODY_BYTES));
    let desk = Router::new()
        .route("/", get(overview::page))
        .route("/api/desk/summary", get(overview::summary_json))
        .route("/login", get(session::login_page))
        .route("/logout", post(session::logout))
        .route("/terminals/{id}", get(terminal::page))
        .route("/terminals/{id}/accounts", post(terminal::confirm_accounts))
        .route("/alerts", get(alerts::alerts_page))
        .route("/alerts/times", get(alerts::times_page))
        .route("/alerts/bulk", post(alerts::bulk))
        .route("/export/terminals.csv", get(export::terminals))
        .route("/export/alerts.csv", get(export::alerts))
        .route("/export/audit.csv", get(export::audit))
        .route("/outbox/{id}", get(outbox::mail))
        .route("/alerts/{id}/ack", post(alerts::acknowledge))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .route("/alerts/{id}/note", post(alerts::note))
        .route("/silences", get(silences::page).post(silences::add))
        .route("/silences/{id}/end", post(silences::end))
        .route("/clinics", get(clinics::list).post(clinics::create))
        .route("/clinics/new", get(clinics::new_form))
        .route("/clinics/{id}", get(clinics::page).post(clinics::update))
        .route("/clinics/{id}/codes", post(clinics::issue_code))
        .route("/clinics/{id}/codes/revoke", post(clinics::revoke_code))
        .route(
            "/clinics/{id}/codes/{hash}/revoke",
            get(clinics::confirm_revoke_code),
        )
        .route("/clinics/{id}/contacts", post(clinics::add_contact))
        .route("/clinics/{id}/closures", post(clinics::add_closure))
        .route(
            "/clinics/{id}/closures/import",
            post(clinics::import_closures),
        )
        .route(
            "/clinics/{id}/closures/{closure}/delete",
            get(clinics::confirm_delete_closure).post(clinics::delete_closure),
        )
        .route(
            "/clinics/{id}/backup-password",
            post(clinics::backup_password),
        )
        .route(
            "/clinics/{id}/contacts/{contact}/delete",
            get(clinics::confirm_delete_contact).post(clinics::delete_contact),
        )
        .route("/users", get(users::page).post(users::create))
        .route("/users/{name}/access", post(users::access))
        .route("/users/{name}/{action}", post(users::set_disabled))
        .route("/tokens", post(users::create_token))
        .route("/tokens/{name}/revoke", post(users::revoke_token))
        .route("/groups", post(users::create_group))
        .route("/groups/{id}", get(users::group))
        .route("/groups/{id}/members", post(users::members))
        .route("/groups/{id}/delete", post(users::delete_group))
        .route("/outbox", get(outbox::page))
        .route("/audit", get(audit::page))
        .route(
            "/account/password",
            get(account::password_page).post(account::change_password),
        )
        .route("/static/app.css", get(static_css))
        .route("/static/app.js", get(static_js))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            reach::guard,
        ))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .merge(login)
        .layer(axum::middleware::from_fn(session::security_headers));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics_with_token))
        .route("/api/openapi.json", get(openapi::serve))
        .merge(api)
        .merge(read)
        .merge(desk)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            measure::count_requests,
        ))
        .layer(trace_layer())
        .with_state(state)
}

/// The metrics listener's surface (`[metrics] listen`): `/metrics` without a token,
/// `/healthz` and `/readyz`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .with_state(state)
}

/// One span per request, named by the route it matched (`/terminals/{id}`, not the path with
/// its ids), with the status and the time taken when the response is sent.
fn trace_layer() -> tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    impl Fn(&axum::http::Request<axum::body::Body>) -> tracing::Span + Clone,
> {
    tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(|request: &axum::http::Request<axum::body::Body>| {
            let route = request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or("unmatched", axum::extract::MatchedPath::as_str);
            tracing::info_span!(
                "request",
                otel.name = %format_args!("{} {route}", request.method()),
                method = %request.method(),
                route
            )
        })
        .on_response(
            tower_http::trace::DefaultOnResponse::new()
                .level(tracing::Level::DEBUG)
                .latency_unit(tower_http::LatencyUnit::Micros),
        )
}

async fn static_css() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    )
}

async fn static_js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// An API failure: a status, a stable machine-readable code and a sentence for the operator.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// With 409 `stale_seq`: the seq the server holds.
    pub stored_seq: Option<u64>,
}

impl ApiFailure {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiFailure {
            status,
            error,
            detail: detail.into(),
            retry_after: None,
            stored_seq: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 429 for a client that asked too often, with when to come back.
    pub fn too_many(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiFailure::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", detail)
            .retry_after(retry_after_secs)
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = axum::Json(ApiError {
            error: self.error.to_string(),
            detail: self.detail,
            stored_seq: self.stored_seq,
        });
        let mut response = (self.status, body).into_response();
        response
            .extensions_mut()
            .insert(measure::FailureCode(self.error));
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<Rejection> for ApiFailure {
    fn from(r: Rejection) -> Self {
        let (status, error) = match &r {
            Rejection::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Rejection::Encoding(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding"),
            Rejection::BadGzip(_) => (StatusCode::BAD_REQUEST, "invalid_gzip"),
            Rejection::BadJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Rejection::Protocol(onshi_shared::ProtocolError::Schema { .. }) => {
                (StatusCode::BAD_REQUEST, "unsupported_schema")
            }
            Rejection::Protocol(_) => (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded"),
        };
        ApiFailure::new(status, error, r.to_string())
    }
}

impl From<crate::Error> for ApiFailure {
    fn from(e: crate::Error) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiFailure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; it has been logged",
        )
    }
}

#[derive(askama::Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    nav: format::Nav,
    title: &'a str,
    message: &'a str,
    href: &'a str,
    link: &'a str,
    error: bool,
}

/// A refused form, inside the dashboard's layout: the desk's reason and the way back.
pub fn refusal_page(staff: &session::Staff, message: &str, back: &str) -> Response {
    message_in_layout(
        staff,
        StatusCode::UNPROCESSABLE_ENTITY,
        "受け付けられませんでした",
        message,
        back,
    )
}

/// A page with one message and a link back, inside the dashboard's layout.
pub fn message_in_layout(
    staff: &session::Staff,
    status: StatusCode,
    title: &str,
    message: &str,
    href: &str,
) -> Response {
    use askama::Template;
    let page = MessagePage {
        nav: format::Nav::new(staff, ""),
        title,
        message,
        href,
        link: "戻る",
        error: status.is_client_error(),
    };
    match page.render() {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(e) => PageFailure::from(e).into_response(),
    }
}

/// A short page with one message and a link: not found, a refused form, a missing right.
/// Both texts are escaped.
pub fn message_page(status: StatusCode, message: &str, href: &str, link: &str) -> Response {
    use timeline::escape_xml;
    let class = if status.is_client_error() && status != StatusCode::NOT_FOUND {
        " class=error"
    } else {
        ""
    };
    (
        status,
        axum::response::Html(format!(
            "<!doctype html><meta charset=utf-8><title>{}</title>\
             <link rel=stylesheet href=/static/app.css>\
             <main><p{class}>{}</p><p><a href=\"{}\">{}</a></p></main>",
            status.as_u16(),
            escape_xml(message),
            escape_xml(href),
            escape_xml(link)
        )),
    )
        .into_response()
}

/// A server-rendered page failure: logged, shown as a short Japanese message.
pub struct PageFailure(crate::Error);

impl From<crate::Error> for PageFailure {
    fn from(e: crate::Error) -> Self {
        PageFailure(e)
    }
}

impl From<crate::store::StoreError> for PageFailure {
    fn from(e: crate::store::StoreError) -> Self {
        PageFailure(e.into())
    }
}

impl From<crate::store::StoreError> for ApiFailure {
    fn from(e: crate::store::StoreError) -> Self {
        crate::Error::from(e).into()
    }
}

impl From<askama::Error> for PageFailure {
    fn from(e: askama::Error) -> Self {
        PageFailure(e.into())
    }
}

impl IntoResponse for PageFailure {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "page failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "内部エラーが発生しました。ログを確認してください。",
        )
            .into_response()
    }
}
