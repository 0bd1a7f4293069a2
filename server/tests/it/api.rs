//! The agent API over real HTTP on a random port, against a fresh SQLite database per test.

use std::io::Write;

use chrono::Utc;
use onshi_server::domain::Role;
use onshi_shared::{ApiError, Event, EventKind, ReportAck, SCHEMA_VERSION, limits};
use reqwest::StatusCode;
use uuid::Uuid;

use super::support::{TestApp, actor, page_showing, report_for};

async fn error_of(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    let body: ApiError = resp.json().await.unwrap();
    (status, body.error)
}

#[tokio::test]
async fn enroll_then_report_is_stored_and_acknowledged() {
    let app = TestApp::spawn().await;
    let agent = app.enroll("ONSHI-PC-01").await;
    assert_eq!(agent.clinic_name, "さくら内科クリニック");
    assert_eq!(agent.token.len(), 64);

    let report = report_for(&agent, 1);
    let resp = app.post_report(&agent.token, &report).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ack: ReportAck = resp.json().await.unwrap();
    assert_eq!(ack.acked_seq, 1);
    assert!(ack.next_interval_secs > 0);

    let (seq, snapshot) = app
        .store
        .latest_snapshot(agent.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seq, 1);
    assert_eq!(snapshot, report.snapshot);
    let events = app.store.events(agent.agent_id, 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, report.events[0].id);
    assert_eq!(app.store.starts(agent.agent_id, 10).await.unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_report_stores_each_event_once_and_older_snapshots_lose() {
    let app = TestApp::spawn().await;
    let agent = app.enroll("PC").await;
    let mut second = report_for(&agent, 2);
    second.snapshot.hostname = "NEWER".into();
    second.events.push(Event::new(
        Utc::now(),
        EventKind::AgentStarted {
            version: "0.1.0".into(),
        },
    ));
    for _ in 0..3 {
        assert_eq!(
            app.post_report(&agent.token, &second).await.status(),
            StatusCode::OK
        );
    }
    // An older seq (an agent restored from an older copy of its data) stores nothing and is
    // told the seq the server holds.
    let mut first = report_for(&agent, 1);
    first.snapshot.hostname = "OLDER".into();
    let stale = app.post_report(&agent.token, &first).await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let body: onshi_shared::ApiError = stale.json().await.unwrap();
    assert_eq!(
        (body.error.as_str(), body.stored_seq),
        ("stale_seq", Some(2))
    );
    let (seq, snapshot) = app
        .store
        .latest_snapshot(agent.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((seq, snapshot.hostname.as_str()), (2, "NEWER"));
    // Sent again above it, as the agent does: stored, its events once.
    first.seq = 3;
    assert_eq!(
        app.post_report(&agent.token, &first).await.status(),
        StatusCode::OK
    );
    let events = app.store.events(agent.agent_id, 100).await.unwrap();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let mut want: Vec<Uuid> = second.events.iter().map(|e| e.id).collect();
    want.push(first.events[0].id);
    assert_eq!(ids, want, "each event once, in arrival order");
    assert!(
        app.metrics()
            .await
            .contains("onshi_reports_refused_total{reason=\"stale_seq\"} 1\n")
    );
    app.stop().await;
}

#[tokio::test]
async fn gzip_reports_are_accepted() {
    let app = TestApp::spawn().await;
    let agent = app.enroll("PC").await;
    let json = serde_json::to_vec(&report_for(&agent, 1)).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&json).unwrap();
    let resp = app
        .post_raw(&agent.token, enc.finish().unwrap(), true)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn bad_reports_get_precise_errors_and_store_nothing() {
    let app = TestApp::spawn().await;
    let agent = app.enroll("PC").await;
    let other = app.enroll("OTHER").await;

    let (status, code) = error_of(
        app.post_raw(&agent.token, b"{not json".to_vec(), false)
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );

    let mut wrong_schema = report_for(&agent, 1);
    wrong_schema.schema = SCHEMA_VERSION + 1;
    let (status, code) = error_of(app.post_report(&agent.token, &wrong_schema).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "unsupported_schema")
    );

    let mut too_many = report_for(&agent, 1);
    let e = too_many.events[0].clone();
    too_many.events = (0..=limits::MAX_EVENTS_PER_REPORT)
        .map(|_| Event::new(e.at, e.kind.clone()))
        .collect();
    let (status, code) = error_of(app.post_report(&agent.token, &too_many).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded")
    );

    let oversized = vec![b' '; limits::MAX_BODY_BYTES + 1];
    let (status, code) = error_of(app.post_raw(&agent.token, oversized, false).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    let (status, code) =
        error_of(app.post_report("not-a-token", &report_for(&agent, 1)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );

    let resp = app
        .client
        .post(format!("{}/api/v1/report", app.base))
        .json(&report_for(&agent, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // A valid token used for another agent's id.
    let (status, code) =
        error_of(app.post_report(&other.token, &report_for(&agent, 1)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "agent_mismatch")
    );

    assert!(
        app.store
            .latest_snapshot(agent.agent_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.store
            .events(agent.agent_id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn revoked_tokens_and_bad_codes_are_refused() {
    let app = TestApp::spawn().await;
    let (status, code) = error_of(app.post_enroll("AAAA-BBBB-CCCC", "PC").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_code")
    );

    let agent = app.enroll("PC").await;
    assert_eq!(
        app.post_report(&agent.token, &report_for(&agent, 1))
            .await
            .status(),
        StatusCode::OK
    );
    // Revoked in the store (as the CLI or another replica does): the running server follows.
    app.desk
        .revoke_terminal(&actor(), agent.agent_id, Utc::now())
        .await
        .unwrap();
    let mut status = StatusCode::OK;
    let mut last_accepted = 1;
    for seq in 2..60 {
        status = app
            .post_report(&agent.token, &report_for(&agent, seq))
            .await
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        last_accepted = seq as i64;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revocation not picked up while running"
    );
    // And after a restart (token cache loaded from the database).
    let app = TestApp::spawn_in(app.stop().await, |_| {}).await;
    let resp = app.post_report(&agent.token, &report_for(&agent, 99)).await;
    let (status, code) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (seq, _) = app
        .store
        .latest_snapshot(agent.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seq, last_accepted, "nothing refused was stored");
    app.stop().await;
}

#[tokio::test]
async fn dashboard_lists_terminals_and_escapes_names() {
    let app = TestApp::spawn().await;
    let agent = app.enroll("<script>alert(1)</script>").await;
    let mut report = report_for(&agent, 1);
    report.snapshot.hostname = "<script>alert(1)</script>".into();
    assert_eq!(
        app.post_report(&agent.token, &report).await.status(),
        StatusCode::OK
    );
    let desk = app.login("alice", Role::Viewer).await;
    // The overview lists what the evaluator summarised (right after the report).
    let page = page_showing(&desk, "/", "&#60;script&#62;alert(1)&#60;/script&#62;").await;
    assert!(page.contains("さくら内科クリニック"));
    assert!(!page.contains("<script>alert(1)"));
    assert!(page.contains("全端末"));
    app.stop().await;
}

#[tokio::test]
async fn reports_for_unknown_agents_in_a_batch_do_not_poison_others() {
    // Many agents reporting at once are committed together (group commit); all succeed.
    let app = TestApp::spawn().await;
    let mut agents = Vec::new();
    for i in 0..20 {
        agents.push(app.enroll(&format!("PC-{i}")).await);
    }
    let mut tasks = Vec::new();
    for agent in &agents {
        let client = app.client.clone();
        let url = format!("{}/api/v1/report", app.base);
        let token = agent.token.clone();
        let body = serde_json::to_vec(&report_for(agent, 1)).unwrap();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    for agent in &agents {
        assert!(
            app.store
                .latest_snapshot(agent.agent_id)
                .await
                .unwrap()
                .is_some()
        );
    }
    app.stop().await;
}

/// The `/api/v1/…` routes the router registers, read from its source: (method, path).
fn registered_api_routes() -> std::collections::BTreeSet<(String, String)> {
    // Whitespace dropped, so a `.route(` call that rustfmt spread over lines reads the same.
    let source: String = include_str!("../../src/web/mod.rs")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut routes = std::collections::BTreeSet::new();
    for call in source.split(".route(\"/api/v1/").skip(1) {
        let (path, rest) = call.split_once('"').expect("a quoted path");
        let handlers = rest.split_once("))").map_or(rest, |(h, _)| h);
        for method in ["get", "post", "put", "patch", "delete"] {
            if handlers.contains(&format!("{method}(")) {
                routes.insert((method.to_string(), format!("/api/v1/{path}")));
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route_and_is_the_committed_one() {
    let app = TestApp::spawn().await;
    let res = reqwest::get(format!("{}/api/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served = res.text().await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // The document's operations are exactly the routes the router registers…
    let mut described = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.insert((method.clone(), path.clone()));
        }
    }
    let registered = registered_api_routes();
    assert_eq!(registered.len(), 9, "{registered:?}");
    assert_eq!(described, registered);
    // …and the router answers each of them (a refusal of the empty body, not 404 or 405).
    let client = reqwest::Client::new();
    for (method, path) in &described {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = client
            .request(method, format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert!(
            ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&res.status()),
            "{path}: {}",
            res.status()
        );
    }
    // The report is described with its parts and the agent's token.
    let report = &doc["paths"]["/api/v1/report"]["post"];
    assert_eq!(report["security"][0]["agent_token"], serde_json::json!([]));
    for status in ["200", "401", "409", "503"] {
        assert!(report["responses"][status].is_object(), "{status}");
    }
    // The read API: its token, its paging, its refusals.
    let terminals = &doc["paths"]["/api/v1/terminals"]["get"];
    assert_eq!(terminals["security"][0]["api_token"], serde_json::json!([]));
    for status in ["200", "400", "401", "429"] {
        assert!(terminals["responses"][status].is_object(), "{status}");
    }
    let params: Vec<&str> = terminals["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["clinic", "severity", "q", "limit", "cursor"] {
        assert!(params.contains(&name), "{name}: {params:?}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_token"]["scheme"], "bearer");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "TerminalItem",
        "AlertItem",
        "ClinicItem",
        "AuditItem",
        "AcknowledgeRequest",
        "Report",
        "Snapshot",
        "Event",
        "EventKind",
        "ReportAck",
        "ApiError",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
    // docs/openapi.json is this document (CI validates that file with a standard validator);
    // `UPDATE_OPENAPI=1 cargo test` writes it anew.
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(committed, &served).unwrap();
    }
    let on_disk = std::fs::read_to_string(committed).unwrap_or_default();
    assert!(
        on_disk == served,
        "docs/openapi.json differs from /api/openapi.json: run UPDATE_OPENAPI=1 cargo test -p onshi-server --test it -- openapi"
    );
}
