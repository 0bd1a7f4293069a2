//! Alerts a clinic can trust, on the real store and evaluator: calendars decide offline and
//! liveness, severity stays beside how staff handle it, silences of every scope hold mail
//! back and the mail goes once after the window, agents get their clinic's names and backup
//! password.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use onshi_server::calendar::{BusinessHours, Closure, parse_week};
use onshi_server::desk::SilenceRequest;
use onshi_server::domain::{
    AlertStatus, DailyWindow, Handling, HandlingKind, Liveness, OverviewLine, RuleKey, Severity,
    SilenceScope,
};
use onshi_server::store::desk::FleetQuery;
use onshi_server::store::{NewTerminal, Store};
use onshi_shared::{AccountRole, AccountSpec, ReportAck};
use onshi_testkit::reports::{linkage_password_changed, report_at};
use uuid::Uuid;

use super::alerts::{Fleet, fleet, staff};
use super::support::{TestApp, actor};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn line(store: &Arc<dyn Store>, id: Uuid) -> OverviewLine {
    store
        .fleet()
        .overview_lines()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.terminal_id == id)
        .unwrap()
}

async fn has_offline_alert(f: &Fleet, i: usize) -> bool {
    f.alert(i, RuleKey::Offline).await.is_some()
}

#[tokio::test]
async fn the_clinics_calendar_decides_offline_and_liveness() {
    let mut f = fleet(2).await;
    // A lunch break on weekdays, Saturday mornings only; 臨時休診 on Thursday 11/26.
    let week = parse_week(
        "mon=09:00-12:30,14:00-18:00;tue=09:00-12:30,14:00-18:00;wed=09:00-12:30,14:00-18:00;\
         thu=09:00-12:30,14:00-18:00;fri=09:00-12:30,14:00-18:00;sat=09:00-12:30",
    )
    .unwrap();
    let hours = BusinessHours {
        week,
        ..BusinessHours::default()
    };
    f.app
        .desk
        .set_hours(&actor(), f.clinic_id, hours, None, None, Utc::now())
        .await
        .unwrap();
    let thursday = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    f.app
        .desk
        .add_closures(
            &actor(),
            f.clinic_id,
            vec![Closure {
                id: 0,
                from: thursday,
                to: thursday,
                reason: "院長学会".into(),
            }],
            Utc::now(),
        )
        .await
        .unwrap();
    // Wed 11/25: PC-0 is switched off at 12:29 for lunch, PC-1 at 17:58 for the night.
    let lunch = utc("2026-11-25T03:29:00Z");
    let evening = utc("2026-11-25T08:58:00Z");
    f.report(0, report_at(lunch, "PC-0"), lunch).await;
    f.report(1, report_at(evening, "PC-1"), evening).await;
    let mut ev = f.evaluator(None);
    // 13:59: PC-0 missed one minute of open time, over lunch: 営業時間外.
    ev.full_pass(utc("2026-11-25T04:59:00Z")).await.unwrap();
    assert!(!has_offline_alert(&f, 0).await);
    assert_eq!(
        line(&f.store, f.terminals[0]).await.liveness,
        Liveness::OutsideHours
    );
    // 14:02: three minutes of open time without a report: オフライン.
    ev.full_pass(utc("2026-11-25T05:02:00Z")).await.unwrap();
    assert!(has_offline_alert(&f, 0).await);
    assert_eq!(
        line(&f.store, f.terminals[0]).await.liveness,
        Liveness::Offline
    );
    // PC-1 through the night, through the closed Thursday and into Friday morning.
    for (at, want) in [
        ("2026-11-25T14:00:00Z", Liveness::OutsideHours), // Wed 23:00
        ("2026-11-26T01:00:00Z", Liveness::OutsideHours), // Thu 10:00, 臨時休診
        ("2026-11-27T00:00:30Z", Liveness::OutsideHours), // Fri 09:00:30, 2.5 min open
        ("2026-11-27T00:02:00Z", Liveness::Offline),      // Fri 09:02
    ] {
        ev.full_pass(utc(at)).await.unwrap();
        assert_eq!(line(&f.store, f.terminals[1]).await.liveness, want, "{at}");
        assert_eq!(
            has_offline_alert(&f, 1).await,
            want == Liveness::Offline,
            "{at}"
        );
    }
    // The overview filters by liveness.
    let q = FleetQuery {
        liveness: Some(Liveness::Offline),
        limit: 10,
        ..FleetQuery::default()
    };
    assert_eq!(f.store.fleet().fleet_count(&q).await.unwrap(), 2);
}

