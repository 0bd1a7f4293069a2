//! Pruning on PostgreSQL: each step reads what it deletes, then deletes it by key in one short
//! transaction. Rows are never locked for long and readers never wait (MVCC); concurrent
//! replicas prune only on the leader.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PgStore;
use crate::domain::AUTO_ACTOR;
use crate::store::retention::{
    Cursor, NOT_FIRST_OF_DAY, Prune, PruneStep, RetentionStore, StepLimit, history_next, walk_rows,
};
use crate::store::{StoreResult, millis};

#[async_trait]
impl RetentionStore for PgStore {
    async fn prune(
        &self,
        what: Prune,
        before: DateTime<Utc>,
        cursor: Cursor,
        step: StepLimit,
    ) -> StoreResult<PruneStep> {
        let before = millis(before);
        let limit = step.rows.max(1);
        let walk = |table, key, time, deletable| Walk {
            table,
            key,
            time,
            deletable,
            referenced_by: &[],
            in_time_order: true,
        };
        match what {
            Prune::Events => {
                walk("events", "n", "received_at", "TRUE".into())
                    .run(self, before, cursor, limit)
                    .await
            }
            Prune::AlertHistory => {
                walk("alert_history", "id", "at", "TRUE".into())
                    .run(self, before, cursor, limit)
                    .await
            }
            Prune::Audit => {
                walk("audit_log", "id", "at", "TRUE".into())
                    .run(self, before, cursor, limit)
                    .await
            }
            Prune::SentMail => {
                walk(
                    "outbox",
                    "id",
                    "created_at",
                    "status IN ('sent', 'failed')".into(),
                )
                .run(self, before, cursor, limit)
                .await
            }
            Prune::ResolvedAlerts => {
                // Not an alert the evaluator still follows (see `Alert::tracked`).
                let deletable = format!(
                    "status = 'resolved' AND resolved_at < {before} AND NOT \
                     (occurrence IS NOT NULL AND resolved_by <> '{AUTO_ACTOR}')"
                );
                Walk {
                    referenced_by: &[("outbox", "alert_id"), ("alert_history", "alert_id")],
                    // An alert opens again in its old row: ids are not in time order.
                    in_time_order: false,
                    ..walk("alerts", "id", "opened_at", deletable)
                }
                .run(self, before, cursor, limit)
                .await
            }
            Prune::Starts => {
                History::new("starts", "started_at", "")
                    .prune(self, before, cursor, step)
                    .await
            }
            Prune::ReportHours => {
                History::new("report_hours", "hour", "")
                    .prune(self, before, cursor, step)
                    .await
            }
            Prune::ThinReportHours => {
                History::new("report_hours", "hour", NOT_FIRST_OF_DAY)
                    .prune(self, before, cursor, step)
                    .await
            }
        }
    }
}

/// A table walked in key order, with the time that decides a row's age.
struct Walk {
    table: &'static str,
    key: &'static str,
    time: &'static str,
    /// A condition a row must also meet to be deleted (checked again when deleting).
    deletable: String,
    /// (table, column) of rows that refer to these and go with them.
    referenced_by: &'static [(&'static str, &'static str)],
    /// The walk ends at the first row at or after the cutoff (append-only tables).
    in_time_order: bool,
}

impl Walk {
    async fn run(
        &self,
        store: &PgStore,
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
        } = self;
        let rows: Vec<(i64, i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {key}, {time}, {deletable} FROM {table} WHERE {key} > $1 ORDER BY {key} \
             LIMIT $2"
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(&store.pool)
        .await?;
        let (ids, done, last) = walk_rows(rows, after, limit, before, *in_time_order);
        let mut deleted = 0;
        if !ids.is_empty() {
            let mut tx = store.pool.begin().await?;
            // Still deletable (an alert may have opened again), and kept so until the commit.
            let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {key} FROM {table} WHERE {key} = ANY($1) AND {deletable} FOR UPDATE"
            )))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            for (other, column) in referenced_by.iter() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {other} WHERE {column} = ANY($1)"
                )))
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            }
            deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {key} = ANY($1)"
            )))
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
        }
        Ok(PruneStep::new(
            deleted,
            (!done).then_some(Cursor::Row(last)),
        ))
    }
}

/// History kept per terminal, in a table whose key is (terminal_id, time).
struct History {
    table: &'static str,
    time: &'static str,
    /// A further condition on the row `r`.
    and: &'static str,
}

impl History {
    fn new(table: &'static str, time: &'static str, and: &'static str) -> Self {
        History { table, time, and }
    }

    /// Deletes at most `step.rows` old rows of the next `step.terminals` terminals, in one
    /// statement. A step that deleted as many as it could stays on those terminals.
    async fn prune(
        &self,
        store: &PgStore,
        before: i64,
        cursor: Cursor,
        step: StepLimit,
    ) -> StoreResult<PruneStep> {
        let after = match cursor {
            Cursor::Terminal(id) => id,
            _ => Uuid::nil(),
        };
        let ids: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM terminals WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(step.terminals.max(1))
                .fetch_all(&store.pool)
                .await?;
        let Some(&last) = ids.last() else {
            return Ok(PruneStep::new(0, None));
        };
        let History { table, time, and } = self;
        let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE (terminal_id, {time}) IN (SELECT r.terminal_id, r.{time} \
             FROM {table} r WHERE r.{time} < $1{and} AND r.terminal_id = ANY($2) LIMIT $3)"
        )))
        .bind(before)
        .bind(&ids)
        .bind(step.rows.max(1))
        .execute(&store.pool)
        .await?
        .rows_affected();
        let next = history_next(cursor, deleted, step, ids.len(), last);
        Ok(PruneStep::new(deleted, next))
    }
}
