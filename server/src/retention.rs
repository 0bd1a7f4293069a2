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
use crate::store::retention::{Cursor, Prune, StepLimit};

/// The most terminals one per-terminal step takes.
const MAX_SPAN: i64 = 5_000;
/// Terminals the first per-terminal step takes.
const FIRST_SPAN: i64 = 16;
/// Rows the first step takes on.
const FIRST_ROWS: i64 = 64;
/// The pause after a step, as a multiple of the step's time: the write lock is pruning's for
/// at most a fifth of the time.
const PAUSE_FACTOR: u32 = 4;

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

/// How many rows the next step takes on, aiming at `target` per step (at most `max`): the
/// time a report waits behind a step is that step's time.
pub fn next_rows(rows: i64, took: StdDuration, target: StdDuration, max: i64) -> i64 {
    let took = took.as_secs_f64().max(1e-6);
    let target = target.as_secs_f64();
    let scaled = if took > target * 1.5 || took < target / 2.0 {
        // Halfway towards the size that would have taken the target, at most ×2.
        let ideal = rows as f64 * target / took;
        ((rows as f64 + ideal) / 2.0).min(rows as f64 * 2.0)
    } else {
        rows as f64
    };
    (scaled as i64).clamp(1, max.max(1))
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
    /// The least pause after each step, for ingest's batches to go first.
    pause: StdDuration,
}

impl Pruner {
    pub fn new(store: Arc<dyn Store>, settings: RetentionSettings) -> Self {
        Pruner {
            store,
            settings,
            pause: StdDuration::from_millis(10),
        }
    }

    pub fn with_pause(mut self, pause: StdDuration) -> Self {
        self.pause = pause;
        self
    }

    /// Prunes everything that is due at `now`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<PruneReport, Error> {
        let mut report = PruneReport::default();
        let max = i64::from(self.settings.batch);
        let target = StdDuration::from_millis(u64::from(self.settings.step_ms));
        let mut rows = FIRST_ROWS.min(max);
        for what in Prune::ALL {
            let Some(before) = cutoff(what, &self.settings, now) else {
                continue;
            };
            let mut cursor = Cursor::Start;
            let mut terminals = FIRST_SPAN;
            let mut deleted = 0;
            loop {
                let limit = StepLimit { rows, terminals };
                let started = std::time::Instant::now();
                let step = self
                    .store
                    .retention()
                    .prune(what, before, cursor, limit)
                    .await?;
                let took = started.elapsed();
                report.steps += 1;
                deleted += step.deleted;
                // Sized on the deletes; the checkpoint after them costs about the same
                // whatever their number (it still counts in the pause).
                rows = next_rows(rows, took.saturating_sub(step.flushed), target, max);
                if per_terminal(what) {
                    terminals = next_span(terminals, step.deleted, rows);
                }
                let Some(next) = step.next else { break };
                cursor = next;
                if !self.pause.is_zero() {
                    tokio::time::sleep(self.pause.max(took * PAUSE_FACTOR)).await;
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
    fn steps_are_sized_to_the_target_time() {
        let ms = StdDuration::from_millis;
        // Took 4× the target: about 5/8 as many rows next time.
        assert_eq!(next_rows(1_000, ms(12), ms(3), 5_000), 625);
        // Took a tenth: grows, at most ×2 a step, at most `max`.
        assert_eq!(next_rows(1_000, ms(0), ms(3), 5_000), 2_000);
        assert_eq!(next_rows(4_000, ms(0), ms(3), 5_000), 5_000);
        // About right: kept. Never below one row.
        assert_eq!(next_rows(1_000, ms(3), ms(3), 5_000), 1_000);
        assert_eq!(next_rows(1, ms(500), ms(3), 5_000), 1);
    }

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
