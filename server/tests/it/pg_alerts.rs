//! The `AlertStore` contract on both engines: the evaluator's writes (alerts with their history,
//! mails and agent audit in one transaction), its reads back, account baselines and fleet
//! versions; and on PostgreSQL, the evaluator's upsert waiting for a staff change that holds
//! the alert.

use std::sync::Arc;

use chrono::{Duration, DurationRound, Utc};
use onshi_server::domain::{
    Alert, AlertAction, AlertStatus, MailKind, NewMail, RuleKey, Severity, VersionSource,
};
use onshi_server::rules::{AuditEntry, BaselineWrite};
use onshi_server::store::alerts::{AlertChange, InputSelection, TerminalSpan};
use onshi_server::store::{AlertStore, PgStore, SqliteStore, Store};
use uuid::Uuid;

use super::postgres::PgSchema;

/// A store with one clinic and these terminals, and a way to read what it wrote.
enum Db {
    Sqlite {
        store: Arc<SqliteStore>,
        pool: sqlx::SqlitePool,
        clinic: i64,
        _dir: tempfile::TempDir,
    },
    Postgres {
        store: Arc<PgStore>,
        schema: Box<PgSchema>,
        clinic: i64,
    },
}

impl Db {
    async fn sqlite(terminals: &[Uuid]) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let (store, pool, clinic) =
            super::engines::sqlite_fleet(&dir.path().join("alerts.db"), terminals).await;
        Db::Sqlite {
            store,
            pool,
            clinic,
            _dir: dir,
        }
    }

    async fn postgres(terminals: &[Uuid]) -> Db {
        let schema = PgSchema::new().await;
        let store = Arc::new(PgStore::open_with(schema.options.clone()).await.unwrap());
        let clinic: i64 = sqlx::query_scalar(
            "INSERT INTO clinics (name, email, created_at) \
             VALUES ('さくら内科', 'sakura@example.jp', 0) RETURNING id",
        )
        .fetch_one(&schema.pool)
        .await
        .unwrap();
        for id in terminals {
            sqlx::query(
                "INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, \
                 enrolled_at) VALUES ($1, $2, $3, 'PC', '0.1.0', 'Windows 11', 0)",
            )
            .bind(id)
            .bind(clinic)
            .bind(id.to_string())
            .execute(&schema.pool)
            .await
            .unwrap();
        }
        Db::Postgres {
            store,
            schema: Box::new(schema),
            clinic,
        }
    }

    fn alerts(&self) -> &dyn AlertStore {
        match self {
            Db::Sqlite { store, .. } => store.alerts(),
            Db::Postgres { store, .. } => store.alerts(),
        }
    }

    fn clinic(&self) -> i64 {
        match self {
            Db::Sqlite { clinic, .. } | Db::Postgres { clinic, .. } => *clinic,
        }
    }

    /// The first column of each row of `sql` (portable SQL, every column cast to text).
    async fn strings(&self, sql: &'static str) -> Vec<String> {
        match self {
            Db::Sqlite { pool, .. } => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Db::Postgres { schema, .. } => sqlx::query_scalar(sql)
                .fetch_all(&schema.pool)
                .await
                .unwrap(),
        }
    }

    /// Runs a portable statement with one time bound as `$1` (Unix ms).
    async fn exec(&self, sql: &'static str, at: i64) {
        match self {
            Db::Sqlite { pool, .. } => {
                sqlx::query(sql).bind(at).execute(pool).await.unwrap();
            }
            Db::Postgres { schema, .. } => {
                sqlx::query(sql)
                    .bind(at)
                    .execute(&schema.pool)
                    .await
                    .unwrap();
            }
        }
    }

    async fn end(self) {
        if let Db::Postgres { schema, store, .. } = self {
            store.pool().close().await;
            (*schema).drop().await;
        }
    }
}

fn new_alert(terminal: Uuid, clinic: i64, rule: RuleKey, at: chrono::DateTime<Utc>) -> Alert {
    Alert {
        id: 0,
        terminal_id: terminal,
        clinic_id: clinic,
        rule,
        severity: Severity::Warning,
        status: AlertStatus::Open,
        detail: "詳細".into(),
        occurrence: Some("1".into()),
        opened_at: at,
        updated_at: at,
        clear_since: None,
        ack_by: None,
        ack_note: None,
        ack_until: None,
        resolved_at: None,
        resolved_by: None,
        mail_held: false,
    }
}

