//! The staff contract (`StaffStore`) on both engines: the same changes give the same outcomes,
//! history, silences and audit lines; and on PostgreSQL, staff acting on the same rows at once
//! (two replicas) apply a change once.

use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};
use futures_util::TryStreamExt;
use onshi_server::calendar::{BusinessHours, Closure};
use onshi_server::domain::{
    Actor, AuditRecord, ClinicDetail, ClinicRules, ClinicSettings, Role, RuleKey, Silence,
    SilenceScope,
};
use onshi_server::store::desk::{AuditQuery, NewSession};
use onshi_server::store::staff::{Applied, BulkAction, StaffChange, StaffStore};
use onshi_server::store::{PgStore, SqliteStore, Store};
use uuid::Uuid;

use super::postgres::PgSchema;

enum Db {
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

/// A clinic (id 1) with `terminals`, each with an open alert of the rule `offline` (ids 1, 2, …)
/// and the first also one of `cert_missing` (the last id).
async fn sqlite(terminals: &[Uuid]) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staff.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO clinics (name, email, created_at) VALUES ('さくら内科', 'x', 0)")
        .execute(&pool)
        .await
        .unwrap();
    for id in terminals {
        sqlx::query(
            "INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, \
             enrolled_at) VALUES ($1, 1, $1, 'PC', '0.1.0', 'Windows 11', 0)",
        )
        .bind(id.to_string())
        .execute(&pool)
        .await
        .unwrap();
    }
    for (id, rule) in alert_rows(terminals) {
        sqlx::query(
            "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, \
             opened_at, updated_at) VALUES ($1, 1, $2, 'warning', 'open', '', 0, 0)",
        )
        .bind(id.to_string())
        .bind(rule)
        .execute(&pool)
        .await
        .unwrap();
    }
    Db::Sqlite {
        store,
        pool,
        _dir: dir,
    }
}

async fn postgres(terminals: &[Uuid]) -> Db {
    let schema = PgSchema::new().await;
    let store = Arc::new(PgStore::open_with(schema.options.clone()).await.unwrap());
    let pool = &schema.pool;
    sqlx::query("INSERT INTO clinics (name, email, created_at) VALUES ('さくら内科', 'x', 0)")
        .execute(pool)
        .await
        .unwrap();
    for id in terminals {
        sqlx::query(
            "INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, \
             enrolled_at) VALUES ($1, 1, $2, 'PC', '0.1.0', 'Windows 11', 0)",
        )
        .bind(id)
        .bind(id.to_string())
        .execute(pool)
        .await
        .unwrap();
    }
    for (id, rule) in alert_rows(terminals) {
        sqlx::query(
            "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, \
             opened_at, updated_at) VALUES ($1, 1, $2, 'warning', 'open', '', 0, 0)",
        )
        .bind(id)
        .bind(rule)
        .execute(pool)
        .await
        .unwrap();
    }
    Db::Postgres {
        store,
        schema: Box::new(schema),
    }
}

