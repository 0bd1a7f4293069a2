//! The agent API: enroll and report. Errors are JSON `{error, detail}` with a precise status.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::Utc;
use onshi_shared::{EnrollRequest, EnrollResponse, ReportAck, Validate, limits};
use serde_json::json;
use uuid::Uuid;

use super::client::ClientAddr;
use super::{ApiFailure, AppState};
use crate::enroll::{hash_code, hash_token, new_token};
use crate::ingest::{self, Rejection, Submitted};
use crate::store::{AgentAuth, NewTerminal};

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiFailure> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Rejection::TooLarge {
                max: limits::MAX_BODY_BYTES,
            }
            .into()
        } else {
            ApiFailure::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                rejection.body_text(),
            )
        }
    })
}

fn decoded(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, ApiFailure> {
    let encoding = match headers.get(header::CONTENT_ENCODING) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiFailure::from(Rejection::Encoding("<not ASCII>".into())))?,
        ),
        None => None,
    };
    Ok(ingest::decode_body(encoding, body)?)
}

/// Enroll a terminal with its clinic's enrollment code.
///
/// Returns the agent's id and its token (shown once), the clinic's name and the agent's policy.
// Behind `limits::unauthenticated_body`: a refused code counts against the client's address.
#[utoipa::path(
    post,
    path = "/api/v1/enroll",
    tag = "agent",
    request_body(
        content = onshi_shared::EnrollRequest,
        content_type = "application/json",
        description = "At most 16 KiB; may be sent with `Content-Encoding: gzip`"
    ),
    responses(
        (status = 200, description = "Enrolled: the agent's id and its token (shown once)", body = onshi_shared::EnrollResponse),
        (status = 400, description = "`invalid_json`, `unsupported_schema` or `invalid_gzip`", body = onshi_shared::ApiError),
        (status = 401, description = "`invalid_code`: unknown, expired or revoked enrollment code", body = onshi_shared::ApiError),
        (status = 413, description = "`body_too_large`", body = onshi_shared::ApiError),
        (status = 415, description = "`unsupported_encoding`", body = onshi_shared::ApiError),
        (status = 422, description = "`limit_exceeded`: over-long strings or lists", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`: too many refused codes from this address", body = onshi_shared::ApiError,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub async fn enroll(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EnrollResponse>, ApiFailure> {
    let body = decoded(&headers, &body_bytes(body)?)?;
    let request: EnrollRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiFailure::from(Rejection::BadJson(e.to_string())))?;
    request.validate().map_err(Rejection::from)?;
    let token = new_token();
    let terminal = NewTerminal {
        id: Uuid::now_v7(),
        token_hash: hash_token(&token),
        hostname: request.hostname.clone(),
        agent_version: request.agent_version.clone(),
        os: request.os.clone(),
    };
    let Some(clinic) = state
        .store
        .enroll(
            &hash_code(&request.code),
            std::slice::from_ref(&terminal),
            Utc::now(),
        )
        .await?
    else {
        state.refusals.refused(&address);
        tracing::warn!(%address, "enrollment with an unknown, revoked or expired code");
        return Err(ApiFailure::new(
            StatusCode::UNAUTHORIZED,
            "invalid_code",
            "the enrollment code is unknown, revoked or expired; ask the support desk for a new one",
        ));
    };
    tracing::info!(terminal = %terminal.id, clinic = clinic.id, hostname = %request.hostname, "terminal enrolled");
    state.tokens.remember(
        terminal.token_hash.clone(),
        crate::store::AgentAuth {
            terminal_id: terminal.id,
            clinic_id: clinic.id,
            revoked: false,
        },
    );
    Ok(Json(EnrollResponse {
        agent_id: terminal.id,
        token,
        clinic_name: clinic.name,
        policy: (*state.policies.policy_for(terminal.id, clinic.id)).clone(),
    }))
}

/// The agent a bearer token belongs to. Runs before the body is read, so an unauthenticated
/// client cannot make the server buffer 256 KiB.
pub struct AuthenticatedAgent(pub AgentAuth);

impl FromRequestParts<AppState> for AuthenticatedAgent {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(ClientAddr(address)) = ClientAddr::from_request_parts(parts, state).await;
        let unauthorized = |detail: &str| {
            state.refusals.refused(&address);
            ApiFailure::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        };
        let token = super::bearer(&parts.headers);
        // An address past its refusals costs no database lookup: only a token this server
        // already knows as valid goes through (an agent behind the same NAT as a prober).
        if let Some(wait) = state.refusals.over(&address) {
            return match token.and_then(|t| state.tokens.cached(t)) {
                Some(auth) if !auth.revoked => Ok(AuthenticatedAgent(auth)),
                _ => Err(ApiFailure::too_many(
                    "too many refused agent tokens from this address; wait",
                    wait,
                )),
            };
        }
        let token =
            token.ok_or_else(|| unauthorized("send Authorization: Bearer <agent token>"))?;
        match state.tokens.lookup(state.store.as_ref(), token).await? {
            Some(auth) if !auth.revoked => Ok(AuthenticatedAgent(auth)),
            Some(_) => Err(unauthorized(
                "this agent's token was revoked; enroll the terminal again",
            )),
            None => Err(unauthorized("unknown agent token")),
        }
    }
}

/// Send a report: the terminal's snapshot and the events since the last one.
///
/// Answered after the commit, with the acknowledged seq, the next interval and the policy.
#[utoipa::path(
    post,
    path = "/api/v1/report",
    tag = "agent",
    request_body(
        content = onshi_shared::Report,
        content_type = "application/json",
        description = "At most 256 KiB, compressed or not; may be sent with `Content-Encoding: gzip`"
    ),
    responses(
        (status = 200, description = "Committed: the acknowledged seq, the next interval and the agent's policy", body = onshi_shared::ReportAck),
        (status = 400, description = "`invalid_json`, `unsupported_schema` or `invalid_gzip`", body = onshi_shared::ApiError),
        (status = 401, description = "`unauthorized`: missing, unknown or revoked token", body = onshi_shared::ApiError),
        (status = 403, description = "`agent_mismatch`: a token used for another agent's id", body = onshi_shared::ApiError),
        (status = 409, description = "`stale_seq`: below the seq the server holds (see `stored_seq`)", body = onshi_shared::ApiError),
        (status = 413, description = "`body_too_large`", body = onshi_shared::ApiError),
        (status = 415, description = "`unsupported_encoding`", body = onshi_shared::ApiError),
        (status = 422, description = "`limit_exceeded`: too many events, over-long strings or lists", body = onshi_shared::ApiError),
        (status = 429, description = "`too_many_requests`: too many refused tokens from this address", body = onshi_shared::ApiError,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`overloaded`: the writer's queue is full", body = onshi_shared::ApiError,
            headers(("Retry-After" = u32, description = "Seconds to wait (5–60)"))),
    ),
    security(("agent_token" = []))
)]
pub async fn report(
    State(state): State<AppState>,
    AuthenticatedAgent(agent): AuthenticatedAgent,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReportAck>, ApiFailure> {
    let parsed = body_bytes(body)
        .and_then(|b| decoded(&headers, &b))
        .and_then(|b| Ok(ingest::parse_report(&b)?));
    let report = parsed?;
    if report.agent_id != agent.terminal_id {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            "agent_mismatch",
            format!(
                "this token belongs to agent {}, not {}",
                agent.terminal_id, report.agent_id
            ),
        ));
    }
    let seq = report.seq;
    let row = ingest::prepare(report, agent.terminal_id, Utc::now())?;
    match state.ingest.submit(row).await? {
        Submitted::Stored => {}
        Submitted::Stale { stored_seq } => {
            let stored_seq = u64::try_from(stored_seq).unwrap_or(0);
            tracing::warn!(terminal = %agent.terminal_id, seq, stored_seq, "report below the stored seq");
            let mut refusal = ApiFailure::new(
                StatusCode::CONFLICT,
                "stale_seq",
                format!(
                    "seq {seq} is below the {stored_seq} this server holds for the agent (was \
                     its data restored from an older copy?); nothing was stored: send the \
                     current snapshot again with a seq above {stored_seq}"
                ),
            );
            refusal.stored_seq = Some(stored_seq);
            return Err(refusal);
        }
        Submitted::Busy => {
            return Err(ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the server is busy; the report was not stored, send it again later",
            )
            .retry_after(state.ingest.retry_after_secs()));
        }
    }
    let policy = state
        .policies
        .policy_for(agent.terminal_id, agent.clinic_id);
    let interval = if state.ingest.congested() {
        policy.interval_secs.saturating_mul(2)
    } else {
        policy.interval_secs
    };
    Ok(Json(ReportAck {
        acked_seq: seq,
        next_interval_secs: interval,
        policy: (*policy).clone(),
    }))
}

/// `GET /metrics` on the main listener: only with `Authorization: Bearer <[metrics] token>`;
/// not served there when no token is set (see `[metrics] listen`).
pub async fn metrics_with_token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<String, ApiFailure> {
    let Some(expected) = state.config.metrics.token.as_deref() else {
        return Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "/metrics is served with [metrics] token (a bearer token) or on [metrics] listen",
        ));
    };
    let given = super::bearer(&headers).unwrap_or("");
    if !crate::auth::same_secret(given, expected) {
        return Err(ApiFailure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <[metrics] token>",
        ));
    }
    Ok(metrics(State(state)).await)
}

/// `GET /readyz`: 200 when this process can take reports (the database answers, every
/// migration of this build is applied, the ingest writer runs), 503 otherwise; the JSON says
/// which part failed and whether this process leads (runs the evaluator, the digest, the
/// mail sender and retention: on SQLite the one process always does).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let (database, migrations) = match state.store.readiness().await {
        Ok(r) if r.migrations_applied >= r.migrations_known => (
            json!("ok"),
            json!({"applied": r.migrations_applied, "known": r.migrations_known}),
        ),
        Ok(r) => (
            json!("ok"),
            json!({
                "applied": r.migrations_applied,
                "known": r.migrations_known,
                "error": "migrations of this build are not applied: start it once with the \
                          database to itself, or run the migrations",
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "readyz: the database did not answer");
            (json!({"error": e.to_string()}), json!(null))
        }
    };
    let migrated = migrations.get("error").is_none() && !migrations.is_null();
    let writer = state.ingest.writer_running();
    let ready = database == json!("ok") && migrated && writer;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "migrations": migrations,
        "ingest_writer": if writer { "running" } else { "stopped" },
        "leader": *state.leading.borrow(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /metrics` in the Prometheus text format. The gauges that describe the database are
/// read now; if the database does not answer they keep their last values and the failure is
/// logged (the scrape itself still succeeds, so the process's own series are not lost).
pub async fn metrics(State(state): State<AppState>) -> String {
    let m = &state.metrics;
    m.queue_depth.set(state.ingest.queue_depth() as f64);
    match (
        state
            .store
            .outbox()
            .outbox_counts(&crate::domain::Reach::All)
            .await,
        state.store.alerts().alert_counts().await,
    ) {
        (Ok(outbox), Ok(alerts)) => m.set_database_gauges(&alerts, &outbox),
        (Err(e), _) | (_, Err(e)) => tracing::error!(error = %e, "metrics: reading alert counts"),
    }
    m.render()
}
