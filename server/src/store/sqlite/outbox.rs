//! The mail outbox on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};

use super::alerts::insert_mails;
use super::{SqliteStore, pages};
use crate::domain::{Lane, MailKind, NewMail, OutboxCounts, OutboxMail, OutboxRow};
use crate::store::alerts::MailOutcome;
use crate::store::desk::OutboxQuery;
use crate::store::outbox::OutboxStore;
use crate::store::{StoreError, StoreResult, millis};

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_mails(&self, mails: &[NewMail], now: DateTime<Utc>) -> StoreResult<usize> {
        if mails.is_empty() {
            return Ok(0);
        }
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        let rows: Vec<(Option<i64>, &NewMail)> = mails.iter().map(|m| (m.alert_id, m)).collect();
        let n = insert_mails(&mut tx, &rows, now).await?;
        tx.commit().await?;
        self.flush_wal().await?;
        Ok(n)
    }

    async fn claim(
        &self,
        lane: Lane,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
        claimer: &str,
    ) -> StoreResult<Vec<OutboxMail>> {
        let (filter, names) = lane.recipients();
        let names = serde_json::to_string(&names)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET status = 'sending', claimed_until = ?, claimed_by = ?, \
             attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE ((status = 'pending' AND next_attempt_at <= ?) \
             OR (status = 'sending' AND claimed_until <= ?)) AND {} \
             AND CASE ? WHEN 0 THEN 1 \
             WHEN 1 THEN recipient IN (SELECT value FROM json_each(?)) \
             ELSE recipient NOT IN (SELECT value FROM json_each(?)) END \
             ORDER BY id LIMIT ?) \
             RETURNING id, kind, recipient, subject, message_id, body_text, body_html, attempts, \
             alert_id",
            lane.kinds_sql()
        )))
        .bind(millis(now + lease))
        .bind(claimer)
        .bind(millis(now))
        .bind(millis(now))
        .bind(filter as i64)
        .bind(&names)
        .bind(&names)
        .bind(limit)
        .fetch_all(&mut *self.writer.lock().await)
        .await?;
        self.flush_wal().await?;
        let mut mails = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(OutboxMail {
                    id: r.try_get("id")?,
                    kind: MailKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("mail kind {kind:?}")))?,
                    recipient: r.try_get("recipient")?,
                    subject: r.try_get("subject")?,
                    message_id: r.try_get("message_id")?,
                    body_text: r.try_get("body_text")?,
                    body_html: r.try_get("body_html")?,
                    attempts: r.try_get("attempts")?,
                    alert_id: r.try_get("alert_id")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        mails.sort_by_key(|m| m.id);
        Ok(mails)
    }

    async fn renew_mail_claims(
        &self,
        ids: &[i64],
        claimer: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("UPDATE outbox SET claimed_until = ");
        q.push_bind(millis(until))
            .push(" WHERE status = 'sending' AND claimed_by = ")
            .push_bind(claimer)
            .push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        q.push(")");
        let done = q.build().execute(&mut *self.writer.lock().await).await?;
        self.flush_wal().await?;
        Ok(done.rows_affected() as usize)
    }

    async fn settle_mail(
        &self,
        id: i64,
        claimer: &str,
        outcome: MailOutcome<'_>,
    ) -> StoreResult<bool> {
        const HELD: &str = " WHERE id = ? AND status = 'sending' AND claimed_by = ?";
        let q = match outcome {
            MailOutcome::Sent { at } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET status = 'sent', sent_at = ?, claimed_until = NULL, \
                 claimed_by = NULL, last_error = NULL{HELD}"
            )))
            .bind(millis(at)),
            MailOutcome::Retry { at, error } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, claimed_until = NULL, \
                 claimed_by = NULL, last_error = ?{HELD}"
            )))
            .bind(millis(at))
            .bind(error),
            MailOutcome::Failed { error } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET status = 'failed', claimed_until = NULL, claimed_by = NULL, \
                 last_error = ?{HELD}"
            )))
            .bind(error),
            MailOutcome::Untried { at } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, claimed_until = NULL, \
                 claimed_by = NULL, attempts = max(attempts - 1, 0){HELD}"
            )))
            .bind(millis(at)),
        };
        let done = q
            .bind(id)
            .bind(claimer)
            .execute(&mut *self.writer.lock().await)
            .await?;
        self.flush_wal().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn outbox_counts(&self, reach: &crate::domain::Reach) -> StoreResult<OutboxCounts> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT COALESCE(SUM(status = 'pending'), 0) AS pending, \
             COALESCE(SUM(status = 'sending'), 0) AS sending, \
             COALESCE(SUM(status = 'sent'), 0) AS sent, \
             COALESCE(SUM(status = 'failed'), 0) AS failed FROM outbox WHERE 1 = 1",
        );
        super::push_reach(&mut q, "clinic_id", reach);
        let row = q.build().fetch_one(&self.pool).await?;
        Ok(OutboxCounts {
            pending: row.try_get("pending")?,
            sending: row.try_get("sending")?,
            sent: row.try_get("sent")?,
            failed: row.try_get("failed")?,
        })
    }

    async fn outbox_rows(&self, q: &OutboxQuery) -> StoreResult<Vec<OutboxRow>> {
        let mut conn = self.pool.acquire().await?;
        pages::outbox_page(&mut conn, q).await
    }

    async fn alert_messages(&self, alert_ids: &[i64]) -> StoreResult<Vec<(i64, OutboxRow)>> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {}, o.alert_id FROM outbox o LEFT JOIN clinics c ON c.id = o.clinic_id \
             WHERE o.alert_id IN (",
            pages::OUTBOX_COLUMNS
        ));
        let mut list = q.separated(", ");
        for id in alert_ids {
            list.push_bind(*id);
        }
        q.push(") ORDER BY o.id LIMIT ")
            .push_bind(crate::store::outbox::ALERT_MESSAGES_CAP);
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("alert_id")?, pages::outbox_from(r)?)))
            .collect()
    }

    async fn outbox_mail(&self, id: i64) -> StoreResult<Option<(OutboxRow, OutboxMail)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, o.message_id, o.body_text, o.body_html, o.alert_id FROM outbox o \
             LEFT JOIN clinics c ON c.id = o.clinic_id WHERE o.id = ?",
            pages::OUTBOX_COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let listed = pages::outbox_from(&r)?;
        let mail = OutboxMail {
            id: listed.id,
            kind: listed.kind,
            recipient: listed.recipient.clone(),
            subject: listed.subject.clone(),
            message_id: r.try_get("message_id")?,
            body_text: r.try_get("body_text")?,
            body_html: r.try_get("body_html")?,
            alert_id: r.try_get("alert_id")?,
            attempts: listed.attempts,
        };
        Ok(Some((listed, mail)))
    }
}