/// Two clinics (東京都 and 大阪府) with two terminals each, enrolled straight into the store.
async fn two_clinics() -> (Fleet, i64) {
    let mut f = fleet(2).await;
    let now = Utc::now();
    let desk = &f.app.desk;
    let mut tokyo = desk.clinic(f.clinic_id).await.unwrap();
    tokyo.settings.prefecture = Some("東京都".into());
    desk.save_clinic(&actor(), &tokyo, now).await.unwrap();
    let osaka = desk
        .add_clinic(&actor(), "なにわ薬局", "naniwa@example.jp", now)
        .await
        .unwrap();
    let mut detail = desk.clinic(osaka.id).await.unwrap();
    detail.settings.prefecture = Some("大阪府".into());
    desk.save_clinic(&actor(), &detail, now).await.unwrap();
    let code = desk.issue_code(&actor(), osaka.id, now).await.unwrap();
    let more: Vec<Uuid> = (0..2).map(|_| Uuid::now_v7()).collect();
    let rows: Vec<NewTerminal> = more
        .iter()
        .enumerate()
        .map(|(i, id)| NewTerminal {
            id: *id,
            token_hash: id.to_string(),
            hostname: format!("OSAKA-{i}"),
            agent_version: "0.1.0".into(),
            os: "Windows 11".into(),
        })
        .collect();
    f.store
        .enroll(&onshi_server::enroll::hash_code(&code), &rows, now)
        .await
        .unwrap()
        .unwrap();
    f.terminals.extend(more);
    (f, osaka.id)
}

