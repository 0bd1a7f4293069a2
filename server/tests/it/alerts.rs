//! Alerts, the evaluator and the outbox against a real SQLite database, and mail delivery to a
//! real SMTP receiver on a loopback port.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use onshi_server::config::{SmtpSettings, TlsMode};
use onshi_server::desk::SilenceRequest;
use onshi_server::domain::{
    Actor, Alert, AlertStatus, MailKind, NewMail, Role, RuleKey, Severity, SilenceScope,
};
use onshi_server::evaluator::Evaluator;
use onshi_server::ingest;
use onshi_server::notify::{Composer, Sender, Transport};
use onshi_server::store::{NewTerminal, Store};
use onshi_shared::{AccountChange, AccountRole, Event, EventKind, Report};
use onshi_testkit::reports::{agent_policy, linkage_password_changed, report_at};
use onshi_testkit::{Mode, SmtpReceiver};
use uuid::Uuid;

use onshi_server::store::alerts::MailOutcome;

use super::support::{RawDb, TestApp};

/// A sender that is not being stopped.
static NOT_STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A server without its own evaluator, and terminals enrolled straight into its store: the
/// tests run evaluator passes themselves, at the times they choose.
pub(super) struct Fleet {
    pub app: TestApp,
    pub store: Arc<dyn Store>,
    pub clinic_id: i64,
    pub terminals: Vec<Uuid>,
    seq: i64,
}

/// A staff member as the desk layer sees one.
pub(super) fn staff(name: &str) -> Actor {
    Actor::Staff {
        user_id: 1,
        name: name.into(),
    }
}

pub(super) async fn fleet(n: usize) -> Fleet {
    let app = TestApp::spawn_with(|c| {
        c.alerts.enabled = false;
        c.policy = agent_policy();
    })
    .await;
    let store = app.store.clone();
    let terminals: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let rows: Vec<NewTerminal> = terminals
        .iter()
        .enumerate()
        .map(|(i, id)| NewTerminal {
            id: *id,
            token_hash: id.to_string(),
            hostname: format!("PC-{i}"),
            agent_version: "0.1.0".into(),
            os: "Windows 11".into(),
        })
        .collect();
    let code = onshi_server::enroll::hash_code(&app.code);
    store
        .enroll(&code, &rows, Utc::now())
        .await
        .unwrap()
        .unwrap();
    Fleet {
        clinic_id: app.clinic_id,
        app,
        store,
        terminals,
        seq: 0,
    }
}

impl Fleet {
    pub async fn report(&mut self, i: usize, report: Report, now: DateTime<Utc>) {
        self.seq += 1;
        let mut report = report;
        report.seq = self.seq as u64;
        report.agent_id = self.terminals[i];
        let row = ingest::prepare(report, self.terminals[i], now).unwrap();
        let sink = self.store.ingest_sink();
        sink.write_batch(&[row]).await.unwrap();
        sink.sync_committed().unwrap();
    }

    pub fn evaluator(&self, desk: Option<&str>) -> Evaluator {
        Evaluator::new(
            self.store.clone(),
            agent_policy(),
            onshi_server::config::RuleSettings::default(),
            onshi_server::config::AlertSettings {
                hold_down_secs: 15 * 60,
                page_size: 7,
                ..Default::default()
            },
            Arc::new(Composer::new(mail_config(desk, 25))),
        )
    }

    pub async fn alert(&self, i: usize, rule: RuleKey) -> Option<Alert> {
        self.store
            .alerts()
            .active_alerts(Some(&[self.terminals[i]]))
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.rule == rule)
    }
}

/// `n` terminals that reported at `t0`: PC-0's linkage account password changed since their
/// first report ten minutes before (a critical alert), the others healthy.
async fn fleet_with_broken_linkage(n: usize, t0: DateTime<Utc>) -> Fleet {
    fleet_with_broken_linkages(n, 1, t0).await
}

/// As [`fleet_with_broken_linkage`], with the first `broken` terminals broken.
async fn fleet_with_broken_linkages(n: usize, broken: usize, t0: DateTime<Utc>) -> Fleet {
    let mut f = fleet(n).await;
    let before = t0 - Duration::minutes(10);
    for i in 0..n {
        f.report(i, report_at(before, &format!("PC-{i}")), before)
            .await;
    }
    f.evaluator(None).full_pass(before).await.unwrap();
    for i in 0..n {
        let mut r = report_at(t0, &format!("PC-{i}"));
        if i < broken {
            r.events.push(linkage_password_changed(t0));
        }
        f.report(i, r, t0).await;
    }
    f
}

pub(super) fn mail_config(desk: Option<&str>, port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: TlsMode::None,
        from: "Onshi Watch <watch@example.jp>".into(),
        desk: desk.map(str::to_string),
        retry_base_secs: 1,
        ..SmtpSettings::default()
    }
}

