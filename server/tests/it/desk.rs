//! The support desk's dashboard over real HTTP: sessions, CSRF, roles, the overview's filters,
//! alert actions, clinics and the audit log, against a fresh SQLite database per test.

use chrono::{Duration, SubsecRound, Utc};
use onshi_server::domain::Reach;
use onshi_server::domain::Role;
use onshi_shared::{EnrollResponse, Report, sample};
use onshi_testkit::DeskClient;
use onshi_testkit::desk::{STAFF_PASSWORD, csrf_of, no_redirects, post_login, session_cookie};
use reqwest::StatusCode;

use super::support::{TestApp, actor, page_showing};

/// Three failed logins per address; the test's own address is a trusted proxy, so tests can
/// log in "from" other addresses with `X-Forwarded-For`.
async fn fixture() -> TestApp {
    TestApp::spawn_with(|c| {
        c.dashboard.max_failed_logins = 3;
        c.dashboard.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await
}

/// A report from a healthy terminal (restarted an hour ago), changed by `change`.
async fn report(app: &TestApp, agent: &EnrollResponse, seq: u64, change: impl FnOnce(&mut Report)) {
    let now = Utc::now().trunc_subsecs(3);
    let mut r = sample::report(seq);
    r.agent_id = agent.agent_id;
    r.snapshot.collected_at = now;
    r.snapshot.uptime.last_start = now - Duration::hours(1);
    r.snapshot.uptime.last_boot = now - Duration::hours(1);
    r.snapshot.hostname = agent_hostname(agent);
    for c in &mut r.snapshot.certificates.certs {
        c.not_after = now + Duration::days(300);
    }
    r.events.clear();
    change(&mut r);
    app.report(agent, &r).await;
}

fn agent_hostname(agent: &EnrollResponse) -> String {
    format!("PC-{}", &agent.agent_id.simple().to_string()[24..])
}

#[tokio::test]
async fn without_a_session_pages_redirect_to_login_and_json_answers_401() {
    let app = fixture().await;
    let client = no_redirects();
    for path in [
        "/",
        "/alerts",
        "/clinics",
        "/outbox",
        "/audit",
        "/clinics/1",
    ] {
        let resp = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        let location = resp.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/login?next="), "{path}: {location}");
    }
    let resp = client
        .get(format!("{}/api/desk/summary", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // A forged cookie is no session either.
    let resp = client
        .get(format!("{}/", app.base))
        .header("cookie", "onshi_session=0000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // Actions without a session do nothing.
    let resp = client
        .post(format!("{}/alerts/1/ack", app.base))
        .form(&[("csrf", "x"), ("note", "n")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let login = client
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let csp = login.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(login.text().await.unwrap().contains("id=\"login-form\""));
}

#[tokio::test]
async fn logins_get_fresh_sessions_that_end_on_logout_password_change_and_disable() {
    let app = fixture().await;
    let a = app.login("alice", Role::Admin).await;
    let b = app.login("alice", Role::Admin).await;
    assert_ne!(a.cookie, b.cookie, "a new session id at every login");
    assert!(!a.cookie.contains("__Host-"), "no TLS here: a plain cookie");
    let summary = a.get("/api/desk/summary").await;
    assert_eq!(summary.status(), StatusCode::OK);

    // Logout ends that session only.
    let csrf = csrf_of(&a.page("/").await);
    let out = a.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(a.get("/").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(b.get("/").await.status(), StatusCode::OK);

    // A password change ends every session of the user, the one that made it too.
    let c = app.login("alice", Role::Admin).await;
    let csrf = csrf_of(&c.page("/account/password").await);
    let weak = c
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", STAFF_PASSWORD),
                ("new", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b.get("/").await.status(), StatusCode::OK, "nothing changed");
    let changed = c
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", STAFF_PASSWORD),
                ("new", "a much longer new password"),
                ("confirm", "a much longer new password"),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    assert_eq!(b.get("/").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(c.get("/").await.status(), StatusCode::SEE_OTHER);

    // Disabling a user ends their sessions.
    let v = app.login("victor", Role::Viewer).await;
    assert_eq!(v.get("/").await.status(), StatusCode::OK);
    app.desk
        .set_user_disabled(&actor(), "victor", true, Utc::now())
        .await
        .unwrap();
    assert_eq!(v.get("/").await.status(), StatusCode::SEE_OTHER);
    let again = post_login(&no_redirects(), &app.base, "victor", STAFF_PASSWORD)
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}

/// A login from `address` (the proxy at 127.0.0.1 is trusted in [`fixture`] and says so in
/// `X-Forwarded-For`): status, session cookie, page.
async fn login_from(
    app: &TestApp,
    address: &str,
    user: &str,
    password: &str,
) -> (StatusCode, Option<String>, String) {
    login_at(&app.base, address, user, password).await
}

async fn login_at(
    base: &str,
    address: &str,
    user: &str,
    password: &str,
) -> (StatusCode, Option<String>, String) {
    let client = no_redirects();
    let page = client.get(format!("{base}/login")).send().await.unwrap();
    let cookie = session_cookie(&page).unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let resp = client
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .header("x-forwarded-for", address)
        .form(&[("username", user), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let session = session_cookie(&resp).filter(|c| c.starts_with("onshi_session="));
    (status, session, resp.text().await.unwrap())
}

#[tokio::test]
async fn failed_logins_get_one_generic_error_and_are_throttled() {
    let app = fixture().await;
    let _bob = app.login("bob", Role::Viewer).await;
    let (s1, c1, unknown) = login_from(&app, "203.0.113.1", "nobody", "whatever-password").await;
    let (s2, c2, wrong) = login_from(&app, "203.0.113.1", "bob", "wrong-password-here").await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert!(c1.is_none() && c2.is_none());
    let message = |page: &str| {
        let at = page.find("class=\"error\">").unwrap();
        page[at..at + 80].to_string()
    };
    assert_eq!(
        message(&unknown),
        message(&wrong),
        "no hint which part was wrong"
    );
    // max_failed_logins = 3: after the third failure from this address, this address waits,
    // even with the right password.
    for _ in 0..2 {
        let (s3, _, _) = login_from(&app, "203.0.113.1", "bob", "wrong-again-password").await;
        assert_eq!(s3, StatusCode::UNAUTHORIZED);
    }
    let (s4, c4, _) = login_from(&app, "203.0.113.1", "bob", STAFF_PASSWORD).await;
    assert_eq!(s4, StatusCode::TOO_MANY_REQUESTS);
    assert!(c4.is_none());
    // The right password from another address gets through: never locked per address alone,
    // nor can someone lock bob out by failing for him.
    let (s5, c5, _) = login_from(&app, "198.51.100.20", "bob", STAFF_PASSWORD).await;
    assert_eq!(s5, StatusCode::SEE_OTHER);
    assert!(c5.is_some());
    // One address failing for many accounts does not lock out a colleague behind it.
    for i in 0..10 {
        login_from(
            &app,
            "192.0.2.50",
            &format!("someone{i}"),
            "wrong-password-here",
        )
        .await;
    }
    let (s6, _, _) = login_from(&app, "192.0.2.50", "bob", STAFF_PASSWORD).await;
    assert_eq!(
        s6,
        StatusCode::SEE_OTHER,
        "the shared address is not locked"
    );
}

#[tokio::test]
async fn concurrent_wrong_passwords_are_counted_before_they_are_checked() {
    let app = fixture().await;
    let _bob = app.login("bob", Role::Viewer).await;
    let tries: Vec<_> = (0..40)
        .map(|_| {
            let base = app.base.clone();
            tokio::spawn(async move {
                login_at(&base, "203.0.113.7", "bob", "wrong-password-here").await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tries {
        answers.push(t.await.unwrap());
    }
    let checked = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        checked <= 3,
        "{checked} passwords checked past a limit of 3"
    );
    assert_eq!(checked + refused, 40);
}

#[tokio::test]
async fn the_login_form_needs_its_own_token_and_forwarded_headers_need_a_trusted_proxy() {
    let app = TestApp::spawn_with(|c| c.dashboard.max_failed_logins = 2).await;
    let _bob = app.login("bob", Role::Viewer).await;
    // Posted from another site's page: no token, no cookie.
    let forged = no_redirects()
        .post(format!("{}/login", app.base))
        .form(&[("username", "bob"), ("password", STAFF_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&forged).is_none_or(|c| !c.starts_with("onshi_session=")));
    // No proxy trusted here: X-Forwarded-For does not let a client pick a fresh address.
    for i in 0..2 {
        let (s, _, _) =
            login_from(&app, &format!("203.0.113.{i}"), "bob", "wrong-password-x").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _, _) = login_from(&app, "203.0.113.99", "bob", STAFF_PASSWORD).await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "the spoofed header was ignored"
    );
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_token_and_viewers_cannot_change_anything() {
    let app = fixture().await;
    let admin = app.login("ann", Role::Admin).await;
    let viewer = app.login("vera", Role::Viewer).await;
    let form = [
        ("name", "ひまわり薬局"),
        ("email", "himawari@example.jp"),
        ("hours_mon", "09:00-18:00"),
    ];
    let mut fields = vec![("csrf", "not-the-token")];
    fields.extend_from_slice(&form);
    assert_eq!(
        admin.post("/clinics", &fields).await.status(),
        StatusCode::FORBIDDEN
    );
    // No token at all is refused the same way as a wrong one, on every form.
    assert_eq!(
        admin.post("/clinics", &form).await.status(),
        StatusCode::FORBIDDEN
    );
    for path in [
        "/logout",
        "/account/password",
        "/silences",
        "/alerts/1/ack",
        "/alerts/1/resolve",
        "/alerts/1/note",
        "/clinics/1/codes",
        "/clinics/1/contacts",
        "/clinics/1/closures",
    ] {
        assert_eq!(
            admin.post(path, &[]).await.status(),
            StatusCode::FORBIDDEN,
            "{path} without a token"
        );
    }
    assert_eq!(
        viewer.post_csrf("/clinics", &form).await.status(),
        StatusCode::FORBIDDEN
    );
    let viewer_page = viewer.page("/clinics/1").await;
    assert!(!viewer_page.contains("id=\"issue-code\""));
    let created = admin.post_csrf("/clinics", &form).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let (total, rows) = app
        .store
        .fleet()
        .clinic_list(Some("ひまわり"), 0, 10, &Reach::All)
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(rows[0].email, "himawari@example.jp");
}

#[tokio::test]
async fn the_overview_filters_sorts_and_escapes() {
    let app = fixture().await;
    let desk = app.login("olga", Role::Viewer).await;
    let healthy = app.enroll("healthy").await;
    let hostile = app.enroll("hostile").await;
    let expiring = app.enroll("expiring").await;
    report(&app, &healthy, 1, |_| {}).await;
    report(&app, &hostile, 1, |r| {
        r.snapshot.hostname = "<script>alert(1)</script>".into();
    })
    .await;
    report(&app, &expiring, 1, |r| {
        for c in &mut r.snapshot.certificates.certs {
            c.not_after = Utc::now() + Duration::days(5);
        }
    })
    .await;
    let page = page_showing(&desk, "/?severity=critical", &agent_hostname(&expiring)).await;
    assert!(!page.contains(&agent_hostname(&healthy)));
    assert!(page.contains("1 台が該当"), "only the expiring one");
    let page = desk.page("/?rule=cert_expiry").await;
    assert!(page.contains(&agent_hostname(&expiring)));
    assert!(!page.contains(&agent_hostname(&healthy)));
    // Hostnames are searched by prefix, case-insensitively; clinic names by prefix too.
    let lower = agent_hostname(&healthy).to_lowercase();
    let page = desk
        .page(&format!("/?q={}", &lower[..lower.len() - 2]))
        .await;
    assert!(page.contains(&agent_hostname(&healthy)));
    assert!(!page.contains(&agent_hostname(&expiring)));
    let page = desk.page("/?q=%E3%81%95%E3%81%8F%E3%82%89").await; // さくら
    assert!(page.contains("3 台が該当"), "all three by clinic name");
    let page = page_showing(&desk, "/?sort=hostname", "&#60;script&#62;").await;
    assert!(!page.contains("<script>alert(1)"));
    let host_order: Vec<usize> = [
        "&#60;script&#62;",
        &agent_hostname(&expiring),
        &agent_hostname(&healthy),
    ]
    .iter()
    .map(|h| page.find(h).unwrap())
    .collect();
    // "<" sorts before "p"; expiring and healthy by their random suffix: just check both
    // directions reverse each other.
    let reversed = desk.page("/?sort=hostname&desc=1").await;
    let rev_order: Vec<usize> = [
        "&#60;script&#62;",
        &agent_hostname(&expiring),
        &agent_hostname(&healthy),
    ]
    .iter()
    .map(|h| reversed.find(h).unwrap())
    .collect();
    assert!(host_order[0] < host_order[1] && host_order[0] < host_order[2]);
    assert!(rev_order[0] > rev_order[1] && rev_order[0] > rev_order[2]);
    let summary: serde_json::Value = desk.get("/api/desk/summary").await.json().await.unwrap();
    let rules = summary["rules"].as_array().unwrap();
    assert!(
        rules.iter().any(|r| r[0] == "cert_expiry" && r[1] == 1),
        "{summary}"
    );
}

#[tokio::test]
async fn staff_acknowledge_note_resolve_and_silence_with_history_and_audit() {
    let app = fixture().await;
    let admin = app.login("ann", Role::Admin).await;
    let viewer = app.login("vera", Role::Viewer).await;
    let agent = app.enroll("pc").await;
    report(&app, &agent, 1, |r| {
        for c in &mut r.snapshot.certificates.certs {
            c.not_after = Utc::now() + Duration::days(3);
        }
    })
    .await;
    let page = page_showing(&admin, "/alerts", "data-alert-id=").await;
    let at = page.find("data-alert-id=\"").unwrap() + "data-alert-id=\"".len();
    let id: i64 = page[at..at + page[at..].find('"').unwrap()]
        .parse()
        .unwrap();
    assert!(page.contains("class=\"ack-form\""));
    assert!(
        !viewer.page("/alerts").await.contains("class=\"ack-form\""),
        "viewers see no action forms"
    );
    assert_eq!(
        viewer
            .post_csrf(&format!("/alerts/{id}/ack"), &[("note", "x")])
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // An until-time in the past is refused, with a reason.
    let past = admin
        .post_csrf(
            &format!("/alerts/{id}/ack"),
            &[("note", "x"), ("until", "2020-01-01T09:00")],
        )
        .await;
    assert_eq!(past.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let until = (Utc::now() + Duration::days(1))
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let acked = admin
        .post_csrf(
            &format!("/alerts/{id}/ack"),
            &[
                ("note", "電話で確認済み"),
                ("until", &until),
                ("back", "/alerts"),
            ],
        )
        .await;
    assert_eq!(acked.status(), StatusCode::SEE_OTHER);
    assert_eq!(acked.headers()["location"], "/alerts");
    let a = app.store.alerts();
    let alert = a.alert(id).await.unwrap().unwrap();
    assert_eq!(alert.ack_by.as_deref(), Some("ann"));
    assert_eq!(alert.ack_note.as_deref(), Some("電話で確認済み"));
    assert!(alert.ack_until.is_some());
    let noted = admin
        .post_csrf(&format!("/alerts/{id}/note"), &[("note", "来週再確認")])
        .await;
    assert_eq!(noted.status(), StatusCode::SEE_OTHER);
    // An open redirect is not followed.
    let resolved = admin
        .post_csrf(
            &format!("/alerts/{id}/resolve"),
            &[("note", "更新済み"), ("back", "//evil.example/")],
        )
        .await;
    assert_eq!(resolved.headers()["location"], "/alerts");
    let history: Vec<(String, String)> = a
        .alert_history(id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.actor, h.action))
        .collect();
    for step in ["acknowledged", "note", "resolved"] {
        assert!(
            history.contains(&("ann".into(), step.into())),
            "{step} in {history:?}"
        );
    }
    let times = admin.page("/alerts/times").await;
    let row = &times[times.find("電子証明書の有効期限").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    // One alert, acknowledged once, resolved once.
    assert_eq!(row.matches("<td class=\"num\">1</td>").count(), 3, "{row}");
    let terminal_page = admin.page(&format!("/terminals/{}", agent.agent_id)).await;
    assert!(terminal_page.contains("<svg") && terminal_page.contains("id=\"timeline\""));
    assert!(terminal_page.contains("解決済み"));
    // Silence the terminal: the overview says so after the evaluator has looked again.
    let silenced = admin
        .post_csrf(
            "/silences",
            &[
                ("terminal", &agent.agent_id.to_string()),
                ("ends", &until),
                ("reason", "ベンダー作業"),
            ],
        )
        .await;
    assert_eq!(silenced.status(), StatusCode::SEE_OTHER);
    page_showing(&admin, "/?handling=silenced", &agent_hostname(&agent)).await;
    let audit = admin.page("/audit").await;
    for what in [
        "確認済みに",
        "メモ: 来週再確認",
        "解決済みに",
        "通知を停止",
        "ログイン",
    ] {
        assert!(audit.contains(what), "{what} in the audit log");
    }
}

#[tokio::test]
async fn clinics_are_edited_and_their_codes_issued_once_and_revoked() {
    let app = fixture().await;
    let admin = app.login("ann", Role::Admin).await;
    let agent = app.enroll("pc").await;
    report(&app, &agent, 1, |_| {}).await;
    page_showing(&admin, "/", &agent_hostname(&agent)).await;
    let edit = [
        ("name", "さくら内科 本院"),
        ("email", "honin@example.jp"),
        ("code", "1312345678"),
        ("prefecture", "東京都"),
        ("hours_mon", "08:30-12:30, 14:00-17:30"),
        ("hours_tue", "08:30-17:30"),
        ("hours_thu", "08:30-12:30"),
        ("hours_fri", "08:30-17:30"),
        ("hours_sat", "08:30-12:00"),
        ("closed_new_year", "on"),
    ];
    let bad = admin
        .post_csrf("/clinics/1", &[("name", "x"), ("email", "not-an-email")])
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("メールアドレスが正しくありません")
    );
    assert_eq!(
        admin.post_csrf("/clinics/1", &edit).await.status(),
        StatusCode::SEE_OTHER
    );
    let detail = app.store.fleet().clinic_detail(1).await.unwrap().unwrap();
    assert_eq!(detail.settings.name, "さくら内科 本院");
    assert_eq!(detail.code.as_deref(), Some("1312345678"));
    let week = &detail.settings.hours.week;
    assert_eq!(week[0].len(), 2, "a lunch break");
    assert!(
        week[2].is_empty() && week[6].is_empty(),
        "Wednesdays and Sundays closed"
    );
    assert!(detail.settings.hours.closed_new_year && !detail.settings.hours.closed_obon);
    // The overview follows the rename and filters by the new prefecture.
    let page = desk_page(&admin, "/?prefecture=%E6%9D%B1%E4%BA%AC%E9%83%BD").await;
    assert!(page.contains("さくら内科 本院"));
    // The same medical institution code cannot belong to two clinics.
    let mut second: Vec<(&str, &str)> = edit.to_vec();
    second[0] = ("name", "別の医院");
    let dup = admin.post_csrf("/clinics", &second).await;
    assert_eq!(dup.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A code is shown once, works, and stops working when revoked.
    let issued = admin.post_csrf("/clinics/1/codes", &[]).await;
    assert_eq!(issued.status(), StatusCode::OK);
    let page = issued.text().await.unwrap();
    let at = page.find("class=\"code mono\">").unwrap() + "class=\"code mono\">".len();
    let code = page[at..at + page[at..].find('<').unwrap()].to_string();
    assert!(
        !admin.page("/clinics/1").await.contains(&code),
        "shown once"
    );
    app.enroll_with(&code, "second-pc").await;
    let hash = onshi_server::enroll::hash_code(&code);
    let revoked = admin
        .post_csrf("/clinics/1/codes/revoke", &[("code_hash", &hash)])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let refused = app.post_enroll(&code, "third").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let contact = admin
        .post_csrf(
            "/clinics/1/contacts",
            &[("name", "事務長 山田"), ("email", "yamada@example.jp")],
        )
        .await;
    assert_eq!(contact.status(), StatusCode::SEE_OTHER);
    assert!(admin.page("/clinics/1").await.contains("事務長 山田"));
}

async fn desk_page(desk: &DeskClient, path: &str) -> String {
    page_showing(desk, path, "<table").await
}

#[tokio::test]
async fn each_reported_hour_is_recorded_once_for_the_timeline() {
    let app = fixture().await;
    let agent = app.enroll("pc").await;
    for seq in 1..=3 {
        report(&app, &agent, seq, |_| {}).await;
    }
    let desk = app.store.fleet();
    let hours = desk
        .report_hours(agent.agent_id, Utc::now() - Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(hours.len(), 1, "{hours:?}");
    assert_eq!(
        hours[0].timestamp_millis(),
        onshi_server::store::hour_of(Utc::now())
    );
    // A restarted writer knows the hour is recorded already.
    let recorded = app
        .store
        .ingest_sink()
        .report_hours_since(Utc::now())
        .await
        .unwrap();
    assert_eq!(
        recorded,
        vec![(agent.agent_id, hours[0].timestamp_millis())]
    );
}

/// What the agent's spool lost reaches the terminal page, with how much of it was corruption.
#[tokio::test]
async fn the_terminal_page_shows_what_the_agents_spool_lost() {
    let app = fixture().await;
    let desk = app.login("olga", Role::Viewer).await;
    let agent = app.enroll("SPOOL-PC").await;
    report(&app, &agent, 1, |_| {}).await;
    let page = desk.page(&format!("/terminals/{}", agent.agent_id)).await;
    assert!(
        !page.contains("id=\"spool-losses\""),
        "nothing lost, nothing said"
    );
    report(&app, &agent, 2, |r| {
        r.snapshot.spool = onshi_shared::SpoolLosses {
            dropped: 3,
            corrupt: 1,
        };
    })
    .await;
    let page = desk.page(&format!("/terminals/{}", agent.agent_id)).await;
    assert!(
        page.contains("送れずに捨てた記録: 3 件 (うち端末のディスク上で壊れていたもの 1 件)"),
        "{}",
        &page[page.find("<h1").unwrap_or(0)..][..600]
    );
}

/// Guessing the current password on the password page is throttled like a login.
#[tokio::test]
async fn password_changes_are_throttled_like_logins() {
    let app = fixture().await;
    let desk = app.login("paul", Role::Admin).await;
    let new = "a much longer new password";
    for _ in 0..3 {
        let form = [
            ("current", "not-my-password"),
            ("new", new),
            ("confirm", new),
        ];
        let r = desk.post_csrf("/account/password", &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let form = [("current", STAFF_PASSWORD), ("new", new), ("confirm", new)];
    let r = desk.post_csrf("/account/password", &form).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right one waits now"
    );
}
