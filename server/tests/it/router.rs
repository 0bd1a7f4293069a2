//! The router without a socket (`tower::ServiceExt::oneshot`): every refusal on the agent API
//! and the dashboard's authentication paths, each with its status and stable error code.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use chrono::{Duration, Utc};
use onshi_server::Application;
use onshi_server::auth::{hash_session, new_secret};
use onshi_server::domain::{AuditRecord, Role};
use onshi_server::store::desk::NewSession;
use onshi_shared::{ApiError, EnrollRequest, SCHEMA_VERSION, limits, sample};
use tower::ServiceExt;

use super::support::{actor, test_config};

struct Routed {
    app: Application,
    _dir: tempfile::TempDir,
}

async fn routed() -> Routed {
    onshi_server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(test_config(dir.path())).await.unwrap();
    Routed { app, _dir: dir }
}

impl Routed {
    fn router(&self) -> Router {
        self.app.router()
    }

    /// A session for a new user of `role`, as its cookie header.
    async fn session(&self, name: &str, role: Role) -> (String, String) {
        let desk = self.app.desk();
        let now = Utc::now();
        desk.add_user(&actor(), name, role, None, None, now)
            .await
            .unwrap();
        let user = desk
            .store()
            .staff()
            .user_by_name(name)
            .await
            .unwrap()
            .unwrap();
        let id = new_secret();
        let csrf = new_secret();
        let session = NewSession {
            id_hash: hash_session(&id),
            user_id: user.id,
            csrf: csrf.clone(),
            created_at: now,
            expires_at: now + Duration::hours(1),
            address: "test".into(),
        };
        desk.store()
            .staff()
            .create_session(&session, &AuditRecord::new(&actor(), now, "test login"))
            .await
            .unwrap();
        (format!("onshi_session={id}"), csrf)
    }
}

async fn send(
    router: Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = router.oneshot(request).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec();
    (status, headers, body)
}

/// The status and the stable error code of a JSON refusal.
async fn refusal(router: Router, request: Request<Body>) -> (StatusCode, String) {
    let (status, _, body) = send(router, request).await;
    let e: ApiError = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{status}: not JSON: {}", String::from_utf8_lossy(&body)));
    assert!(!e.detail.is_empty(), "every refusal says why");
    (status, e.error)
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path).header(header::CONTENT_TYPE, "application/json")
}

#[tokio::test]
async fn the_agent_api_refuses_each_bad_request_with_its_own_code() {
    let r = routed().await;
    let report = serde_json::to_vec(&sample::report(1)).unwrap();
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "no token",
            post("/api/v1/report")
                .body(Body::from(report.clone()))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "unknown token",
            post("/api/v1/report")
                .header(header::AUTHORIZATION, "Bearer 00ff")
                .body(Body::from(report.clone()))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "not JSON",
            post("/api/v1/enroll").body(Body::from("{")).unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "unknown code",
            post("/api/v1/enroll")
                .body(Body::from(
                    serde_json::to_vec(&EnrollRequest {
                        schema: SCHEMA_VERSION,
                        code: "AAAA-BBBB-CCCC".into(),
                        hostname: "PC".into(),
                        agent_version: "0.1.0".into(),
                        os: "test".into(),
                    })
                    .unwrap(),
                ))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        ),
        (
            "an over-long hostname",
            post("/api/v1/enroll")
                .body(Body::from(
                    serde_json::to_vec(&EnrollRequest {
                        schema: SCHEMA_VERSION,
                        code: "AAAA-BBBB-CCCC".into(),
                        hostname: "x".repeat(limits::MAX_STRING_LEN + 1),
                        agent_version: "0.1.0".into(),
                        os: "test".into(),
                    })
                    .unwrap(),
                ))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
        ),
        (
            "another schema",
            post("/api/v1/enroll")
                .body(Body::from(
                    serde_json::to_vec(&EnrollRequest {
                        schema: SCHEMA_VERSION + 1,
                        code: "AAAA-BBBB-CCCC".into(),
                        hostname: "PC".into(),
                        agent_version: "0.1.0".into(),
                        os: "test".into(),
                    })
                    .unwrap(),
                ))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "unsupported_schema",
        ),
        (
            "an encoding we do not speak",
            post("/api/v1/enroll")
                .header(header::CONTENT_ENCODING, "br")
                .body(Body::from("x"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
        ),
        (
            "gzip that is not",
            post("/api/v1/enroll")
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Body::from("not gzip"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_gzip",
        ),
        (
            "a body over the limit",
            post("/api/v1/enroll")
                .body(Body::from(vec![b' '; limits::MAX_BODY_BYTES + 1]))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (what, request, status, code) in cases {
        let got = refusal(r.router(), request).await;
        assert_eq!(got, (status, code.to_string()), "{what}");
    }
}

#[tokio::test]
async fn the_dashboard_asks_for_a_session_a_token_and_the_right_role() {
    let r = routed().await;
    // No session: pages go to the login with the way back, JSON answers 401.
    let (status, headers, _) = send(
        r.router(),
        Request::get("/alerts?rule=offline")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/login?next=/alerts%3Frule%3Doffline"
    );
    let (status, code) = refusal(
        r.router(),
        Request::get("/api/desk/summary")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "login_required")
    );

    let (viewer, viewer_csrf) = r.session("vera", Role::Viewer).await;
    let (admin, admin_csrf) = r.session("ann", Role::Admin).await;
    let form = |cookie: &str, body: String| {
        Request::post("/clinics")
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let clinic =
        "name=%E3%81%B2%E3%81%BE%E3%82%8F%E3%82%8A&email=h%40example.jp&open=09%3A00&close=18%3A00";
    let cases = [
        (
            "a viewer",
            form(&viewer, format!("csrf={viewer_csrf}&{clinic}")),
            StatusCode::FORBIDDEN,
        ),
        (
            "another session's token",
            form(&admin, format!("csrf={viewer_csrf}&{clinic}")),
            StatusCode::FORBIDDEN,
        ),
        (
            "an admin with the token",
            form(&admin, format!("csrf={admin_csrf}&{clinic}")),
            StatusCode::SEE_OTHER,
        ),
    ];
    for (who, request, want) in cases {
        let (status, _, _) = send(r.router(), request).await;
        assert_eq!(status, want, "{who}");
    }
    let (status, _, body) = send(
        r.router(),
        Request::get("/clinics?q=%E3%81%B2%E3%81%BE")
            .header(header::COOKIE, &viewer)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("ひまわり"));
}