#[tokio::test]
async fn evaluator_opens_resolves_after_hold_down_and_reopens() {
    let t0 = Utc::now();
    let mut f = fleet_with_broken_linkage(3, t0).await;
    let mut ev = f.evaluator(None);
    let stats = ev.full_pass(t0).await.unwrap();
    assert_eq!(stats.terminals, 3);
    let a = f.alert(0, RuleKey::ProtectedAccountLinkage).await.unwrap();
    assert_eq!(
        (a.status, a.severity),
        (AlertStatus::Open, Severity::Critical)
    );
    assert!(a.detail.contains("保険証等の資格確認"), "{}", a.detail);
    assert_eq!(
        f.store
            .outbox()
            .outbox_counts(&onshi_server::domain::Reach::All)
            .await
            .unwrap()
            .pending,
        1
    );
    // a second pass changes nothing and mails nothing
    let again = ev.full_pass(t0 + Duration::seconds(30)).await.unwrap();
    assert_eq!((again.changes, again.mails), (0, 0));

    // staff acknowledge, then the condition leaves the event window: resolved after hold-down
    f.app
        .desk
        .acknowledge(&staff("suzuki"), a.id, "クリニックに電話済み", None, t0)
        .await
        .unwrap();
    let later = t0 + onshi_server::rules::Thresholds::default().event_window + Duration::minutes(1);
    for i in 0..3 {
        f.report(i, report_at(later, &format!("PC-{i}")), later)
            .await;
    }
    ev.full_pass(later).await.unwrap();
    let cleared = f.alert(0, RuleKey::ProtectedAccountLinkage).await.unwrap();
    assert_eq!(cleared.clear_since, Some(later.trunc_millis()));
    ev.full_pass(later + Duration::minutes(16)).await.unwrap();
    assert!(
        f.alert(0, RuleKey::ProtectedAccountLinkage).await.is_none(),
        "resolved"
    );

    // it comes back: the same row re-opens and mails again
    let back = later + Duration::minutes(20);
    let mut broken = report_at(back, "PC-0");
    broken.events.push(linkage_password_changed(back));
    f.report(0, broken, back).await;
    ev.targeted_pass(&[f.terminals[0]], back).await.unwrap();
    let reopened = f.alert(0, RuleKey::ProtectedAccountLinkage).await.unwrap();
    assert_eq!(reopened.id, a.id);
    assert_eq!(reopened.status, AlertStatus::Open);
    let history: Vec<(String, String)> = f
        .store
        .alerts()
        .alert_history(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.actor, h.action))
        .collect();
    let want: Vec<(String, String)> = [
        ("evaluator", "opened"),
        ("suzuki", "acknowledged"),
        ("evaluator", "resolved"),
        ("evaluator", "reopened"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(history, want);
    assert_eq!(
        f.store
            .outbox()
            .outbox_counts(&onshi_server::domain::Reach::All)
            .await
            .unwrap()
            .pending,
        2
    );
}

#[tokio::test]
async fn full_passes_see_what_staff_did_between_them() {
    let t0 = Utc::now();
    let f = fleet_with_broken_linkage(2, t0).await;
    let mut ev = f.evaluator(None);
    ev.full_pass(t0).await.unwrap();
    let a = f.alert(0, RuleKey::ProtectedAccountLinkage).await.unwrap();
    // The evaluator keeps its alerts between passes: an acknowledgement with an end made
    // through the store (the desk, the command line) must reach the next passes.
    f.app
        .desk
        .acknowledge(
            &staff("suzuki"),
            a.id,
            "折り返し待ち",
            Some(t0 + Duration::minutes(10)),
            t0,
        )
        .await
        .unwrap();
    ev.full_pass(t0 + Duration::minutes(1)).await.unwrap();
    let acked = f.store.alerts().alert(a.id).await.unwrap().unwrap();
    assert_eq!(acked.status, AlertStatus::Acknowledged);
    let line = |s: Vec<onshi_server::domain::OverviewLine>| {
        s.into_iter()
            .find(|s| s.terminal_id == f.terminals[0])
            .unwrap()
    };
    ev.full_pass(t0 + Duration::minutes(11)).await.unwrap();
    let expired = f.store.alerts().alert(a.id).await.unwrap().unwrap();
    assert_eq!(
        expired.status,
        AlertStatus::Open,
        "the acknowledgement ran out"
    );
    let actions: Vec<String> = f
        .store
        .alerts()
        .alert_history(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.action)
        .collect();
    assert_eq!(actions, ["opened", "acknowledged", "ack_expired"]);
    // Resolved by staff: the next pass leaves it resolved, and the condition clearing later
    // does not turn it into the evaluator's resolution.
    f.app
        .desk
        .resolve(
            &staff("suzuki"),
            a.id,
            "現地で確認",
            t0 + Duration::minutes(12),
        )
        .await
        .unwrap();
    ev.full_pass(t0 + Duration::minutes(13)).await.unwrap();
    let resolved = f.store.alerts().alert(a.id).await.unwrap().unwrap();
    assert_eq!(
        (resolved.status, resolved.resolved_by.as_deref()),
        (AlertStatus::Resolved, Some("suzuki"))
    );
    let summary = line(f.store.fleet().overview_lines().await.unwrap());
    let linkage = RuleKey::ProtectedAccountLinkage.bit();
    assert_eq!(summary.open_rules & linkage, 0, "{summary:?}");
}

trait Trunc {
    fn trunc_millis(self) -> Self;
}

impl Trunc for DateTime<Utc> {
    fn trunc_millis(self) -> Self {
        DateTime::from_timestamp_millis(self.timestamp_millis()).unwrap()
    }
}

#[tokio::test]
async fn staff_resolution_silences_and_audit() {
    let mut f = fleet(2).await;
    let t0 = Utc::now();
    // The baseline: the accounts as installed.
    for i in 0..2 {
        let earlier = t0 - Duration::minutes(10);
        f.report(i, report_at(earlier, &format!("PC-{i}")), earlier)
            .await;
    }
    f.evaluator(None)
        .full_pass(t0 - Duration::minutes(9))
        .await
        .unwrap();
    for i in 0..2 {
        let mut r = report_at(t0, &format!("PC-{i}"));
        r.snapshot.accounts.accounts[0].locked = Some(true);
        // a change to an account the clinic may change: audit only
        r.events.push(Event::new(
            t0,
            EventKind::AccountChanged {
                role: AccountRole::Administrator,
                name: "kanri".into(),
                change: AccountChange::PasswordChanged,
            },
        ));
        f.report(i, r, t0).await;
    }
    f.app
        .desk
        .silence(
            &staff("suzuki"),
            &SilenceRequest {
                scope: SilenceScope::Terminal(f.terminals[1]),
                rule: None,
                starts_at: t0 - Duration::minutes(1),
                ends_at: t0 + Duration::hours(2),
                daily: None,
                reason: "端末入れ替え工事".into(),
            },
            t0,
        )
        .await
        .unwrap();
    let mut ev = f.evaluator(None);
    let stats = ev.full_pass(t0).await.unwrap();
    assert_eq!(stats.mails, 1, "the silenced terminal mails nothing");
    let a = f.alert(1, RuleKey::ProtectedAccountWindows).await.unwrap();
    assert_eq!(a.status, AlertStatus::Open, "silenced alerts still show");
    let reported = || async {
        f.store
            .staff()
            .audit_rows(&onshi_server::store::desk::AuditQuery {
                clinic_id: None,
                terminal_id: None,
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.actor == "agent")
            .collect::<Vec<_>>()
    };
    let audit = reported().await;
    assert_eq!(audit.len(), 2);
    assert!(audit[0].what.contains("管理者アカウント"), "{audit:?}");
    assert!(
        audit[0].what.contains("パスワードの変更"),
        "in Japanese: {audit:?}"
    );

    // staff resolve while still locked: it stays resolved for this occurrence
    let a = f.alert(0, RuleKey::ProtectedAccountWindows).await.unwrap();
    f.app
        .desk
        .resolve(&staff("suzuki"), a.id, "現地で確認", t0)
        .await
        .unwrap();
    ev.full_pass(t0 + Duration::minutes(1)).await.unwrap();
    let still = f.store.alerts().alert(a.id).await.unwrap().unwrap();
    assert_eq!(still.status, AlertStatus::Resolved);
    assert_eq!(still.resolved_by.as_deref(), Some("suzuki"));
    assert_eq!(reported().await.len(), 2, "audit entries are stored once");
}

#[tokio::test]
async fn outbox_claims_once_dedupes_and_marks() {
    let f = fleet(0).await;
    let a = f.store.outbox();
    let now = Utc::now();
    let mail = |id: &str, dedupe: Option<&str>| NewMail {
        kind: MailKind::Digest,
        clinic_id: Some(f.clinic_id),
        recipient: "sakura@example.jp".into(),
        subject: "件名".into(),
        message_id: format!("<{id}@example.jp>"),
        body_text: "本文".into(),
        body_html: "<p>本文</p>".into(),
        dedupe_key: dedupe.map(str::to_string),
        alert_id: None,
    };
    let n = a
        .enqueue_mails(
            &[mail("a", Some("digest:1:2026-11-25")), mail("b", None)],
            now,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n = a
        .enqueue_mails(&[mail("c", Some("digest:1:2026-11-25"))], now)
        .await
        .unwrap();
    assert_eq!(n, 0, "one digest per key");
    let lease = Duration::minutes(2);
    let claimed = a.claim_mails(now, lease, 10, "one").await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        a.claim_mails(now, lease, 10, "two")
            .await
            .unwrap()
            .is_empty(),
        "claimed rows are not due, for anyone"
    );
    // Only the holder settles.
    assert!(
        !a.settle_mail(claimed[0].id, "two", MailOutcome::Sent { at: now })
            .await
            .unwrap()
    );
    assert!(
        a.settle_mail(claimed[0].id, "one", MailOutcome::Sent { at: now })
            .await
            .unwrap()
    );
    let later = now + Duration::seconds(30);
    a.settle_mail(
        claimed[1].id,
        "one",
        MailOutcome::Retry {
            at: later,
            error: "451",
        },
    )
    .await
    .unwrap();
    assert!(
        a.claim_mails(now, lease, 10, "one")
            .await
            .unwrap()
            .is_empty()
    );
    let retry = a
        .claim_mails(now + Duration::seconds(31), lease, 10, "one")
        .await
        .unwrap();
    assert_eq!((retry.len(), retry[0].attempts), (1, 2));
    // Renewed while it is sent: the claim does not run out under the sender.
    assert_eq!(
        a.renew_mail_claims(&[retry[0].id], "one", now + Duration::minutes(10))
            .await
            .unwrap(),
        1
    );
    assert!(
        a.claim_mails(now + Duration::minutes(5), lease, 10, "two")
            .await
            .unwrap()
            .is_empty()
    );
    // Given back untried (a stop): due at once, the attempt not counted.
    a.settle_mail(retry[0].id, "one", MailOutcome::Untried { at: now })
        .await
        .unwrap();
    let again = a.claim_mails(now, lease, 10, "two").await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    // the sender died: the lease runs out and the row is due again for another
    let after_crash = a
        .claim_mails(now + Duration::minutes(5), lease, 10, "three")
        .await
        .unwrap();
    assert_eq!(after_crash.len(), 1);
    assert_eq!(
        a.renew_mail_claims(&[after_crash[0].id], "two", now + Duration::minutes(9))
            .await
            .unwrap(),
        0,
        "the dead sender's claim is gone"
    );
    a.settle_mail(
        after_crash[0].id,
        "three",
        MailOutcome::Failed { error: "550" },
    )
    .await
    .unwrap();
    let counts = a
        .outbox_counts(&onshi_server::domain::Reach::All)
        .await
        .unwrap();
    assert_eq!(
        (counts.sent, counts.failed, counts.pending, counts.sending),
        (1, 1, 0, 0)
    );
}

#[tokio::test]
async fn digest_groups_a_clinics_warnings_once_a_day() {
    let mut f = fleet(3).await;
    // A Wednesday noon: the clinic is open (it gets no digest on a closed day, and the test
    // must not depend on the day it runs).
    let t0 = DateTime::parse_from_rfc3339("2026-11-25T03:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    for i in 0..3 {
        let mut r = report_at(t0, &format!("PC-{i}"));
        match i {
            0 => r.snapshot.uptime.last_start = t0 - Duration::hours(30),
            1 => {
                r.snapshot.apps.pending_reboot = Some(onshi_shared::PendingReboot {
                    reasons: vec!["CBS RebootPending".into()],
                    since: Some(t0 - Duration::hours(30)),
                    markers: Vec::new(),
                })
            }
            _ => r.snapshot.accounts.accounts[0].password_expires = Some(t0 + Duration::days(5)),
        }
        f.report(i, r, t0).await;
    }
    let mut rx = SmtpReceiver::start().await;
    let mut ev = f.evaluator(Some("desk@example.jp"));
    let stats = ev.full_pass(t0).await.unwrap();
    assert_eq!(stats.mails, 0, "warnings wait for the digest");
    assert_eq!(
        ev.write_digests(t0).await.unwrap(),
        2,
        "one to the clinic, one desk copy"
    );
    assert_eq!(ev.write_digests(t0).await.unwrap(), 0, "once a day");
    let sender = Sender::new(
        f.store.clone(),
        Transport::from_config(&mail_config(Some("desk@example.jp"), rx.addr.port()))
            .unwrap()
            .unwrap(),
        mail_config(Some("desk@example.jp"), rx.addr.port()),
    );
    assert_eq!(sender.send_due(Utc::now(), &NOT_STOPPING).await.unwrap(), 2);
    let mails = rx.wait_for(2, 10).await;
    let clinic = mails
        .iter()
        .find(|m| m.to == ["<sakura@example.jp>"])
        .unwrap();
    assert_eq!(clinic.from, "<watch@example.jp>");
    let subject = clinic.header("Subject").unwrap();
    assert!(subject.starts_with("=?utf-8?"), "RFC 2047: {subject}");
    assert!(
        onshi_testkit::smtp::decode_subject(&subject).contains("本日の確認事項（3件）"),
        "{subject}"
    );
    let body = clinic.text();
    for host in ["PC-0", "PC-1", "PC-2"] {
        assert!(body.contains(host), "{host} in the digest");
    }
    assert!(body.contains("「今すぐダウンロード」"));
    assert!(body.contains("AM4:00"));
    assert!(body.contains("パスワードをご自身で変更しないでください"));
    assert!(body.contains("0800-080-4583"));
    rx.stop().await;
}

#[tokio::test]
async fn smtp_down_then_up_delivers_everything_once() {
    let f = fleet(0).await;
    let now = Utc::now();
    let composer = Composer::new(mail_config(None, 25));
    let mails: Vec<NewMail> = (0..3)
        .map(|i| {
            composer.test_mail(
                &format!("clinic{i}@example.jp"),
                now + Duration::milliseconds(i),
            )
        })
        .collect();
    f.store.outbox().enqueue_mails(&mails, now).await.unwrap();
    let mut rx = SmtpReceiver::start().await;
    let config = mail_config(None, rx.addr.port());
    let sender = Sender::new(
        f.store.clone(),
        Transport::from_config(&config).unwrap().unwrap(),
        config,
    );
    rx.stop().await;
    assert_eq!(
        sender.send_due(now, &NOT_STOPPING).await.unwrap(),
        0,
        "SMTP is down"
    );
    rx.restart().await;
    rx.set_mode(Mode::TempFail);
    assert_eq!(
        sender
            .send_due(now + Duration::minutes(5), &NOT_STOPPING)
            .await
            .unwrap(),
        0,
        "451"
    );
    rx.set_mode(Mode::Accept);
    let mut delivered = 0;
    for minute in 10..20 {
        delivered += sender
            .send_due(now + Duration::minutes(minute), &NOT_STOPPING)
            .await
            .unwrap();
    }
    assert_eq!(delivered, 3);
    let got = rx.wait_for(3, 5).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each mail once");
    assert_eq!(got.len(), 3);
    let counts = f
        .store
        .outbox()
        .outbox_counts(&onshi_server::domain::Reach::All)
        .await
        .unwrap();
    assert_eq!(counts.sent, 3);
    rx.stop().await;
}

#[tokio::test]
async fn permanent_refusals_are_marked_failed() {
    let f = fleet(0).await;
    let now = Utc::now();
    let composer = Composer::new(mail_config(None, 25));
    f.store
        .outbox()
        .enqueue_mails(&[composer.test_mail("clinic@example.jp", now)], now)
        .await
        .unwrap();
    let mut rx = SmtpReceiver::start().await;
    rx.set_mode(Mode::PermFail);
    let config = mail_config(None, rx.addr.port());
    let sender = Sender::new(
        f.store.clone(),
        Transport::from_config(&config).unwrap().unwrap(),
        config,
    );
    assert_eq!(sender.send_due(now, &NOT_STOPPING).await.unwrap(), 0);
    let counts = f
        .store
        .outbox()
        .outbox_counts(&onshi_server::domain::Reach::All)
        .await
        .unwrap();
    assert_eq!((counts.failed, counts.pending), (1, 0));
    rx.set_mode(Mode::Accept);
    assert_eq!(
        sender
            .send_due(now + Duration::hours(2), &NOT_STOPPING)
            .await
            .unwrap(),
        0,
        "never retried"
    );
    rx.stop().await;
}

#[tokio::test]
async fn a_sender_killed_mid_send_resends_nothing_accepted() {
    let f = fleet(0).await;
    let now = Utc::now();
    let composer = Composer::new(mail_config(None, 25));
    let mails: Vec<NewMail> = (0..4)
        .map(|i| composer.test_mail(&format!("c{i}@example.jp"), now + Duration::milliseconds(i)))
        .collect();
    f.store.outbox().enqueue_mails(&mails, now).await.unwrap();
    let mut rx = SmtpReceiver::start().await;
    rx.set_mode(Mode::HangAfter(2));
    let config = mail_config(None, rx.addr.port());
    let sender = Sender::new(
        f.store.clone(),
        Transport::from_config(&config).unwrap().unwrap(),
        config.clone(),
    );
    let running = tokio::spawn(async move { sender.send_due(now, &NOT_STOPPING).await });
    rx.wait_for(2, 10).await;
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    // The process dies while the third mail waits for the server's answer.
    running.abort();
    let _ = running.await;
    rx.set_mode(Mode::Accept);
    // A new process after the lease ran out.
    let sender = Sender::new(
        f.store.clone(),
        Transport::from_config(&config).unwrap().unwrap(),
        config,
    );
    let later = now + Duration::minutes(3);
    assert_eq!(sender.send_due(later, &NOT_STOPPING).await.unwrap(), 2);
    let got = rx.wait_for(4, 5).await;
    let mut to: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "<c0@example.jp>",
            "<c1@example.jp>",
            "<c2@example.jp>",
            "<c3@example.jp>"
        ]
    );
    assert_eq!(
        f.store
            .outbox()
            .outbox_counts(&onshi_server::domain::Reach::All)
            .await
            .unwrap()
            .sent,
        4
    );
    rx.stop().await;
}

