//! The ingest batch on PostgreSQL: one statement, so one round trip, whatever the batch holds.
//! Each column travels as an array and `UNNEST` turns the arrays back into rows; the four
//! writes (latest report, changed bodies, events, report hours) are data-modifying CTEs of
//! that statement. The transaction commits with `synchronous_commit` on (the server's
//! default), so the commit returns once the WAL is on disk and
//! [`BatchSink::sync_committed`] has nothing left to do.
//!
//! Every part of one statement sees the database as it was when the statement began. The
//! body's guard reads `latest_report` as it was before this batch: a body is newer than the
//! stored state when its seq is at least the stored state's seq, which is what SQLite's guard
//! (against the state after the batch's own upsert) also says, since the batch's state row
//! for a terminal is the same row as its body. The body's own seq is compared too: with
//! several replicas, a batch that began before another's commit must not put an older body
//! over the one that commit wrote.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::PgStore;
use crate::ingest::BatchSink;
use crate::store::{IngestRow, StoreResult, hour_of, latest_per_terminal, millis};

const WRITE_BATCH: &str = "\
WITH state AS (
    INSERT INTO latest_report (terminal_id, seq, received_at, collected_at, uptime_secs,
        hostname, last_start, last_start_kind, last_boot, cert_not_after)
    SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
        $6::text[], $7::int8[], $8::text[], $9::int8[], $10::int8[])
    ON CONFLICT (terminal_id) DO UPDATE SET seq = excluded.seq,
        received_at = excluded.received_at, collected_at = excluded.collected_at,
        uptime_secs = excluded.uptime_secs, hostname = excluded.hostname,
        last_start = excluded.last_start, last_start_kind = excluded.last_start_kind,
        last_boot = excluded.last_boot, cert_not_after = excluded.cert_not_after
    WHERE excluded.seq > latest_report.seq
    RETURNING 1
), body AS (
    INSERT INTO terminal_snapshot (terminal_id, seq, hash, body)
    SELECT * FROM UNNEST($11::uuid[], $12::int8[], $13::int8[], $14::text[])
    ON CONFLICT (terminal_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
        body = excluded.body
    WHERE terminal_snapshot.hash <> excluded.hash AND excluded.seq >= terminal_snapshot.seq
      AND excluded.seq >=
        COALESCE((SELECT l.seq FROM latest_report l WHERE l.terminal_id = excluded.terminal_id), 0)
    RETURNING 1
), event AS (
    INSERT INTO events (id, terminal_id, seq, at, received_at, kind, body)
    SELECT * FROM UNNEST($15::uuid[], $16::uuid[], $17::int8[], $18::int8[], $19::int8[],
        $20::text[], $21::text[])
    ON CONFLICT (terminal_id, id) DO NOTHING
    RETURNING 1
), hour AS (
    INSERT INTO report_hours (terminal_id, hour)
    SELECT * FROM UNNEST($22::uuid[], $23::int8[])
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM state) + (SELECT COUNT(*) FROM body)
     + (SELECT COUNT(*) FROM event) + (SELECT COUNT(*) FROM hour)";

/// The batch's columns, one vector each.
#[derive(Default)]
struct Columns {
    ids: Vec<Uuid>,
    seqs: Vec<i64>,
    received: Vec<i64>,
    collected: Vec<i64>,
    uptimes: Vec<i64>,
    hostnames: Vec<String>,
    starts: Vec<i64>,
    start_kinds: Vec<&'static str>,
    boots: Vec<i64>,
    cert_ends: Vec<Option<i64>>,
    body_ids: Vec<Uuid>,
    body_seqs: Vec<i64>,
    body_hashes: Vec<i64>,
    bodies: Vec<String>,
    event_ids: Vec<Uuid>,
    event_terminals: Vec<Uuid>,
    event_seqs: Vec<i64>,
    event_at: Vec<i64>,
    event_received: Vec<i64>,
    event_kinds: Vec<&'static str>,
    event_bodies: Vec<String>,
    hour_ids: Vec<Uuid>,
    hours: Vec<i64>,
}

impl Columns {
    fn of(rows: &[IngestRow]) -> StoreResult<Columns> {
        let mut c = Columns::default();
        // In terminal order: two batches (two replicas) lock their rows in the same order and
        // cannot deadlock.
        let mut latest = latest_per_terminal(rows);
        latest.sort_unstable_by_key(|r| r.terminal_id);
        for r in &latest {
            c.ids.push(r.terminal_id);
            c.seqs.push(r.seq);
            c.received.push(millis(r.received_at));
            c.collected.push(millis(r.collected_at));
            c.uptimes.push(r.uptime_secs);
            c.hostnames.push(r.hostname.clone());
            c.starts.push(millis(r.last_start));
            c.start_kinds.push(r.last_start_kind.as_str());
            c.boots.push(millis(r.last_boot));
            c.cert_ends.push(r.cert_not_after.map(millis));
            if r.write_snapshot {
                c.body_ids.push(r.terminal_id);
                c.body_seqs.push(r.seq);
                c.body_hashes.push(r.snapshot_hash);
                c.bodies.push(serde_json::to_string(&r.snapshot)?);
            }
        }
        for r in rows {
            for e in &r.events {
                c.event_ids.push(e.id);
                c.event_terminals.push(r.terminal_id);
                c.event_seqs.push(r.seq);
                c.event_at.push(millis(e.at));
                c.event_received.push(millis(r.received_at));
                c.event_kinds.push(e.kind);
                c.event_bodies.push(e.body_json.clone());
            }
            if r.new_hour {
                c.hour_ids.push(r.terminal_id);
                c.hours.push(hour_of(r.received_at));
            }
        }
        Ok(c)
    }
}

#[async_trait]
impl BatchSink for PgStore {
    async fn write_batch(&self, rows: &[IngestRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let c = Columns::of(rows)?;
        // One statement: autocommit makes it its own transaction, committed once.
        sqlx::query_scalar::<_, i64>(WRITE_BATCH)
            .bind(&c.ids)
            .bind(&c.seqs)
            .bind(&c.received)
            .bind(&c.collected)
            .bind(&c.uptimes)
            .bind(&c.hostnames)
            .bind(&c.starts)
            .bind(&c.start_kinds)
            .bind(&c.boots)
            .bind(&c.cert_ends)
            .bind(&c.body_ids)
            .bind(&c.body_seqs)
            .bind(&c.body_hashes)
            .bind(&c.bodies)
            .bind(&c.event_ids)
            .bind(&c.event_terminals)
            .bind(&c.event_seqs)
            .bind(&c.event_at)
            .bind(&c.event_received)
            .bind(&c.event_kinds)
            .bind(&c.event_bodies)
            .bind(&c.hour_ids)
            .bind(&c.hours)
            .fetch_one(&self.ingest)
            .await?;
        Ok(())
    }

    /// The commit above returned after the WAL flush (`synchronous_commit = on`).
    fn sync_committed(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn snapshot_hashes(&self) -> StoreResult<Vec<(Uuid, i64, i64)>> {
        Ok(
            sqlx::query_as("SELECT terminal_id, seq, hash FROM terminal_snapshot")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn report_hours_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<(Uuid, i64)>> {
        Ok(
            sqlx::query_as("SELECT terminal_id, hour FROM report_hours WHERE hour >= $1")
                .bind(hour_of(since))
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
