//! The store contract, run against both engines: SQLite in a temporary directory and
//! PostgreSQL in a schema of its own on this machine's server. What each engine has of the
//! contract so far is here: the ingest batch (`BatchSink`), the mail outbox (`OutboxStore`)
//! and retention (`RetentionStore`).

use std::sync::Arc;

use chrono::{Duration, Utc};
use onshi_server::domain::{Lane, MailKind, NewMail, OutboxStatus};
use onshi_server::ingest::{BatchSink, prepare};
use onshi_server::store::alerts::MailOutcome;
use onshi_server::store::desk::OutboxQuery;
use onshi_server::store::retention::{Cursor, Prune, StepLimit};
use onshi_server::store::{
    IngestRow, NewTerminal, OutboxStore, PgStore, RetentionStore, SqliteStore, Store,
};
use uuid::Uuid;

use super::postgres::PgSchema;

/// A SQLite store at `path` with one clinic (made through the desk, its id returned) and these
/// terminals enrolled with its code, and a pool of its own to read what was written.
pub(super) async fn sqlite_fleet(
    path: &std::path::Path,
    terminals: &[Uuid],
) -> (Arc<SqliteStore>, sqlx::SqlitePool, i64) {
    let store = Arc::new(SqliteStore::open(path).await.unwrap());
    let desk = onshi_server::desk::Desk::for_store(store.clone());
    let actor = onshi_server::domain::Actor::CommandLine {
        os_user: "test".into(),
    };
    let clinic = desk
        .add_clinic(&actor, "さくら内科", "sakura@example.jp", Utc::now())
        .await
        .unwrap();
    let code = desk
        .issue_code(&actor, clinic.id, Utc::now())
        .await
        .unwrap();
    let new: Vec<NewTerminal> = terminals
        .iter()
        .map(|&id| NewTerminal {
            id,
            token_hash: id.to_string(),
            hostname: format!("PC-{id}"),
            agent_version: "0.1.0".into(),
            os: "Windows 11".into(),
        })
        .collect();
    store
        .enroll(&onshi_server::enroll::hash_code(&code), &new, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    (store, pool, clinic.id)
}

/// An engine with a clinic and terminals, and a way to read what was written.
enum Engine {
    Sqlite {
        store: Arc<SqliteStore>,
        pool: sqlx::SqlitePool,
        _dir: tempfile::TempDir,
    },
    Postgres {
        store: Arc<PgStore>,
        schema: Box<PgSchema>,
    },
}

impl Engine {
    async fn sqlite(terminals: &[Uuid]) -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, _) = sqlite_fleet(&dir.path().join("engine.db"), terminals).await;
        Engine::Sqlite {
            store,
            pool,
            _dir: dir,
        }
    }

    async fn postgres(terminals: &[Uuid]) -> Engine {
        let schema = PgSchema::new().await;
        let store = Arc::new(PgStore::open_with(schema.options.clone()).await.unwrap());
        sqlx::query("INSERT INTO clinics (name, email, created_at) VALUES ('さくら内科', 'x', 0)")
            .execute(&schema.pool)
            .await
            .unwrap();
        for id in terminals {
            sqlx::query(
                "INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, \
                 enrolled_at) SELECT $1, id, $2, 'PC', '0.1.0', 'Windows 11', 0 FROM clinics",
            )
            .bind(id)
            .bind(id.to_string())
            .execute(&schema.pool)
            .await
            .unwrap();
        }
        Engine::Postgres {
            store,
            schema: Box::new(schema),
        }
    }

    fn outbox(&self) -> &dyn OutboxStore {
        match self {
            Engine::Sqlite { store, .. } => store.outbox(),
            Engine::Postgres { store, .. } => store.as_ref(),
        }
    }

    fn retention(&self) -> &dyn RetentionStore {
        match self {
            Engine::Sqlite { store, .. } => store.retention(),
            Engine::Postgres { store, .. } => store.as_ref(),
        }
    }

    fn sink(&self) -> &dyn BatchSink {
        match self {
            Engine::Sqlite { store, .. } => store.as_ref(),
            Engine::Postgres { store, .. } => store.as_ref(),
        }
    }

    /// The first column of each row of `sql` (portable SQL, every column cast to text).
    async fn strings(&self, sql: &'static str) -> Vec<String> {
        match self {
            Engine::Sqlite { pool, .. } => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Engine::Postgres { schema, .. } => sqlx::query_scalar(sql)
                .fetch_all(&schema.pool)
                .await
                .unwrap(),
        }
    }

    /// Runs a portable statement with one time bound as `$1` (Unix ms).
    async fn exec(&self, sql: &'static str, at: i64) {
        match self {
            Engine::Sqlite { pool, .. } => {
                sqlx::query(sql).bind(at).execute(pool).await.unwrap();
            }
            Engine::Postgres { schema, .. } => {
                sqlx::query(sql)
                    .bind(at)
                    .execute(&schema.pool)
                    .await
                    .unwrap();
            }
        }
    }

    async fn end(self) {
        if let Engine::Postgres { schema, store } = self {
            store.pool().close().await;
            (*schema).drop().await;
        }
    }
}

