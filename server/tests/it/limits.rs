//! What a client without a valid token can cost the server: refused codes and tokens are
//! limited per address, unauthenticated bodies are small and read a few at a time, half-sent
//! requests are cut off, and `/metrics` needs its token.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::{METRICS_TOKEN, TestApp, report_for};

/// Whether the server closes the connection within `within` (a read returns 0 or fails).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                // An error response before the close is fine.
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, read).await.unwrap_or(false)
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn refused_codes_and_tokens_are_limited_per_address_and_valid_agents_go_on() {
    let app = TestApp::spawn_with(|c| c.limits.refusals_per_minute = 5).await;
    let agent = app.enroll("GOOD-PC").await;
    for i in 0..5 {
        let r = app
            .post_enroll("WRONG-CODE-0000", &format!("guess-{i}"))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let limited = app.post_enroll(&app.code, "late-but-right").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Unknown tokens from the same address: 429 now, not 401 (and no database lookup).
    let guess = app
        .post_report("0123456789abcdef0123456789abcdef", &report_for(&agent, 1))
        .await;
    assert_eq!(guess.status(), StatusCode::TOO_MANY_REQUESTS);
    // A terminal with a valid token behind the same address reports as ever.
    let ok = app.post_report(&agent.token, &report_for(&agent, 2)).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn unauthenticated_bodies_are_small_and_read_a_few_at_a_time() {
    let app = TestApp::spawn_with(|c| {
        c.limits.unauthenticated_bodies = 2;
        c.limits.body_timeout_secs = 30;
    })
    .await;
    // An enrollment body far larger than any enrollment: 413 before it is read.
    let big = app
        .client
        .post(format!("{}/api/v1/enroll", app.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Two uploads held open take both slots; a third is turned away at once.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(
            b"POST /api/v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 10000\r\n\r\n{\"schema\"",
        )
        .await
        .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let turned_away = app.post_enroll(&app.code, "third").await;
    assert_eq!(turned_away.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(turned_away.headers().contains_key("retry-after"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.post_enroll(&app.code, "after").await.status(),
        StatusCode::OK,
        "the slots come back when the uploads go away"
    );
}

#[tokio::test]
async fn half_sent_requests_are_cut_off() {
    let app = TestApp::spawn_with(|c| {
        c.limits.header_timeout_secs = 1;
        c.limits.body_timeout_secs = 1;
    })
    .await;
    // Headers that never end.
    let mut slow_headers = TcpStream::connect(addr(&app)).await.unwrap();
    slow_headers
        .write_all(b"POST /api/v1/enroll HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow_headers, Duration::from_secs(5)).await,
        "a connection whose headers stall is closed"
    );
    // A body that stops coming.
    let mut slow_body = TcpStream::connect(addr(&app)).await.unwrap();
    slow_body
        .write_all(
            b"POST /api/v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 500\r\n\r\n{\"sch",
        )
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow_body, Duration::from_secs(5)).await,
        "a connection whose body stalls is closed"
    );
    // Ordinary requests are not affected.
    assert_eq!(
        app.post_enroll(&app.code, "normal").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_need_their_token_or_their_own_listener() {
    let app = TestApp::spawn().await;
    let get = |token: Option<&str>| {
        let mut req = app.client.get(format!("{}/metrics", app.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some("not-the-token")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = get(Some(METRICS_TOKEN)).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("onshi_reports_ingested_total")
    );
    let health = app.client.get(format!("{}/healthz", app.base)).send().await;
    assert_eq!(
        health.unwrap().status(),
        StatusCode::OK,
        "healthz stays open"
    );

    // No token set: not served on the main listener; a listener of its own serves it.
    let port = onshi_testkit::free_port();
    let own = TestApp::spawn_with(|c| {
        c.metrics.token = None;
        c.metrics.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    })
    .await;
    let main = own
        .client
        .get(format!("{}/metrics", own.base))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    let side = own
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(side.status(), StatusCode::OK);
    assert!(
        side.text()
            .await
            .unwrap()
            .contains("onshi_ingest_queue_depth")
    );
}

#[tokio::test]
async fn readyz_says_what_is_ready_and_that_this_process_leads() {
    let app = TestApp::spawn().await;
    let readyz = || async {
        let r = app
            .client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["ingest_writer"], "running");
    assert_eq!(body["leader"], true);
    let known = body["migrations"]["known"].as_i64().unwrap();
    assert!(known >= 1, "{body}");
    assert_eq!(body["migrations"]["applied"].as_i64(), Some(known));

    // A database behind this build (a migration not applied): not ready, and why.
    let db = app.raw_db().await;
    db.exec(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .await;
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["migrations"]["applied"].as_i64(), Some(known - 1));
    assert!(body["migrations"]["error"].is_string(), "{body}");
}

/// `promtool check metrics` on a text: what it complains of (nothing when it is clean). In CI
/// promtool must be there (Debian's `prometheus`); elsewhere a missing promtool skips.
fn promtool_complaints(text: &str) -> Option<String> {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("promtool not found ({e}): install Debian's prometheus to run this check");
            return None;
        }
        Err(e) => panic!("CI needs promtool (apt-get install prometheus): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() {
        said
    } else {
        format!("exit {}: {said}", out.status)
    })
}

#[tokio::test]
async fn metrics_count_refusals_by_reason_and_pass_promtool() {
    let app = TestApp::spawn().await;
    let agent = app.enroll("METRICS-PC").await;
    app.report(&agent, &report_for(&agent, 1)).await;
    let bad_json = app.post_raw(&agent.token, b"{".to_vec(), false).await;
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    let bad_token = app.post_report("not-a-token", &report_for(&agent, 2)).await;
    assert_eq!(bad_token.status(), StatusCode::UNAUTHORIZED);
    // Not signed in: sent to the login page.
    app.client
        .get(format!("{}/terminals/{}", app.base, agent.agent_id))
        .send()
        .await
        .unwrap();

    let text = app.metrics().await;
    for line in [
        "onshi_reports_ingested_total 1\n",
        "onshi_reports_refused_total{reason=\"invalid_json\"} 1\n",
        "onshi_reports_refused_total{reason=\"unauthorized\"} 1\n",
        "onshi_reports_refused_total{reason=\"stale_seq\"} 0\n",
        "onshi_leader 1\n",
        "onshi_http_requests_total{route=\"/api/v1/report\",status=\"400\"} 1\n",
        // The route's pattern, not the terminal's id.
        "onshi_http_requests_total{route=\"/terminals/{id}\",status=\"",
        "onshi_outbox_mails{status=\"pending\"} 0\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    assert!(!text.contains(&agent.agent_id.to_string()));
    assert!(text.contains(&format!(
        "onshi_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
    if let Some(complaints) = promtool_complaints(&text) {
        assert_eq!(complaints, "", "promtool check metrics:\n{text}");
    }
}
