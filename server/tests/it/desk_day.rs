//! The desk's day at fleet size: the alerts page pages by keyset and filters, bulk actions on
//! the checked alerts or every match (one audit line that lists them), CSV exports, the audit
//! log's filters and paging, the outbox's search and a mail as sent, two-step revoke and delete,
//! and the terminal page agreeing with its alerts.

use chrono::{Duration, Utc};
use onshi_server::domain::{AlertStatus, RuleKey};
use onshi_testkit::desk::csrf_of;
use onshi_testkit::reports::report_at;
use reqwest::StatusCode;

use super::alerts::{Fleet, fleet};
use super::support::{TestApp, actor};

/// `n` terminals whose certificate has no verified backup: one warning each.
async fn warned(n: usize) -> Fleet {
    let mut f = fleet(n).await;
    let now = Utc::now();
    for i in 0..n {
        let mut r = report_at(now, &format!("PC-{i:04}"));
        r.snapshot.certificates.backup = None;
        f.report(i, r, now).await;
    }
    f.evaluator(None).full_pass(now).await.unwrap();
    f
}

/// The alert ids a page lists, in order.
fn listed(page: &str) -> Vec<i64> {
    page.split("data-alert-id=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse().ok())
        .collect()
}

/// The link after `id="next-page"`'s `href`, unescaped.
fn next_link(page: &str) -> Option<String> {
    let at = page.find("id=\"next-page\"")?;
    let before = &page[..at];
    let href = before.rfind("href=\"")?;
    let rest = &before[href + 6..];
    Some(
        rest[..rest.find('"')?]
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

#[tokio::test]
async fn the_alerts_page_pages_by_keyset_without_gaps_or_repeats() {
    let f = warned(250).await;
    let desk = f.app.login("ann", onshi_server::domain::Role::Admin).await;
    let mut seen = Vec::new();
    let mut path = "/alerts".to_string();
    let mut pages = 0;
    loop {
        let page = desk.page(&path).await;
        assert!(page.contains("250 件"), "the count of every match");
        let ids = listed(&page);
        assert!(ids.len() <= 100);
        seen.extend(ids);
        pages += 1;
        match next_link(&page) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (250, 250), "each alert once");
    // Filters: severity, age, handling.
    let none = desk.page("/alerts?severity=critical").await;
    assert!(listed(&none).is_empty());
    let old = desk.page("/alerts?age=1d").await;
    assert!(listed(&old).is_empty(), "nothing is a day old yet");
    let unhandled = desk.page("/alerts?handling=unhandled").await;
    assert_eq!(listed(&unhandled).len(), 100);
    // One rule (read off that rule's index) and a severity, paged the same way.
    let mut path = "/alerts?rule=backup_missing&severity=warning&handling=unhandled".to_string();
    let mut by_rule = Vec::new();
    loop {
        let page = desk.page(&path).await;
        assert!(page.contains("250 件"), "the count of every match");
        by_rule.extend(listed(&page));
        match next_link(&page) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(by_rule, seen, "the same alerts in the same order");
}

#[tokio::test]
async fn a_bulk_action_on_every_match_writes_one_audit_line_that_lists_them() {
    let f = warned(300).await;
    let desk = f.app.login("ann", onshi_server::domain::Role::Admin).await;
    let page = desk.page("/alerts").await;
    let csrf = csrf_of(&page);
    // Nothing checked: refused, with the page's layout.
    let refused = desk
        .post(
            "/alerts/bulk",
            &[("csrf", csrf.as_str()), ("action", "ack"), ("note", "x")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(body.contains("アラートを選んでください") && body.contains("header class=\"top\""));
    // Two checked.
    let ids = listed(&page);
    let two = [
        ("csrf", csrf.clone()),
        ("action", "resolve".into()),
        ("note", "現地で確認".into()),
        ("ids", ids[0].to_string()),
        ("ids", ids[1].to_string()),
        ("back", "/alerts".into()),
    ];
    let form: Vec<(&str, &str)> = two.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = desk.post("/alerts/bulk", &form).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let location = done.headers()["location"].to_str().unwrap().to_string();
    assert!(location.ends_with("done=resolve:2"), "{location}");
    assert!(
        desk.page(&location)
            .await
            .contains("2 件のアラートを解決済みにしました")
    );
    for id in &ids[..2] {
        let a = f.store.alerts().alert(*id).await.unwrap().unwrap();
        assert_eq!(a.status, AlertStatus::Resolved);
    }
    // Every match of the filters: the other 298, one audit line.
    let all = desk
        .post(
            "/alerts/bulk",
            &[
                ("csrf", csrf.as_str()),
                ("action", "ack"),
                ("note", "一括で確認"),
                ("until", ""),
                ("all_matching", "1"),
                ("rule", "backup_missing"),
                ("back", "/alerts?rule=backup_missing"),
            ],
        )
        .await;
    assert_eq!(all.status(), StatusCode::SEE_OTHER);
    assert!(
        all.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("done=ack:298")
    );
    let audit = f
        .store
        .staff()
        .audit_rows(&onshi_server::store::desk::AuditQuery {
            action: Some("bulk".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2, "one line per bulk action");
    assert!(audit[0].what.contains("(298 件)"), "{}", audit[0].what);
    assert_eq!(audit[0].what.matches('#').count(), 298, "it lists them");
    let acked = f
        .store
        .alerts()
        .active_alerts(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.status == AlertStatus::Acknowledged)
        .count();
    assert_eq!(acked, 298);
    // A viewer cannot.
    let viewer = f.app.login("vic", onshi_server::domain::Role::Viewer).await;
    let csrf = csrf_of(&viewer.page("/alerts").await);
    let r = viewer
        .post(
            "/alerts/bulk",
            &[
                ("csrf", csrf.as_str()),
                ("action", "resolve"),
                ("all_matching", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn csv_exports_follow_the_filters_with_a_bom() {
    let f = warned(30).await;
    let desk = f.app.login("ann", onshi_server::domain::Role::Viewer).await;
    for (path, rows) in [
        ("/export/terminals.csv", 30),
        ("/export/terminals.csv?q=PC-001", 10),
        ("/export/alerts.csv?rule=backup_missing", 30),
        ("/export/alerts.csv?severity=critical", 0),
    ] {
        let resp = desk.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv"),
            "{path}"
        );
        assert!(
            resp.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("attachment"),
            "{path}"
        );
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.starts_with("\u{feff}".as_bytes()), "{path}: a BOM");
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert_eq!(text.lines().count(), 1 + rows, "{path}:\n{text}");
    }
    // In the pages' order: the alerts as the alerts page lists them, the terminals by the sort.
    let first_column = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| {
                l.split(',')
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string()
            })
            .collect()
    };
    let csv = desk.get("/export/alerts.csv").await.text().await.unwrap();
    let page: Vec<String> = listed(&desk.page("/alerts").await)
        .iter()
        .map(i64::to_string)
        .collect();
    assert_eq!(first_column(&csv), page);
    let csv = desk
        .get("/export/terminals.csv?sort=hostname&desc=1")
        .await
        .text()
        .await
        .unwrap();
    let names: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap_or("").to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|a| std::cmp::Reverse(a.to_lowercase()));
    assert_eq!(
        (names.len(), &names),
        (30, &sorted),
        "by host name, descending"
    );
    let audit = desk.get("/export/audit.csv?action=login").await;
    let text = audit.text().await.unwrap();
    assert!(text.contains("ログイン"), "{text}");
    assert!(!text.contains("医療機関「"), "only logins");
}

#[tokio::test]
async fn the_audit_log_names_objects_and_changes_and_filters_and_pages() {
    let app = TestApp::spawn().await;
    let admin = app.login("ann", onshi_server::domain::Role::Admin).await;
    let now = Utc::now();
    let mut detail = app.desk.clinic(app.clinic_id).await.unwrap();
    detail.phone = Some("03-1111-2222".into());
    app.desk.save_clinic(&actor(), &detail, now).await.unwrap();
    let page = admin.page("/audit?action=clinic").await;
    assert!(
        page.contains("電話番号: (なし) → 03-1111-2222"),
        "before → after"
    );
    assert!(
        page.contains("さくら内科クリニック</a>"),
        "the clinic by name"
    );
    assert!(!page.contains("ログイン ("), "filtered to clinic changes");
    for i in 0..120 {
        app.desk
            .add_contact(
                &actor(),
                &onshi_server::domain::Contact {
                    id: 0,
                    clinic_id: app.clinic_id,
                    name: format!("担当{i}"),
                    role: String::new(),
                    email: None,
                    phone: None,
                },
                now,
            )
            .await
            .unwrap();
    }
    let first = admin.page("/audit?action=contact").await;
    let next = next_link(&first).expect("a next page");
    let second = admin.page(&next).await;
    assert!(first.contains("担当119") && !first.contains("担当19<"));
    assert!(second.contains("担当19") && !second.contains("担当119"));
}

#[tokio::test]
async fn codes_and_contacts_go_in_two_steps() {
    let app = TestApp::spawn().await;
    let admin = app.login("ann", onshi_server::domain::Role::Admin).await;
    let path = format!("/clinics/{}", app.clinic_id);
    let issued = admin
        .post_csrf(&format!("{path}/codes"), &[("label", "受付PC")])
        .await;
    let page = issued.text().await.unwrap();
    assert!(
        page.contains("install.ps1 -Server http://127.0.0.1:"),
        "the real URL"
    );
    assert!(page.contains("onshi-agent --server http://127.0.0.1:"));
    let codes = app
        .store
        .fleet()
        .enrollment_codes(app.clinic_id)
        .await
        .unwrap();
    let code = codes.iter().find(|c| c.label == "受付PC").unwrap();
    let listed = admin.page(&path).await;
    assert!(listed.contains(&format!("…{}", code.last_chars)));
    // The first step only asks.
    let confirm = admin
        .page(&format!("{path}/codes/{}/revoke", code.code_hash))
        .await;
    assert!(confirm.contains("受付PC") && confirm.contains("無効にしますか"));
    let still = app
        .store
        .fleet()
        .enrollment_codes(app.clinic_id)
        .await
        .unwrap();
    assert!(
        still
            .iter()
            .find(|c| c.code_hash == code.code_hash)
            .unwrap()
            .revoked_at
            .is_none()
    );
    let revoked = admin
        .post_csrf(
            &format!("{path}/codes/revoke"),
            &[("code_hash", code.code_hash.as_str())],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let after = app
        .store
        .fleet()
        .enrollment_codes(app.clinic_id)
        .await
        .unwrap();
    assert!(
        after
            .iter()
            .find(|c| c.code_hash == code.code_hash)
            .unwrap()
            .revoked_at
            .is_some()
    );
    // Saving the clinic says so.
    let saved = admin
        .get(&format!("{path}?saved=1"))
        .await
        .text()
        .await
        .unwrap();
    assert!(saved.contains("保存しました"));
    // A contact, asked about first.
    let id = app
        .desk
        .add_contact(
            &actor(),
            &onshi_server::domain::Contact {
                id: 0,
                clinic_id: app.clinic_id,
                name: "山田".into(),
                role: "事務長".into(),
                email: None,
                phone: Some("03-0000-1111".into()),
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let ask = admin.page(&format!("{path}/contacts/{id}/delete")).await;
    assert!(ask.contains("「山田」を削除しますか"));
    assert_eq!(
        app.store
            .fleet()
            .contacts(app.clinic_id)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_outbox_searches_and_shows_a_mail_as_sent() {
    let app = TestApp::spawn().await;
    let composer =
        onshi_server::notify::Composer::new(onshi_server::config::SmtpSettings::default());
    let now = Utc::now();
    let mails: Vec<_> = (0..3)
        .map(|i| composer.test_mail(&format!("c{i}@example.jp"), now + Duration::milliseconds(i)))
        .collect();
    app.store.outbox().enqueue_mails(&mails, now).await.unwrap();
    let desk = app.login("ann", onshi_server::domain::Role::Viewer).await;
    let found = desk.page("/outbox?q=c1%40example").await;
    assert!(found.contains("c1@example.jp") && !found.contains("c2@example.jp"));
    let id: i64 = found
        .split("href=\"/outbox/")
        .nth(1)
        .and_then(|s| s.split('"').next()?.parse().ok())
        .unwrap();
    let mail = desk.page(&format!("/outbox/{id}")).await;
    assert!(mail.contains("テストメール"), "the subject");
    assert!(mail.contains("Message-ID"), "the headers");
    assert!(mail.contains("このメールが届いていれば"), "the text part");
    let missing = desk.get("/outbox/999999").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_overview_clamps_a_page_past_the_end_and_names_problems() {
    let f = warned(3).await;
    let desk = f.app.login("ann", onshi_server::domain::Role::Viewer).await;
    let page = desk.page("/?page=999").await;
    assert!(page.contains("1 / 1 ページ"));
    assert_eq!(
        page.matches("terminal-link").count(),
        3,
        "the last page, not empty"
    );
    assert!(page.contains("バックアップなし"), "the problem is named");
    let _ = RuleKey::BackupMissing;
}

/// The terminal page says what its alerts say, and which source could not be read and why.
#[tokio::test]
async fn the_terminal_page_agrees_with_its_alerts() {
    let app = TestApp::spawn_with(|c| {
        c.policy = onshi_testkit::reports::agent_policy();
        c.alerts.evaluate_every_secs = 1;
    })
    .await;
    let desk = app.login("ann", onshi_server::domain::Role::Viewer).await;
    let agent = app.enroll("AGREE-PC").await;
    let seq = app.baselined(&agent, "AGREE-PC").await;
    let now = Utc::now();
    let mut r = report_at(now, "AGREE-PC");
    r.agent_id = agent.agent_id;
    r.seq = seq;
    r.snapshot.certificates.certs.clear();
    r.snapshot.notes.push(onshi_shared::SourceNote {
        area: "certificates".into(),
        detail: "CertOpenStore: Access is denied. (os error 5)".into(),
    });
    r.events
        .push(onshi_testkit::reports::linkage_password_changed(now));
    app.report(&agent, &r).await;
    let page = onshi_testkit::wait_for(
        "the linkage alert on the terminal page",
        std::time::Duration::from_secs(15),
        || async {
            let page = desk
                .try_page(&format!("/terminals/{}", agent.agent_id))
                .await?;
            page.contains("変更あり").then_some(page)
        },
    )
    .await
    .unwrap();
    let alerts_at = page.find("id=\"terminal-alerts\"").unwrap_or(0);
    assert!(
        page.contains("変更あり (アラート参照)"),
        "the account row agrees: {}",
        &page[alerts_at..(alerts_at + 1500).min(page.len())]
    );
    assert!(
        page.contains("電子証明書を読み取れませんでした (権限がありません)"),
        "the certificate area says why it is empty"
    );
    assert!(!page.contains("電子証明書が見つかりません"));
}

/// Pages read off the sort's index (a dense filter), from the start or from the end, list the
/// same lines in the same order as pages sorted after filtering, for every sort, both
/// directions and each filter.
#[tokio::test]
async fn overview_pages_read_off_the_sort_index_match_sorted_ones() {
    use onshi_server::domain::{HandlingKind, SeverityFilter};
    use onshi_server::store::desk::{FleetQuery, FleetRead, FleetSort};
    let n = 40;
    let mut f = fleet(n).await;
    let now = Utc::now();
    for i in 0..n {
        let mut r = report_at(now, &format!("PC-{:04}", (i * 7) % n));
        if i % 3 == 0 {
            r.snapshot.certificates.backup = None;
        }
        r.snapshot.uptime.last_start = now - Duration::minutes((i as i64 * 13) % 50);
        if let Some(c) = r.snapshot.certificates.certs.first_mut() {
            c.not_after = now + Duration::days((i as i64 * 11) % 30);
        }
        f.report(i, r, now).await;
    }
    f.evaluator(None).full_pass(now).await.unwrap();
    let desk = f.store.fleet();
    let filters = [
        FleetQuery {
            severity: Some(SeverityFilter::Warning),
            ..FleetQuery::default()
        },
        FleetQuery {
            handling: Some(HandlingKind::Unhandled),
            ..FleetQuery::default()
        },
        FleetQuery {
            clinic_id: Some(f.clinic_id),
            ..FleetQuery::default()
        },
        FleetQuery {
            search: Some("pc-00".into()),
            ..FleetQuery::default()
        },
        FleetQuery {
            rule: Some(RuleKey::BackupMissing),
            ..FleetQuery::default()
        },
    ];
    for filter in filters {
        for sort in FleetSort::ALL {
            for descending in [false, true] {
                let matching = desk.fleet_count(&filter).await.unwrap();
                let reads = [
                    FleetRead::Sorted,
                    FleetRead::InOrder,
                    FleetRead::Reversed { matching },
                ];
                let mut seen = [Vec::new(), Vec::new(), Vec::new()];
                for (k, read) in reads.into_iter().enumerate() {
                    for offset in (0..n as i64).step_by(7) {
                        let q = FleetQuery {
                            sort,
                            descending,
                            offset,
                            limit: 7,
                            read,
                            ..filter.clone()
                        };
                        seen[k].extend(
                            desk.fleet_rows(&q)
                                .await
                                .unwrap()
                                .into_iter()
                                .map(|r| r.line.terminal_id),
                        );
                    }
                }
                assert!(!seen[0].is_empty(), "{filter:?} matches something");
                let what = format!("{filter:?} by {sort:?}, desc {descending}");
                assert_eq!(seen[0].len() as i64, matching, "{what}");
                assert_eq!(seen[0], seen[1], "in order: {what}");
                assert_eq!(seen[0], seen[2], "from the end: {what}");
            }
        }
    }
}
