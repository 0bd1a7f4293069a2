//! Scoped staff over HTTP, on the engine the run uses: a viewer limited to 北海道 and one clinic
//! group, and an admin limited to 東京都. No page, count, search, page of a list, export,
//! guessed id or action shows or changes a terminal, clinic, alert, mail or audit line outside
//! their scope; inside it everything works as for anyone.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use onshi_server::desk::new_clinic;
use onshi_server::domain::{AlertStatus, Role, RuleKey, Scope, SilenceScope};
use onshi_server::store::desk::OutboxQuery;
use onshi_testkit::DeskClient;
use onshi_testkit::reports::{linkage_password_changed, report_at};
use reqwest::StatusCode;
use uuid::Uuid;

use super::support::{TestApp, actor};

/// One clinic of the fixture: its terminal and that terminal's open critical alert.
pub(super) struct Site {
    pub clinic: i64,
    pub name: &'static str,
    pub email: &'static str,
    pub host: &'static str,
    pub terminal: Uuid,
    pub alert: i64,
}

/// A clinic in `prefecture` (the test server's own clinic when `existing`), with a terminal
/// whose linkage account's password changed: an open critical alert and its mail.
pub(super) async fn site(
    app: &TestApp,
    existing: Option<i64>,
    name: &'static str,
    email: &'static str,
    prefecture: &str,
    host: &'static str,
) -> Site {
    let now = Utc::now();
    let mut detail = match existing {
        Some(id) => app.store.fleet().clinic_detail(id).await.unwrap().unwrap(),
        None => new_clinic(name, email),
    };
    detail.settings.name = name.into();
    detail.settings.email = email.into();
    detail.settings.prefecture = Some(prefecture.into());
    let clinic = app.desk.save_clinic(&actor(), &detail, now).await.unwrap();
    let code = app.desk.issue_code(&actor(), clinic, now).await.unwrap();
    let agent = app.enroll_with(&code, host).await;
    let seq = app.baselined(&agent, host).await;
    let mut r = report_at(Utc::now(), host);
    r.agent_id = agent.agent_id;
    r.seq = seq;
    r.events.push(linkage_password_changed(Utc::now()));
    app.report(&agent, &r).await;
    let alert = onshi_testkit::wait_for("the alert", StdDuration::from_secs(15), || async {
        app.store
            .alerts()
            .active_alerts(Some(&[agent.agent_id]))
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.rule == RuleKey::ProtectedAccountLinkage)
    })
    .await
    .unwrap();
    Site {
        clinic,
        name,
        email,
        host,
        terminal: agent.agent_id,
        alert: alert.id,
    }
}

/// The outbox rows of a clinic (its mail about the alert).
async fn mails_of(app: &TestApp, clinic: i64) -> Vec<i64> {
    onshi_testkit::wait_for("the clinic's mail", StdDuration::from_secs(15), || async {
        let rows = app
            .store
            .outbox()
            .outbox_rows(&OutboxQuery {
                clinic_id: Some(clinic),
                limit: 50,
                ..OutboxQuery::default()
            })
            .await
            .unwrap();
        (!rows.is_empty()).then(|| rows.iter().map(|r| r.id).collect())
    })
    .await
    .unwrap()
}

/// What names a site anywhere on a page or in an export.
fn traces(s: &Site) -> [String; 4] {
    [
        s.name.to_string(),
        s.host.to_string(),
        s.email.to_string(),
        s.terminal.to_string(),
    ]
}

/// Asserts that `body` (of `what`, a path) names nothing of `outside`, apart from what the
/// path itself asked for (a filter form shows its own value again).
fn shows_none(what: &str, body: &str, outside: &[&Site]) {
    for s in outside {
        for t in traces(s).into_iter().filter(|t| !what.contains(t.as_str())) {
            assert!(!body.contains(&t), "{what} shows {t:?} outside the scope");
        }
    }
}

