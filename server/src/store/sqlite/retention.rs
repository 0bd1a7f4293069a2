//! Pruning on SQLite: each step reads what it will delete on a reader connection, then deletes
//! it in one short transaction on the writer's connection, under the store's write lock, so an
//! ingest batch waits for one step's deletes at most.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Connection, QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::domain::AUTO_ACTOR;
use crate::store::retention::{
    Cursor, NOT_FIRST_OF_DAY, Prune, PruneStep, RetentionStore, StepLimit, history_next, walk_rows,
};
use crate::store::{StoreResult, millis};

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn prune(
        &self,
        what: Prune,
        before: DateTime<Utc>,
        cursor: Cursor,
        step: StepLimit,
    ) -> StoreResult<PruneStep> {
        let before = millis(before);
        let limit = step.rows.max(1);
        // What to delete is read on a reader connection: the write lock (which the ingest
        // writer waits for) is held only for the deletes. The rows found are old and written
        // once (events, audit, history, a sent mail), so nothing can change them in between;
        // an alert can open again in its old row, so its condition is checked again under
        // the lock.
        match what {
            Prune::Events => {
                let walk = Walk::new("events", "rowid", "received_at", "1");
                walk.run(self, before, cursor, limit).await
            }
            Prune::AlertHistory => {
                let walk = Walk::new("alert_history", "id", "at", "1");
                walk.run(self, before, cursor, limit).await
            }
            Prune::Audit => {
                let walk = Walk::new("audit_log", "id", "at", "1");
                walk.run(self, before, cursor, limit).await
            }
            Prune::SentMail => {
                let walk = Walk::new("outbox", "id", "created_at", "status IN ('sent', 'failed')");
                walk.run(self, before, cursor, limit).await
            }
            Prune::ResolvedAlerts => {
                // Not an alert the evaluator still follows (resolved by staff while its
                // condition holds: see `Alert::tracked`).
                let deletable = format!(
                    "status = 'resolved' AND resolved_at < {before} AND NOT \
                     (occurrence IS NOT NULL AND resolved_by <> '{AUTO_ACTOR}')"
                );
                let walk = Walk {
                    table: "alerts",
                    key: "id",
                    time: "opened_at",
                    deletable: &deletable,
                    // Their mail and history refer to them: deleted first.
                    referenced_by: &[("outbox", "alert_id"), ("alert_history", "alert_id")],
                    // An alert opens again in its old row (one per terminal and rule): ids are
                    // not in the order of `opened_at`, so the walk goes to the end.
                    in_time_order: false,
                    recheck: true,
                };
                walk.run(self, before, cursor, limit).await
            }
            Prune::Starts => {
                let history = History {
                    table: "starts",
                    time: "started_at",
                    and: "",
                };
                history.prune(self, before, cursor, step).await
            }
            Prune::ReportHours => {
                let history = History {
                    table: "report_hours",
                    time: "hour",
                    and: "",
                };
                history.prune(self, before, cursor, step).await
            }
            Prune::ThinReportHours => {
                let history = History {
                    table: "report_hours",
                    time: "hour",
                    and: NOT_FIRST_OF_DAY,
                };
                history.prune(self, before, cursor, step).await
            }
        }
    }
}

/// A table walked in key order, with the time that decides a row's age.
struct Walk<'a> {
    table: &'static str,
    key: &'static str,
    time: &'static str,
    /// A condition a row must also meet to be deleted.
    deletable: &'a str,
    /// (table, column) of rows that refer to these and go with them.
    referenced_by: &'static [(&'static str, &'static str)],
    /// Rows are written in key order with the time of writing (append-only tables): the walk
    /// ends at the first row at or after the cutoff.
    in_time_order: bool,
    /// Whether `deletable` can stop holding between the read and the delete (checked again
    /// under the lock).
    recheck: bool,
}

impl<'a> Walk<'a> {
    fn new(table: &'static str, key: &'static str, time: &'static str, deletable: &'a str) -> Self {
        Walk {
            table,
            key,
            time,
            deletable,
            referenced_by: &[],
            in_time_order: true,
            recheck: false,
        }
    }