fn mail(n: usize, clinic: i64) -> NewMail {
    NewMail {
        kind: MailKind::Critical,
        clinic_id: Some(clinic),
        recipient: format!("clinic{n}@example.jp"),
        subject: format!("【重要】 件名 {n}"),
        message_id: format!("<{n}.{}@onshi.example>", Uuid::now_v7()),
        body_text: "本文".into(),
        body_html: "<p>本文</p>".into(),
        dedupe_key: Some(format!("alert-{n}")),
        alert_id: None,
    }
}

fn actions(history: &[onshi_server::domain::HistoryEntry]) -> Vec<String> {
    history.iter().map(|h| h.action.clone()).collect()
}

async fn alert_contract(make: impl AsyncFn(&[Uuid]) -> Db) {
    let mut ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    ids.sort();
    let [t1, t2, t3] = ids;
    let db = make(&ids).await;
    let clinic = db.clinic();
    let a = db.alerts();
    let now = Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap();

    // Empty store.
    assert_eq!(a.history_mark().await.unwrap(), 0);
    assert!(a.active_alerts(None).await.unwrap().is_empty());
    assert_eq!(a.alert_counts().await.unwrap().critical, 0);
    a.apply_alert_changes(&[], &[], now).await.unwrap();

    // Clinics and terminal heads.
    let clinics = a.clinic_settings(now.date_naive()).await.unwrap();
    assert_eq!(clinics.len(), 1);
    assert_eq!(clinics[0].id, clinic);
    assert_eq!(clinics[0].name, "さくら内科");
    assert_eq!(a.clinics_version().await.unwrap().1, 1);
    let page = a
        .terminal_heads(InputSelection::Page {
            after: None,
            limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|h| h.terminal_id).collect::<Vec<_>>(),
        vec![t1, t2]
    );
    assert!(
        page.iter()
            .all(|h| h.last_seen.is_none() && h.body.is_none())
    );
    let page = a
        .terminal_heads(InputSelection::Page {
            after: Some(t2),
            limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].terminal_id, t3);
    let picked = a
        .terminal_heads(InputSelection::Ids(&[t3, t1]))
        .await
        .unwrap();
    assert_eq!(
        picked.iter().map(|h| h.terminal_id).collect::<Vec<_>>(),
        vec![t1, t3]
    );
    assert!(
        a.terminal_heads(InputSelection::Ids(&[]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(a.snapshot_bodies(&[t1]).await.unwrap().is_empty());
    let extras = a
        .rule_extras(TerminalSpan::Between(t1, t3), now - Duration::days(1))
        .await
        .unwrap();
    assert!(extras.events.is_empty() && extras.own_accounts.is_empty());

    // The evaluator opens two alerts (one with a mail) and records agent audit entries, one of
    // them twice.
    let event = Uuid::new_v4();
    let audit = vec![
        AuditEntry {
            event_id: event,
            at: now,
            terminal_id: t1,
            what: "アカウント変更".into(),
        },
        AuditEntry {
            event_id: event,
            at: now,
            terminal_id: t1,
            what: "アカウント変更".into(),
        },
    ];
    let mut critical = new_alert(t1, clinic, RuleKey::Offline, now);
    critical.severity = Severity::Critical;
    let changes = vec![
        AlertChange {
            alert: new_alert(t2, clinic, RuleKey::CertExpiry, now),
            action: AlertAction::Opened,
            mails: Vec::new(),
        },
        AlertChange {
            alert: critical.clone(),
            action: AlertAction::Opened,
            mails: vec![mail(1, clinic)],
        },
    ];
    a.apply_alert_changes(&changes, &audit, now).await.unwrap();
    let active = a.active_alerts(None).await.unwrap();
    assert_eq!(active.len(), 2);
    let stored_t1 = active.iter().find(|x| x.terminal_id == t1).unwrap().clone();
    let stored_t2 = active.iter().find(|x| x.terminal_id == t2).unwrap().clone();
    assert!(stored_t1.id > stored_t2.id, "ids in the changes' order");
    assert_eq!(
        Alert {
            id: stored_t1.id,
            ..critical.clone()
        },
        stored_t1
    );
    assert_eq!(a.alert(stored_t1.id).await.unwrap().unwrap(), stored_t1);
    assert!(a.alert(stored_t1.id + 100).await.unwrap().is_none());
    let only_t2 = a.active_alerts(Some(&[t2])).await.unwrap();
    assert_eq!(only_t2, vec![stored_t2.clone()]);
    assert!(a.active_alerts(Some(&[])).await.unwrap().is_empty());
    let by_id = a
        .alerts_by_id(&[stored_t1.id, stored_t2.id, 9999])
        .await
        .unwrap();
    assert_eq!(by_id.len(), 2);
    let counts = a.alert_counts().await.unwrap();
    assert_eq!((counts.critical, counts.warning, counts.info), (1, 1, 0));
    assert_eq!(counts.by_rule.len(), 2);
    assert_eq!(
        db.strings("SELECT CAST(alert_id AS TEXT) FROM outbox")
            .await,
        vec![stored_t1.id.to_string()]
    );
    assert_eq!(
        db.strings("SELECT what FROM audit_log WHERE actor = 'agent'")
            .await
            .len(),
        1
    );

    // History: one entry each, in order, the evaluator's.
    let mark = a.history_mark().await.unwrap();
    let heads = a.history_heads(&[(1, i64::MAX)]).await.unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[1].id, mark);
    assert_eq!(heads[0].alert_id, stored_t2.id);
    assert_eq!(heads[1].alert_id, stored_t1.id);
    assert!(heads.iter().all(|h| !h.by_staff));
    assert!(a.history_heads(&[]).await.unwrap().is_empty());
    let some = a
        .history_heads(&[(heads[0].id, heads[0].id), (mark + 1, i64::MAX)])
        .await
        .unwrap();
    assert_eq!(some, vec![heads[0]]);
    assert_eq!(
        actions(&a.alert_history(stored_t1.id).await.unwrap()),
        ["opened"]
    );

    // A staff note shows as by_staff.
    db.exec(
        "INSERT INTO alert_history (alert_id, at, actor, action) \
         SELECT MIN(id), $1, 'admin', 'note' FROM alerts",
        0,
    )
    .await;
    let staff = a.history_heads(&[(mark + 1, i64::MAX)]).await.unwrap();
    assert_eq!(staff.len(), 1);
    assert!(staff[0].by_staff);
    assert_eq!(staff[0].alert_id, stored_t2.id);

    // Resolved by the evaluator, then opened again: "reopened"; a quiet change leaves no
    // history; the same alert twice in one write applies in order.
    let later = now + Duration::minutes(5);
    let resolved = Alert {
        status: AlertStatus::Resolved,
        resolved_at: Some(later),
        resolved_by: Some("evaluator".into()),
        updated_at: later,
        ..stored_t1.clone()
    };
    let reopened = Alert {
        status: AlertStatus::Open,
        resolved_at: None,
        resolved_by: None,
        opened_at: later,
        updated_at: later,
        ..stored_t1.clone()
    };
    let quiet = Alert {
        clear_since: Some(later),
        updated_at: later,
        ..stored_t2.clone()
    };
    a.apply_alert_changes(
        &[
            AlertChange {
                alert: resolved,
                action: AlertAction::Resolved,
                mails: Vec::new(),
            },
            AlertChange {
                alert: quiet.clone(),
                action: AlertAction::Quiet,
                mails: Vec::new(),
            },
            AlertChange {
                alert: reopened.clone(),
                action: AlertAction::Opened,
                mails: Vec::new(),
            },
        ],
        &[],
        later,
    )
    .await
    .unwrap();
    assert_eq!(
        actions(&a.alert_history(stored_t1.id).await.unwrap()),
        ["opened", "resolved", "reopened"]
    );
    assert_eq!(
        actions(&a.alert_history(stored_t2.id).await.unwrap()),
        ["opened", "note"]
    );
    assert_eq!(a.alert(stored_t1.id).await.unwrap().unwrap(), reopened);
    assert_eq!(a.alert(stored_t2.id).await.unwrap().unwrap(), quiet);
    assert_eq!(
        db.strings("SELECT CAST(times_opened AS TEXT) FROM alerts ORDER BY id")
            .await,
        ["1", "2"]
    );

    // A staff-resolved alert whose condition still holds stays active; an auto-resolved one
    // does not.
    db.exec(
        "UPDATE alerts SET status = 'resolved', resolved_by = 'admin', resolved_at = $1",
        later.timestamp_millis(),
    )
    .await;
    assert_eq!(a.active_alerts(None).await.unwrap().len(), 2);
    db.exec(
        "UPDATE alerts SET resolved_by = 'evaluator' WHERE rule = 'offline' AND $1 = $1",
        0,
    )
    .await;
    assert_eq!(a.active_alerts(None).await.unwrap().len(), 1);
    let counts = a.alert_counts().await.unwrap();
    assert_eq!((counts.critical, counts.warning), (0, 0));

    // Fleet versions: `since` moves only when the version changes.
    a.set_fleet_version("app", "1.0", now).await.unwrap();
    a.set_fleet_version("app", "1.0", later).await.unwrap();
    let v = a.expected_versions().await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].source, v[0].version.as_str(), v[0].since),
        (VersionSource::Fleet, "1.0", now)
    );
    a.set_fleet_version("app", "1.1", later).await.unwrap();
    let v = a.expected_versions().await.unwrap();
    assert_eq!((v[0].version.as_str(), v[0].since), ("1.1", later));

    // Baselines: written over the version they were taken from only.
    let records = a.account_records(&[t1, t2]).await.unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|(_, r)| r.version == 0 && r.baseline_key.is_none())
    );
    let write = |t: Uuid, version: i64| BaselineWrite {
        terminal_id: t,
        key: u64::MAX - 5,
        taken_at: now,
        missing: vec![onshi_shared::AccountRole::FaceAuth],
        version,
    };
    let stored = a
        .record_baselines(&[write(t1, 0), write(t2, 7)])
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, t1);
    assert_eq!(stored[0].1.version, 1);
    let records = a.account_records(&[t1]).await.unwrap();
    assert_eq!(records[0].1, stored[0].1);
    assert!(a.record_baselines(&[]).await.unwrap().is_empty());

    // Silences in force now.
    db.exec(
        "INSERT INTO silences (fleet, starts_at, ends_at, reason, created_by, created_at) \
         VALUES (TRUE, $1 - 1000, $1 + 60000, '点検', 'admin', $1)",
        now.timestamp_millis(),
    )
    .await;
    let silences = a.silences_in_force(now).await.unwrap();
    assert_eq!(silences.len(), 1);
    assert_eq!(silences[0].reason, "点検");
    assert!(
        a.silences_in_force(now + Duration::minutes(2))
            .await
            .unwrap()
            .is_empty()
    );
    db.end().await;
}