fn row(id: Uuid, seq: u64, at: chrono::DateTime<Utc>) -> IngestRow {
    let mut report = onshi_shared::sample::report(seq);
    report.agent_id = id;
    let mut row = prepare(report, id, at).unwrap();
    // What the writer decides from its cache: here every row carries its body and hour.
    row.write_snapshot = true;
    row.new_hour = true;
    row
}

/// The batch contract, the same on both engines.
async fn batch_contract(make: impl AsyncFn(&[Uuid]) -> Engine) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let db = make(&[a, b]).await;
    let now = Utc::now();

    // A batch stores the latest report, the body, the events, the start and the hour.
    let first = row(a, 1, now);
    db.sink()
        .write_batch(std::slice::from_ref(&first))
        .await
        .unwrap();
    db.sink().sync_committed().unwrap();
    assert_eq!(
        db.strings("SELECT CAST(seq AS TEXT) FROM latest_report")
            .await,
        ["1"]
    );
    assert_eq!(
        db.strings("SELECT CAST(seq AS TEXT) FROM terminal_snapshot")
            .await,
        ["1"]
    );
    assert_eq!(db.strings("SELECT kind FROM events").await.len(), 1);
    assert_eq!(db.strings("SELECT kind FROM starts").await.len(), 1);
    assert_eq!(
        db.strings("SELECT CAST(hour AS TEXT) FROM report_hours")
            .await
            .len(),
        1
    );

    // Two reports of one terminal in a batch: the higher seq wins; the same event id from
    // another terminal is that terminal's own; a replay adds nothing.
    let mut newer = row(a, 3, now + Duration::seconds(60));
    newer.snapshot.hostname = "RENAMED".into();
    newer.snapshot_hash ^= 1;
    let older = row(a, 2, now + Duration::seconds(30));
    let mut other = row(b, 1, now);
    other.events[0].id = first.events[0].id;
    db.sink()
        .write_batch(&[newer.clone(), older, other, first.clone()])
        .await
        .unwrap();
    assert_eq!(
        db.strings("SELECT CAST(seq AS TEXT) FROM latest_report ORDER BY seq")
            .await,
        ["1", "3"]
    );
    // The first event, the two new ones of terminal a, and b's own with a's id.
    assert_eq!(db.strings("SELECT kind FROM events").await.len(), 4);

    // A late report (an agent's spool after a server restart, when the writer's cache is
    // warmed from the stored bodies) with another body does not replace the newer body.
    let mut late = row(a, 2, now + Duration::seconds(90));
    late.snapshot_hash ^= 2;
    late.snapshot.hostname = "LATE".into();
    db.sink().write_batch(&[late]).await.unwrap();
    let hashes = db
        .strings("SELECT CAST(seq AS TEXT) FROM terminal_snapshot ORDER BY seq")
        .await;
    assert_eq!(hashes, ["1", "3"], "the newer body stays");
    assert!(
        db.strings("SELECT body FROM terminal_snapshot")
            .await
            .iter()
            .any(|b| b.contains("RENAMED")),
        "the body of seq 3"
    );

    // A batch with a row for an unknown terminal stores nothing of itself.
    let before = db.strings("SELECT kind FROM events").await.len();
    let failed = db
        .sink()
        .write_batch(&[row(b, 5, now), row(Uuid::now_v7(), 1, now)])
        .await;
    assert!(failed.is_err());
    assert_eq!(db.strings("SELECT kind FROM events").await.len(), before);
    assert_eq!(
        db.strings("SELECT CAST(seq AS TEXT) FROM latest_report ORDER BY seq")
            .await,
        ["1", "3"]
    );

    // What the writer warms its cache from.
    let hashes = db.sink().snapshot_hashes().await.unwrap();
    assert_eq!(hashes.len(), 2);
    assert!(hashes.contains(&(a, 3, newer.snapshot_hash)));
    let hours = db
        .sink()
        .report_hours_since(now - Duration::hours(1))
        .await
        .unwrap();
    assert!(hours.iter().any(|(id, _)| *id == a) && hours.iter().any(|(id, _)| *id == b));
    db.end().await;
}

