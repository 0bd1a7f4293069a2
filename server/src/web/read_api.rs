//! The read API for other systems (ticketing, a vendor's own dashboards): terminals, alerts,
//! clinics and the audit log as JSON with filters and cursor paging, plus acknowledge and
//! resolve. Each call carries an API token an admin made (`Authorization: Bearer
//! onshi_api_…`); the token's scope limits it like a user's, and each token has its own rate
//! limit. Refusals are JSON `{error, detail}`, as on the agent's API.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::client::ClientAddr;
use super::{ApiFailure, AppState};
use crate::Error;
use crate::domain::{
    Actor, Alert, ApiToken, HandlingKind, Liveness, Reach, Role, RuleKey, Severity, SeverityFilter,
};
use crate::store::desk::{
    AlertCursor, AlertQuery, AuditQuery, ClinicListRow, FleetQuery, FleetRow,
};

/// Items per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// How often a token's last use is written (a busy integration would otherwise write on
/// every call).
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// The caller: a live API token and the clinics its scope reaches.
pub struct ApiClient {
    pub token: ApiToken,
    pub reach: Reach,
}

impl ApiClient {
    pub fn actor(&self) -> Actor {
        Actor::Token {
            name: self.token.name.clone(),
        }
    }

    fn may_change(&self) -> Result<(), ApiFailure> {
        if self.token.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiFailure::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API token may only read (its role is viewer)",
            ))
        }
    }
}

impl FromRequestParts<AppState> for ApiClient {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(ClientAddr(address)) = ClientAddr::from_request_parts(parts, state).await;
        if let Some(wait) = state.refusals.over(&address) {
            return Err(ApiFailure::too_many(
                "too many refused tokens from this address; wait",
                wait,
            ));
        }
        let unauthorized = |detail: &str| {
            state.refusals.refused(&address);
            ApiFailure::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        };
        let secret = super::bearer(&parts.headers)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <API token>"))?;
        let staff = state.store.staff();
        let token = match staff
            .api_token_by_hash(&crate::auth::hash_session(secret))
            .await?
        {
            Some(t) if t.revoked_at.is_none() => t,
            Some(_) => return Err(unauthorized("this API token was revoked")),
            None => return Err(unauthorized("unknown API token")),
        };
        if let Err(wait) = state.api_buckets.take(token.id) {
            return Err(ApiFailure::too_many(
                format!(
                    "this token made more than {} requests in a minute; wait",
                    state.config.limits.api_requests_per_minute
                ),
                wait,
            ));
        }
        let now = Utc::now();
        if token.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
            staff.touch_api_token(token.id, now).await?;
        }
        let reach = super::reach_of(state, token.scope.as_ref()).await?;
        Ok(ApiClient { token, reach })
    }
}

/// A page of a list and the cursor of the next one (absent on the last page).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` when this is the last.
    pub next_cursor: Option<String>,
}

/// A terminal as the overview shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TerminalItem {
    pub id: Uuid,
    pub hostname: String,
    pub clinic_id: i64,
    pub clinic_name: String,
    /// 医療機関コード (10 digits), when known.
    pub clinic_code: Option<String>,
    pub prefecture: Option<String>,
    /// The worst open alert: `critical`, `warning`, `info`, or `ok`.
    pub severity: String,
    /// Whether it reports: `online`, `expected_off` (a closed clinic's switched-off PC),
    /// `offline`, `never`.
    pub liveness: String,
    /// What the desk does about it: `none`, `unhandled`, `in_progress`, `silenced`.
    pub handling: String,
    pub open_alerts: i64,
    pub apps_behind: i64,
    /// The certificate backup: `ok`, `missing`, `stale`, `unknown`.
    pub backup: String,
    /// A warning nobody has acted on for `[alerts] neglected_warning_days`.
    pub neglected: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_start: Option<DateTime<Utc>>,
    pub cert_not_after: Option<DateTime<Utc>>,
}

impl From<FleetRow> for TerminalItem {
    fn from(r: FleetRow) -> Self {
        let l = r.line;
        TerminalItem {
            id: l.terminal_id,
            hostname: l.hostname,
            clinic_id: l.clinic_id,
            clinic_name: l.clinic_name,
            clinic_code: r.clinic_code,
            prefecture: l.prefecture,
            severity: SeverityFilter::of(l.severity).as_str().into(),
            liveness: l.liveness.as_str().into(),
            handling: l.handling.kind().as_str().into(),
            open_alerts: l.open_alerts,
            apps_behind: l.apps_behind,
            backup: l.backup.as_str().into(),
            neglected: l.neglected,
            last_seen: r.last_seen,
            last_start: l.last_start,
            cert_not_after: l.cert_not_after,
        }
    }
}

