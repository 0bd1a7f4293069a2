//! The mail outbox: what the evaluator queues, what the sender claims and settles, and what
//! the desk reads of it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use super::alerts::MailOutcome;
use super::desk::OutboxQuery;
use crate::domain::{Lane, NewMail, OutboxCounts, OutboxMail, OutboxRow};

/// The most rows [`OutboxStore::alert_messages`] returns (a terminal page's alerts).
pub const ALERT_MESSAGES_CAP: i64 = 500;

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues mails; a mail whose dedupe key is already stored is skipped. Returns how many were
    /// queued.
    async fn enqueue_mails(&self, mails: &[NewMail], now: DateTime<Utc>) -> StoreResult<usize>;

    /// Claims up to `limit` due rows of `lane` for `claimer` until `now + lease`, in one
    /// statement (two senders never hold the same row); a claim left by a dead sender is due
    /// again once its lease ends.
    async fn claim(
        &self,
        lane: Lane,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
        claimer: &str,
    ) -> StoreResult<Vec<OutboxMail>>;

    /// [`OutboxStore::claim`] of mail.
    async fn claim_mails(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
        claimer: &str,
    ) -> StoreResult<Vec<OutboxMail>> {
        self.claim(Lane::Mail, now, lease, limit, claimer).await
    }

    /// Extends `claimer`'s claims on mails it holds (sending one, the others waiting their
    /// turn); returns how many it still held.
    async fn renew_mail_claims(
        &self,
        ids: &[i64],
        claimer: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<usize>;

    /// Records what became of a mail `claimer` holds; `false` (nothing written) when its claim
    /// was lost.
    async fn settle_mail(
        &self,
        id: i64,
        claimer: &str,
        outcome: MailOutcome<'_>,
    ) -> StoreResult<bool>;

    async fn outbox_counts(&self, reach: &crate::domain::Reach) -> StoreResult<OutboxCounts>;

    /// Mails, newest first.
    async fn outbox_rows(&self, q: &OutboxQuery) -> StoreResult<Vec<OutboxRow>>;

    /// One mail as it was (or will be) sent.
    async fn outbox_mail(&self, id: i64) -> StoreResult<Option<(OutboxRow, OutboxMail)>>;

    /// What went out about these alerts (mail, channel messages, reminders), with the alert
    /// each is about, oldest first; at most [`ALERT_MESSAGES_CAP`].
    async fn alert_messages(&self, alert_ids: &[i64]) -> StoreResult<Vec<(i64, OutboxRow)>>;
}