/// A sender told to stop while a slow SMTP server takes a mail finishes that mail only and
/// gives the rest of its claim back, untried; while it sends, its claims are renewed, so a
/// second sender on the same database takes none of them.
#[tokio::test]
async fn a_stopping_sender_finishes_the_mail_in_flight_and_gives_the_rest_back() {
    let f = fleet(0).await;
    let now = Utc::now();
    let composer = Composer::new(mail_config(None, 25));
    let mails: Vec<NewMail> = (0..5)
        .map(|i| composer.test_mail(&format!("c{i}@example.jp"), now + Duration::milliseconds(i)))
        .collect();
    f.store.outbox().enqueue_mails(&mails, now).await.unwrap();
    let mut rx = SmtpReceiver::start().await;
    rx.set_mode(Mode::Slow(1_500));
    let mut config = mail_config(None, rx.addr.port());
    // A lease shorter than one send: only the renewal keeps the claims.
    config.timeout_secs = 1;
    config.lease_secs = 1;
    let sender = |config: &SmtpSettings| {
        Sender::new(
            f.store.clone(),
            Transport::from_config(config).unwrap().unwrap(),
            config.clone(),
        )
    };
    config.timeout_secs = 10;
    let first = sender(&config);
    let stop = Arc::new(tokio::sync::Notify::new());
    let running = tokio::spawn(first.run(StdDuration::from_millis(50), stop.clone()));
    tokio::time::sleep(StdDuration::from_millis(1_200)).await;
    // Past the first claim's lease: a second sender finds nothing it may take.
    let second = sender(&config);
    let raced = tokio::time::timeout(StdDuration::from_millis(500), async {
        let ids = f
            .store
            .outbox()
            .claim_mails(Utc::now(), Duration::seconds(1), 10, "second")
            .await
            .unwrap();
        ids.len()
    })
    .await
    .unwrap();
    assert_eq!(raced, 0, "every claim renewed while the first mail is sent");
    drop(second);
    stop.notify_one();
    running.await.unwrap();
    let got = rx.mails();
    assert_eq!(got.len(), 1, "only the mail in flight was finished");
    let counts = f
        .store
        .outbox()
        .outbox_counts(&onshi_server::domain::Reach::All)
        .await
        .unwrap();
    assert_eq!((counts.sent, counts.pending, counts.sending), (1, 4, 0));
    // Given back untried: due now, without a spent attempt.
    let back = f
        .store
        .outbox()
        .claim_mails(Utc::now(), Duration::seconds(60), 10, "later")
        .await
        .unwrap();
    assert_eq!(back.len(), 4);
    assert!(back.iter().all(|m| m.attempts == 1), "{back:?}");
    rx.stop().await;
}