/// An alert: stable id, rule, severity, where, and what staff did about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertItem {
    pub id: i64,
    /// The rule's stable key (e.g. `protected_account_linkage`).
    pub rule: String,
    /// The rule's title, in Japanese.
    pub title: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub detail: String,
    pub terminal_id: Uuid,
    pub hostname: String,
    pub clinic_id: i64,
    pub clinic_name: String,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_until: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
}

impl AlertItem {
    fn new(a: Alert, hostname: String, clinic_name: String) -> AlertItem {
        AlertItem {
            id: a.id,
            rule: a.rule.as_str().into(),
            title: a.rule.title_ja().into(),
            severity: a.severity.as_str().into(),
            status: a.status.as_str().into(),
            detail: a.detail,
            terminal_id: a.terminal_id,
            hostname,
            clinic_id: a.clinic_id,
            clinic_name,
            opened_at: a.opened_at,
            acknowledged_by: a.ack_by,
            acknowledged_until: a.ack_until,
            resolved_at: a.resolved_at,
            resolved_by: a.resolved_by,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClinicItem {
    pub id: i64,
    pub name: String,
    pub code: Option<String>,
    pub prefecture: Option<String>,
    pub email: String,
    /// Enrolled terminals (revoked ones not counted).
    pub terminals: i64,
    pub open_alerts: i64,
}

impl From<ClinicListRow> for ClinicItem {
    fn from(c: ClinicListRow) -> Self {
        ClinicItem {
            id: c.id,
            name: c.name,
            code: c.code,
            prefecture: c.prefecture,
            email: c.email,
            terminals: c.terminals,
            open_alerts: c.open_alerts,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who: a user's name, `cli:<os user>`, `api:<token>`, or `agent`.
    pub actor: String,
    /// The kind of change (`alert`, `clinic`, `silence`, `agent`, …).
    pub action: Option<String>,
    pub what: String,
    pub terminal_id: Option<Uuid>,
    pub clinic_id: Option<i64>,
    pub alert_id: Option<i64>,
}

/// A query string that did not parse, as a JSON refusal.
fn bad_query(r: QueryRejection) -> ApiFailure {
    ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
}

fn invalid(what: &str, value: &str) -> ApiFailure {
    ApiFailure::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("{what} {value:?} is not valid"),
    )
}

/// A filter given (not empty) and parsed, or a 400 naming it.
fn filter<T>(
    name: &str,
    value: &Option<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiFailure> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(v).map(Some).ok_or_else(|| invalid(name, v)),
    }
}

fn limit_of(limit: Option<i64>) -> Result<i64, ApiFailure> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(invalid(&format!("limit (1–{MAX_LIMIT})"), &n.to_string())),
    }
}

/// Filters of `GET /api/v1/terminals`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TerminalFilters {
    /// Clinic id.
    pub clinic: Option<String>,
    pub prefecture: Option<String>,
    /// `critical`, `warning`, `info` or `ok`.
    pub severity: Option<String>,
    /// `online`, `expected_off`, `offline` or `never`.
    pub liveness: Option<String>,
    /// `unhandled`, `in_progress`, `silenced` or `none`.
    pub handling: Option<String>,
    /// Terminals with an unresolved alert of this rule.
    pub rule: Option<String>,
    /// Prefix of the hostname, the clinic's name or its code.
    pub q: Option<String>,
    /// 1–500 (100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List terminals, by id.
#[utoipa::path(
    get,
    path = "/api/v1/terminals",
    tag = "read",
    params(TerminalFilters),
    responses(
        (status = 200, description = "A page of terminals in the token's scope", body = Page<TerminalItem>),
        (status = 400, description = "`invalid_query`: an unknown parameter or a bad value", body = onshi_shared::ApiError),
        (status = 401, description = "`unauthorized`: missing, unknown or revoked token", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`", body = onshi_shared::ApiError,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("api_token" = []))
)]
pub async fn terminals(
    State(state): State<AppState>,
    client: ApiClient,
    query: Result<Query<TerminalFilters>, QueryRejection>,
) -> Result<Json<Page<TerminalItem>>, ApiFailure> {
    let Query(f) = query.map_err(bad_query)?;
    let limit = limit_of(f.limit)?;
    let after = filter("cursor", &f.cursor, |c| Uuid::parse_str(c).ok())?;
    let q = FleetQuery {
        clinic_id: filter("clinic", &f.clinic, |c| c.parse().ok())?,
        prefecture: filter("prefecture", &f.prefecture, |p| Some(p.to_string()))?,
        severity: filter("severity", &f.severity, SeverityFilter::parse)?,
        liveness: filter("liveness", &f.liveness, Liveness::parse)?,
        handling: filter("handling", &f.handling, HandlingKind::parse)?,
        rule: filter("rule", &f.rule, RuleKey::parse)?,
        search: filter("q", &f.q, |s| Some(s.to_string()))?,
        limit: limit + 1,
        reach: client.reach.clone(),
        ..FleetQuery::default()
    };
    let mut rows = state.store.fleet().terminals_after(&q, after).await?;
    let next = next_page(&mut rows, limit, |r| r.line.terminal_id.to_string());
    Ok(Json(Page {
        items: rows.into_iter().map(TerminalItem::from).collect(),
        next_cursor: next,
    }))
}

/// Keeps `limit` of the `limit + 1` rows read; the cursor of the last kept when there were
/// more.
fn next_page<T>(rows: &mut Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor)
    } else {
        None
    }
}

/// Filters of `GET /api/v1/alerts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertFilters {
    pub clinic: Option<String>,
    pub terminal: Option<String>,
    pub prefecture: Option<String>,
    /// `critical`, `warning` or `info`.
    pub severity: Option<String>,
    pub rule: Option<String>,
    /// `unhandled` (open, not silenced), `in_progress` (acknowledged) or `silenced`.
    pub handling: Option<String>,
    /// 1–500 (100).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List unresolved alerts (open and acknowledged), most severe first, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "read",
    params(AlertFilters),
    responses(
        (status = 200, description = "A page of unresolved alerts in the token's scope", body = Page<AlertItem>),
        (status = 400, description = "`invalid_query`", body = onshi_shared::ApiError),
        (status = 401, description = "`unauthorized`", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`", body = onshi_shared::ApiError,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("api_token" = []))
)]
pub async fn alerts(
    State(state): State<AppState>,
    client: ApiClient,
    query: Result<Query<AlertFilters>, QueryRejection>,
) -> Result<Json<Page<AlertItem>>, ApiFailure> {
    let Query(f) = query.map_err(bad_query)?;
    let limit = limit_of(f.limit)?;
    let q = AlertQuery {
        clinic_id: filter("clinic", &f.clinic, |c| c.parse().ok())?,
        terminal_id: filter("terminal", &f.terminal, |t| Uuid::parse_str(t).ok())?,
        prefecture: filter("prefecture", &f.prefecture, |p| Some(p.to_string()))?,
        severity: filter("severity", &f.severity, Severity::parse)?,
        rule: filter("rule", &f.rule, RuleKey::parse)?,
        handling: filter("handling", &f.handling, HandlingKind::parse)?,
        after: filter("cursor", &f.cursor, AlertCursor::decode)?,
        limit: limit + 1,
        reach: client.reach.clone(),
        ..AlertQuery::default()
    };
    let (_, mut views) = state.store.fleet().alert_views(&q).await?;
    let next = next_page(&mut views, limit, |v| AlertCursor::of(&v.alert).encode());
    Ok(Json(Page {
        items: views
            .into_iter()
            .map(|v| AlertItem::new(v.alert, v.hostname, v.clinic_name))
            .collect(),
        next_cursor: next,
    }))
}

fn no_alert(id: i64) -> ApiFailure {
    ApiFailure::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no alert {id} in this token's scope"),
    )
}

/// The alert, resolved or not, when the token's scope reaches it.
async fn reached_alert(state: &AppState, client: &ApiClient, id: i64) -> Result<Alert, ApiFailure> {
    state
        .store
        .alerts()
        .alert(id)
        .await?
        .filter(|a| client.reach.allows(a.clinic_id))
        .ok_or_else(|| no_alert(id))
}

/// [`reached_alert`] with the names the API shows.
async fn alert_item(
    state: &AppState,
    client: &ApiClient,
    id: i64,
) -> Result<AlertItem, ApiFailure> {
    let alert = reached_alert(state, client, id).await?;
    let terminal = state
        .store
        .fleet()
        .terminal_detail(alert.terminal_id)
        .await?
        .ok_or_else(|| no_alert(id))?;
    Ok(AlertItem::new(
        alert,
        terminal.hostname,
        terminal.clinic_name,
    ))
}

/// One alert, resolved ones too (a ticket system asks whether its alert is over).
#[utoipa::path(
    get,
    path = "/api/v1/alerts/{id}",
    tag = "read",
    params(("id" = i64, Path, description = "The alert's id")),
    responses(
        (status = 200, description = "The alert", body = AlertItem),
        (status = 401, description = "`unauthorized`", body = onshi_shared::ApiError),
        (status = 404, description = "`not_found`: no such alert in the token's scope", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`", body = onshi_shared::ApiError),
    ),
    security(("api_token" = []))
)]
pub async fn alert(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<i64>,
) -> Result<Json<AlertItem>, ApiFailure> {
    Ok(Json(alert_item(&state, &client, id).await?))
}

/// What acknowledging says.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// Shown on the alert and in the audit log (at most 2,000 characters).
    #[serde(default)]
    pub note: String,
    /// No mail about the alert until then (RFC 3339); absent: until it is resolved.
    pub until: Option<DateTime<Utc>>,
}

/// What resolving says.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    #[serde(default)]
    pub note: String,
}

/// A desk refusal as JSON.
fn refused(e: Error) -> ApiFailure {
    match e {
        Error::Invalid(m) => ApiFailure::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
        Error::NotFound(m) => ApiFailure::new(StatusCode::NOT_FOUND, "not_found", m),
        Error::Conflict(m) => ApiFailure::new(StatusCode::CONFLICT, "conflict", m),
        other => other.into(),
    }
}

fn bad_body(r: JsonRejection) -> ApiFailure {
    ApiFailure::new(r.status(), "invalid_json", r.body_text())
}

/// Acknowledge an alert: the desk has it; no more immediate mail (until `until`).
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/acknowledge",
    tag = "read",
    params(("id" = i64, Path, description = "The alert's id")),
    request_body(content = AcknowledgeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The alert after the change", body = AlertItem),
        (status = 400, description = "`invalid_json`", body = onshi_shared::ApiError),
        (status = 401, description = "`unauthorized`", body = onshi_shared::ApiError),
        (status = 403, description = "`forbidden`: a viewer token", body = onshi_shared::ApiError),
        (status = 404, description = "`not_found`: no such alert in the token's scope, or resolved", body = onshi_shared::ApiError),
        (status = 422, description = "`invalid`: e.g. a note too long or `until` in the past", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`", body = onshi_shared::ApiError),
    ),
    security(("api_token" = []))
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<i64>,
    body: Result<Json<AcknowledgeRequest>, JsonRejection>,
) -> Result<Json<AlertItem>, ApiFailure> {
    client.may_change()?;
    let Json(body) = body.map_err(bad_body)?;
    reached_alert(&state, &client, id).await?;
    state
        .desk
        .acknowledge(&client.actor(), id, &body.note, body.until, Utc::now())
        .await
        .map_err(refused)?;
    Ok(Json(alert_item(&state, &client, id).await?))
}

/// Resolve an alert by hand (it stays resolved while the same occurrence persists).
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/resolve",
    tag = "read",
    params(("id" = i64, Path, description = "The alert's id")),
    request_body(content = ResolveRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The alert after the change", body = AlertItem),
        (status = 400, description = "`invalid_json`", body = onshi_shared::ApiError),
        (status = 401, description = "`unauthorized`", body = onshi_shared::ApiError),
        (status = 403, description = "`forbidden`: a viewer token", body = onshi_shared::ApiError),
        (status = 404, description = "`not_found`: no such alert in the token's scope, or resolved", body = onshi_shared::ApiError),
        (status = 422, description = "`invalid`", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`", body = onshi_shared::ApiError),
    ),
    security(("api_token" = []))
)]
pub async fn resolve(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<i64>,
    body: Result<Json<ResolveRequest>, JsonRejection>,
) -> Result<Json<AlertItem>, ApiFailure> {
    client.may_change()?;
    let Json(body) = body.map_err(bad_body)?;
    reached_alert(&state, &client, id).await?;
    state
        .desk
        .resolve(&client.actor(), id, &body.note, Utc::now())
        .await
        .map_err(refused)?;
    Ok(Json(alert_item(&state, &client, id).await?))
}