#[tokio::test]
async fn silences_hold_mail_by_scope_and_rule_and_it_goes_once_after() {
    let (mut f, _osaka) = two_clinics().await;
    // Thursday 11/26, JST: clean reports at 03:00 give the baselines.
    let first = utc("2026-11-25T18:00:00Z");
    for i in 0..4 {
        f.report(i, report_at(first, &format!("PC-{i}")), first)
            .await;
    }
    let mut ev = f.evaluator(None);
    ev.full_pass(first).await.unwrap();
    let desk = f.app.desk.clone();
    let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let silence = |scope, rule, starts_at, ends_at, daily, reason: &str| SilenceRequest {
        scope,
        rule,
        starts_at,
        ends_at,
        daily,
        reason: reason.into(),
    };
    let requests = [
        // PC-1: one terminal until 06:00.
        silence(
            SilenceScope::Terminal(f.terminals[1]),
            None,
            first,
            utc("2026-11-25T21:00:00Z"),
            None,
            "端末の入れ替え",
        ),
        // 大阪府: every night 03:30–05:00 for the 04:00 automatic restart.
        silence(
            SilenceScope::Prefecture("大阪府".into()),
            None,
            first,
            first + Duration::days(30),
            Some(DailyWindow {
                from: t(3, 30),
                to: t(5, 0),
                weekdays: 0x7f,
            }),
            "04:00 の自動再起動",
        ),
        // The whole fleet, offline only (a vendor-side outage): other rules still mail.
        silence(
            SilenceScope::Fleet,
            Some(RuleKey::Offline),
            first,
            first + Duration::days(1),
            None,
            "配信サーバーの障害",
        ),
    ];
    for r in &requests {
        desk.silence(&staff("suzuki"), r, first).await.unwrap();
    }
    // 03:50: the linkage password changes on PC-0 (東京), PC-1 (東京, silenced), OSAKA-0.
    let broken = utc("2026-11-25T18:50:00Z");
    for i in [0, 1, 2] {
        let mut r = report_at(broken, &format!("PC-{i}"));
        r.events.push(linkage_password_changed(broken));
        f.report(i, r, broken).await;
    }
    let stats = ev.full_pass(broken).await.unwrap();
    assert_eq!(stats.mails, 1, "only PC-0's goes now");
    for i in [1, 2] {
        let a = f.alert(i, RuleKey::ProtectedAccountLinkage).await.unwrap();
        assert!(a.mail_held, "PC-{i}'s mail is held");
        assert_eq!(a.severity, Severity::Critical);
    }
    // Severity stays, handling beside it.
    let l0 = line(&f.store, f.terminals[0]).await;
    assert_eq!(
        (l0.severity, l0.handling.kind()),
        (Some(Severity::Critical), HandlingKind::Unhandled)
    );
    let l1 = line(&f.store, f.terminals[1]).await;
    assert_eq!(l1.severity, Some(Severity::Critical));
    assert_eq!(
        l1.handling,
        Handling::Silenced {
            by: "suzuki".into(),
            until: utc("2026-11-25T21:00:00Z"),
            reason: "端末の入れ替え".into()
        }
    );
    assert_eq!(
        line(&f.store, f.terminals[2]).await.handling.kind(),
        HandlingKind::Silenced
    );
    // 05:10: the nightly window is over: OSAKA-0's mail goes, once; PC-1 is still silenced.
    let after_window = utc("2026-11-25T20:10:00Z");
    assert_eq!(ev.full_pass(after_window).await.unwrap().mails, 1);
    let a2 = f.alert(2, RuleKey::ProtectedAccountLinkage).await.unwrap();
    assert!(!a2.mail_held);
    let history: Vec<String> = f
        .store
        .alerts()
        .alert_history(a2.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.action)
        .collect();
    assert!(
        history.contains(&"held_mail_sent".to_string()),
        "{history:?}"
    );
    assert_eq!(
        ev.full_pass(after_window + Duration::minutes(10))
            .await
            .unwrap()
            .mails,
        0,
        "once"
    );
    // Staff take PC-1 before its window ends: 対応中, and the held mail is not needed.
    let a1 = f.alert(1, RuleKey::ProtectedAccountLinkage).await.unwrap();
    desk.acknowledge(
        &staff("tanaka"),
        a1.id,
        "入れ替え業者が対応中",
        None,
        after_window,
    )
    .await
    .unwrap();
    let after_all = utc("2026-11-25T21:10:00Z");
    assert_eq!(ev.full_pass(after_all).await.unwrap().mails, 0);
    let l1 = line(&f.store, f.terminals[1]).await;
    assert_eq!(
        (l1.severity, l1.handling.clone()),
        (
            Some(Severity::Critical),
            Handling::InProgress {
                by: "tanaka".into(),
                until: None
            }
        )
    );
    let a1 = f.store.alerts().alert(a1.id).await.unwrap().unwrap();
    assert_eq!(
        (a1.status, a1.mail_held),
        (AlertStatus::Acknowledged, false)
    );
    // Switched off for the night with a critical open: still 緊急, and 営業時間外 beside it.
    assert_eq!(l1.liveness, Liveness::OutsideHours);
    // The overview's "unhandled only" filter finds PC-0 and OSAKA-0 (its mail went out,
    // nobody took it).
    let q = FleetQuery {
        handling: Some(HandlingKind::Unhandled),
        limit: 10,
        ..FleetQuery::default()
    };
    let rows = f.store.fleet().fleet_rows(&q).await.unwrap();
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.line.terminal_id).collect();
    ids.sort();
    let mut want = vec![f.terminals[0], f.terminals[2]];
    want.sort();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn agents_get_their_clinics_names_and_backup_password_and_staff_can_end_a_silence() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let mut clinic = app.desk.clinic(app.clinic_id).await.unwrap();
    clinic.settings.accounts = vec![AccountSpec {
        role: AccountRole::Linkage,
        name: "renkei-uketsuke".into(),
    }];
    app.desk.save_clinic(&actor(), &clinic, now).await.unwrap();
    app.desk
        .set_backup_password(&actor(), app.clinic_id, Some("2468"), now)
        .await
        .unwrap();
    let agent = app.enroll("PC-1").await;
    let linkage = |p: &onshi_shared::AgentPolicy| {
        p.accounts
            .iter()
            .find(|a| a.role == AccountRole::Linkage)
            .map(|a| a.name.clone())
    };
    assert_eq!(linkage(&agent.policy).as_deref(), Some("renkei-uketsuke"));
    assert_eq!(agent.policy.backup_passwords, vec!["2468".to_string()]);
    // Staff confirm the names on the terminal page: the terminal's own Windows name.
    app.desk
        .confirm_accounts(
            &actor(),
            agent.agent_id,
            &[
                AccountSpec {
                    role: AccountRole::Windows,
                    name: "受付".into(),
                },
                AccountSpec {
                    role: AccountRole::Linkage,
                    name: "renkei-uketsuke".into(),
                },
            ],
            now,
        )
        .await
        .unwrap();
    let mut r = report_at(now, "PC-1");
    r.agent_id = agent.agent_id;
    let resp = app.post_report(&agent.token, &r).await;
    let ack: ReportAck = resp.json().await.unwrap();
    let windows = ack
        .policy
        .accounts
        .iter()
        .find(|a| a.role == AccountRole::Windows)
        .unwrap();
    assert_eq!(windows.name, "受付");
    assert_eq!(linkage(&ack.policy).as_deref(), Some("renkei-uketsuke"));
    assert_eq!(
        app.store
            .fleet()
            .terminal_accounts(agent.agent_id)
            .await
            .unwrap(),
        vec![AccountSpec {
            role: AccountRole::Windows,
            name: "受付".into()
        }],
        "only what differs from the clinic's is the terminal's own"
    );
    // The password is in no page, no audit line, and not in clear in the database.
    let audit = app
        .store
        .staff()
        .audit_rows(&onshi_server::store::desk::AuditQuery {
            clinic_id: Some(app.clinic_id),
            terminal_id: None,
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.what.contains("バックアップのパスワードを設定"))
    );
    assert!(audit.iter().all(|a| !a.what.contains("2468")));
    if onshi_testkit::pg::enabled() {
        let db = app.raw_db().await;
        let stored = db
            .int("SELECT COUNT(*) FROM backup_passwords WHERE length(sealed) > 4")
            .await;
        let plain = db
            .int(
                "SELECT COUNT(*) FROM backup_passwords \
                 WHERE position(convert_to('2468', 'UTF8') in sealed) > 0 \
                 OR position(convert_to('2468', 'UTF8') in nonce) > 0",
            )
            .await;
        assert_eq!((stored, plain), (1, 0), "sealed at rest");
    } else {
        let db = std::fs::read(app.dir().join("onshi.db")).unwrap();
        let wal = std::fs::read(app.dir().join("onshi.db-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            assert!(!bytes.windows(4).any(|w| w == b"2468"), "sealed at rest");
        }
    }
    let admin = app.login("ann", onshi_server::domain::Role::Admin).await;
    let page = admin.page(&format!("/clinics/{}", app.clinic_id)).await;
    assert!(page.contains("この医療機関のパスワードで確認しています"));
    assert!(!page.contains("2468"));
    // Cleared: back to 1357 for this clinic's agents.
    app.desk
        .set_backup_password(&actor(), app.clinic_id, None, now)
        .await
        .unwrap();
    let again = app.enroll("PC-2").await;
    assert!(again.policy.backup_passwords.is_empty());

    // A fleet-wide nightly window on the silences page, with who, why and until; ended early.
    let form = [
        ("scope", "fleet"),
        ("rule", ""),
        ("starts", ""),
        ("ends", "2030-01-01T00:00"),
        ("daily_from", "03:30"),
        ("daily_to", "05:00"),
        ("reason", "自動電源設定の再起動"),
        ("back", "/silences"),
    ];
    let resp = admin.post_csrf("/silences", &form).await;
    assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER);
    let page = admin.page("/silences").await;
    for want in [
        "全端末",
        "毎日 03:30〜05:00",
        "自動電源設定の再起動",
        "ann",
        "今すぐ終了",
    ] {
        assert!(page.contains(want), "the silences page shows {want}");
    }
    let id = app
        .store
        .alerts()
        .silences_in_force(Utc::now())
        .await
        .unwrap()[0]
        .id;
    let ended = admin
        .post_csrf(&format!("/silences/{id}/end"), &[("back", "/silences")])
        .await;
    assert_eq!(ended.status(), reqwest::StatusCode::SEE_OTHER);
    assert!(
        app.store
            .alerts()
            .silences_in_force(Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    let page = admin.page("/silences").await;
    assert!(page.contains("ann が終了"), "who ended it");
}

#[tokio::test]
async fn closures_are_added_imported_and_deleted_from_the_clinic_page() {
    let app = TestApp::spawn().await;
    let admin = app.login("ann", onshi_server::domain::Role::Admin).await;
    let path = format!("/clinics/{}", app.clinic_id);
    let add = admin
        .post_csrf(
            &format!("{path}/closures"),
            &[("from", "2026-12-24"), ("to", ""), ("reason", "院長不在")],
        )
        .await;
    assert_eq!(add.status(), reqwest::StatusCode::SEE_OTHER);
    let csv = "初日,最終日,理由\n2027/02/10,,臨時休診\n2027-05-01,2027-05-06,連休\n";
    let import = admin
        .post_csrf(&format!("{path}/closures/import"), &[("csv", csv)])
        .await;
    assert_eq!(import.status(), reqwest::StatusCode::SEE_OTHER);
    let bad = admin
        .post_csrf(
            &format!("{path}/closures/import"),
            &[("csv", "2027-01-01,2026-12-01,逆")],
        )
        .await;
    assert_eq!(bad.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().await.unwrap().contains("前です"));
    let closures = app
        .desk
        .clinic(app.clinic_id)
        .await
        .unwrap()
        .settings
        .hours
        .closures;
    assert_eq!(closures.len(), 3);
    let page = admin.page(&path).await;
    for want in ["2026/12/24", "院長不在", "2027/05/06", "連休"] {
        assert!(page.contains(want), "{want}");
    }
    let del = admin
        .post_csrf(&format!("{path}/closures/{}/delete", closures[0].id), &[])
        .await;
    assert_eq!(del.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(
        app.desk
            .clinic(app.clinic_id)
            .await
            .unwrap()
            .settings
            .hours
            .closures
            .len(),
        2
    );
    let audit = app
        .store
        .staff()
        .audit_rows(&onshi_server::store::desk::AuditQuery {
            clinic_id: Some(app.clinic_id),
            terminal_id: None,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.what.contains("休診日 2 件を取り込み"))
    );
}

#[tokio::test]
async fn a_clinic_can_have_its_own_restart_and_file_rename_rules() {
    let mut f = fleet(1).await;
    let now = Utc::now();
    let mut r = report_at(now, "PC-0");
    r.snapshot.uptime.last_start = now - Duration::hours(30);
    r.snapshot.uptime.last_boot = now - Duration::hours(30);
    // Security software keeps a file rename pending for days.
    r.snapshot.apps.pending_reboot = Some(onshi_shared::PendingReboot {
        reasons: vec!["PendingFileRenameOperations".into()],
        since: Some(now - Duration::days(5)),
        markers: vec![onshi_shared::RebootMarker {
            source: onshi_shared::RebootSource::FileRename,
            since: Some(now - Duration::days(5)),
            detail: None,
        }],
    });
    f.report(0, r, now).await;
    let mut ev = f.evaluator(None);
    ev.full_pass(now).await.unwrap();
    assert!(
        f.alert(0, RuleKey::NoDailyRestart).await.is_some(),
        "26 h by default"
    );
    assert!(
        f.alert(0, RuleKey::PendingReboot).await.is_none(),
        "a file rename alone is shown, not alerted"
    );
    let mut clinic = f.app.desk.clinic(f.clinic_id).await.unwrap();
    clinic.settings.rules.restart_warning_hours = Some(48);
    clinic.settings.rules.restart_critical_hours = Some(96);
    clinic.settings.rules.file_rename_counts = true;
    f.app
        .desk
        .save_clinic(&actor(), &clinic, now)
        .await
        .unwrap();
    let later = now + Duration::minutes(1);
    ev.full_pass(later).await.unwrap();
    let restart = f.alert(0, RuleKey::NoDailyRestart).await.unwrap();
    assert!(
        restart.clear_since.is_some(),
        "30 h is within this clinic's 48 h"
    );
    assert!(
        f.alert(0, RuleKey::PendingReboot).await.is_some(),
        "this clinic counts a file rename"
    );
}
