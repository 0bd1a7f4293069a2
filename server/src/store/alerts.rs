//! The alert side of the store: clinic settings and the evaluator's inputs, alerts with their
//! history, silences, expected versions and the mail outbox.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{
    Alert, AlertAction, ClinicSettings, ExpectedVersionRow, HistoryEntry, NewMail, OutboxCounts,
    OutboxMail, Silence,
};
use crate::rules::{AuditEntry, BaselineWrite, RuleInput};

/// What became of a claimed mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailOutcome<'a> {
    /// The SMTP server accepted it.
    Sent { at: DateTime<Utc> },
    /// Refused for now: try again at `at`.
    Retry { at: DateTime<Utc>, error: &'a str },
    /// Refused for good, or out of attempts.
    Failed { error: &'a str },
    /// Not tried (the sender stopped, or the server was down): due again at `at`, and the
    /// attempt its claim counted is given back.
    Untried { at: DateTime<Utc> },
}

/// One alert write from the evaluator: the whole new row, the history action and the mails it
/// causes, stored in one transaction.
/// One entry of the alerts' history as the evaluator's watermark reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryHead {
    pub id: i64,
    pub alert_id: i64,
    /// Made by someone other than the evaluator.
    pub by_staff: bool,
}

#[derive(Debug, Clone)]
pub struct AlertChange {
    pub alert: Alert,
    pub action: AlertAction,
    pub mails: Vec<NewMail>,
}

/// Alerts not resolved, by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertCounts {
    pub critical: i64,
    pub warning: i64,
    pub info: i64,
}

/// Which terminals to load for evaluation.
#[derive(Debug, Clone, Copy)]
pub enum InputSelection<'a> {
    /// Terminals ordered by id, after `after`, at most `limit`.
    Page {
        after: Option<Uuid>,
        limit: i64,
    },
    Ids(&'a [Uuid]),
}

/// What a pass keeps of each terminal between passes, with the stamp it was stored under:
/// parsed snapshot bodies by content hash, account records (baseline and confirmation) by
/// their version. A pass fetches and parses only what changed since the last one.
#[derive(Debug, Default)]
pub struct InputCache {
    pub snapshots: std::sync::Mutex<
        std::collections::HashMap<Uuid, (i64, std::sync::Arc<onshi_shared::Snapshot>)>,
    >,
    pub accounts:
        std::sync::Mutex<std::collections::HashMap<Uuid, (i64, crate::rules::AccountRecord)>>,
}

impl InputCache {
    /// Forgets the terminals `keep` says no.
    pub fn retain(&self, keep: impl Fn(&Uuid) -> bool) {
        if let Ok(mut s) = self.snapshots.lock() {
            s.retain(|id, _| keep(id));
        }
        if let Ok(mut a) = self.accounts.lock() {
            a.retain(|id, _| keep(id));
        }
    }
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Every clinic with its calendar (closures ending on or after `closures_from`), rule
    /// settings and account names.
    async fn clinic_settings(&self, closures_from: NaiveDate) -> StoreResult<Vec<ClinicSettings>>;
    /// Active (not revoked) terminals with their latest report, their own account names,
    /// their account baseline and the change events since `events_since`. Snapshot bodies and
    /// account records come from `cache` when their stamp is unchanged; the others are
    /// fetched (and bodies parsed) and put in it.
    async fn rule_inputs(
        &self,
        selection: InputSelection<'_>,
        events_since: DateTime<Utc>,
        cache: &InputCache,
    ) -> StoreResult<Vec<RuleInput>>;
    /// A number that changes whenever a clinic's settings, calendar or names change (or a
    /// clinic is added): the evaluator rebuilds its clinics only then.
    async fn clinics_version(&self) -> StoreResult<(i64, i64)>;
    async fn expected_versions(&self) -> StoreResult<Vec<ExpectedVersionRow>>;
    /// Records the fleet's most common version of an app (the evaluator's; staff set theirs
    /// through [`super::StaffStore`]). `since` starts the grace period when it changes.
    async fn set_fleet_version(
        &self,
        app: &str,
        version: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Alerts the evaluator must compare with fresh findings: open, acknowledged, and
    /// staff-resolved ones whose condition has not cleared yet. `None` loads every terminal's.
    async fn active_alerts(&self, terminals: Option<&[Uuid]>) -> StoreResult<Vec<Alert>>;
    /// The newest entry of the alerts' history (0 when empty): where the evaluator's watermark
    /// starts (see `evaluator::watermark`).
    async fn history_mark(&self) -> StoreResult<i64>;
    /// The history's entries whose ids fall in any of the inclusive `ranges`, in id order:
    /// the evaluator reads what staff did (acknowledged, resolved, noted, from the desk or the
    /// command line) from them, and the gaps between ids from all of them.
    async fn history_heads(&self, ranges: &[(i64, i64)]) -> StoreResult<Vec<HistoryHead>>;
    /// Alerts by id, whatever their status; ids not found are left out.
    async fn alerts_by_id(&self, ids: &[i64]) -> StoreResult<Vec<Alert>>;
    async fn alert(&self, id: i64) -> StoreResult<Option<Alert>>;
    /// Writes alert changes, their history, their mails and audit entries in one transaction.
    async fn apply_alert_changes(
        &self,
        changes: &[AlertChange],
        audit: &[AuditEntry],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn alert_history(&self, id: i64) -> StoreResult<Vec<HistoryEntry>>;
    /// Silences whose dates include `now` (a recurring one may be outside its daily window).
    async fn silences_in_force(&self, now: DateTime<Utc>) -> StoreResult<Vec<Silence>>;
    /// Stores account baselines the evaluator took, each only over the record version it was
    /// taken from (a confirmation made meanwhile wins), and puts what it stored in `cache`.
    async fn record_baselines(
        &self,
        baselines: &[BaselineWrite],
        cache: &InputCache,
    ) -> StoreResult<()>;
    /// Queues mails; a mail whose dedupe key is already stored is skipped. Returns how many were
    /// queued.
    async fn enqueue_mails(&self, mails: &[NewMail], now: DateTime<Utc>) -> StoreResult<usize>;
    /// Claims up to `limit` due mails for `claimer` until `now + lease`, in one statement (two
    /// senders never hold the same row); a claim left by a dead sender is due again once its
    /// lease ends.
    async fn claim_mails(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
        claimer: &str,
    ) -> StoreResult<Vec<OutboxMail>>;
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
    async fn outbox_counts(&self) -> StoreResult<OutboxCounts>;
    async fn alert_counts(&self) -> StoreResult<AlertCounts>;
}
