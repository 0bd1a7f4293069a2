//! The mail outbox on PostgreSQL. Senders on several replicas claim with `FOR UPDATE SKIP
//! LOCKED`: each claim takes rows no other claim holds, without waiting for the others.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::domain::{Lane, MailKind, NewMail, OutboxCounts, OutboxMail, OutboxRow, OutboxStatus};
use crate::store::alerts::MailOutcome;
use crate::store::desk::OutboxQuery;
use crate::store::outbox::OutboxStore;
use crate::store::{StoreError, StoreResult, from_millis, millis};

const MAIL_COLUMNS: &str =
    "id, kind, recipient, subject, message_id, body_text, body_html, attempts, alert_id";

const OUTBOX_COLUMNS: &str = "o.id, o.kind, o.clinic_id, c.name AS clinic_name, \
     o.recipient, o.subject, o.status, o.attempts, o.last_error, o.created_at, o.sent_at, \
     o.next_attempt_at";

fn kind_of(r: &PgRow) -> StoreResult<MailKind> {
    let kind: String = r.try_get("kind")?;
    MailKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("mail kind {kind:?}")))
}

fn mail_from(r: &PgRow) -> StoreResult<OutboxMail> {
    Ok(OutboxMail {
        id: r.try_get("id")?,
        kind: kind_of(r)?,
        recipient: r.try_get("recipient")?,
        subject: r.try_get("subject")?,
        message_id: r.try_get("message_id")?,
        body_text: r.try_get("body_text")?,
        body_html: r.try_get("body_html")?,
        attempts: r.try_get("attempts")?,
        alert_id: r.try_get("alert_id")?,
    })
}

fn outbox_from(r: &PgRow) -> StoreResult<OutboxRow> {
    let status: String = r.try_get("status")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        kind: kind_of(r)?,
        clinic_id: r.try_get("clinic_id")?,
        clinic_name: r.try_get("clinic_name")?,
        recipient: r.try_get("recipient")?,
        subject: r.try_get("subject")?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("mail status {status:?}")))?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        created_at: from_millis(r.try_get("created_at")?),
        sent_at: r.try_get::<Option<i64>, _>("sent_at")?.map(from_millis),
        next_attempt_at: from_millis(r.try_get("next_attempt_at")?),
    })
}

