//! The PostgreSQL the tests run on: this machine's server (`ONSHI_TEST_DATABASE_URL`, by
//! default `postgres://postgres@127.0.0.1:5432/test`), one fresh schema per test. With
//! `ONSHI_TEST_ENGINE=postgres` the server's tests run every test server on PostgreSQL instead
//! of SQLite; CI runs the suites both ways. An unreachable server fails the test, it is never
//! skipped.

use std::path::Path;

use sqlx::Connection;

/// The database the test schemas are made in.
pub fn base_url() -> String {
    std::env::var("ONSHI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether this run puts the test servers on PostgreSQL (`ONSHI_TEST_ENGINE=postgres`).
pub fn enabled() -> bool {
    match std::env::var("ONSHI_TEST_ENGINE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("ONSHI_TEST_ENGINE must be sqlite or postgres, not {other:?}"),
    }
}

/// Schemas made by this harness start with this, then the process id that made them.
const PREFIX: &str = "onshi_it_";

async fn admin() -> sqlx::PgConnection {
    let url = base_url();
    sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} (ONSHI_TEST_DATABASE_URL): {e}"))
}

async fn exec(conn: &mut sqlx::PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(drop)
}

/// Drops the schemas of test processes that are gone (a run stopped halfway leaves its
/// schemas; those of a run still going are left alone).
async fn sweep(conn: &mut sqlx::PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'onshi\\_it\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names {
        let pid = name[PREFIX.len()..].split('_').next().unwrap_or("");
        let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        if !alive {
            let _ = exec(conn, format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
        }
    }
}

/// A fresh, empty schema: the URL of the test database with the schema as its `search_path`
/// (the server runs its migrations into it).
pub async fn fresh_schema_url() -> String {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let mut conn = admin().await;
    let mut first = false;
    SWEPT.call_once(|| first = true);
    if first {
        sweep(&mut conn).await;
    }
    let name = format!(
        "{PREFIX}{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    exec(&mut conn, format!("CREATE SCHEMA {name}"))
        .await
        .expect("CREATE SCHEMA");
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options[search_path]={name}")
}

/// The database URL kept in a test's data directory: made on first use, so a server started
/// again on the same directory finds the same schema.
pub async fn url_for_dir(dir: &Path) -> String {
    let file = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    let url = fresh_schema_url().await;
    std::fs::write(&file, &url).expect("writing the test's postgres-url");
    url
}
