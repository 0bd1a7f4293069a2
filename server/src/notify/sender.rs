//! The outbox sender: claims due rows of its lane (mail, or channel messages), sends them,
//! records the outcome, retries with backoff.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use tokio::sync::Notify;

use super::channels;
use super::transport::{SendFailure, Transport, build_message};
use crate::Error;
use crate::config::SmtpSettings;
use crate::domain::{Lane, OutboxMail};
use crate::store::Store;
use crate::store::alerts::MailOutcome;

/// The delay before attempt `attempts + 1`: doubling from `base`, at most an hour, ±20 %.
pub fn backoff(base: StdDuration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    let secs = (base.as_secs_f64() * f64::from(2u32.pow(exp))).min(3600.0);
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::milliseconds((secs * jitter * 1000.0) as i64)
}

/// Mails claimed at a time: a stop gives back what was not sent, and a slow SMTP server holds
/// only these.
const BATCH: i64 = 5;

/// Delivers the outbox. Each process's sender claims a few due mails under its own name, in
/// one statement, so two senders on one database never hold the same mail; it renews the
/// claim while a mail is being sent, and settles only mails it still holds. A kill can send
/// again at most the one mail in flight (with the same Message-ID).
pub struct Sender {
    store: Arc<dyn Store>,
    courier: Courier,
    config: SmtpSettings,
    /// How long a claim lasts; a sender that dies leaves rows due again after it.
    pub lease: Duration,
    /// Where sent, failed and retried mails are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This sender's name on its claims.
    claimer: String,
}

/// How a lane's rows leave.
#[derive(Clone)]
pub enum Courier {
    Mail(Transport),
    /// The channel messages of `lane` (one channel's, or those of channels no longer
    /// configured).
    Channels(Arc<channels::Courier>, Lane),
}

impl Courier {
    fn lane(&self) -> Lane {
        match self {
            Courier::Mail(_) => Lane::Mail,
            Courier::Channels(_, lane) => lane.clone(),
        }
    }
}

impl Sender {
    pub fn new(store: Arc<dyn Store>, transport: Transport, config: SmtpSettings) -> Self {
        Sender::with_courier(store, Courier::Mail(transport), config)
    }

    /// A sender of `courier`'s lane; `config` gives the retries, the lease and the timeout.
    pub fn with_courier(store: Arc<dyn Store>, courier: Courier, config: SmtpSettings) -> Self {
        Sender {
            store,
            courier,
            lease: Duration::from_std(config.lease()).unwrap_or(Duration::minutes(2)),
            config,
            metrics: Arc::default(),
            claimer: uuid::Uuid::now_v7().to_string(),
        }
    }

