//! PostgreSQL's schema (`migrations/postgres`) against SQLite's: the same tables with the same
//! columns, the `starts` trigger, the checks, and names sorted the same way. Each test works
//! in a schema of its own on the server at `ONSHI_TEST_DATABASE_URL` (by default this
//! machine's, `postgres://postgres@127.0.0.1:5432/test`); an unreachable server fails the test
//! rather than skipping it.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool, Row};

/// Runs statements built at run time (schema names, test rows).
async fn exec(pool: &PgPool, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .map(drop)
}

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// A migrated schema of its own, dropped when the test ends (a failed test leaves it, named
/// `onshi_test_…`, to look at).
pub struct PgSchema {
    pub pool: PgPool,
    admin: PgPool,
    pub name: String,
    /// Connection options whose `search_path` is this schema.
    pub options: PgConnectOptions,
}

impl PgSchema {
    pub async fn new() -> PgSchema {
        let url = std::env::var("ONSHI_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let options = PgConnectOptions::from_str(&url).expect("ONSHI_TEST_DATABASE_URL");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} (ONSHI_TEST_DATABASE_URL): {e}"));
        let name = format!("onshi_test_{}", uuid::Uuid::new_v4().simple());
        exec(&admin, format!("CREATE SCHEMA {name}")).await.unwrap();
        let options = options.options([("search_path", name.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await
            .unwrap();
        PG_MIGRATOR
            .run(&pool)
            .await
            .expect("migrations/postgres apply");
        PgSchema {
            pool,
            admin,
            name,
            options,
        }
    }

    pub async fn drop(self) {
        self.pool.close().await;
        let _ = exec(&self.admin, format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }
}

async fn sqlite_columns() -> BTreeMap<String, BTreeSet<String>> {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("schema.db").display()
    ))
    .await
    .unwrap();
    SQLITE_MIGRATOR.run(&pool).await.unwrap();
    let rows = sqlx::query(
        "SELECT m.name AS t, p.name AS c FROM sqlite_schema m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' \
         AND m.name NOT LIKE 'sqlite%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        tables.entry(r.get("t")).or_default().insert(r.get("c"));
    }
    tables
}

#[tokio::test]
async fn the_postgres_schema_has_sqlites_tables_and_columns() {
    let pg = PgSchema::new().await;
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name NOT LIKE '\\_sqlx%'",
    )
    .bind(&pg.name)
    .fetch_all(&pg.pool)
    .await
    .unwrap();
    let mut postgres: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        postgres.entry(r.get("t")).or_default().insert(r.get("c"));
    }
    // SQLite's rowid orders events; PostgreSQL has a column for it.
    if let Some(events) = postgres.get_mut("events") {
        assert!(events.remove("n"), "events.n keeps the order of arrival");
    }
    assert_eq!(postgres, sqlite_columns().await);
    pg.drop().await;
}

#[tokio::test]
async fn a_new_start_is_recorded_by_the_trigger_once() {
    let pg = PgSchema::new().await;
    let p = &pg.pool;
    p.execute(
        "INSERT INTO clinics (id, name, email, created_at) VALUES (1, 'さくら内科', 'a@example.jp', 0); \
         INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, enrolled_at) \
         VALUES ('0192f0c4-0000-7000-8000-000000000001', 1, 'h', 'PC', '0.1', 'Windows', 0); \
         INSERT INTO latest_report (terminal_id, seq, received_at, collected_at, uptime_secs, \
           hostname, last_start, last_start_kind, last_boot) \
         VALUES ('0192f0c4-0000-7000-8000-000000000001', 1, 10, 10, 5, 'PC', 100, 'restart', 100);",
    )
    .await
    .unwrap();
    let starts = |p: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM starts")
            .fetch_one(&p)
            .await
            .unwrap()
    };
    assert_eq!(starts(p.clone()).await, 1, "the first report's start");
    p.execute("UPDATE latest_report SET seq = 2, uptime_secs = 65")
        .await
        .unwrap();
    assert_eq!(starts(p.clone()).await, 1, "the same start again");
    p.execute("UPDATE latest_report SET seq = 3, last_start = 200, last_start_kind = 'power_on'")
        .await
        .unwrap();
    assert_eq!(starts(p.clone()).await, 2, "a new start");
    let kind: String = sqlx::query_scalar("SELECT kind FROM starts WHERE started_at = 200")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(kind, "power_on");
    pg.drop().await;
}

