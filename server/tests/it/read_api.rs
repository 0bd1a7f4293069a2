//! The read API over HTTP with real tokens, on the engine the run uses: tokens made on the users
//! page (shown once, stored hashed, revocable, last use recorded), every list paged by its
//! cursor to the end, filters, scopes, acknowledge and resolve, and the per-token rate limit.

use std::collections::BTreeSet;

use onshi_server::domain::{AlertStatus, Role};
use onshi_server::store::desk::{AlertQuery, AuditQuery};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::scopes::{Site, site};
use super::support::TestApp;

/// A new token, made through the users page by `desk` (an admin of the whole fleet); read off
/// the page that answers, the only place it is ever shown.
async fn make_token(desk: &onshi_testkit::DeskClient, form: &[(&str, &str)]) -> String {
    let resp = desk.post_csrf("/tokens", form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    let start = page.find("onshi_api_").expect("the new token is shown");
    page[start..start + "onshi_api_".len() + 64].to_string()
}

struct Api<'a> {
    app: &'a TestApp,
    token: String,
}

impl Api<'_> {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .app
            .client
            .get(format!("{}{path}", self.app.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .app
            .client
            .post(format!("{}{path}", self.app.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Every item of a list, page after page of `limit`, following `next_cursor`.
    async fn all(&self, path: &str, limit: usize) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let (status, page) = self.get(&url).await;
            assert_eq!(status, StatusCode::OK, "GET {url}: {page}");
            let got = page["items"].as_array().unwrap().clone();
            assert!(got.len() <= limit, "{url}");
            items.extend(got);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
        panic!("{path} never ended");
    }

    /// The error code of a refusal.
    async fn refusal(&self, path: &str) -> (StatusCode, String) {
        let (status, body) = self.get(path).await;
        (status, body["error"].as_str().unwrap_or("").to_string())
    }
}

fn ids(items: &[Value], key: &str) -> Vec<String> {
    items.iter().map(|i| i[key].to_string()).collect()
}

async fn three_sites(app: &TestApp) -> [Site; 3] {
    [
        site(
            app,
            Some(app.clinic_id),
            "さくら内科クリニック",
            "sakura@example.jp",
            "北海道",
            "PC-NORTH",
        )
        .await,
        site(
            app,
            None,
            "ひまわり薬局",
            "himawari@example.jp",
            "東京都",
            "PC-TOKYO",
        )
        .await,
        site(
            app,
            None,
            "なにわ歯科",
            "naniwa@example.jp",
            "大阪府",
            "PC-OSAKA",
        )
        .await,
    ]
}

#[tokio::test]
async fn api_tokens_read_page_by_page_within_their_scope_and_act_when_admins() {
    let app = TestApp::spawn().await;
    let [north, tokyo, osaka] = three_sites(&app).await;
    let boss = app.login("boss", Role::Admin).await;

    // A token of the whole fleet, made on the users page: shown once, only its hash kept.
    let token = make_token(
        &boss,
        &[("name", "ticketing"), ("role", "viewer"), ("scope", "all")],
    )
    .await;
    let db = app.raw_db().await;
    assert_eq!(
        db.int(&format!(
            "SELECT COUNT(*) FROM api_tokens WHERE name = 'ticketing' AND token_hash = '{}'",
            onshi_server::auth::hash_session(&token)
        ))
        .await,
        1,
        "the SHA-256 is stored"
    );
    assert_eq!(
        db.int(&format!(
            "SELECT COUNT(*) FROM api_tokens WHERE token_hash = '{token}' OR name = '{token}'"
        ))
        .await,
        0,
        "the token itself is not"
    );
    let users = boss.page("/users").await;
    assert!(!users.contains(&token), "never shown again");
    assert!(users.contains("未使用"));
    let fleet = Api {
        app: &app,
        token: token.clone(),
    };

    // Terminals: three, by id, the same whatever the page size.
    let one_by_one = fleet.all("/api/v1/terminals", 1).await;
    assert_eq!(one_by_one.len(), 3);
    let mut sorted = ids(&one_by_one, "id");
    sorted.sort();
    assert_eq!(ids(&one_by_one, "id"), sorted, "by id");
    assert_eq!(ids(&fleet.all("/api/v1/terminals", 2).await, "id"), sorted);
    let tokyo_only = fleet
        .all(&format!("/api/v1/terminals?clinic={}", tokyo.clinic), 10)
        .await;
    assert_eq!(tokyo_only.len(), 1);
    let t = &tokyo_only[0];
    assert_eq!(t["hostname"], "PC-TOKYO");
    assert_eq!(t["clinic_name"], "ひまわり薬局");
    assert_eq!(t["prefecture"], "東京都");
    assert_eq!(t["severity"], "critical");
    assert_eq!(t["id"], tokyo.terminal.to_string());
    assert_eq!(
        fleet.all("/api/v1/terminals?q=PC-O", 10).await.len(),
        1,
        "a hostname prefix"
    );
    assert_eq!(
        fleet
            .all("/api/v1/terminals?severity=critical", 10)
            .await
            .len(),
        3
    );
    for bad in [
        "/api/v1/terminals?severity=grave",
        "/api/v1/terminals?clinic=one",
        "/api/v1/terminals?limit=0",
        "/api/v1/terminals?limit=501",
        "/api/v1/terminals?cursor=nope",
        "/api/v1/terminals?colour=red",
        "/api/v1/alerts?cursor=%%%",
        "/api/v1/audit?action=coffee",
    ] {
        assert_eq!(
            fleet.refusal(bad).await,
            (StatusCode::BAD_REQUEST, "invalid_query".to_string()),
            "{bad}"
        );
    }

    // Alerts: every unresolved alert, paged by the cursor, in the alerts page's order.
    let stored = app
        .store
        .fleet()
        .alert_views(&AlertQuery {
            limit: 1000,
            ..AlertQuery::default()
        })
        .await
        .unwrap()
        .1;
    let listed = fleet.all("/api/v1/alerts", 1).await;
    assert_eq!(
        listed
            .iter()
            .map(|a| a["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        stored.iter().map(|v| v.alert.id).collect::<Vec<_>>()
    );
    let linkage = fleet
        .all(
            &format!(
                "/api/v1/alerts?terminal={}&rule=protected_account.linkage",
                north.terminal
            ),
            5,
        )
        .await;
    assert_eq!(linkage.len(), 1);
    assert_eq!(linkage[0]["id"], north.alert);
    assert_eq!(linkage[0]["severity"], "critical");
    assert_eq!(linkage[0]["status"], "open");
    assert_eq!(linkage[0]["hostname"], "PC-NORTH");
    let (status, one) = fleet.get(&format!("/api/v1/alerts/{}", osaka.alert)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["clinic_name"], "なにわ歯科");

    // Clinics and the audit log, to the end.
    let clinics = fleet.all("/api/v1/clinics", 2).await;
    assert_eq!(
        clinics
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [north.clinic, tokyo.clinic, osaka.clinic]
    );
    assert_eq!(clinics[1]["terminals"], 1);
    let audit = fleet.all("/api/v1/audit", 7).await;
    let stored_audit = app
        .store
        .staff()
        .audit_rows(&AuditQuery {
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let listed_ids: Vec<i64> = audit.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    // Lines written meanwhile are newer than the first page: the pages hold what was there.
    assert!(listed_ids.len() >= 10, "{}", listed_ids.len());
    assert_eq!(
        listed_ids,
        stored_audit
            .iter()
            .map(|r| r.id)
            .filter(|id| *id <= listed_ids[0])
            .collect::<Vec<_>>()
    );

    // A viewer token reads but does not act.
    let (status, body) = fleet
        .post(
            &format!("/api/v1/alerts/{}/acknowledge", north.alert),
            &json!({"note": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    // A token limited to 北海道: its clinic, terminal, alerts and audit lines only.
    let north_token = make_token(
        &boss,
        &[
            ("name", "hokkaido-portal"),
            ("role", "viewer"),
            ("scope", "limited"),
            ("prefecture", "北海道"),
        ],
    )
    .await;
    let scoped = Api {
        app: &app,
        token: north_token,
    };
    let terminals = scoped.all("/api/v1/terminals", 1).await;
    assert_eq!(ids(&terminals, "hostname"), ["\"PC-NORTH\""]);
    assert!(
        scoped
            .all("/api/v1/alerts", 1)
            .await
            .iter()
            .all(|a| a["clinic_id"] == north.clinic)
    );
    assert_eq!(
        scoped
            .all(&format!("/api/v1/terminals?clinic={}", tokyo.clinic), 5)
            .await
            .len(),
        0
    );
    assert_eq!(
        ids(&scoped.all("/api/v1/clinics", 5).await, "id"),
        [north.clinic.to_string()]
    );
    let north_terminal = north.terminal.to_string();
    for line in scoped.all("/api/v1/audit", 3).await {
        assert!(
            line["clinic_id"] == north.clinic || line["terminal_id"] == north_terminal.as_str(),
            "{line}"
        );
    }
    assert_eq!(
        scoped
            .refusal(&format!("/api/v1/alerts/{}", tokyo.alert))
            .await,
        (StatusCode::NOT_FOUND, "not_found".to_string())
    );

    // An admin token of 東京都 acknowledges and resolves Tokyo's alert, and nothing else.
    let tokyo_token = make_token(
        &boss,
        &[
            ("name", "tokyo-desk"),
            ("role", "admin"),
            ("scope", "limited"),
            ("prefecture", "東京都"),
        ],
    )
    .await;
    let desk = Api {
        app: &app,
        token: tokyo_token,
    };
    let (status, body) = desk
        .post(
            &format!("/api/v1/alerts/{}/acknowledge", north.alert),
            &json!({"note": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let alert_status = |id: i64| {
        let store = app.store.clone();
        async move { store.alerts().alert(id).await.unwrap().unwrap().status }
    };
    assert_eq!(alert_status(north.alert).await, AlertStatus::Open);
    let (status, body) = desk
        .post(
            &format!("/api/v1/alerts/{}/acknowledge", tokyo.alert),
            &json!({"note": "チケット #4711", "colour": "red"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_json")),
        "an unknown field: {body}"
    );
    let (status, body) = desk
        .post(
            &format!("/api/v1/alerts/{}/acknowledge", tokyo.alert),
            &json!({"note": "チケット #4711", "until": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["acknowledged_by"], "api:tokyo-desk");
    assert_eq!(body["acknowledged_until"], "2099-01-01T00:00:00Z");
    let (status, body) = desk
        .post(
            &format!("/api/v1/alerts/{}/resolve", tokyo.alert),
            &json!({"note": "対応済み"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    assert_eq!(alert_status(tokyo.alert).await, AlertStatus::Resolved);
    let (status, _) = desk
        .post(
            &format!("/api/v1/alerts/{}/resolve", tokyo.alert),
            &json!({"note": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already resolved");
    // Resolved alerts are still there by id, and the audit log says which token did it.
    let (status, body) = desk.get(&format!("/api/v1/alerts/{}", tokyo.alert)).await;
    assert_eq!(
        (status, body["resolved_by"].as_str()),
        (StatusCode::OK, Some("api:tokyo-desk"))
    );
    let lines = desk
        .all(
            &format!("/api/v1/audit?alert={}&actor=api:tokyo-desk", tokyo.alert),
            10,
        )
        .await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        boss.page(&format!("/audit?alert={}", tokyo.alert))
            .await
            .contains("APIトークン (tokyo-desk)")
    );

    // Last use is recorded; a revoked token stops at once; no token or a made-up one is 401.
    let tokens = app.store.staff().api_tokens().await.unwrap();
    assert!(
        tokens.iter().all(|t| t.last_used_at.is_some()),
        "{tokens:?}"
    );
    let users = boss.page("/users").await;
    assert!(!users.contains("未使用"));
    let resp = boss.post_csrf("/tokens/ticketing/revoke", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        fleet.refusal("/api/v1/terminals").await,
        (StatusCode::UNAUTHORIZED, "unauthorized".to_string())
    );
    let nobody = Api {
        app: &app,
        token: "onshi_api_0000".into(),
    };
    assert_eq!(
        nobody.refusal("/api/v1/clinics").await.0,
        StatusCode::UNAUTHORIZED
    );
    let anonymous = app
        .client
        .get(format!("{}/api/v1/alerts", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // A staff session is no API token, and a scoped admin cannot make tokens.
    let session = boss.get("/api/v1/terminals").await;
    assert_eq!(session.status(), StatusCode::UNAUTHORIZED);
    let seen: BTreeSet<String> = app
        .store
        .staff()
        .api_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from([
            "hokkaido-portal".into(),
            "ticketing".into(),
            "tokyo-desk".into()
        ])
    );
}

#[tokio::test]
async fn each_token_has_its_own_rate_limit() {
    let app = TestApp::spawn_with(|c| c.limits.api_requests_per_minute = 5).await;
    let boss = app.login("boss", Role::Admin).await;
    let first = Api {
        token: make_token(
            &boss,
            &[("name", "first"), ("role", "viewer"), ("scope", "all")],
        )
        .await,
        app: &app,
    };
    let second = Api {
        token: make_token(
            &boss,
            &[("name", "second"), ("role", "viewer"), ("scope", "all")],
        )
        .await,
        app: &app,
    };
    for _ in 0..5 {
        assert_eq!(first.get("/api/v1/clinics").await.0, StatusCode::OK);
    }
    let resp = app
        .client
        .get(format!("{}/api/v1/clinics", app.base))
        .bearer_auth(&first.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    assert_eq!(
        second.get("/api/v1/clinics").await.0,
        StatusCode::OK,
        "the other token is not held back"
    );
}