#[tokio::test]
async fn a_report_that_breaks_a_rule_mails_the_clinic_once() {
    let mut rx = SmtpReceiver::start().await;
    let port = rx.addr.port();
    let app = TestApp::spawn_with(|c| {
        c.policy = agent_policy();
        c.smtp = mail_config(Some("desk@example.jp"), port);
        c.smtp.poll_secs = 1;
        c.alerts.evaluate_every_secs = 1;
        c.alerts.debounce_ms = 50;
    })
    .await;
    let enrolled = app.enroll("ONSHI-PC-01").await;
    let seq = app.baselined(&enrolled, "ONSHI-PC-01").await;
    let now = Utc::now();
    let mut report = report_at(now, "ONSHI-PC-01");
    report.agent_id = enrolled.agent_id;
    report.seq = seq;
    report.events.push(linkage_password_changed(now));
    app.report(&enrolled, &report).await;
    // the same report again (a replay): still one mail
    app.report(&enrolled, &report).await;
    let mails = rx.wait_for(2, 20).await;
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let mails_after = rx.mails();
    assert_eq!(mails_after.len(), mails.len(), "no second mail");
    let clinic_mails: Vec<_> = mails_after
        .iter()
        .filter(|m| m.to == ["<sakura@example.jp>"])
        .collect();
    let desk_mails: Vec<_> = mails_after
        .iter()
        .filter(|m| m.to == ["<desk@example.jp>"])
        .collect();
    assert_eq!((clinic_mails.len(), desk_mails.len()), (1, 1));
    let subject = clinic_mails[0].subject();
    assert_eq!(
        subject,
        "【緊急】さくら内科クリニック ONSHI-PC-01: 連携アカウントが変更されました"
    );
    let body = clinic_mails[0].text();
    assert!(
        body.contains("保険証等の資格確認"),
        "the consequence for the linkage account"
    );
    assert!(body.contains("変更し直さず"));
    assert!(body.contains("0800-080-4583"));
    assert!(!body.contains("端末ID"));
    assert!(
        desk_mails[0]
            .text()
            .contains(&enrolled.agent_id.to_string())
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("onshi_outbox_mails{status=\"sent\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("onshi_alerts_open{rule=\"")
                && l.ends_with(",severity=\"critical\"} 1")),
        "{metrics}"
    );
    // The writer's counters: reports went through commits and flushes that took time.
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {metrics}"))
    };
    assert!(counter("onshi_reports_ingested_total") >= 1.0);
    assert!(counter("onshi_ingest_batch_reports_count") >= 1.0);
    assert!(counter("onshi_ingest_flush_seconds_count") >= 1.0);
    assert!(counter("onshi_ingest_commit_seconds_sum") > 0.0);
    assert!(counter("onshi_ingest_flush_seconds_sum") > 0.0);
    // Each request is counted under its route pattern, never its path.
    assert!(
        metrics.contains("onshi_http_requests_total{route=\"/api/v1/report\",status=\"200\"}"),
        "{metrics}"
    );
    let desk = app.login("desk", Role::Viewer).await;
    let page = desk.page("/alerts").await;
    assert!(page.contains("badge sev-critical"), "{page}");
    app.stop().await;
    rx.stop().await;
}