/// Queues mails (with the alert each is about) in one statement; a mail whose dedupe key or
/// Message-ID is stored already is skipped. Returns how many were queued.
pub(super) async fn insert_mails<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    mails: &[(Option<i64>, &NewMail)],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    if mails.is_empty() {
        return Ok(0);
    }
    let text = |f: fn(&NewMail) -> &str| -> Vec<&str> { mails.iter().map(|(_, m)| f(m)).collect() };
    let kinds: Vec<&str> = mails.iter().map(|(_, m)| m.kind.as_str()).collect();
    let clinics: Vec<Option<i64>> = mails.iter().map(|(_, m)| m.clinic_id).collect();
    let alerts: Vec<Option<i64>> = mails.iter().map(|(a, _)| *a).collect();
    let dedupe: Vec<Option<&str>> = mails.iter().map(|(_, m)| m.dedupe_key.as_deref()).collect();
    let done = sqlx::query(
        "INSERT INTO outbox (kind, clinic_id, alert_id, recipient, subject, message_id, \
         body_text, body_html, dedupe_key, status, next_attempt_at, created_at) \
         SELECT k, c, a, r, s, m, t, h, d, 'pending', $10, $10 FROM UNNEST($1::text[], \
         $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
         $9::text[]) AS u(k, c, a, r, s, m, t, h, d) ON CONFLICT DO NOTHING",
    )
    .bind(kinds)
    .bind(clinics)
    .bind(alerts)
    .bind(text(|m| &m.recipient))
    .bind(text(|m| &m.subject))
    .bind(text(|m| &m.message_id))
    .bind(text(|m| &m.body_text))
    .bind(text(|m| &m.body_html))
    .bind(dedupe)
    .bind(millis(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() as usize)
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn enqueue_mails(&self, mails: &[NewMail], now: DateTime<Utc>) -> StoreResult<usize> {
        let rows: Vec<(Option<i64>, &NewMail)> = mails.iter().map(|m| (m.alert_id, m)).collect();
        insert_mails(&self.pool, &rows, now).await
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET status = 'sending', claimed_until = $1, claimed_by = $2, \
             attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE ((status = 'pending' AND next_attempt_at <= $3) \
             OR (status = 'sending' AND claimed_until <= $3)) AND {} \
             AND CASE $5::int4 WHEN 0 THEN TRUE WHEN 1 THEN recipient = ANY($6::text[]) \
             ELSE recipient <> ALL($6::text[]) END \
             ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING {MAIL_COLUMNS}",
            lane.kinds_sql()
        )))
        .bind(millis(now + lease))
        .bind(claimer)
        .bind(millis(now))
        .bind(limit)
        .bind(filter as i32)
        .bind(&names)
        .fetch_all(&self.pool)
        .await?;
        let mut mails = rows
            .iter()
            .map(mail_from)
            .collect::<StoreResult<Vec<_>>>()?;
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
        let done = sqlx::query(
            "UPDATE outbox SET claimed_until = $1 WHERE status = 'sending' AND claimed_by = $2 \
             AND id = ANY($3)",
        )
        .bind(millis(until))
        .bind(claimer)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() as usize)
    }

    async fn settle_mail(
        &self,
        id: i64,
        claimer: &str,
        outcome: MailOutcome<'_>,
    ) -> StoreResult<bool> {
        const HELD: &str = " WHERE id = $2 AND status = 'sending' AND claimed_by = $3";
        let q = match outcome {
            MailOutcome::Sent { at } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET status = 'sent', sent_at = $1, claimed_until = NULL, \
                 claimed_by = NULL, last_error = NULL{HELD}"
            )))
            .bind(millis(at)),
            MailOutcome::Retry { at, .. } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $1, claimed_until = NULL, \
                 claimed_by = NULL, last_error = $4{HELD}"
            )))
            .bind(millis(at)),
            MailOutcome::Failed { error } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET status = 'failed', claimed_until = NULL, claimed_by = NULL, \
                 last_error = $1{HELD}"
            )))
            .bind(error),
            MailOutcome::Untried { at } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $1, claimed_until = NULL, \
                 claimed_by = NULL, attempts = GREATEST(attempts - 1, 0){HELD}"
            )))
            .bind(millis(at)),
        };
        let mut q = q.bind(id).bind(claimer);
        if let MailOutcome::Retry { error, .. } = outcome {
            q = q.bind(error);
        }
        let done = q.execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn outbox_counts(&self, reach: &crate::domain::Reach) -> StoreResult<OutboxCounts> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT COUNT(*) FILTER (WHERE status = 'pending') AS pending, \
             COUNT(*) FILTER (WHERE status = 'sending') AS sending, \
             COUNT(*) FILTER (WHERE status = 'sent') AS sent, \
             COUNT(*) FILTER (WHERE status = 'failed') AS failed FROM outbox WHERE TRUE",
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

    async fn alert_messages(&self, alert_ids: &[i64]) -> StoreResult<Vec<(i64, OutboxRow)>> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS}, o.alert_id FROM outbox o \
             LEFT JOIN clinics c ON c.id = o.clinic_id WHERE o.alert_id = ANY($1) \
             ORDER BY o.id LIMIT $2"
        )))
        .bind(alert_ids)
        .bind(crate::store::outbox::ALERT_MESSAGES_CAP)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("alert_id")?, outbox_from(r)?)))
        .collect()
    }

    async fn outbox_rows(&self, f: &OutboxQuery) -> StoreResult<Vec<OutboxRow>> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox o LEFT JOIN clinics c ON c.id = o.clinic_id \
             WHERE TRUE"
        ));
        super::push_reach(&mut q, "o.clinic_id", &f.reach);
        if let Some(c) = f.clinic_id {
            q.push(" AND o.clinic_id = ").push_bind(c);
        }
        if let Some(s) = f.status {
            q.push(" AND o.status = ").push_bind(s.as_str());
        }
        if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let like = crate::store::like_pattern(s);
            // ILIKE: SQLite's LIKE ignores the case of ASCII letters.
            q.push(" AND (o.recipient ILIKE ")
                .push_bind(like.clone())
                .push(" OR o.subject ILIKE ")
                .push_bind(like.clone())
                .push(" OR c.name ILIKE ")
                .push_bind(like)
                .push(")");
        }
        if let Some(before) = f.before {
            q.push(" AND o.id < ").push_bind(before);
        }
        q.push(" ORDER BY o.id DESC LIMIT ").push_bind(f.limit);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(outbox_from).collect()
    }

    async fn outbox_mail(&self, id: i64) -> StoreResult<Option<(OutboxRow, OutboxMail)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS}, o.message_id, o.body_text, o.body_html, o.alert_id FROM outbox o \
             LEFT JOIN clinics c ON c.id = o.clinic_id WHERE o.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let listed = outbox_from(&r)?;
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