/// Filters of `GET /api/v1/clinics`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClinicFilters {
    pub prefecture: Option<String>,
    /// 1–500 (100).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List clinics, by id.
#[utoipa::path(
    get,
    path = "/api/v1/clinics",
    tag = "read",
    params(ClinicFilters),
    responses(
        (status = 200, description = "A page of clinics in the token's scope", body = Page<ClinicItem>),
        (status = 400, description = "`invalid_query`", body = onshi_shared::ApiError),
        (status = 401, description = "`unauthorized`", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`", body = onshi_shared::ApiError),
    ),
    security(("api_token" = []))
)]
pub async fn clinics(
    State(state): State<AppState>,
    client: ApiClient,
    query: Result<Query<ClinicFilters>, QueryRejection>,
) -> Result<Json<Page<ClinicItem>>, ApiFailure> {
    let Query(f) = query.map_err(bad_query)?;
    let limit = limit_of(f.limit)?;
    let after = filter("cursor", &f.cursor, |c| c.parse::<i64>().ok())?;
    let prefecture = filter("prefecture", &f.prefecture, |p| Some(p.to_string()))?;
    let mut rows = state
        .store
        .fleet()
        .clinics_after(&client.reach, prefecture.as_deref(), after, limit + 1)
        .await?;
    let next = next_page(&mut rows, limit, |c| c.id.to_string());
    Ok(Json(Page {
        items: rows.into_iter().map(ClinicItem::from).collect(),
        next_cursor: next,
    }))
}

/// Filters of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilters {
    pub clinic: Option<String>,
    pub terminal: Option<String>,
    pub alert: Option<String>,
    /// `alert`, `bulk`, `silence`, `clinic`, `closure`, `contact`, `code`, `terminal`,
    /// `version`, `user`, `group`, `token`, `login` or `agent`.
    pub action: Option<String>,
    /// As stored: a user's name, `cli:<os user>`, `api:<token>`, `agent`.
    pub actor: Option<String>,
    /// 1–500 (100).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "read",
    params(AuditFilters),
    responses(
        (status = 200, description = "A page of audit lines in the token's scope (lines about no clinic only for a token of the whole fleet)", body = Page<AuditItem>),
        (status = 400, description = "`invalid_query`", body = onshi_shared::ApiError),
        (status = 401, description = "`unauthorized`", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`", body = onshi_shared::ApiError),
    ),
    security(("api_token" = []))
)]
pub async fn audit(
    State(state): State<AppState>,
    client: ApiClient,
    query: Result<Query<AuditFilters>, QueryRejection>,
) -> Result<Json<Page<AuditItem>>, ApiFailure> {
    let Query(f) = query.map_err(bad_query)?;
    let limit = limit_of(f.limit)?;
    let actions = crate::store::staff::AUDIT_ACTIONS;
    let q = AuditQuery {
        clinic_id: filter("clinic", &f.clinic, |c| c.parse().ok())?,
        terminal_id: filter("terminal", &f.terminal, |t| Uuid::parse_str(t).ok())?,
        alert_id: filter("alert", &f.alert, |a| a.parse().ok())?,
        action: filter("action", &f.action, |a| {
            actions
                .iter()
                .find(|(k, _)| *k == a)
                .map(|(k, _)| k.to_string())
        })?,
        actor: filter("actor", &f.actor, |a| Some(a.to_string()))?,
        before: filter("cursor", &f.cursor, |c| c.parse().ok())?,
        limit: limit + 1,
        reach: client.reach.clone(),
    };
    let mut rows = state.store.staff().audit_rows(&q).await?;
    let next = next_page(&mut rows, limit, |r| r.id.to_string());
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(|r| AuditItem {
                id: r.id,
                at: r.at,
                actor: r.actor,
                action: r.action,
                what: r.what,
                terminal_id: r.terminal_id,
                clinic_id: r.clinic_id,
                alert_id: r.alert_id,
            })
            .collect(),
        next_cursor: next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_its_limit_and_points_past_its_last_row() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_page(&mut rows, 2, |r| r.to_string()), Some("2".into()));
        assert_eq!(rows, [1, 2]);
        let mut rows = vec![1, 2];
        assert_eq!(next_page(&mut rows, 2, |r| r.to_string()), None);
        assert_eq!(rows, [1, 2]);
    }

    #[test]
    fn filters_parse_or_name_what_is_wrong() {
        assert_eq!(limit_of(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit_of(Some(500)).ok(), Some(500));
        assert!(limit_of(Some(0)).is_err() && limit_of(Some(501)).is_err());
        let given = Some(" critical ".to_string());
        assert_eq!(
            filter("severity", &given, SeverityFilter::parse).ok(),
            Some(Some(SeverityFilter::Critical))
        );
        let wrong = filter("severity", &Some("bad".into()), SeverityFilter::parse);
        assert!(matches!(wrong, Err(f) if f.detail.contains("severity \"bad\"")));
        assert_eq!(
            filter("clinic", &Some(String::new()), |c| c.parse::<i64>().ok()).ok(),
            Some(None)
        );
    }
}