#[tokio::test]
async fn the_batch_contract_on_sqlite() {
    batch_contract(Engine::sqlite).await;
}

#[tokio::test]
async fn the_batch_contract_on_postgres() {
    batch_contract(Engine::postgres).await;
}

fn mail(n: usize, dedupe: Option<&str>) -> NewMail {
    NewMail {
        kind: MailKind::Critical,
        clinic_id: None,
        recipient: format!("clinic{n}@example.jp"),
        subject: format!("【注意】 件名 {n}"),
        message_id: format!("<{n}.{}@onshi.example>", Uuid::now_v7()),
        body_text: "本文".into(),
        body_html: "<p>本文</p>".into(),
        dedupe_key: dedupe.map(str::to_owned),
        alert_id: None,
    }
}

/// The outbox contract, the same on both engines: queued once per dedupe key, claimed by one
/// sender at a time (a dead sender's claim falls due again), settled only by its holder.
async fn outbox_contract(make: impl AsyncFn(&[Uuid]) -> Engine) {
    let db = make(&[]).await;
    let o = db.outbox();
    let now = Utc::now();
    let mails: Vec<NewMail> = (0..6).map(|n| mail(n, None)).collect();
    assert_eq!(o.enqueue_mails(&mails, now).await.unwrap(), 6);
    let digest = [mail(10, Some("digest:1:2026-12-06"))];
    assert_eq!(o.enqueue_mails(&digest, now).await.unwrap(), 1);
    let again = [mail(11, Some("digest:1:2026-12-06"))];
    assert_eq!(
        o.enqueue_mails(&again, now).await.unwrap(),
        0,
        "one per dedupe key"
    );

    // Two senders claim at once: together they hold every mail, each mail once.
    let lease = Duration::minutes(2);
    let (a, b) = tokio::join!(
        o.claim_mails(now, lease, 4, "sender-a"),
        o.claim_mails(now, lease, 4, "sender-b")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // With 7 due and 4 each, one of them holds 4: call that one sender a.
    let (a, b, holder, other) = if a.len() == 4 {
        (a, b, "sender-a", "sender-b")
    } else {
        (b, a, "sender-b", "sender-a")
    };
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|m| m.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "claimed: {a:?} {b:?}");
    assert_eq!(a.len() + b.len(), 7);
    assert!(a.iter().chain(&b).all(|m| m.attempts == 1));
    assert!(
        o.claim_mails(now, lease, 4, "sender-c")
            .await
            .unwrap()
            .is_empty()
    );

    // Only the holder renews and settles.
    let held = a[0].id;
    assert_eq!(
        o.renew_mail_claims(&[held], other, now + lease)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        o.renew_mail_claims(&[held], holder, now + lease)
            .await
            .unwrap(),
        1
    );
    assert!(
        !o.settle_mail(held, other, MailOutcome::Sent { at: now })
            .await
            .unwrap()
    );
    assert!(
        o.settle_mail(held, holder, MailOutcome::Sent { at: now })
            .await
            .unwrap()
    );
    let retry = MailOutcome::Retry {
        at: now + Duration::minutes(1),
        error: "421 try later",
    };
    assert!(o.settle_mail(a[1].id, holder, retry).await.unwrap());
    let failed = MailOutcome::Failed {
        error: "550 no such user",
    };
    assert!(o.settle_mail(a[2].id, holder, failed).await.unwrap());
    let untried = MailOutcome::Untried { at: now };
    assert!(o.settle_mail(a[3].id, holder, untried).await.unwrap());

    // The other sender dies: its claims fall due when the lease ends, and sender c takes them.
    let later = now + lease + Duration::seconds(1);
    let taken = o.claim_mails(later, lease, 10, "sender-c").await.unwrap();
    let mut expected: Vec<i64> = b.iter().map(|m| m.id).collect();
    expected.push(a[1].id); // its retry is due
    expected.push(a[3].id); // untried: due at once, its attempt given back
    expected.sort();
    assert_eq!(taken.iter().map(|m| m.id).collect::<Vec<_>>(), expected);
    let untried_again = taken.iter().find(|m| m.id == a[3].id).unwrap();
    assert_eq!(
        untried_again.attempts, 1,
        "the untried claim's attempt was given back"
    );

    let counts = o
        .outbox_counts(&onshi_server::domain::Reach::All)
        .await
        .unwrap();
    assert_eq!(
        (counts.pending, counts.sending, counts.sent, counts.failed),
        (0, 5, 1, 1)
    );
    let q = OutboxQuery {
        clinic_id: None,
        status: Some(OutboxStatus::Failed),
        search: None,
        before: None,
        limit: 10,
        ..OutboxQuery::default()
    };
    let failed_rows = o.outbox_rows(&q).await.unwrap();
    assert_eq!(failed_rows.len(), 1);
    assert_eq!(
        failed_rows[0].last_error.as_deref(),
        Some("550 no such user")
    );
    let search = OutboxQuery {
        status: None,
        search: Some("件名 1".into()),
        ..q
    };
    let found = o.outbox_rows(&search).await.unwrap();
    assert!(!found.is_empty() && found.iter().all(|r| r.subject.contains("件名 1")));
    let newest_first = o
        .outbox_rows(&OutboxQuery {
            search: None,
            ..search
        })
        .await
        .unwrap();
    assert!(newest_first.windows(2).all(|w| w[0].id > w[1].id));
    let (row, body) = o.outbox_mail(held).await.unwrap().unwrap();
    assert_eq!(row.status, OutboxStatus::Sent);
    assert_eq!(body.body_html, "<p>本文</p>");
    assert!(o.outbox_mail(-1).await.unwrap().is_none());
    db.end().await;
}