    /// Deletes the deletable rows among the next `limit`, and what refers to them.
    async fn run(
        &self,
        store: &SqliteStore,
        before: i64,
        cursor: Cursor,
        limit: i64,
    ) -> StoreResult<PruneStep> {
        let after = match cursor {
            Cursor::Row(id) => id,
            _ => i64::MIN,
        };
        let Walk {
            table,
            key,
            time,
            deletable,
            referenced_by,
            in_time_order,
            recheck,
        } = self;
        let rows: Vec<(i64, i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {key}, {time}, {deletable} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?"
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(&store.pool)
        .await?;
        let (mut ids, done, last) = walk_rows(rows, after, limit, before, *in_time_order);
        let mut deleted = 0;
        let mut flushed = Duration::ZERO;
        if !ids.is_empty() {
            let mut conn = store.writer.lock().await;
            let mut tx = conn.begin().await?;
            if *recheck {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                    "SELECT {key} FROM {table} WHERE {deletable} AND {key} IN "
                ));
                push_list(&mut q, &ids);
                ids = q.build_query_scalar().fetch_all(&mut *tx).await?;
            }
            if !ids.is_empty() {
                for (other, column) in referenced_by.iter() {
                    let mut q: QueryBuilder<Sqlite> =
                        QueryBuilder::new(format!("DELETE FROM {other} WHERE {column} IN "));
                    push_list(&mut q, &ids);
                    q.build().execute(&mut *tx).await?;
                }
                let mut q: QueryBuilder<Sqlite> =
                    QueryBuilder::new(format!("DELETE FROM {table} WHERE {key} IN "));
                push_list(&mut q, &ids);
                deleted = q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            flushed = checkpoint(&mut conn).await?;
        }
        Ok(PruneStep {
            deleted,
            next: (!done).then_some(Cursor::Row(last)),
            flushed,
        })
    }
}

/// History kept per terminal, in a table whose key is (terminal_id, time).
struct History {
    table: &'static str,
    time: &'static str,
    /// A further condition on the row `r`.
    and: &'static str,
}

/// Row keys per `DELETE` of per-terminal history (two variables each).
const KEYS_PER_DELETE: usize = 1_000;

impl History {
    /// Deletes at most `step.rows` old rows of the next `step.terminals` terminals. A step
    /// that deleted as many as it could stays on those terminals; the next one goes on.
    async fn prune(
        &self,
        store: &SqliteStore,
        before: i64,
        cursor: Cursor,
        step: StepLimit,
    ) -> StoreResult<PruneStep> {
        let after = match cursor {
            Cursor::Terminal(id) => id.to_string(),
            _ => String::new(),
        };
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM terminals WHERE id > ? ORDER BY id LIMIT ?")
                .bind(&after)
                .bind(step.terminals.max(1))
                .fetch_all(&store.pool)
                .await?;
        let Some(last) = ids.last() else {
            return Ok(PruneStep::new(0, None));
        };
        let History { table, time, and } = self;
        // The rows, read without the lock: history of past hours and days is never written
        // again (ingest adds the current hour, a restart its own time).
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT r.terminal_id, r.{time} FROM {table} r WHERE r.{time} < "
        ));
        q.push_bind(before)
            .push(*and)
            .push(" AND r.terminal_id IN (");
        let mut list = q.separated(", ");
        for id in &ids {
            list.push_bind(id.as_str());
        }
        list.push_unseparated(") LIMIT ");
        q.push_bind(step.rows.max(1));
        let keys: Vec<(String, i64)> = q.build_query_as().fetch_all(&store.pool).await?;
        let mut deleted = 0;
        let mut flushed = Duration::ZERO;
        if !keys.is_empty() {
            let mut conn = store.writer.lock().await;
            let mut tx = conn.begin().await?;
            for chunk in keys.chunks(KEYS_PER_DELETE) {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                    "DELETE FROM {table} WHERE (terminal_id, {time}) IN (VALUES "
                ));
                let mut rows = q.separated(", ");
                for (terminal, at) in chunk {
                    rows.push("(")
                        .push_bind_unseparated(terminal.as_str())
                        .push_unseparated(", ")
                        .push_bind_unseparated(*at)
                        .push_unseparated(")");
                }
                q.push(")");
                deleted += q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            flushed = checkpoint(&mut conn).await?;
        }
        let last = uuid::Uuid::parse_str(last)
            .map_err(|e| crate::store::StoreError::Corrupt(format!("terminal id {last:?}: {e}")))?;
        let next = history_next(cursor, keys.len() as u64, step, ids.len(), last);
        Ok(PruneStep {
            deleted,
            next,
            flushed,
        })
    }
}
/// Copies the step's pages from the WAL back into the database, still under the write lock.
///
/// Left to SQLite, the checkpoint runs inside whichever commit crosses 1,000 WAL pages, and
/// with a backlog being deleted that is often an ingest batch's: its replies wait for the
/// pages pruning wrote. Here pruning pays for its own pages. Nothing else writes meanwhile, so
/// the checkpoint goes to the end of the WAL (readers still on an older snapshot can hold it
/// back; the next one catches up) and the next commit starts the WAL over.
async fn checkpoint(conn: &mut sqlx::SqliteConnection) -> StoreResult<Duration> {
    let started = Instant::now();
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(conn)
        .await?;
    Ok(started.elapsed())
}

fn push_list(q: &mut QueryBuilder<Sqlite>, ids: &[i64]) {
    q.push("(");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
}