#[tokio::test]
async fn a_silence_has_exactly_one_scope_as_on_sqlite() {
    let pg = PgSchema::new().await;
    let insert = |scope: &str| {
        format!(
            "INSERT INTO silences ({scope}starts_at, ends_at, reason, created_by, created_at) \
             VALUES ({}1, 2, 'r', 'ann', 0)",
            match scope {
                "prefecture, " => "'東京都', ",
                "fleet, " => "TRUE, ",
                _ => "",
            }
        )
    };
    assert!(exec(&pg.pool, insert("")).await.is_err(), "no scope");
    exec(&pg.pool, insert("prefecture, ")).await.unwrap();
    exec(&pg.pool, insert("fleet, ")).await.unwrap();
    let both = "INSERT INTO silences (prefecture, fleet, starts_at, ends_at, reason, created_by, \
                created_at) VALUES ('東京都', TRUE, 1, 2, 'r', 'ann', 0)";
    assert!(exec(&pg.pool, both.into()).await.is_err(), "two scopes");
    pg.drop().await;
}

#[tokio::test]
async fn japanese_names_sort_and_match_prefixes_as_on_sqlite() {
    let names = [
        "さくら内科クリニック",
        "サクラ薬局",
        "佐倉医院",
        "あおば歯科",
        "Aoba Dental",
        "aoba clinic",
        "ひまわり小児科",
        "さくら薬局 駅前店",
    ];
    let pg = PgSchema::new().await;
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("names.db").display()
    ))
    .await
    .unwrap();
    SQLITE_MIGRATOR.run(&lite).await.unwrap();
    for (i, name) in names.iter().enumerate() {
        let sql = "INSERT INTO clinics (id, name, email, created_at) VALUES ($1, $2, 'x', 0)";
        sqlx::query(sql)
            .bind(i as i64 + 1)
            .bind(name)
            .execute(&pg.pool)
            .await
            .unwrap();
        sqlx::query(sql)
            .bind(i as i64 + 1)
            .bind(name)
            .execute(&lite)
            .await
            .unwrap();
    }
    let order = "SELECT name FROM clinics ORDER BY name";
    let on_pg: Vec<String> = sqlx::query_scalar(order).fetch_all(&pg.pool).await.unwrap();
    let on_lite: Vec<String> = sqlx::query_scalar(order).fetch_all(&lite).await.unwrap();
    let mut by_code_point: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    by_code_point.sort();
    assert_eq!(on_pg, by_code_point);
    assert_eq!(on_lite, by_code_point);
    let prefix = "SELECT name FROM clinics WHERE name >= $1 AND name < $2 ORDER BY name";
    let (from, to) = ("さくら", "さくり");
    let pg_prefix: Vec<String> = sqlx::query_scalar(prefix)
        .bind(from)
        .bind(to)
        .fetch_all(&pg.pool)
        .await
        .unwrap();
    let lite_prefix: Vec<String> = sqlx::query_scalar(prefix)
        .bind(from)
        .bind(to)
        .fetch_all(&lite)
        .await
        .unwrap();
    assert_eq!(pg_prefix, ["さくら内科クリニック", "さくら薬局 駅前店"]);
    assert_eq!(lite_prefix, pg_prefix);
    pg.drop().await;
}

/// The leader's lock: one process of a database leads; the lead passes on when the leader's
/// connection goes (closed, or ended on the database's side as when it is cut), and a second
/// deployment in another schema of the same database elects its own leader.
#[tokio::test]
async fn one_process_per_schema_leads_and_the_lead_passes_on_when_its_connection_goes() {
    use onshi_server::store::{PgStore, Store};
    let schema = PgSchema::new().await;
    let a = PgStore::open_with(schema.options.clone()).await.unwrap();
    let b = PgStore::open_with(schema.options.clone()).await.unwrap();
    let (ea, eb) = (Store::election(&a), Store::election(&b));
    let mut lease = ea.try_lead().await.unwrap().expect("the lock is free");
    assert!(eb.try_lead().await.unwrap().is_none(), "held by a");
    lease.confirm().await.unwrap();

    // Another deployment in another schema of the same database is not held up.
    let other = PgSchema::new().await;
    let c = PgStore::open_with(other.options.clone()).await.unwrap();
    let other_lease = Store::election(&c).try_lead().await.unwrap();
    assert!(other_lease.is_some(), "a lock per schema");

    // The leader's session is ended on the server (a cut connection, a killed process).
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'onshi-server leader lock' AND pid IN \
         (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = \
          (SELECT oid FROM pg_namespace WHERE nspname = $1))",
    )
    .bind(&schema.name)
    .fetch_one(&schema.pool)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    assert!(lease.confirm().await.is_err(), "the old leader notices");
    let mut taken = None;
    for _ in 0..50 {
        taken = eb.try_lead().await.unwrap();
        if taken.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut taken = taken.expect("b takes the lead once a's session is gone");
    taken.confirm().await.unwrap();
    // Dropped (a process that stops): free again at once.
    drop(taken);
    drop(lease);
    let mut again = None;
    for _ in 0..50 {
        again = ea.try_lead().await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(again.is_some());
    drop((again, other_lease));
    schema.drop().await;
    other.drop().await;
}