#[tokio::test]
async fn the_alert_contract_on_sqlite() {
    alert_contract(Db::sqlite).await;
}

#[tokio::test]
async fn the_alert_contract_on_postgres() {
    alert_contract(Db::postgres).await;
}

/// A staff change holding an alert (as an acknowledgement's transaction does) makes the
/// evaluator's write wait, not fail; the write then applies over it, as on SQLite's one
/// writer. Several rows are rewritten in id order, whatever order the changes come in.
#[tokio::test]
async fn the_evaluator_waits_for_a_staff_change_on_postgres() {
    let mut ids = [Uuid::new_v4(), Uuid::new_v4()];
    ids.sort();
    let db = Db::postgres(&ids).await;
    let clinic = db.clinic();
    let now = Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap();
    let changes: Vec<AlertChange> = ids
        .iter()
        .map(|&t| AlertChange {
            alert: new_alert(t, clinic, RuleKey::Offline, now),
            action: AlertAction::Opened,
            mails: Vec::new(),
        })
        .collect();
    db.alerts()
        .apply_alert_changes(&changes, &[], now)
        .await
        .unwrap();
    let stored = db.alerts().active_alerts(None).await.unwrap();
    let Db::Postgres { store, schema, .. } = &db else {
        unreachable!()
    };
    // Staff hold both, in id order.
    let mut staff = schema.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM alerts ORDER BY id FOR NO KEY UPDATE")
        .execute(&mut *staff)
        .await
        .unwrap();
    sqlx::query("UPDATE alerts SET status = 'acknowledged', ack_by = 'admin'")
        .execute(&mut *staff)
        .await
        .unwrap();
    // The evaluator's changes come in reverse id order.
    let later = now + Duration::minutes(1);
    let escalated: Vec<AlertChange> = stored
        .iter()
        .rev()
        .map(|a| AlertChange {
            alert: Alert {
                severity: Severity::Critical,
                updated_at: later,
                ..a.clone()
            },
            action: AlertAction::Escalated,
            mails: Vec::new(),
        })
        .collect();
    let evaluator = store.clone();
    let write = tokio::spawn(async move {
        evaluator
            .alerts()
            .apply_alert_changes(&escalated, &[], later)
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !write.is_finished(),
        "the evaluator waits for the staff change"
    );
    staff.commit().await.unwrap();
    write.await.unwrap().unwrap();
    let after = db.alerts().active_alerts(None).await.unwrap();
    assert!(after.iter().all(|a| a.severity == Severity::Critical));
    // The evaluator's row wins (it reads the staff change from the history next pass).
    assert!(after.iter().all(|a| a.status == AlertStatus::Open));
    db.end().await;
}