/// Each lane claims its own rows: mail, one channel's messages, or those of channels no
/// longer configured; the same on both engines.
async fn lanes_contract(make: impl AsyncFn(&[Uuid]) -> Engine) {
    let db = make(&[]).await;
    let o = db.outbox();
    let now = Utc::now();
    let to = |kind: MailKind, recipient: &str| NewMail {
        kind,
        recipient: recipient.into(),
        ..mail(0, None)
    };
    let rows = [
        to(MailKind::Slack, "slack-desk"),
        to(MailKind::Webhook, "受付システム"),
        to(MailKind::Line, "removed"),
        to(MailKind::Critical, "clinic@example.jp"),
        to(MailKind::Slack, "slack-desk"),
    ];
    assert_eq!(o.enqueue_mails(&rows, now).await.unwrap(), 5);
    let lease = Duration::minutes(2);
    let take = |lane: Lane| async move {
        let mut got: Vec<String> = o
            .claim(lane, now, lease, 10, "s")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.recipient)
            .collect();
        got.sort();
        got
    };
    assert_eq!(
        take(Lane::Channel("slack-desk".into())).await,
        ["slack-desk", "slack-desk"]
    );
    assert_eq!(
        take(Lane::OtherChannels(vec![
            "slack-desk".into(),
            "受付システム".into()
        ]))
        .await,
        ["removed"]
    );
    assert_eq!(take(Lane::Mail).await, ["clinic@example.jp"]);
    assert_eq!(
        take(Lane::Channel("受付システム".into())).await,
        ["受付システム"]
    );
    assert!(
        take(Lane::OtherChannels(Vec::new())).await.is_empty(),
        "all taken"
    );
    db.end().await;
}

#[tokio::test]
async fn each_lane_claims_its_own_rows_on_sqlite() {
    lanes_contract(Engine::sqlite).await;
}

#[tokio::test]
async fn each_lane_claims_its_own_rows_on_postgres() {
    lanes_contract(Engine::postgres).await;
}

#[tokio::test]
async fn the_outbox_contract_on_sqlite() {
    outbox_contract(Engine::sqlite).await;
}

#[tokio::test]
async fn the_outbox_contract_on_postgres() {
    outbox_contract(Engine::postgres).await;
}

/// Everything `what` deletes before `before`, in steps of two rows and one terminal (so the
/// cursors are used), and how many rows went.
async fn prune_all(r: &dyn RetentionStore, what: Prune, before: chrono::DateTime<Utc>) -> u64 {
    let (mut cursor, mut deleted) = (Cursor::Start, 0);
    let limit = StepLimit {
        rows: 2,
        terminals: 1,
    };
    loop {
        let step = r.prune(what, before, cursor, limit).await.unwrap();
        deleted += step.deleted;
        match step.next {
            Some(next) => cursor = next,
            None => return deleted,
        }
    }
}

