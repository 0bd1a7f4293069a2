//! The PostgreSQL store, for fleets that outgrow one machine: several `onshi-server` replicas on
//! one database. It is being built one reader's trait at a time, each complete and tested
//! against a real server beside SQLite (`tests/it/engines.rs`); until every trait of
//! [`super::Store`] is there, [`super::connect`] refuses `postgres://` URLs.
//!
//! Done: the schema (`migrations/postgres`) and the ingest batch ([`batch`]).

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::StoreResult;

mod batch;
mod outbox;
mod retention;

/// This build's schema.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl PgStore {
    /// Connects and runs the migrations. Every connection commits with `synchronous_commit`
    /// on, whatever the server's default: an acknowledged report is on disk.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("onshi-server");
        Self::open_with(options).await
    }

    /// Like [`PgStore::open`], with options already parsed (a test's own schema as
    /// `search_path`, say).
    pub async fn open_with(options: PgConnectOptions) -> StoreResult<Self> {
        let options = options.options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The connection pool (for the tests that check what was written).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
