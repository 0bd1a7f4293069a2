//! Deleting old history a small batch at a time (see `crate::retention`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;

/// What one pruning step deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prune {
    /// Events received before the cutoff.
    Events,
    /// Starts (restarts, power-ons) before the cutoff.
    Starts,
    /// Report hours before the cutoff.
    ReportHours,
    /// Report hours before the cutoff but the first of each JST day.
    ThinReportHours,
    /// Alerts resolved before the cutoff (not one the evaluator still follows), with their
    /// history and mail.
    ResolvedAlerts,
    /// Entries of the alerts' history (of alerts still kept) made before the cutoff.
    AlertHistory,
    /// Audit lines before the cutoff.
    Audit,
    /// Mail sent or failed before the cutoff (queued mail is kept).
    SentMail,
}

impl Prune {
    pub const ALL: [Prune; 8] = [
        Prune::Events,
        Prune::Starts,
        // The oldest go before the rest are thinned: no work on rows about to go.
        Prune::ReportHours,
        Prune::ThinReportHours,
        Prune::ResolvedAlerts,
        Prune::AlertHistory,
        Prune::Audit,
        Prune::SentMail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Prune::Events => "events",
            Prune::Starts => "starts",
            Prune::ReportHours => "report_hours",
            Prune::ThinReportHours => "report_hours_thinned",
            Prune::ResolvedAlerts => "resolved_alerts",
            Prune::AlertHistory => "alert_history",
            Prune::Audit => "audit",
            Prune::SentMail => "sent_mail",
        }
    }
}

/// Where a pruning walk has got to: rows in id order, or terminals in id order for the
/// history kept per terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cursor {
    #[default]
    Start,
    Row(i64),
    Terminal(Uuid),
}

/// How much one step may take on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimit {
    /// Rows looked at (walks in key order) or deleted (per-terminal history).
    pub rows: i64,
    /// Terminals per step, for the history kept per terminal.
    pub terminals: i64,
}

/// What a step did, and where the next one starts (`None`: done for now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneStep {
    pub deleted: u64,
    pub next: Option<Cursor>,
    /// Of the step's time, what went on writing its pages back (SQLite's checkpoint after the
    /// deletes): a cost per step rather than per row, so it is left out when steps are sized.
    pub flushed: std::time::Duration,
}

impl PruneStep {
    pub fn new(deleted: u64, next: Option<Cursor>) -> Self {
        PruneStep {
            deleted,
            next,
            flushed: std::time::Duration::ZERO,
        }
    }
}

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes what `what` names from before `before` after `cursor`, in one short write
    /// transaction: at most `limit.rows` rows, from the next `limit.terminals` terminals for
    /// the history kept per terminal.
    async fn prune(
        &self,
        what: Prune,
        before: DateTime<Utc>,
        cursor: Cursor,
        limit: StepLimit,
    ) -> StoreResult<PruneStep>;
}

/// SQL for "an earlier hour of the same JST day exists" on the report hour `r` (a JST day
/// starts at `hour - (hour + 9 h) mod 24 h` in Unix ms); the same text on both engines.
pub(crate) const NOT_FIRST_OF_DAY: &str = " AND EXISTS (SELECT 1 FROM report_hours e \
     WHERE e.terminal_id = r.terminal_id AND e.hour < r.hour \
     AND e.hour >= r.hour - ((r.hour + 32400000) % 86400000))";

/// What a walk in key order does with the `(key, time, deletable)` rows it read after `after`
/// (at most `limit`): the keys to delete, whether the walk is done, and where it got to.
pub(crate) fn walk_rows(
    rows: Vec<(i64, i64, bool)>,
    after: i64,
    limit: i64,
    before: i64,
    in_time_order: bool,
) -> (Vec<i64>, bool, i64) {
    let mut done = (rows.len() as i64) < limit;
    let mut last = after;
    let mut ids = Vec::new();
    for (id, at, ok) in rows {
        if in_time_order && at >= before {
            done = true;
            break;
        }
        if ok && at < before {
            ids.push(id);
        }
        last = id;
    }
    (ids, done, last)
}

/// Where a per-terminal history walk goes next: the same terminals while a step takes as many
/// rows as it may, the next ones after `last`, or nowhere after the last terminal.
pub(crate) fn history_next(
    cursor: Cursor,
    taken: u64,
    step: StepLimit,
    terminals_read: usize,
    last: Uuid,
) -> Option<Cursor> {
    if taken >= step.rows.max(1) as u64 {
        Some(cursor)
    } else if (terminals_read as i64) < step.terminals.max(1) {
        None
    } else {
        Some(Cursor::Terminal(last))
    }
}
