//! The OpenAPI 3.1 description of the `/api/v1/…` routes, generated from the handlers'
//! `#[utoipa::path]` attributes and the wire types of `onshi-shared`; served at
//! `/api/openapi.json` and kept in `docs/openapi.json` (a test fails when they differ).

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Onshi Watch",
        description = "The wire protocol between the Onshi Watch agent on each online qualification \
            confirmation terminal and the server. Refusals are JSON `{error, detail}`."
    ),
    paths(api::enroll, api::report),
    modifiers(&AgentToken),
    tags((name = "agent", description = "What the agent on each terminal calls"))
)]
pub struct ApiDoc;

/// The agent's bearer token (from enrollment).
struct AgentToken;

impl utoipa::Modify for AgentToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        api.components
            .get_or_insert_with(utoipa::openapi::Components::new)
            .add_security_scheme(
                "agent_token",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// The document as served, pretty-printed JSON with a final newline.
pub fn document() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

/// `GET /api/openapi.json`
pub async fn serve() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document(),
    )
}
