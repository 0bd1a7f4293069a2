//! Staff actions through the desk layer itself (no HTTP), and the command line: every action
//! from a shell is validated like the dashboard's and shows on `/audit` with who, what and on
//! which terminal or clinic.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use clap::Parser;
use onshi_server::Error;
use onshi_server::cli::{Cli, staff_command};
use onshi_server::desk::{SilenceRequest, new_clinic};
use onshi_server::domain::{Actor, AlertStatus, Role, RuleKey, SilenceScope};
use onshi_testkit::reports::{linkage_password_changed, report_at};

use super::support::{TestApp, actor};

/// An open critical alert on a terminal whose linkage account's password changed after its
/// first report.
async fn broken_terminal(app: &TestApp) -> (uuid::Uuid, i64) {
    let agent = app.enroll("PC-1").await;
    let seq = app.baselined(&agent, "PC-1").await;
    let now = Utc::now();
    let mut r = report_at(now, "PC-1");
    r.agent_id = agent.agent_id;
    r.seq = seq;
    r.events.push(linkage_password_changed(now));
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
    (agent.agent_id, alert.id)
}

#[tokio::test]
async fn the_desk_refuses_the_same_things_whoever_asks() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let web = Actor::Staff {
        user_id: 1,
        name: "ann".into(),
    };
    for who in [&web, &actor()] {
        let bad_name = app
            .desk
            .add_clinic(who, "さくら\r\nBcc: x@example.jp", "a@example.jp", now)
            .await;
        assert!(
            matches!(bad_name, Err(Error::Invalid(m)) if m.contains("改行")),
            "{who:?}"
        );
        let backwards = SilenceRequest {
            scope: SilenceScope::Clinic(app.clinic_id),
            rule: None,
            starts_at: now + Duration::hours(2),
            ends_at: now + Duration::hours(1),
            daily: None,
            reason: "工事".into(),
        };
        let refused = app.desk.silence(who, &backwards, now).await;
        assert!(
            matches!(refused, Err(Error::Invalid(_))),
            "{who:?}: {refused:?}"
        );
        let past = app
            .desk
            .acknowledge(who, 1, "", Some(now - Duration::minutes(1)), now)
            .await;
        assert!(matches!(past, Err(Error::Invalid(_))), "{who:?}");
    }
    // Nothing refused was written, not even to the audit log.
    let audit = app
        .store
        .staff()
        .audit_rows(&onshi_server::store::desk::AuditQuery {
            clinic_id: None,
            terminal_id: None,
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(audit.iter().all(|a| !a.what.contains("工事")), "{audit:?}");
}

#[tokio::test]
async fn each_desk_action_writes_its_change_and_its_audit_line_together() {
    let app = TestApp::spawn().await;
    let (terminal, alert) = broken_terminal(&app).await;
    let ann = Actor::Staff {
        user_id: 7,
        name: "ann".into(),
    };
    let now = Utc::now();
    app.desk
        .acknowledge(&ann, alert, "電話済み", Some(now + Duration::hours(4)), now)
        .await
        .unwrap();
    let a = app.store.alerts().alert(alert).await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.ack_by.as_deref()),
        (AlertStatus::Acknowledged, Some("ann"))
    );
    let silence = app
        .desk
        .silence(
            &ann,
            &SilenceRequest {
                scope: SilenceScope::Terminal(terminal),
                rule: None,
                starts_at: now,
                ends_at: now + Duration::hours(1),
                daily: None,
                reason: "端末の入れ替え".into(),
            },
            now,
        )
        .await
        .unwrap();
    app.desk
        .end_silence(&ann, silence, now + Duration::minutes(5))
        .await
        .unwrap();
    assert!(
        app.store
            .alerts()
            .silences_in_force(now + Duration::minutes(6))
            .await
            .unwrap()
            .is_empty(),
        "ended early"
    );
    let audit = app
        .store
        .staff()
        .audit_rows(&onshi_server::store::desk::AuditQuery {
            clinic_id: None,
            terminal_id: Some(terminal),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let lines: Vec<(&str, &str, Option<i64>)> = audit
        .iter()
        .map(|a| (a.actor.as_str(), a.what.as_str(), a.alert_id))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|(who, _, _)| *who == "ann"));
    assert!(lines[2].1.contains("確認済み") && lines[2].2 == Some(alert));
    assert!(lines[1].1.contains("通知を停止"));
    assert!(lines[0].1.contains("終了"));
    assert!(audit.iter().all(|a| a.clinic_id == Some(app.clinic_id)));
    // A clinic's details, through the same function the clinic form uses.
    let mut detail = new_clinic("ひまわり薬局", "himawari@example.jp");
    detail.code = Some("13-1 2345678".into());
    let id = app.desk.save_clinic(&ann, &detail, now).await.unwrap();
    let dup = app.desk.save_clinic(&ann, &detail, now).await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    let clinic_audit = app
        .store
        .staff()
        .audit_rows(&onshi_server::store::desk::AuditQuery {
            clinic_id: Some(id),
            terminal_id: None,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(clinic_audit.len(), 1, "the refused duplicate wrote nothing");
}

/// Runs one command line as `actor`.
async fn cli(app: &TestApp, actor: &Actor, args: &[&str]) -> String {
    let mut argv = vec!["onshi-server"];
    argv.extend_from_slice(args);
    let parsed = Cli::try_parse_from(argv).unwrap();
    staff_command(&app.desk, actor, parsed.command, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[tokio::test]
async fn every_command_line_action_shows_on_the_audit_page() {
    let app = TestApp::spawn().await;
    let (terminal, alert) = broken_terminal(&app).await;
    let ops = Actor::CommandLine {
        os_user: "ops-tanaka".into(),
    };
    let printed = cli(
        &app,
        &ops,
        &[
            "clinic",
            "add",
            "あおば小児科",
            "--email",
            "aoba@example.jp",
        ],
    )
    .await;
    let code = printed
        .lines()
        .find_map(|l| l.strip_prefix("enrollment code: "))
        .unwrap()
        .to_string();
    let alert_id = alert.to_string();
    let terminal_id = terminal.to_string();
    let csv_dir = tempfile::tempdir().unwrap();
    let csv = csv_dir.path().join("closures.csv");
    std::fs::write(&csv, "2027-02-10,,臨時休診\n2027-05-01,2027-05-06,連休\n").unwrap();
    let csv = csv.to_string_lossy().to_string();
    let steps: Vec<Vec<&str>> = vec![
        vec!["clinic", "code", "あおば小児科"],
        vec!["alerts", "note", &alert_id, "折り返し待ち"],
        vec![
            "alerts",
            "ack",
            &alert_id,
            "--note",
            "電話済み",
            "--hours",
            "2",
        ],
        vec!["alerts", "resolve", &alert_id, "--note", "現地で確認"],
        vec![
            "alerts",
            "silence",
            "--terminal",
            &terminal_id,
            "--hours",
            "3",
            "--reason",
            "部品交換",
        ],
        vec![
            "alerts",
            "silence",
            "--clinic",
            "あおば小児科",
            "--until",
            "2099-01-01 09:00",
            "--reason",
            "改装",
        ],
        vec![
            "alerts",
            "hours",
            "あおば小児科",
            "--open",
            "08:30",
            "--close",
            "12:30",
            "--closed",
            "sun,thu",
        ],
        vec![
            "alerts",
            "hours",
            "あおば小児科",
            "--week",
            "mon=09:00-12:30,15:00-18:30;thu=09:00-12:30;sat=09:00-12:30",
            "--closed-obon",
        ],
        vec![
            "clinic",
            "closure",
            "add",
            "あおば小児科",
            "--from",
            "2027-01-10",
            "--reason",
            "学会",
        ],
        vec!["clinic", "closure", "import", "あおば小児科", &csv],
        vec!["clinic", "accounts", "あおば小児科", "--linkage", "renkei2"],
        vec![
            "clinic",
            "rules",
            "あおば小児科",
            "--restart-warning-hours",
            "30",
        ],
        vec![
            "alerts",
            "silence",
            "--prefecture",
            "東京都",
            "--rule",
            "offline",
            "--daily",
            "03:30-05:00",
            "--hours",
            "48",
            "--reason",
            "自動再起動",
        ],
        vec![
            "alerts",
            "silence",
            "--fleet",
            "--hours",
            "1",
            "--reason",
            "配信サーバーの障害",
        ],
        vec![
            "confirm-accounts",
            &terminal_id,
            "--windows",
            "onshi",
            "--face-auth",
            "kao",
        ],
        vec!["alerts", "expected-version", "配信アプリ", "2.5.0"],
        vec!["revoke-code", &code],
        vec!["user", "add", "kato", "--role", "viewer"],
        vec!["user", "passwd", "kato"],
        vec!["user", "disable", "kato"],
        vec!["user", "enable", "kato"],
        vec![
            "user",
            "access",
            "kato",
            "--role",
            "viewer",
            "--prefecture",
            "北海道",
            "--prefecture",
            "青森県",
        ],
        vec!["revoke-terminal", &terminal_id],
    ];
    for step in &steps {
        cli(&app, &ops, step).await;
    }
    let silences = app
        .store
        .alerts()
        .silences_in_force(Utc::now())
        .await
        .unwrap();
    let silence = silences
        .iter()
        .find(|s| s.reason == "部品交換")
        .unwrap()
        .id
        .to_string();
    cli(&app, &ops, &["alerts", "end-silence", &silence]).await;
    let aoba = app
        .desk
        .clinic_named("あおば小児科")
        .await
        .unwrap()
        .settings;
    assert_eq!(aoba.hours.closures.len(), 3, "one added, two imported");
    assert!(aoba.hours.closed_obon && aoba.hours.week[3].len() == 1);
    assert_eq!(aoba.rules.restart_warning_hours, Some(30));
    assert_eq!(aoba.accounts.len(), 1);
    assert_eq!(aoba.accounts[0].name, "renkei2");
    // A refusal from the command line is the desk's, word for word.
    let parsed =
        Cli::try_parse_from(["onshi-server", "alerts", "ack", &alert_id, "--hours=-1"]).unwrap();
    let refused = staff_command(&app.desk, &ops, parsed.command, Utc::now()).await;
    assert!(matches!(refused, Err(Error::Invalid(m)) if m.contains("未来の日時")));

    let desk = app.login("auditor", Role::Viewer).await;
    let page = desk.page("/audit").await;
    let rows: Vec<&str> = page
        .split("<tr>")
        .filter(|r| r.contains("コマンドライン (ops-tanaka)"))
        .collect();
    let aoba = app
        .store
        .clinic_by_name("あおば小児科")
        .await
        .unwrap()
        .unwrap()
        .id;
    let expect: [(&str, Option<String>); 25] = [
        (
            "医療機関「あおば小児科」を登録",
            Some(format!("/clinics/{aoba}")),
        ),
        ("登録コード (…", Some(format!("/clinics/{aoba}"))),
        (
            "にメモ: 折り返し待ち",
            Some(format!("/terminals/{terminal}")),
        ),
        ("を確認済みに", Some(format!("/terminals/{terminal}"))),
        (
            "を解決済みに: 現地で確認",
            Some(format!("/terminals/{terminal}")),
        ),
        ("(部品交換)", Some(format!("/terminals/{terminal}"))),
        ("(改装)", Some(format!("/clinics/{aoba}"))),
        ("の診療時間を変更", Some(format!("/clinics/{aoba}"))),
        (
            "休診日 2027-01-10 を追加 (学会)",
            Some(format!("/clinics/{aoba}")),
        ),
        ("休診日 2 件を取り込み", Some(format!("/clinics/{aoba}"))),
        (
            "医療機関「あおば小児科」を更新",
            Some(format!("/clinics/{aoba}")),
        ),
        ("東京都の全端末の「報告なし」", None),
        ("毎日 03:30〜05:00", None),
        ("全端末 ", None),
        (
            "の保護アカウント名を確認",
            Some(format!("/terminals/{terminal}")),
        ),
        ("期待するバージョンを 2.5.0 に", None),
        ("… を無効化", Some(format!("/clinics/{aoba}"))),
        ("ユーザー kato (閲覧者、全体) を作成", None),
        ("ユーザー kato のパスワードを変更", None),
        ("ユーザー kato を無効化", None),
        ("ユーザー kato を有効化", None),
        (
            "ユーザー kato を 閲覧者、担当範囲 北海道・青森県 に変更",
            None,
        ),
        ("の登録を取り消し", Some(format!("/terminals/{terminal}"))),
        ("通知の停止 #", Some(format!("/terminals/{terminal}"))),
        (
            "医療機関「あおば小児科」の",
            Some(format!("/clinics/{aoba}")),
        ),
    ];
    for (what, object) in expect {
        let row = rows
            .iter()
            .find(|r| r.contains(what))
            .unwrap_or_else(|| panic!("no audit line with {what:?} by the command line:\n{page}"));
        if let Some(href) = object {
            assert!(row.contains(&format!("href=\"{href}\"")), "{what}: {row}");
        }
    }
    assert!(rows.len() >= steps.len() + 2, "{} lines", rows.len());
}
