//! The outbox sender: claims due mails, sends them, records the outcome, retries with backoff.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use tokio::sync::Notify;

use super::transport::{SendFailure, Transport, build_message};
use crate::Error;
use crate::config::SmtpSettings;
use crate::store::Store;

/// The delay before attempt `attempts + 1`: doubling from `base`, at most an hour, ±20 %.
pub fn backoff(base: StdDuration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    let secs = (base.as_secs_f64() * f64::from(2u32.pow(exp))).min(3600.0);
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::milliseconds((secs * jitter * 1000.0) as i64)
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct MailStats {
    pub sent: std::sync::atomic::AtomicU64,
    pub retried: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// Delivers the outbox.
pub struct Sender {
    store: Arc<dyn Store>,
    transport: Transport,
    config: SmtpSettings,
    /// How long a claim lasts; a sender that dies leaves rows due again after it.
    pub lease: Duration,
    pub stats: Arc<MailStats>,
}

impl Sender {
    pub fn new(store: Arc<dyn Store>, transport: Transport, config: SmtpSettings) -> Self {
        Sender {
            store,
            transport,
            lease: Duration::from_std(config.lease()).unwrap_or(Duration::minutes(2)),
            config,
            stats: Arc::new(MailStats::default()),
        }
    }

    /// Sends every due mail once; returns how many were accepted.
    #[tracing::instrument(name = "mail_sender", skip_all)]
    pub async fn send_due(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let a = self.store.alerts();
        let mut sent = 0;
        loop {
            let batch = a.claim_mails(now, self.lease, 20).await?;
            if batch.is_empty() {
                return Ok(sent);
            }
            let mut batch = batch.into_iter();
            while let Some(mail) = batch.next() {
                let result = match build_message(&self.config.from, &mail) {
                    Ok(message) => self.transport.send(message).await,
                    Err(e) => Err(SendFailure::Permanent(e)),
                };
                match result {
                    Ok(()) => {
                        a.mark_mail_sent(mail.id, Utc::now()).await?;
                        self.stats.sent.fetch_add(1, Relaxed);
                        sent += 1;
                    }
                    Err(SendFailure::Permanent(e)) => {
                        tracing::error!(mail = mail.id, error = %e, "mail refused for good");
                        a.mark_mail_failed(mail.id, &e).await?;
                        self.stats.failed.fetch_add(1, Relaxed);
                    }
                    Err(SendFailure::Transient(e)) if mail.attempts >= self.config.max_attempts => {
                        tracing::error!(mail = mail.id, error = %e, "mail gave up after retries");
                        a.mark_mail_failed(mail.id, &e).await?;
                        self.stats.failed.fetch_add(1, Relaxed);
                    }
                    Err(SendFailure::Transient(e)) => {
                        let next = Utc::now() + backoff(self.config.retry_base(), mail.attempts);
                        tracing::warn!(mail = mail.id, error = %e, %next, "mail will be retried");
                        a.mark_mail_retry(mail.id, next, &e).await?;
                        self.stats.retried.fetch_add(1, Relaxed);
                        // The server is likely down: hand the rest of the claim back for the
                        // next round instead of holding it until the lease ends.
                        for rest in batch {
                            a.mark_mail_retry(
                                rest.id,
                                next,
                                "not tried: the server was unavailable",
                            )
                            .await?;
                        }
                        return Ok(sent);
                    }
                }
            }
        }
    }

    /// Polls the outbox every `every` until `stop` fires.
    pub async fn run(self, every: StdDuration, stop: Arc<Notify>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                _ = tick.tick() => {
                    if let Err(e) = self.send_due(Utc::now()).await {
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
