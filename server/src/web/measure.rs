//! What the HTTP surface counts for `/metrics`: every request by route and status, and each
//! agent report refused, by the error code of its reply.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// The `error` code of an [`super::ApiFailure`], left on its response for the counters.
#[derive(Debug, Clone, Copy)]
pub struct FailureCode(pub &'static str);

/// Counts a request under the route it matched (`/terminals/{id}`, never the path with its
/// ids, so the series stay few) and the status it got.
pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request(&route, response.status().as_u16(), started.elapsed());
    response
}

/// Counts a refused report by why (axum's own refusals, which carry no code, by status).
pub async fn count_refusals(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if !response.status().is_success() {
        let reason = match response.extensions().get::<FailureCode>() {
            Some(FailureCode(code)) => code,
            None if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                "body_too_large"
            }
            None => "other",
        };
        state.metrics.refused(reason).increment(1);
    }
    response
}
