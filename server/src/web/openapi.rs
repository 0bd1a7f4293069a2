//! The OpenAPI 3.1 description of the `/api/v1/…` routes, generated from the handlers'
//! `#[utoipa::path]` attributes and the wire types of `onshi-shared`; served at
//! `/api/openapi.json` and kept in `docs/openapi.json` (a test fails when they differ).

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::{api, read_api};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Onshi Watch",
        description = "The wire protocol between the Onshi Watch agent on each online qualification \
            confirmation terminal and the server, and the read API for other systems. Refusals \
            are JSON `{error, detail}`."
    ),
    paths(
        api::enroll,
        api::report,
        read_api::terminals,
        read_api::alerts,
        read_api::alert,
        read_api::acknowledge,
        read_api::resolve,
        read_api::clinics,
        read_api::audit
    ),
    modifiers(&AgentToken),
    tags(
        (name = "agent", description = "What the agent on each terminal calls"),
        (name = "read", description = "The read API for other systems, with an API token an \
            admin made (scoped like a user; rate-limited per token)")
    )
)]
pub struct ApiDoc;

/// The agent's bearer token (from enrollment), and the read API's tokens (made by an admin).
struct AgentToken;

impl utoipa::Modify for AgentToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        for name in ["agent_token", "api_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
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
