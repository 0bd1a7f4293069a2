//! HTTP: the agent API (`/api/v1/...`), the dashboard, health and metrics.

mod api;
mod dashboard;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use onshi_shared::{ApiError, limits};

use crate::config::Config;
use crate::enroll::TokenCache;
use crate::ingest::{Ingest, Rejection};
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub tokens: Arc<TokenCache>,
    pub config: Arc<Config>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/enroll", post(api::enroll))
        .route("/api/v1/report", post(api::report))
        .layer(DefaultBodyLimit::max(limits::MAX_BODY_BYTES));
    Router::new()
        .route("/", get(dashboard::overview))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(api::metrics))
        .merge(api)
        .with_state(state)
}

/// An API failure: a status, a stable machine-readable code and a sentence for the operator.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
}

impl ApiFailure {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiFailure {
            status,
            error,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = axum::Json(ApiError {
            error: self.error.to_string(),
            detail: self.detail,
        });
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
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

/// A server-rendered page failure: logged, shown as a short Japanese message.
pub struct PageFailure(crate::Error);

impl From<crate::Error> for PageFailure {
    fn from(e: crate::Error) -> Self {
        PageFailure(e)
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