#[tokio::test]
async fn passes_reuse_parsed_snapshots_until_the_body_changes() {
    use onshi_server::evaluator::InputCache;
    use onshi_server::store::alerts::InputSelection;
    let mut f = fleet(2).await;
    let now = Utc::now();
    f.report(0, report_at(now, "PC-A"), now).await;
    f.report(1, report_at(now, "PC-B"), now).await;
    let cache = InputCache::default();
    async fn load(
        f: &Fleet,
        now: DateTime<Utc>,
        cache: &InputCache,
    ) -> Vec<onshi_server::rules::RuleInput> {
        cache
            .load(f.store.alerts(), InputSelection::Ids(&f.terminals), now)
            .await
            .unwrap()
    }
    let first = load(&f, now, &cache).await;
    assert_eq!(cache.bodies_held(), 2);
    // A new report with the same content (only the collection time moved): the same parsed
    // body, the new collection time.
    let later = now + Duration::minutes(1);
    let mut same = report_at(now, "PC-A");
    same.snapshot.collected_at = later;
    same.snapshot.uptime.uptime_secs += 60;
    f.report(0, same, later).await;
    let second = load(&f, now, &cache).await;
    let id = f.terminals[0];
    let a = |states: &[onshi_server::rules::RuleInput]| {
        states.iter().find(|t| t.terminal_id == id).unwrap().clone()
    };
    assert!(Arc::ptr_eq(
        a(&first).snapshot.as_ref().unwrap(),
        a(&second).snapshot.as_ref().unwrap()
    ));
    assert_eq!(
        a(&second).collected_at.timestamp_millis(),
        later.timestamp_millis()
    );
    // A changed body is fetched and parsed again.
    f.report(0, report_at(later, "PC-A-RENAMED"), later).await;
    let third = load(&f, now, &cache).await;
    assert_eq!(
        a(&third).snapshot.as_ref().unwrap().hostname,
        "PC-A-RENAMED"
    );
    assert!(!Arc::ptr_eq(
        a(&first).snapshot.as_ref().unwrap(),
        a(&third).snapshot.as_ref().unwrap()
    ));
}