    /// Counts into the process's metrics.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sends every due mail once; returns how many were accepted. Once `stopping` is set it
    /// finishes the mail in flight and gives the rest of its claim back.
    #[tracing::instrument(name = "mail_sender", skip_all)]
    pub async fn send_due(
        &self,
        now: DateTime<Utc>,
        stopping: &AtomicBool,
    ) -> Result<usize, Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let a = self.store.outbox();
        let me = self.claimer.as_str();
        let mut sent = 0;
        let mut claim_at = now;
        loop {
            if stopping.load(Relaxed) {
                return Ok(sent);
            }
            let mut batch: std::collections::VecDeque<OutboxMail> = a
                .claim(self.courier.lane(), claim_at, self.lease, BATCH, me)
                .await?
                .into();
            if batch.is_empty() {
                return Ok(sent);
            }
            while let Some(mail) = batch.pop_front() {
                if stopping.load(Relaxed) {
                    batch.push_front(mail);
                    self.give_back(batch, Utc::now()).await?;
                    return Ok(sent);
                }
                // Still ours? (A sender paused past its lease has lost it to another.)
                let until = Utc::now() + self.lease;
                if a.renew_mail_claims(&[mail.id], me, until).await? == 0 {
                    tracing::warn!(
                        mail = mail.id,
                        "the claim on this mail was lost; not sending it"
                    );
                    continue;
                }
                let result = self.send_one(&mail, &batch).await;
                let m = &self.metrics;
                let (sent_c, failed_c, retries_c) = match self.courier {
                    Courier::Mail(_) => (&m.mail_sent, &m.mail_failed, &m.mail_retries),
                    Courier::Channels(..) => {
                        (&m.channel_sent, &m.channel_failed, &m.channel_retries)
                    }
                };
                let held = match result {
                    Ok(()) => {
                        sent_c.increment(1);
                        sent += 1;
                        a.settle_mail(mail.id, me, MailOutcome::Sent { at: Utc::now() })
                            .await?
                    }
                    Err(SendFailure::Permanent(e)) => {
                        tracing::error!(mail = mail.id, to = %mail.recipient, error = %e, "refused for good");
                        failed_c.increment(1);
                        a.settle_mail(mail.id, me, MailOutcome::Failed { error: &e })
                            .await?
                    }
                    Err(SendFailure::Transient(e)) if mail.attempts >= self.config.max_attempts => {
                        tracing::error!(mail = mail.id, to = %mail.recipient, error = %e, "gave up after retries");
                        failed_c.increment(1);
                        a.settle_mail(mail.id, me, MailOutcome::Failed { error: &e })
                            .await?
                    }
                    Err(SendFailure::Transient(e)) => {
                        let next = Utc::now() + backoff(self.config.retry_base(), mail.attempts);
                        tracing::warn!(mail = mail.id, to = %mail.recipient, error = %e, %next, "will be retried");
                        retries_c.increment(1);
                        a.settle_mail(
                            mail.id,
                            me,
                            MailOutcome::Retry {
                                at: next,
                                error: &e,
                            },
                        )
                        .await?;
                        // The receiver is likely down: the rest of the claim waits as long,
                        // without spending an attempt (a lane has one receiver: the SMTP
                        // server, or one channel's).
                        self.give_back(batch, next).await?;
                        return Ok(sent);
                    }
                };
                if !held {
                    tracing::warn!(
                        mail = mail.id,
                        "the claim on this mail was lost while it was sent"
                    );
                }
            }
            claim_at = Utc::now();
        }
    }

    /// Hands claimed mails back untried, due at `at`.
    async fn give_back(
        &self,
        mails: impl IntoIterator<Item = OutboxMail>,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let a = self.store.outbox();
        for mail in mails {
            a.settle_mail(mail.id, &self.claimer, MailOutcome::Untried { at })
                .await?;
        }
        Ok(())
    }

    /// Sends one mail, renewing the claim on it and on the mails `waiting` behind it every
    /// third of the lease while the SMTP server takes its time.
    async fn send_one(
        &self,
        mail: &OutboxMail,
        waiting: &std::collections::VecDeque<OutboxMail>,
    ) -> Result<(), SendFailure> {
        let send = async {
            match &self.courier {
                Courier::Mail(transport) => {
                    let message =
                        build_message(&self.config.from, mail).map_err(SendFailure::Permanent)?;
                    transport.send(message).await
                }
                Courier::Channels(courier, _) => courier.deliver(mail).await,
            }
        };
        let mut send = std::pin::pin!(send);
        let every = (self.lease / 3)
            .to_std()
            .unwrap_or(StdDuration::from_secs(10))
            .max(StdDuration::from_millis(100));
        let ids: Vec<i64> = std::iter::once(mail.id)
            .chain(waiting.iter().map(|m| m.id))
            .collect();
        loop {
            tokio::select! {
                result = &mut send => return result,
                () = tokio::time::sleep(every) => {
                    let until = Utc::now() + self.lease;
                    let renewed = self.store.outbox().renew_mail_claims(&ids, &self.claimer, until).await;
                    if let Err(e) = renewed {
                        tracing::warn!(mail = mail.id, error = %e, "renewing the mail claims failed");
                    }
                }
            }
        }
    }

    /// Polls the outbox every `every` until `stop` fires; a stop during sending finishes the
    /// mail in flight and gives the rest back.
    pub async fn run(self, every: StdDuration, stop: Arc<Notify>) {
        let stopping = AtomicBool::new(false);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                _ = tick.tick() => {
                    let work = self.send_due(Utc::now(), &stopping);
                    let mut work = std::pin::pin!(work);
                    let result = tokio::select! {
                        result = &mut work => result,
                        _ = stop.notified() => {
                            stopping.store(true, std::sync::atomic::Ordering::Relaxed);
                            let result = work.await;
                            if let Err(e) = result {
                                tracing::error!(error = %e, "mail sender failed while stopping");
                            }
                            break;
                        }
                    };
                    if let Err(e) = result {
                        tracing::error!(error = %e, "mail sender failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = StdDuration::from_secs(30);
        for (attempts, secs) in [(1, 30.0), (2, 60.0), (3, 120.0), (20, 3600.0)] {
            let d = backoff(base, attempts).num_milliseconds() as f64 / 1000.0;
            assert!(d >= secs * 0.8 && d <= secs * 1.2, "{attempts}: {d}");
        }
    }
}