fn alert_rows(terminals: &[Uuid]) -> Vec<(Uuid, &'static str)> {
    let mut rows: Vec<(Uuid, &'static str)> = terminals.iter().map(|t| (*t, "offline")).collect();
    rows.push((terminals[0], "cert_missing"));
    rows
}

impl Db {
    fn staff(&self) -> &dyn StaffStore {
        match self {
            Db::Sqlite { store, .. } => store.staff(),
            Db::Postgres { store, .. } => store.as_ref(),
        }
    }

    /// The first column of each row of `sql` (portable SQL, cast to text).
    async fn strings(&self, sql: &'static str) -> Vec<String> {
        match self {
            Db::Sqlite { pool, .. } => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Db::Postgres { schema, .. } => sqlx::query_scalar(sql)
                .fetch_all(&schema.pool)
                .await
                .unwrap(),
        }
    }

    async fn end(self) {
        if let Db::Postgres { schema, store } = self {
            store.pool().close().await;
            (*schema).drop().await;
        }
    }
}

fn actor() -> Actor {
    Actor::Staff {
        user_id: 7,
        name: "yamada".into(),
    }
}

fn audit(what: &str) -> AuditRecord {
    AuditRecord::new(&actor(), Utc::now(), what)
}

fn settings(id: i64, name: &str) -> ClinicSettings {
    ClinicSettings {
        id,
        name: name.into(),
        email: "c@example.jp".into(),
        hours: BusinessHours::default(),
        desk_name: None,
        desk_phone: None,
        prefecture: Some("東京都".into()),
        accounts: Vec::new(),
        rules: ClinicRules::default(),
    }
}

fn clinic(id: i64, name: &str, code: &str) -> StaffChange {
    StaffChange::SaveClinic(Box::new(ClinicDetail {
        settings: settings(id, name),
        code: Some(code.into()),
        phone: None,
        notes: String::new(),
    }))
}

async fn staff_contract(make: impl AsyncFn(&[Uuid]) -> Db) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let db = make(&[a, b]).await;
    let s = db.staff();

    // One alert: acknowledged, noted, resolved; then nothing more to resolve or acknowledge.
    // Each change's channel messages are stored with it, naming the alert, and only when it
    // applies.
    let told = |what: &str| onshi_server::domain::NewMail {
        kind: onshi_server::domain::MailKind::Slack,
        clinic_id: Some(1),
        recipient: "desk".into(),
        subject: what.into(),
        message_id: Uuid::now_v7().to_string(),
        body_text: "{}".into(),
        body_html: String::new(),
        dedupe_key: None,
        alert_id: None,
    };
    let ack = StaffChange::AcknowledgeAlert {
        id: 1,
        note: "電話済み".into(),
        until: None,
        tell: vec![told("taken")],
    };
    assert_eq!(
        s.apply(&ack, &audit("ack")).await.unwrap(),
        Applied::Done {
            id: None,
            terminal_id: Some(a)
        }
    );
    let note = StaffChange::NoteAlert {
        id: 1,
        note: "再起動待ち".into(),
    };
    assert!(matches!(
        s.apply(&note, &audit("note")).await.unwrap(),
        Applied::Done { .. }
    ));
    let resolve = StaffChange::ResolveAlert {
        id: 1,
        note: String::new(),
        tell: vec![told("resolved")],
    };
    assert!(matches!(
        s.apply(&resolve, &audit("resolve")).await.unwrap(),
        Applied::Done { .. }
    ));
    assert_eq!(
        s.apply(&resolve, &audit("again")).await.unwrap(),
        Applied::NotFound
    );
    assert_eq!(
        s.apply(&ack, &audit("again")).await.unwrap(),
        Applied::NotFound
    );
    assert_eq!(
        db.strings(
            "SELECT subject || ':' || CAST(alert_id AS TEXT) FROM outbox WHERE kind = 'slack' \
             ORDER BY id"
        )
        .await,
        ["taken:1", "resolved:1"]
    );
    let missing = StaffChange::NoteAlert {
        id: 999,
        note: "x".into(),
    };
    assert_eq!(
        s.apply(&missing, &audit("none")).await.unwrap(),
        Applied::NotFound
    );
    assert_eq!(
        db.strings(
            "SELECT action || ':' || COALESCE(note, '-') || ':' || severity FROM alert_history \
             WHERE alert_id = 1 ORDER BY id"
        )
        .await,
        [
            "acknowledged:電話済み:warning",
            "note:再起動待ち:warning",
            "resolved:-:warning"
        ]
    );
    assert_eq!(
        db.strings(
            "SELECT action || ':' || CAST(alert_id AS TEXT) || ':' || CAST(clinic_id AS TEXT) \
             || ':' || CAST(user_id AS TEXT) || ':' || what FROM audit_log ORDER BY id"
        )
        .await,
        ["alert:1:1:7:ack", "alert:1:1:7:note", "alert:1:1:7:resolve"]
    );
    assert_eq!(
        db.strings("SELECT CAST(terminal_id AS TEXT) FROM audit_log")
            .await
            .iter()
            .map(|t| t.to_lowercase())
            .collect::<Vec<_>>(),
        [a.to_string(), a.to_string(), a.to_string()]
    );

    // Bulk: the resolved alert and an unknown id are skipped for acknowledge; a silence per
    // terminal and rule; one audit line naming the alerts. The channel messages of the alerts
    // it applies to are stored with it, the others not.
    let bulk_told = |id: i64| onshi_server::domain::NewMail {
        subject: format!("bulk {id}"),
        alert_id: Some(id),
        ..told("")
    };
    let out = s
        .bulk_alerts(
            &[999, 3, 1, 2, 3],
            &BulkAction::Acknowledge {
                note: "まとめて".into(),
                until: None,
            },
            &audit("一括"),
            &[bulk_told(1), bulk_told(3), bulk_told(999)],
        )
        .await
        .unwrap();
    assert_eq!(out.alerts, [2, 3]);
    assert_eq!(
        db.strings(
            "SELECT subject || ':' || CAST(alert_id AS TEXT) FROM outbox WHERE kind = 'slack' \
             AND subject LIKE 'bulk%' ORDER BY id"
        )
        .await,
        ["bulk 3:3"]
    );
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(out.terminals, both);
    let out = s
        .bulk_alerts(
            &[1, 2, 3],
            &BulkAction::Silence {
                until: Utc::now() + Duration::hours(2),
                reason: "工事".into(),
            },
            &audit("停止"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(out.alerts, [1, 2, 3]);
    assert_eq!(
        db.strings("SELECT rule FROM silences ORDER BY id")
            .await
            .len(),
        3
    );
    assert_eq!(
        db.strings("SELECT what FROM audit_log WHERE action = 'bulk' ORDER BY id")
            .await,
        ["一括 (2 件): #2 #3", "停止 (3 件): #1 #2 #3"]
    );
    assert_eq!(
        db.strings(
            "SELECT CAST(alert_id AS TEXT) || ':' || note FROM alert_history \
             WHERE note LIKE '通知を停止%' ORDER BY id"
        )
        .await,
        [
            "1:通知を停止: 工事",
            "2:通知を停止: 工事",
            "3:通知を停止: 工事"
        ]
    );
    let none = s
        .bulk_alerts(
            &[999],
            &BulkAction::Note { note: "x".into() },
            &audit("n"),
            &[],
        )
        .await
        .unwrap();
    assert!(none.alerts.is_empty() && none.terminals.is_empty());

    // Silences: one that has not started is dropped when ended; ending it again finds nothing.
    let silence = Silence {
        id: 0,
        scope: SilenceScope::Terminal(b),
        rule: Some(RuleKey::Offline),
        starts_at: Utc::now() + Duration::hours(1),
        ends_at: Utc::now() + Duration::hours(3),
        daily: None,
        reason: "点検".into(),
        created_by: String::new(),
        ended_by: None,
    };
    let Applied::Done {
        id: Some(sid),
        terminal_id,
    } = s
        .apply(&StaffChange::AddSilence(silence.clone()), &audit("add"))
        .await
        .unwrap()
    else {
        panic!("silence not added")
    };
    assert_eq!(terminal_id, Some(b));
    let end = StaffChange::EndSilence { id: sid };
    assert!(matches!(
        s.apply(&end, &audit("end")).await.unwrap(),
        Applied::Done { .. }
    ));
    assert_eq!(
        s.apply(&end, &audit("end")).await.unwrap(),
        Applied::NotFound
    );
    let gone = Silence {
        scope: SilenceScope::Clinic(42),
        ..silence
    };
    assert_eq!(
        s.apply(&StaffChange::AddSilence(gone), &audit("x"))
            .await
            .unwrap(),
        Applied::NotFound
    );

    // Clinics: a taken code is a conflict; closures bump the clinic's settings version.
    let Applied::Done { id: Some(c2), .. } = s
        .apply(&clinic(0, "みどり歯科", "1234567890"), &audit("clinic"))
        .await
        .unwrap()
    else {
        panic!("clinic not created")
    };
    assert_eq!(
        s.apply(&clinic(0, "あおば", "1234567890"), &audit("clinic"))
            .await
            .unwrap(),
        Applied::Conflict
    );
    assert_eq!(
        s.apply(&clinic(999, "なし", "0000000000"), &audit("clinic"))
            .await
            .unwrap(),
        Applied::NotFound
    );
    let day = NaiveDate::from_ymd_opt(2025, 5, 1).unwrap();
    let closures = StaffChange::AddClosures {
        clinic_id: c2,
        closures: vec![
            Closure {
                id: 0,
                from: day,
                to: day,
                reason: "臨時休診".into(),
            },
            Closure {
                id: 0,
                from: day + Duration::days(3),
                to: day + Duration::days(5),
                reason: String::new(),
            },
        ],
    };
    assert_eq!(
        s.apply(&closures, &audit("closures")).await.unwrap(),
        Applied::Done {
            id: None,
            terminal_id: None
        }
    );
    assert_eq!(
        db.strings(
            "SELECT CAST(from_date AS TEXT) || '..' || CAST(to_date AS TEXT) FROM \
             clinic_closures ORDER BY id"
        )
        .await,
        ["2025-05-01..2025-05-01", "2025-05-04..2025-05-06"]
    );
    assert_eq!(
        db.strings("SELECT CAST(settings_version AS TEXT) FROM clinics ORDER BY id")
            .await,
        ["0", "2"]
    );

    // Users and sessions.
    let create = StaffChange::CreateUser {
        name: "suzuki".into(),
        role: Role::Viewer,
        password_hash: "h".into(),
        scope: None,
    };
    let Applied::Done { id: Some(uid), .. } = s.apply(&create, &audit("user")).await.unwrap()
    else {
        panic!("user not created")
    };
    assert_eq!(
        s.apply(&create, &audit("user")).await.unwrap(),
        Applied::Conflict
    );
    let now = Utc::now();
    let session = NewSession {
        id_hash: "sess".into(),
        user_id: uid,
        csrf: "csrf".into(),
        created_at: now,
        expires_at: now + Duration::hours(8),
        address: "127.0.0.1".into(),
    };
    s.create_session(&session, &audit("login")).await.unwrap();
    let user = s.session("sess", now).await.unwrap().unwrap();
    assert_eq!((user.name.as_str(), user.role), ("suzuki", Role::Viewer));
    assert!(s.user_by_name("suzuki").await.unwrap().is_some());
    assert_eq!(s.users().await.unwrap().len(), 1);
    let disable = StaffChange::SetUserDisabled {
        user_id: uid,
        disabled: true,
    };
    assert!(matches!(
        s.apply(&disable, &audit("off")).await.unwrap(),
        Applied::Done { .. }
    ));
    assert!(s.session("sess", now).await.unwrap().is_none());
    assert!(s.user_by_name("suzuki").await.unwrap().unwrap().disabled);

    // The audit log: pages newest first, the export the same lines.
    let all = s
        .audit_rows(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let page = s
        .audit_rows(&AuditQuery {
            limit: 3,
            before: Some(all[2].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page, all[3..6]);
    let alerts = s
        .audit_rows(&AuditQuery {
            limit: 100,
            action: Some("alert".into()),
            terminal_id: Some(a),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[0].hostname.as_deref(), Some("PC"));
    assert_eq!(alerts[0].clinic_name.as_deref(), Some("さくら内科"));
    let exported: Vec<_> = s
        .export_audit(AuditQuery {
            limit: 2,
            before: Some(1),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(exported, all);
    assert_eq!(
        s.audit_actors(&onshi_server::domain::Reach::All)
            .await
            .unwrap(),
        ["yamada"]
    );

    // Scopes: a clinic group, a user's scope, and the audit log read through a reach.
    use onshi_server::domain::{Reach, Scope};
    let group = match s
        .apply(
            &StaffChange::CreateGroup {
                name: "札幌販売店".into(),
            },
            &audit("group"),
        )
        .await
        .unwrap()
    {
        Applied::Done { id: Some(id), .. } => id,
        other => panic!("{other:?}"),
    };
    let same_name = StaffChange::CreateGroup {
        name: "札幌販売店".into(),
    };
    assert_eq!(
        s.apply(&same_name, &audit("group")).await.unwrap(),
        Applied::Conflict
    );
    let member = |clinic_id: i64, member: bool| StaffChange::SetGroupMember {
        group_id: group,
        clinic_id,
        member,
    };
    assert_eq!(
        s.apply(&member(999, true), &audit("no clinic"))
            .await
            .unwrap(),
        Applied::NotFound
    );
    for _ in 0..2 {
        assert!(matches!(
            s.apply(&member(1, true), &audit("join")).await.unwrap(),
            Applied::Done { .. }
        ));
    }
    let by_group = Scope {
        prefectures: Vec::new(),
        groups: vec![group],
    };
    assert_eq!(s.scope_clinics(&by_group).await.unwrap(), [1]);
    assert_eq!(
        s.scope_clinics(&Scope::default()).await.unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(s.clinic_groups().await.unwrap()[0].clinics, 1);
    assert_eq!(
        s.group_clinics(group).await.unwrap(),
        [(1, "さくら内科".to_string())]
    );
    let access = StaffChange::SetUserAccess {
        user_id: uid,
        role: Role::Admin,
        scope: Some(by_group.clone()),
    };
    assert!(matches!(
        s.apply(&access, &audit("access")).await.unwrap(),
        Applied::Done { .. }
    ));
    let suzuki = s.user_by_name("suzuki").await.unwrap().unwrap();
    assert_eq!(
        (suzuki.role, suzuki.scope),
        (Role::Admin, Some(by_group.clone()))
    );
    let all = s
        .audit_rows(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let scoped = s
        .audit_rows(&AuditQuery {
            limit: 100,
            reach: Reach::clinics(vec![1]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        scoped,
        all.iter()
            .filter(|r| r.clinic_id == Some(1) || r.terminal_id.is_some_and(|t| t == a || t == b))
            .cloned()
            .collect::<Vec<_>>(),
        "the clinic's lines and its terminals', nothing about users or logins"
    );
    assert!(!scoped.is_empty() && scoped.len() < all.len());
    let elsewhere = AuditQuery {
        limit: 100,
        reach: Reach::clinics(vec![999]),
        ..Default::default()
    };
    assert!(s.audit_rows(&elsewhere).await.unwrap().is_empty());
    assert!(
        s.audit_actors(&Reach::clinics(vec![999]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.apply(&member(1, false), &audit("leave")).await.is_ok()
            && s.scope_clinics(&by_group).await.unwrap().is_empty()
    );
    let delete = StaffChange::DeleteGroup { id: group };
    assert!(matches!(
        s.apply(&delete, &audit("delete")).await.unwrap(),
        Applied::Done { .. }
    ));
    assert_eq!(
        s.apply(&delete, &audit("delete")).await.unwrap(),
        Applied::NotFound
    );
    db.end().await;
}

#[tokio::test]
async fn the_staff_contract_holds_on_sqlite() {
    staff_contract(sqlite).await;
}

#[tokio::test]
async fn the_staff_contract_holds_on_postgres() {
    staff_contract(postgres).await;
}

/// Two replicas' staff at once: a change applies once, and bulk actions over the same alerts
/// in opposite orders wait for each other instead of deadlocking.
#[tokio::test]
async fn staff_on_two_replicas_apply_a_change_once_on_postgres() {
    let ts: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    let db = postgres(&ts).await;
    let Db::Postgres { schema, .. } = &db else {
        unreachable!()
    };
    let stores: Vec<Arc<PgStore>> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(Arc::new(
                PgStore::open_with(schema.options.clone()).await.unwrap(),
            ));
        }
        v
    };

    let resolves = stores.iter().map(|st| {
        let st = st.clone();
        async move {
            st.apply(
                &StaffChange::ResolveAlert {
                    id: 1,
                    note: String::new(),
                    tell: Vec::new(),
                },
                &audit("resolve"),
            )
            .await
            .unwrap()
        }
    });
    let outcomes = futures_util::future::join_all(resolves).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Applied::Done { .. }))
            .count(),
        1
    );
    assert_eq!(
        db.strings("SELECT action FROM alert_history WHERE alert_id = 1")
            .await,
        ["resolved"]
    );

    let start = Utc::now() - Duration::minutes(1);
    let Applied::Done { id: Some(sid), .. } = stores[0]
        .apply(
            &StaffChange::AddSilence(Silence {
                id: 0,
                scope: SilenceScope::Fleet,
                rule: None,
                starts_at: start,
                ends_at: start + Duration::hours(2),
                daily: None,
                reason: "r".into(),
                created_by: String::new(),
                ended_by: None,
            }),
            &audit("add"),
        )
        .await
        .unwrap()
    else {
        panic!("silence not added")
    };
    let ends = stores.iter().map(|st| {
        let st = st.clone();
        async move {
            st.apply(&StaffChange::EndSilence { id: sid }, &audit("end"))
                .await
                .unwrap()
        }
    });
    let outcomes = futures_util::future::join_all(ends).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Applied::Done { .. }))
            .count(),
        1
    );

    let mut ids: Vec<i64> = (1..=7).collect();
    let bulks = stores.iter().enumerate().map(|(i, st)| {
        let st = st.clone();
        if i % 2 == 1 {
            ids.reverse();
        }
        let ids = ids.clone();
        async move {
            st.bulk_alerts(
                &ids,
                &BulkAction::Resolve {
                    note: String::new(),
                },
                &audit("bulk"),
                &[],
            )
            .await
            .unwrap()
        }
    });
    let outcomes = futures_util::future::join_all(bulks).await;
    let mut resolved: Vec<i64> = outcomes.into_iter().flat_map(|o| o.alerts).collect();
    resolved.sort_unstable();
    assert_eq!(resolved, (2..=7).collect::<Vec<i64>>());
    assert_eq!(
        db.strings("SELECT action FROM alert_history WHERE action = 'resolved'")
            .await
            .len(),
        7
    );
    for st in stores {
        st.pool().close().await;
    }
    db.end().await;
}