#[tokio::test]
async fn account_records_are_kept_until_their_version_moves_and_a_confirmation_wins() {
    use onshi_server::evaluator::InputCache;
    use onshi_server::rules::{AccountRecord, BaselineWrite};
    use onshi_server::store::alerts::InputSelection;
    let mut f = fleet(1).await;
    let now = Utc::now();
    f.report(0, report_at(now, "PC-A"), now).await;
    let cache = InputCache::default();
    async fn read(f: &Fleet, now: DateTime<Utc>, cache: &InputCache) -> AccountRecord {
        cache
            .load(f.store.alerts(), InputSelection::Ids(&f.terminals), now)
            .await
            .unwrap()
            .remove(0)
            .accounts
    }
    let fresh = read(&f, now, &cache).await;
    assert_eq!((fresh.version, fresh.baseline_at), (0, None));
    let write = |version| BaselineWrite {
        terminal_id: f.terminals[0],
        key: 42,
        taken_at: now,
        missing: vec![AccountRole::Linkage],
        version,
    };
    let stored = f
        .store
        .alerts()
        .record_baselines(&[write(0)])
        .await
        .unwrap();
    cache.remember_accounts(stored).unwrap();
    let stored = read(&f, now, &cache).await;
    assert_eq!(stored.version, 1);
    assert_eq!(stored.baseline_key, Some(42));
    assert_eq!(stored.baseline_missing, vec![AccountRole::Linkage]);
    // A baseline taken from an older version is not written.
    let stored = f
        .store
        .alerts()
        .record_baselines(&[write(0)])
        .await
        .unwrap();
    cache.remember_accounts(stored).unwrap();
    assert_eq!(read(&f, now, &cache).await.version, 1);
    // Staff confirm: the version moves, the next read sees the cleared baseline.
    f.app
        .desk
        .confirm_accounts(&staff("suzuki"), f.terminals[0], &[], now)
        .await
        .unwrap();
    let confirmed = read(&f, now, &cache).await;
    assert_eq!(
        (
            confirmed.version,
            confirmed.baseline_at,
            confirmed.confirmed
        ),
        (2, None, true)
    );
}

/// Two writers whose history ids commit out of order (on PostgreSQL, a desk user's transaction
/// takes its id, another commits a higher one first): the evaluator must still apply the
/// earlier one when it shows up. On PostgreSQL two real transactions interleave so; SQLite
/// serialises writers, so there the late commit is played by moving the acknowledgement's
/// history entry below one the evaluator has already read.
#[tokio::test]
async fn a_staff_action_committed_after_a_later_one_still_reaches_the_evaluator() {
    let t0 = Utc::now();
    let f = fleet_with_broken_linkage(2, t0).await;
    let mut ev = f.evaluator(None);
    ev.full_pass(t0).await.unwrap();
    ev.full_pass(t0 + Duration::minutes(1)).await.unwrap();
    let a = f.alert(0, RuleKey::ProtectedAccountLinkage).await.unwrap();
    match f.app.raw_db().await {
        RawDb::Postgres(db) => {
            // Real writers: A acknowledges in a transaction and takes the lower id; B's note
            // takes the next and commits first; the evaluator passes in between.
            let newest: i64 = sqlx::query_scalar("SELECT MAX(id) FROM alert_history")
                .fetch_one(&db)
                .await
                .unwrap();
            let mut writer_a = db.begin().await.unwrap();
            sqlx::query(
                "UPDATE alerts SET status = 'acknowledged', ack_by = 'suzuki', \
                 ack_note = '折り返し待ち', ack_until = $1, updated_at = $2 WHERE id = $3",
            )
            .bind((t0 + Duration::minutes(10)).timestamp_millis())
            .bind((t0 + Duration::minutes(2)).timestamp_millis())
            .bind(a.id)
            .execute(&mut *writer_a)
            .await
            .unwrap();
            let a_id: i64 = sqlx::query_scalar(
                "INSERT INTO alert_history (alert_id, at, actor, action, severity, note) \
                 SELECT id, $1, 'suzuki', 'acknowledged', severity, '折り返し待ち' \
                 FROM alerts WHERE id = $2 RETURNING id",
            )
            .bind((t0 + Duration::minutes(2)).timestamp_millis())
            .bind(a.id)
            .fetch_one(&mut *writer_a)
            .await
            .unwrap();
            let b_id: i64 = sqlx::query_scalar(
                "INSERT INTO alert_history (alert_id, at, actor, action, note) \
                 VALUES ($1, $2, 'tanaka', 'noted', '電話済み') RETURNING id",
            )
            .bind(a.id)
            .bind(t0.timestamp_millis())
            .fetch_one(&db)
            .await
            .unwrap();
            assert!(newest < a_id && a_id < b_id, "{newest} {a_id} {b_id}");
            ev.full_pass(t0 + Duration::minutes(2)).await.unwrap();
            writer_a.commit().await.unwrap();
        }
        RawDb::Sqlite(_) => {
            let db = sqlx::SqlitePool::connect(&format!(
                "sqlite://{}",
                f.app.dir().join("onshi.db").display()
            ))
            .await
            .unwrap();
            let newest: i64 = sqlx::query_scalar("SELECT MAX(id) FROM alert_history")
                .fetch_one(&db)
                .await
                .unwrap();
            // Writer B (a note) commits id newest + 2 while writer A still holds newest + 1.
            sqlx::query(
                "INSERT INTO alert_history (id, alert_id, at, actor, action, note) \
                 VALUES (?, ?, ?, 'tanaka', 'noted', '電話済み')",
            )
            .bind(newest + 2)
            .bind(a.id)
            .bind(t0.timestamp_millis())
            .execute(&db)
            .await
            .unwrap();
            ev.full_pass(t0 + Duration::minutes(2)).await.unwrap();
            // Writer A commits: an acknowledgement until t0 + 10 min, whose entry has the lower id.
            f.app
                .desk
                .acknowledge(
                    &staff("suzuki"),
                    a.id,
                    "折り返し待ち",
                    Some(t0 + Duration::minutes(10)),
                    t0 + Duration::minutes(2),
                )
                .await
                .unwrap();
            let moved = sqlx::query(
                "UPDATE alert_history SET id = ? WHERE id = (SELECT MAX(id) FROM alert_history) \
                 AND action = 'acknowledged'",
            )
            .bind(newest + 1)
            .execute(&db)
            .await
            .unwrap();
            assert_eq!(moved.rows_affected(), 1);
        }
    }
    ev.full_pass(t0 + Duration::minutes(3)).await.unwrap();
    // The evaluator knows of the acknowledgement: when it runs out, the alert opens again.
    ev.full_pass(t0 + Duration::minutes(11)).await.unwrap();
    let expired = f.store.alerts().alert(a.id).await.unwrap().unwrap();
    let actions: Vec<String> = f
        .store
        .alerts()
        .alert_history(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.action)
        .collect();
    assert_eq!(
        (expired.status, actions.last().map(String::as_str)),
        (AlertStatus::Open, Some("ack_expired")),
        "{actions:?}"
    );
}

