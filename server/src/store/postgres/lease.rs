//! The leader's lock on PostgreSQL (see `crate::leader`): a session-level advisory lock held on
//! a connection of its own, outside the pool. Advisory locks belong to the database, not the
//! schema, so the lock's second key is the schema's oid: deployments (or tests) in several
//! schemas of one database elect apart.

use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::PgStore;
use crate::leader::{Election, LEASE_TIMEOUT, Lease};
use crate::store::StoreResult;

/// The lock's first key: "onsh" in ASCII.
const LOCK_CLASS: i32 = 0x6f6e_7368;

/// Takes the lock on `conn` if it is free.
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1, \
     (SELECT oid::int4 FROM pg_namespace WHERE nspname = current_schema()))";

pub(super) struct PgElection {
    options: PgConnectOptions,
}

impl PgElection {
    pub(super) fn new(store: &PgStore) -> Self {
        let timeout = format!("{}s", LEASE_TIMEOUT.as_secs());
        let options = (*store.pool.connect_options())
            .clone()
            .application_name("onshi-server leader lock")
            .options([("idle_session_timeout", timeout.as_str())]);
        PgElection { options }
    }
}

struct PgLease(PgConnection);

#[async_trait]
impl Election for PgElection {
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn Lease>>> {
        let mut conn = self.options.connect().await?;
        let got: bool = sqlx::query_scalar(TRY_LOCK)
            .bind(LOCK_CLASS)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(Box::new(PgLease(conn))))
        } else {
            conn.close().await?;
            Ok(None)
        }
    }
}

#[async_trait]
impl Lease for PgLease {
    async fn confirm(&mut self) -> StoreResult<()> {
        // The lock lasts as long as the session: a session that answers still holds it.
        self.0.ping().await?;
        Ok(())
    }
}