async fn body(desk: &DeskClient, path: &str) -> (StatusCode, String) {
    let resp = desk.get(path).await;
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn scoped_staff_see_and_change_only_their_clinics_on_every_route() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    // 北海道 (the viewer's prefecture), 東京都 (the admin's), and a clinic in 大阪府 that the
    // viewer reaches through a group.
    let north = site(
        &app,
        Some(app.clinic_id),
        "さくら内科クリニック",
        "sakura@example.jp",
        "北海道",
        "PC-NORTH",
    )
    .await;
    let tokyo = site(
        &app,
        None,
        "ひまわり薬局",
        "himawari@example.jp",
        "東京都",
        "PC-TOKYO",
    )
    .await;
    let osaka = site(
        &app,
        None,
        "なにわ歯科",
        "naniwa@example.jp",
        "大阪府",
        "PC-OSAKA",
    )
    .await;
    let group = app
        .desk
        .create_group(&actor(), "関西販売店", now)
        .await
        .unwrap();
    app.desk
        .set_group_member(&actor(), group, osaka.clinic, true, now)
        .await
        .unwrap();
    let tokyo_mails = mails_of(&app, tokyo.clinic).await;
    let north_mails = mails_of(&app, north.clinic).await;
    mails_of(&app, osaka.clinic).await;
    // Silences on each clinic, made by the whole fleet's admin.
    for s in [&north, &tokyo] {
        app.desk
            .silence(
                &actor(),
                &onshi_server::desk::SilenceRequest {
                    scope: SilenceScope::Clinic(s.clinic),
                    rule: None,
                    starts_at: now,
                    ends_at: now + Duration::days(1),
                    daily: None,
                    reason: format!("{} の工事", s.name),
                },
                now,
            )
            .await
            .unwrap();
    }
    let silence_of = |name: &str| {
        let name = name.to_string();
        let store = app.store.clone();
        async move {
            store
                .fleet()
                .silences(Utc::now(), Utc::now())
                .await
                .unwrap()
                .into_iter()
                .find(|s| s.reason.starts_with(&name))
                .unwrap()
                .id
        }
    };
    let north_silence = silence_of(north.name).await;

    let viewer_scope = Scope {
        prefectures: vec!["北海道".into()],
        groups: vec![group],
    };
    app.desk
        .add_user(
            &actor(),
            "north",
            Role::Viewer,
            Some(viewer_scope),
            Some(onshi_testkit::desk::STAFF_PASSWORD.into()),
            now,
        )
        .await
        .unwrap();
    app.desk
        .add_user(
            &actor(),
            "tokyo",
            Role::Admin,
            Some(Scope {
                prefectures: vec!["東京都".into()],
                groups: Vec::new(),
            }),
            Some(onshi_testkit::desk::STAFF_PASSWORD.into()),
            now,
        )
        .await
        .unwrap();
    let viewer = app.login("north", Role::Viewer).await;
    let admin = app.login("tokyo", Role::Admin).await;
    let boss = app.login("boss", Role::Admin).await;

    // --- What the scoped viewer sees: their two clinics, nothing of Tokyo.
    let overview = viewer.page("/").await;
    assert!(overview.contains("PC-NORTH") && overview.contains("PC-OSAKA"));
    assert!(
        overview.contains("担当: 北海道、グループ"),
        "the header says the scope"
    );
    shows_none("/", &overview, &[&tokyo]);
    let summary: serde_json::Value = viewer.get("/api/desk/summary").await.json().await.unwrap();
    assert_eq!(summary["total"], 2, "{summary}");
    let boss_summary: serde_json::Value = boss.get("/api/desk/summary").await.json().await.unwrap();
    assert_eq!(boss_summary["total"], 3, "{boss_summary}");
    // Per rule and per handling too: their clinics' counts, not the fleet's.
    let linkage = |summary: &serde_json::Value| {
        summary["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == "protected_account.linkage")
            .map(|r| r[1].clone())
    };
    assert_eq!(linkage(&summary), Some(serde_json::json!(2)), "{summary}");
    assert_eq!(linkage(&boss_summary), Some(serde_json::json!(3)));
    assert_eq!(summary["critical_unhandled"], 2);
    // The alerts page's count of one rule's alerts (the evaluator's counts) is theirs as well.
    let one_rule = viewer.page("/alerts?rule=protected_account.linkage").await;
    assert!(one_rule.contains("未解決のアラート <span class=\"muted count-line\">2 件"));

    let tokyo_clinic = tokyo.clinic.to_string();
    let tokyo_terminal = tokyo.terminal.to_string();
    let lists = [
        "/?page=2".to_string(),
        "/?page=999".into(),
        format!("/?clinic={tokyo_clinic}"),
        "/?q=PC-T".into(),
        "/?q=%E3%81%B2%E3%81%BE".into(),
        "/?prefecture=%E6%9D%B1%E4%BA%AC%E9%83%BD".into(),
        "/?severity=critical&sort=clinic".into(),
        "/alerts".into(),
        format!("/alerts?clinic={tokyo_clinic}"),
        "/alerts?prefecture=%E6%9D%B1%E4%BA%AC%E9%83%BD".into(),
        "/alerts?group=clinic".into(),
        "/alerts/times".into(),
        "/clinics".into(),
        "/clinics?q=%E3%81%B2%E3%81%BE%E3%82%8F%E3%82%8A".into(),
        "/clinics?page=2".into(),
        "/outbox".into(),
        format!("/outbox?clinic={tokyo_clinic}"),
        "/outbox?q=himawari".into(),
        "/outbox?before=999999".into(),
        "/audit".into(),
        format!("/audit?clinic={tokyo_clinic}"),
        format!("/audit?terminal={tokyo_terminal}"),
        format!("/audit?alert={}", tokyo.alert),
        "/audit?before=999999".into(),
        "/audit?action=agent".into(),
        "/silences".into(),
        "/export/terminals.csv".into(),
        format!("/export/terminals.csv?clinic={tokyo_clinic}"),
        "/export/alerts.csv".into(),
        format!("/export/alerts.csv?clinic={tokyo_clinic}"),
        "/export/audit.csv".into(),
        format!("/export/audit.csv?clinic={tokyo_clinic}"),
    ];
    for path in &lists {
        let (status, page) = body(&viewer, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}");
        shows_none(path, &page, &[&tokyo]);
    }
    // Their own clinics are all there.
    let alerts = viewer.page("/alerts").await;
    assert!(alerts.contains("PC-NORTH") && alerts.contains("PC-OSAKA"));
    let csv = viewer.page("/export/alerts.csv").await;
    assert!(csv.contains("PC-NORTH") && csv.contains("PC-OSAKA"));
    let outbox = viewer.page("/outbox").await;
    assert!(outbox.contains("sakura@example.jp") && outbox.contains("naniwa@example.jp"));
    let audit = viewer.page("/audit").await;
    assert!(audit.contains("なにわ歯科"), "their clinics' audit lines");
    assert!(
        !audit.contains("ユーザー north"),
        "lines about no clinic (users, logins) are not theirs"
    );
    assert!(
        viewer
            .page("/silences")
            .await
            .contains("さくら内科クリニック の工事")
    );
    viewer.page(&format!("/terminals/{}", north.terminal)).await;
    viewer.page(&format!("/clinics/{}", osaka.clinic)).await;
    viewer.page(&format!("/outbox/{}", north_mails[0])).await;

    // Guessed ids: every clinic, terminal, alert and mail id there is, and some that are not.
    let max_mail = tokyo_mails
        .iter()
        .chain(&north_mails)
        .max()
        .copied()
        .unwrap()
        + 5;
    let reached_clinics = [north.clinic, osaka.clinic];
    for id in 1..=osaka.clinic + 3 {
        for path in [
            format!("/clinics/{id}"),
            format!("/clinics/{id}/codes/0000/revoke"),
            format!("/clinics/{id}/contacts/1/delete"),
            format!("/clinics/{id}/closures/1/delete"),
            format!("/?clinic={id}"),
        ] {
            let (status, page) = body(&viewer, &path).await;
            if path.starts_with("/clinics/") && !reached_clinics.contains(&id) {
                assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
            }
            shows_none(&path, &page, &[&tokyo]);
        }
    }
    for id in 1..=max_mail {
        let (status, page) = body(&viewer, &format!("/outbox/{id}")).await;
        if tokyo_mails.contains(&id) {
            assert_eq!(status, StatusCode::NOT_FOUND, "GET /outbox/{id}");
        }
        shows_none("a guessed mail", &page, &[&tokyo]);
    }
    let (status, page) = body(&viewer, &format!("/terminals/{}", tokyo.terminal)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    shows_none("the other terminal", &page, &[&tokyo]);
    let (status, _) = body(&viewer, "/terminals/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Neither the scoped viewer nor the scoped admin manages users or groups.
    for (who, desk) in [("viewer", &viewer), ("admin", &admin)] {
        assert_eq!(
            desk.get("/users").await.status(),
            StatusCode::FORBIDDEN,
            "{who}"
        );
        assert_eq!(
            desk.get(&format!("/groups/{group}")).await.status(),
            StatusCode::FORBIDDEN,
            "{who}"
        );
        let resp = desk
            .post_csrf(
                "/users",
                &[("name", "mallory"), ("role", "admin"), ("scope", "all")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{who}");
        let resp = desk
            .post_csrf(
                "/users/tokyo/access",
                &[("role", "admin"), ("scope", "all")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{who}");
    }
    assert!(
        app.store
            .staff()
            .user_by_name("mallory")
            .await
            .unwrap()
            .is_none()
    );
    let nav = viewer.page("/").await;
    assert!(!nav.contains("href=\"/users\""), "no users tab for them");
    assert!(boss.page("/").await.contains("href=\"/users\""));

    // --- The Tokyo admin acts on Tokyo, and on nothing in 北海道 or 大阪府.
    let a_overview = admin.page("/").await;
    assert!(a_overview.contains("PC-TOKYO"));
    shows_none("the admin's overview", &a_overview, &[&north, &osaka]);
    let north_alert = north.alert.to_string();
    let refused_posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/alerts/{north_alert}/ack"), vec![("note", "x")]),
        (
            format!("/alerts/{north_alert}/resolve"),
            vec![("note", "x")],
        ),
        (format!("/alerts/{north_alert}/note"), vec![("note", "x")]),
        (
            format!("/clinics/{}", north.clinic),
            vec![("name", "乗っ取り"), ("email", "x@example.jp")],
        ),
        (
            format!("/clinics/{}/contacts", north.clinic),
            vec![("name", "x"), ("email", "x@example.jp")],
        ),
        (
            format!("/clinics/{}/codes", north.clinic),
            vec![("label", "x")],
        ),
        (
            format!("/clinics/{}/closures", north.clinic),
            vec![("date", "2027-01-05"), ("note", "x")],
        ),
        (
            format!("/terminals/{}/accounts", north.terminal),
            vec![("windows", "x")],
        ),
        (format!("/silences/{north_silence}/end"), vec![]),
    ];
    for (path, form) in &refused_posts {
        let resp = admin.post_csrf(path, form).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "POST {path}");
        shows_none(path, &resp.text().await.unwrap(), &[&north]);
    }
    // Silences outside the scope: a clinic or terminal of 北海道, 北海道 itself, the fleet.
    let north_clinic = north.clinic.to_string();
    let north_terminal = north.terminal.to_string();
    let local = |t: chrono::DateTime<Utc>| {
        t.with_timezone(&onshi_server::jst::offset())
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    };
    let start = local(now);
    let until = local(now + Duration::hours(30));
    for (scope, field, value) in [
        ("clinic", "clinic", north_clinic.as_str()),
        ("terminal", "terminal", north_terminal.as_str()),
        ("prefecture", "prefecture", "北海道"),
        ("fleet", "rule", ""),
    ] {
        let resp = admin
            .post_csrf(
                "/silences",
                &[
                    ("scope", scope),
                    (field, value),
                    ("starts", start.as_str()),
                    ("ends", until.as_str()),
                    ("reason", "範囲外"),
                ],
            )
            .await;
        assert!(
            resp.status().is_client_error(),
            "silence {scope}: {}",
            resp.status()
        );
    }
    // Bulk: checked boxes outside the scope are dropped; "every match" is every match in it.
    let resp = admin
        .post_csrf(
            "/alerts/bulk",
            &[
                ("action", "ack"),
                ("ids", north_alert.as_str()),
                ("note", "x"),
            ],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "nothing it may act on was checked"
    );
    let resp = admin
        .post_csrf(
            "/alerts/bulk",
            &[
                ("action", "ack"),
                ("all_matching", "1"),
                ("note", "まとめて"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let status_of = |id: i64| {
        let store = app.store.clone();
        async move { store.alerts().alert(id).await.unwrap().unwrap().status }
    };
    assert_eq!(status_of(north.alert).await, AlertStatus::Open);
    assert_eq!(status_of(osaka.alert).await, AlertStatus::Open);
    assert_eq!(status_of(tokyo.alert).await, AlertStatus::Acknowledged);
    // Registering a clinic: in 東京都 yes, in 北海道 no.
    let resp = admin
        .post_csrf(
            "/clinics",
            &[
                ("name", "よその医院"),
                ("email", "yoso@example.jp"),
                ("prefecture", "北海道"),
            ],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "the form again, with why"
    );
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("担当範囲（東京都）の外")
    );
    let resp = admin
        .post_csrf(
            "/clinics",
            &[
                ("name", "新宿の医院"),
                ("email", "shinjuku@example.jp"),
                ("prefecture", "東京都"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(admin.page("/clinics").await.contains("新宿の医院"));
    assert!(!viewer.page("/clinics").await.contains("新宿の医院"));
    // Nothing of 北海道 changed: no clinic rename, no contact, no code, no closure, no note.
    let north_detail = app
        .store
        .fleet()
        .clinic_detail(north.clinic)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(north_detail.settings.name, north.name);
    assert!(
        app.store
            .fleet()
            .contacts(north.clinic)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.store
            .fleet()
            .enrollment_codes(north.clinic)
            .await
            .unwrap()
            .len(),
        2,
        "only the test server's code and the fixture's"
    );
    let history = app.store.alerts().alert_history(north.alert).await.unwrap();
    assert!(
        history.iter().all(|h| h.actor != "tokyo"),
        "the Tokyo admin left no trace on the alert: {history:?}"
    );
    assert!(
        app.store
            .fleet()
            .silences(Utc::now(), Utc::now())
            .await
            .unwrap()
            .iter()
            .any(|s| s.id == north_silence && s.ended_by.is_none()),
        "the silence in 北海道 still holds"
    );

    // --- The whole fleet's admin changes a scope on the users page; it holds from the next
    // request.
    let resp = boss
        .post_csrf(
            "/users/north/access",
            &[
                ("role", "viewer"),
                ("scope", "limited"),
                ("prefecture", "東京都"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let overview = viewer.page("/").await;
    assert!(overview.contains("PC-TOKYO"));
    shows_none(
        "the viewer's overview after the change",
        &overview,
        &[&north, &osaka],
    );
    let users = boss.page("/users").await;
    assert!(users.contains("東京都") && users.contains("tokyo"));
}