/// The channel rows in the outbox: (recipient, event type), oldest first. Each names its
/// alert, in the row and in the event.
async fn channel_rows(f: &Fleet) -> Vec<(String, String)> {
    let rows = f
        .store
        .outbox()
        .outbox_rows(&onshi_server::store::desk::OutboxQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in rows.into_iter().rev().filter(|r| r.kind.is_channel()) {
        let (_, mail) = f.store.outbox().outbox_mail(r.id).await.unwrap().unwrap();
        let event: onshi_server::notify::channels::ChannelEvent =
            serde_json::from_str(&mail.body_text).unwrap();
        let alert = mail.alert_id.expect("the row names its alert");
        assert!(event.alert.id == alert || event.alert.id == 0);
        out.push((r.recipient, event.event.as_str().to_string()));
    }
    out
}

#[tokio::test]
async fn a_critical_nobody_takes_is_reminded_then_escalated_once_each() {
    use onshi_server::notify::channels::{Announcer, ChannelKind, ChannelSettings};
    let t0 = Utc::now();
    let f = fleet_with_broken_linkage(2, t0).await;
    let channel = |name: &str, escalate_to: Option<&str>| ChannelSettings {
        name: name.into(),
        kind: ChannelKind::Slack,
        url: Some("https://hooks.example.jp/x".into()),
        secret_file: None,
        to: None,
        prefectures: Vec::new(),
        groups: Vec::new(),
        group_clinics: Default::default(),
        remind_after_minutes: 30,
        escalate_after_minutes: 120,
        escalate_to: escalate_to.map(str::to_string),
    };
    let announcer = Announcer {
        channels: vec![
            channel("desk", Some("manager")),
            // Its own reminders, and the same second contact: one escalation, not two.
            channel("night", Some("manager")),
            ChannelSettings {
                remind_after_minutes: 0,
                ..channel("manager", None)
            },
        ],
        public_url: None,
    };
    let mut ev = f.evaluator(None).with_announcer(announcer.clone());
    ev.full_pass(t0).await.unwrap();
    let opened = channel_rows(&f).await;
    assert_eq!(
        opened
            .iter()
            .map(|(to, e)| (to.as_str(), e.as_str()))
            .collect::<Vec<_>>(),
        [
            ("desk", "alert.opened"),
            ("night", "alert.opened"),
            ("manager", "alert.opened")
        ]
    );
    // Not yet due; then due: one reminder per reminding channel.
    ev.full_pass(t0 + Duration::minutes(29)).await.unwrap();
    assert_eq!(channel_rows(&f).await.len(), 3);
    ev.full_pass(t0 + Duration::minutes(31)).await.unwrap();
    let rows = channel_rows(&f).await;
    assert_eq!(
        rows[3..]
            .iter()
            .map(|(to, e)| (to.as_str(), e.as_str()))
            .collect::<Vec<_>>(),
        [("desk", "alert.reminder"), ("night", "alert.reminder")]
    );
    // Asked again, and by a new process (a restart, another leader): nothing more.
    ev.full_pass(t0 + Duration::minutes(32)).await.unwrap();
    let mut restarted = f.evaluator(None).with_announcer(announcer.clone());
    restarted
        .full_pass(t0 + Duration::minutes(33))
        .await
        .unwrap();
    assert_eq!(channel_rows(&f).await.len(), 5);
    // Two hours: escalated to the second contact, once.
    restarted
        .full_pass(t0 + Duration::minutes(121))
        .await
        .unwrap();
    let rows = channel_rows(&f).await;
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert_eq!(
        (rows[5].0.as_str(), rows[5].1.as_str()),
        ("manager", "alert.escalation")
    );
    // Taken by staff: the channels hear who took it, in the same transaction, and no more
    // reminders come.
    let config = onshi_server::Config {
        channels: announcer.channels.clone(),
        ..Default::default()
    };
    let desk = onshi_server::desk::Desk::new(f.store.clone(), None, &config);
    let a = f.alert(0, RuleKey::ProtectedAccountLinkage).await.unwrap();
    desk.acknowledge(
        &staff("suzuki"),
        a.id,
        "対応中",
        None,
        t0 + Duration::minutes(122),
    )
    .await
    .unwrap();
    let took = |e: &str| {
        ["desk", "night", "manager"]
            .map(|to| (to.to_string(), e.to_string()))
            .to_vec()
    };
    assert_eq!(channel_rows(&f).await[6..], took("alert.acknowledged"));
    // A second acknowledgement (a new note) is not news.
    desk.acknowledge(
        &staff("sato"),
        a.id,
        "折り返し待ち",
        None,
        t0 + Duration::minutes(123),
    )
    .await
    .unwrap();
    restarted
        .full_pass(t0 + Duration::minutes(300))
        .await
        .unwrap();
    assert_eq!(channel_rows(&f).await.len(), 9);
    desk.resolve(
        &staff("suzuki"),
        a.id,
        "再設定済み",
        t0 + Duration::minutes(301),
    )
    .await
    .unwrap();
    assert_eq!(channel_rows(&f).await[9..], took("alert.resolved"));
    let rows = f
        .store
        .outbox()
        .outbox_rows(&onshi_server::store::desk::OutboxQuery {
            clinic_id: None,
            status: None,
            search: Some("解消".into()),
            before: None,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, mail) = f
        .store
        .outbox()
        .outbox_mail(rows[0].id)
        .await
        .unwrap()
        .unwrap();
    let e: onshi_server::notify::channels::ChannelEvent =
        serde_json::from_str(&mail.body_text).unwrap();
    assert_eq!(
        (
            e.transition.from.as_deref(),
            e.transition.to.as_str(),
            e.transition.by.as_str()
        ),
        (Some("acknowledged"), "resolved", "suzuki")
    );
    // The alert shows what went out about it: the clinic's mail and every channel message.
    let about: Vec<_> = f.store.outbox().alert_messages(&[a.id]).await.unwrap();
    assert_eq!(
        about.len(),
        13,
        "a clinic mail and 12 channel messages: {about:?}"
    );
    assert!(about.windows(2).all(|w| w[0].1.id < w[1].1.id));
    let viewer = f.app.login("yamada", Role::Viewer).await;
    let page = viewer.page(&format!("/terminals/{}", f.terminals[0])).await;
    assert!(page.contains("通知 13件"), "{page}");
    assert!(page.contains("Slack → manager: 【緊急】未対応のためエスカレーション"));
}

#[tokio::test]
async fn a_bulk_acknowledge_or_resolve_tells_the_channels_of_each_alert_they_heard_of() {
    // Also: a channel scoped to clinic groups hears of their clinics only; one naming a group
    // that is empty, or that does not exist, hears nothing.
    use onshi_server::notify::channels::{Announcer, ChannelKind, ChannelSettings};
    use onshi_server::store::BulkAction;
    let t0 = Utc::now();
    let f = fleet_with_broken_linkages(3, 2, t0).await;
    let desk_channel = ChannelSettings {
        name: "desk".into(),
        kind: ChannelKind::Slack,
        url: Some("https://hooks.example.jp/x".into()),
        secret_file: None,
        to: None,
        prefectures: Vec::new(),
        groups: Vec::new(),
        group_clinics: Default::default(),
        remind_after_minutes: 30,
        escalate_after_minutes: 120,
        escalate_to: None,
    };
    let now = Utc::now();
    let kansai = f
        .app
        .desk
        .create_group(&staff("boss"), "関西販売店", now)
        .await
        .unwrap();
    f.app
        .desk
        .create_group(&staff("boss"), "九州販売店", now)
        .await
        .unwrap();
    f.app
        .desk
        .set_group_member(&staff("boss"), kansai, f.clinic_id, true, now)
        .await
        .unwrap();
    // (Each with a cell of its own for its groups' clinics, as each entry of a configuration.)
    let by_group = |name: &str, group: &str| ChannelSettings {
        name: name.into(),
        groups: vec![group.into()],
        group_clinics: Default::default(),
        ..desk_channel.clone()
    };
    let announcer = Announcer {
        channels: vec![
            desk_channel.clone(),
            by_group("kansai", "関西販売店"),
            by_group("kyushu", "九州販売店"),
            by_group("ghost", "どこにもない"),
        ],
        public_url: None,
    };
    let mut ev = f.evaluator(None).with_announcer(announcer.clone());
    ev.full_pass(t0).await.unwrap();
    // The desk's channel and the group's, for each of the two alerts.
    let events = |rows: &[(String, String)]| {
        let mut e: Vec<String> = rows.iter().map(|(to, e)| format!("{to} {e}")).collect();
        e.sort();
        e
    };
    let each = |e: &str| {
        vec![
            format!("desk {e}"),
            format!("desk {e}"),
            format!("kansai {e}"),
            format!("kansai {e}"),
        ]
    };
    assert_eq!(events(&channel_rows(&f).await), each("alert.opened"));
    let config = onshi_server::Config {
        channels: announcer.channels.clone(),
        ..Default::default()
    };
    let desk = onshi_server::desk::Desk::new(f.store.clone(), None, &config);
    let criticals = [
        f.alert(0, RuleKey::ProtectedAccountLinkage)
            .await
            .unwrap()
            .id,
        f.alert(1, RuleKey::ProtectedAccountLinkage)
            .await
            .unwrap()
            .id,
    ];
    // Every unresolved alert of the fleet: the two announced criticals and what else is open
    // (the channels heard of none of the others, and hear nothing of them now).
    let mut all: Vec<i64> = f
        .store
        .alerts()
        .active_alerts(None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    all.sort_unstable();
    let ack = BulkAction::Acknowledge {
        note: "まとめて対応".into(),
        until: None,
    };
    desk.bulk_alerts(
        &staff("suzuki"),
        &all,
        ack.clone(),
        t0 + Duration::minutes(5),
    )
    .await
    .unwrap();
    let rows = channel_rows(&f).await;
    assert_eq!(events(&rows[4..]), each("alert.acknowledged"));
    // Taken already: a second bulk acknowledge is no news, and no reminder comes.
    desk.bulk_alerts(&staff("sato"), &all, ack, t0 + Duration::minutes(6))
        .await
        .unwrap();
    ev.full_pass(t0 + Duration::minutes(45)).await.unwrap();
    assert_eq!(channel_rows(&f).await.len(), 8);
    desk.bulk_alerts(
        &staff("suzuki"),
        &all,
        BulkAction::Resolve {
            note: "再設定済み".into(),
        },
        t0 + Duration::minutes(50),
    )
    .await
    .unwrap();
    let rows = channel_rows(&f).await;
    assert_eq!(events(&rows[8..]), each("alert.resolved"));
    // Each names its own alert.
    let named: BTreeSet<i64> = f
        .store
        .outbox()
        .alert_messages(&criticals)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r.kind.is_channel())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(named, BTreeSet::from(criticals));
}
