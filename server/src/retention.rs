//! Keeping history for the configured time (`[retention]`): events, starts, report hours,
//! resolved alerts with their history, the audit log and sent mail older than `keep_days` are
//! deleted, and report hours older than `hourly_days` thinned to one per day. Each step is a
//! small transaction with a pause after it, so ingest and the desk barely notice a year of
//! backlog going.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

use crate::Error;
use crate::config::RetentionSettings;
use crate::store::Store;
use crate::store::retention::{Cursor, Prune};

/// The most terminals one per-terminal step takes.
const MAX_SPAN: i64 = 5_000;
/// Terminals the first per-terminal step takes.
const FIRST_SPAN: i64 = 16;

/// Where `what` is cut at `now`; `None` when everything is kept.
pub fn cutoff(what: Prune, s: &RetentionSettings, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if s.keep_days == 0 {
        return None;
    }
    let days = match what {
        Prune::ThinReportHours => s.hourly_days,
        _ => s.keep_days,
    };
    Some(now - Duration::days(i64::from(days)))
}

/// Whether a step of `what` counts terminals rather than rows.
fn per_terminal(what: Prune) -> bool {
    matches!(
        what,
        Prune::Starts | Prune::ReportHours | Prune::ThinReportHours
    )
}

/// How many terminals the next per-terminal step takes, aiming at about `batch` rows per
/// step: a backlog (thousands of rows per terminal) takes few, a daily trim many.
pub fn next_span(span: i64, deleted: u64, batch: i64) -> i64 {
    let deleted = i64::try_from(deleted).unwrap_or(i64::MAX);
    if deleted > 2 * batch {
        (span / 2).max(1)
    } else if deleted < batch / 2 {
        (span * 2).min(MAX_SPAN)
    } else {
        span
    }
}

/// What one pruning deleted, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub deleted: BTreeMap<&'static str, u64>,
    pub steps: u64,
}

impl PruneReport {
    pub fn total(&self) -> u64 {
        self.deleted.values().sum()
    }
}

pub struct Pruner {
    store: Arc<dyn Store>,
    settings: RetentionSettings,
    /// The pause after each step, for ingest's batches to go first.
    pause: StdDuration,
}

impl Pruner {
    pub fn new(store: Arc<dyn Store>, settings: RetentionSettings) -> Self {
        Pruner {
            store,
            settings,
            pause: StdDuration::from_millis(20),
        }
    }

    pub fn with_pause(mut self, pause: StdDuration) -> Self {
        self.pause = pause;
        self
    }

    /// Prunes everything that is due at `now`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<PruneReport, Error> {
        let mut report = PruneReport::default();
        let batch = i64::from(self.settings.batch);
        for what in Prune::ALL {
            let Some(before) = cutoff(what, &self.settings, now) else {
                continue;
            };
            let mut cursor = Cursor::Start;
            let mut span = FIRST_SPAN;
            let mut deleted = 0;
            loop {
                let limit = if per_terminal(what) { span } else { batch };
                let step = self
                    .store
                    .retention()
                    .prune(what, before, cursor, limit)
                    .await?;
                report.steps += 1;
                deleted += step.deleted;
                if per_terminal(what) {
                    span = next_span(span, step.deleted, batch);
                }
                let Some(next) = step.next else { break };
                cursor = next;
                if !self.pause.is_zero() {
                    tokio::time::sleep(self.pause).await;
                }
            }
            report.deleted.insert(what.name(), deleted);
        }
        Ok(report)
    }

    /// Prunes a minute after start-up, then every `every_minutes`, until `stop`.
    pub async fn run(self, stop: Arc<Notify>) {
        let every = StdDuration::from_secs(u64::from(self.settings.every_minutes) * 60);
        let mut wait = StdDuration::from_secs(60);
        loop {
            tokio::select! {
                _ = stop.notified() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = every;
            let started = std::time::Instant::now();
            // Stopping drops the step under way: its transaction rolls back.
            let outcome = tokio::select! {
                _ = stop.notified() => return,
                outcome = self.run_once(Utc::now()) => outcome,
            };
            match outcome {
                Ok(r) if r.total() > 0 => tracing::info!(
                    deleted = ?r.deleted,
                    steps = r.steps,
                    seconds = started.elapsed().as_secs_f64(),
                    "old history deleted"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "deleting old history failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_aims_at_a_batch_of_rows() {
        // A year of hourly rows per terminal: fewer terminals per step.
        assert_eq!(next_span(16, 16 * 8_400, 2_000), 8);
        assert_eq!(next_span(1, 8_400, 2_000), 1);
        // A daily trim: more.
        assert_eq!(next_span(16, 16 * 23, 2_000), 32);
        assert_eq!(next_span(4_000, 0, 2_000), MAX_SPAN);
        // About right: kept.
        assert_eq!(next_span(100, 2_500, 2_000), 100);
    }

    #[test]
    fn cutoffs_follow_the_settings() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let s = RetentionSettings::default();
        assert_eq!(
            cutoff(Prune::Events, &s, now),
            Some(now - Duration::days(400))
        );
        assert_eq!(
            cutoff(Prune::ThinReportHours, &s, now),
            Some(now - Duration::days(30))
        );
        let forever = RetentionSettings { keep_days: 0, ..s };
        assert_eq!(cutoff(Prune::ThinReportHours, &forever, now), None);
    }
}