fn at(id: Uuid, seq: u64, when: chrono::DateTime<Utc>) -> IngestRow {
    let mut r = row(id, seq, when);
    // A start per report, at the report's time.
    r.last_start = when;
    r
}

/// Retention on both engines: what is older than the cutoff goes, what is newer stays, report
/// hours are thinned to the first of each JST day, queued mail is kept.
async fn retention_contract(make: impl AsyncFn(&[Uuid]) -> Engine) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let db = make(&[a, b]).await;
    let now = Utc::now();
    let old = now - Duration::days(500);
    let recent = now - Duration::days(5);
    // Three hours of one JST day 100 days ago: 10:00, 11:00 and 15:00 JST.
    let day = (now - Duration::days(100))
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap());
    let morning = day
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_local_timezone(day.timezone())
        .unwrap()
        .with_timezone(&Utc);
    let rows = [
        at(a, 1, old),
        at(b, 1, old),
        at(a, 2, morning),
        at(a, 3, morning + Duration::hours(1)),
        at(a, 4, morning + Duration::hours(5)),
        at(a, 5, recent),
    ];
    for r in &rows {
        db.sink()
            .write_batch(std::slice::from_ref(r))
            .await
            .unwrap();
    }
    let count = async |sql| db.strings(sql).await.len();
    assert_eq!(count("SELECT kind FROM events").await, 6);
    assert_eq!(count("SELECT kind FROM starts").await, 6);
    assert_eq!(
        count("SELECT CAST(hour AS TEXT) FROM report_hours").await,
        6
    );

    let o = db.outbox();
    o.enqueue_mails(&[mail(1, None), mail(2, None)], old)
        .await
        .unwrap();
    let claimed = o
        .claim_mails(old, Duration::minutes(2), 1, "s")
        .await
        .unwrap();
    assert!(
        o.settle_mail(claimed[0].id, "s", MailOutcome::Sent { at: old })
            .await
            .unwrap()
    );

    let r = db.retention();
    let cutoff = now - Duration::days(400);
    // On SQLite a step that deleted writes its pages back itself (and says how long that
    // took), so no ingest commit pays for them; PostgreSQL has nothing of the kind to do.
    let step = r
        .prune(
            Prune::Events,
            cutoff,
            Cursor::Start,
            StepLimit {
                rows: 1,
                terminals: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(step.deleted, 1);
    assert_eq!(
        step.flushed > std::time::Duration::ZERO,
        matches!(db, Engine::Sqlite { .. }),
        "{step:?}"
    );
    assert_eq!(prune_all(r, Prune::Events, cutoff).await, 1);
    assert_eq!(prune_all(r, Prune::Starts, cutoff).await, 2);
    assert_eq!(prune_all(r, Prune::ReportHours, cutoff).await, 2);
    assert_eq!(
        prune_all(r, Prune::SentMail, cutoff).await,
        1,
        "the sent mail, not the queued"
    );
    // Thinned after 30 days: the first hour of the day stays.
    assert_eq!(
        prune_all(r, Prune::ThinReportHours, now - Duration::days(30)).await,
        2
    );
    assert_eq!(count("SELECT kind FROM events").await, 4);
    assert_eq!(count("SELECT kind FROM starts").await, 4);
    let hours = db
        .strings("SELECT CAST(hour AS TEXT) FROM report_hours ORDER BY hour")
        .await;
    let hour_of =
        |t: chrono::DateTime<Utc>| (t.timestamp_millis() / 3_600_000 * 3_600_000).to_string();
    assert_eq!(hours, [hour_of(morning), hour_of(recent)]);
    assert_eq!(
        o.outbox_counts(&onshi_server::domain::Reach::All)
            .await
            .unwrap()
            .pending,
        1
    );
    // Nothing left to do.
    assert_eq!(prune_all(r, Prune::Events, cutoff).await, 0);
    db.end().await;
}

#[tokio::test]
async fn the_retention_contract_on_sqlite() {
    retention_contract(Engine::sqlite).await;
}

#[tokio::test]
async fn the_retention_contract_on_postgres() {
    retention_contract(Engine::postgres).await;
}

/// Retention of alerts, their history and the audit log on both engines: an alert resolved by
/// the evaluator long ago goes with its history and mail; one staff resolved while its
/// condition still holds stays (the evaluator follows it); an open one stays, its old history
/// entries go.
async fn alert_retention_contract(make: impl AsyncFn(&[Uuid]) -> Engine) {
    let db = make(&[Uuid::now_v7()]).await;
    let now = Utc::now();
    let old = (now - Duration::days(500)).timestamp_millis();
    let alert = |rule: &'static str| -> &'static str {
        match rule {
            "auto" => {
                "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, \
                 opened_at, updated_at, resolved_at, resolved_by) SELECT id, clinic_id, \
                 'no_daily_restart', 'warning', 'resolved', '', $1, $1, $1, 'evaluator' FROM terminals"
            }
            "staff" => {
                "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, \
                 occurrence, opened_at, updated_at, resolved_at, resolved_by) SELECT id, \
                 clinic_id, 'cert_expiring', 'warning', 'resolved', '', 'step-30', $1, $1, $1, \
                 'ann' FROM terminals"
            }
            _ => {
                "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, \
                 opened_at, updated_at) SELECT id, clinic_id, 'offline', 'critical', 'open', '', \
                 $1, $1 FROM terminals"
            }
        }
    };
    for kind in ["auto", "staff", "open"] {
        db.exec(alert(kind), old).await;
    }
    // Two old history entries per alert, and one today for the open one.
    db.exec(
        "INSERT INTO alert_history (alert_id, at, actor, action) \
         SELECT id, $1, 'evaluator', 'opened' FROM alerts",
        old,
    )
    .await;
    db.exec(
        "INSERT INTO alert_history (alert_id, at, actor, action) \
         SELECT id, $1, 'evaluator', 'severity' FROM alerts",
        old + 1,
    )
    .await;
    db.exec(
        "INSERT INTO alert_history (alert_id, at, actor, action) \
         SELECT id, $1, 'ann', 'note' FROM alerts WHERE status = 'open'",
        now.timestamp_millis(),
    )
    .await;
    // The auto-resolved alert's mail, sent long ago.
    db.exec(
        "INSERT INTO outbox (kind, alert_id, recipient, subject, message_id, body_text, \
         body_html, status, next_attempt_at, created_at, sent_at) SELECT 'warning', id, \
         'c@example.jp', 's', 'm-1', 't', 'h', 'sent', $1, $1, $1 FROM alerts \
         WHERE resolved_by = 'evaluator'",
        old,
    )
    .await;
    // The audit log is written in time order (the walk stops at the first line past the
    // cutoff): the desk's lines from setting up the engine go first.
    db.exec("DELETE FROM audit_log WHERE at < $1", i64::MAX)
        .await;
    db.exec(
        "INSERT INTO audit_log (at, actor, what) VALUES ($1, 'ann', 'old line')",
        old,
    )
    .await;
    db.exec(
        "INSERT INTO audit_log (at, actor, what) VALUES ($1, 'ann', 'new line')",
        now.timestamp_millis(),
    )
    .await;

    let r = db.retention();
    let cutoff = now - Duration::days(400);
    assert_eq!(prune_all(r, Prune::ResolvedAlerts, cutoff).await, 1);
    assert_eq!(
        db.strings("SELECT rule FROM alerts ORDER BY rule").await,
        ["cert_expiring", "offline"]
    );
    assert!(
        db.strings("SELECT subject FROM outbox").await.is_empty(),
        "its mail went too"
    );
    // Its two entries went with it; the two kept alerts' old entries go now, today's stays.
    assert_eq!(
        db.strings("SELECT action FROM alert_history").await.len(),
        5
    );
    assert_eq!(prune_all(r, Prune::AlertHistory, cutoff).await, 4);
    assert_eq!(
        db.strings("SELECT action FROM alert_history").await,
        ["note"]
    );
    assert_eq!(prune_all(r, Prune::Audit, cutoff).await, 1);
    assert_eq!(db.strings("SELECT what FROM audit_log").await, ["new line"]);
    db.end().await;
}

#[tokio::test]
async fn the_alert_retention_contract_on_sqlite() {
    alert_retention_contract(Engine::sqlite).await;
}

#[tokio::test]
async fn the_alert_retention_contract_on_postgres() {
    alert_retention_contract(Engine::postgres).await;
}
