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
