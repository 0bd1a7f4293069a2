//! The store contract, run against both engines: SQLite in a temporary directory and
//! PostgreSQL in a schema of its own on this machine's server. What each engine has of the
//! contract so far is here: the ingest batch (`BatchSink`).

use std::sync::Arc;

use chrono::{Duration, Utc};
use onshi_server::ingest::{BatchSink, prepare};
use onshi_server::store::{IngestRow, NewTerminal, PgStore, SqliteStore, Store};
use uuid::Uuid;

use super::postgres::PgSchema;

/// An engine with a clinic and terminals, and a way to read what was written.
enum Engine {
    Sqlite {
        store: Arc<SqliteStore>,
        pool: sqlx::SqlitePool,
        _dir: tempfile::TempDir,
    },
    Postgres {
        store: Arc<PgStore>,
        schema: PgSchema,
    },
}

impl Engine {
    async fn sqlite(terminals: &[Uuid]) -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.db");
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let desk = onshi_server::desk::Desk::for_store(store.clone());
        let actor = onshi_server::domain::Actor::CommandLine {
            os_user: "test".into(),
        };
        let clinic = desk
            .add_clinic(&actor, "さくら内科", "sakura@example.jp", Utc::now())
            .await
            .unwrap();
        let code = desk.issue_code(&actor, clinic.id, Utc::now()).await.unwrap();
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
        Engine::Postgres { store, schema }
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

    async fn end(self) {
        if let Engine::Postgres { schema, store } = self {
            store.pool().close().await;
            schema.drop().await;
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
    db.sink().write_batch(&[first.clone()]).await.unwrap();
    db.sink().sync_committed().unwrap();
    assert_eq!(
        db.strings("SELECT CAST(seq AS TEXT) FROM latest_report").await,
        ["1"]
    );
    assert_eq!(db.strings("SELECT CAST(seq AS TEXT) FROM terminal_snapshot").await, ["1"]);
    assert_eq!(db.strings("SELECT kind FROM events").await.len(), 1);
    assert_eq!(db.strings("SELECT kind FROM starts").await.len(), 1);
    assert_eq!(db.strings("SELECT CAST(hour AS TEXT) FROM report_hours").await.len(), 1);

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
        db.strings("SELECT CAST(seq AS TEXT) FROM latest_report ORDER BY seq").await,
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
        db.strings("SELECT body FROM terminal_snapshot").await.iter().any(|b| b.contains("RENAMED")),
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
        db.strings("SELECT CAST(seq AS TEXT) FROM latest_report ORDER BY seq").await,
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
