//! The alert side of the store: clinic settings and the evaluator's inputs, alerts with their
//! history, silences, expected versions and the mail outbox.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{
    Alert, AlertAction, ClinicSettings, ExpectedVersionRow, HistoryEntry, NewMail, Silence,
};
use crate::rules::{AccountRecord, AuditEntry, BaselineWrite};
use onshi_shared::{AccountRole, AccountSpec, Event};

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

/// One entry of the alerts' history as the evaluator's watermark reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryHead {
    pub id: i64,
    pub alert_id: i64,
    /// Made by someone other than the evaluator.
    pub by_staff: bool,
}

/// One alert write from the evaluator: the whole new row, the history action and the mails it
/// causes, stored in one transaction.
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub alert: Alert,
    pub action: AlertAction,
    pub mails: Vec<NewMail>,
}

/// Alerts not resolved, by severity, and by rule and severity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertCounts {
    pub critical: i64,
    pub warning: i64,
    pub info: i64,
    pub by_rule: Vec<(String, crate::domain::Severity, i64)>,
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

/// The small columns of a terminal the evaluator reads on every pass, with the stamps of what
/// it keeps between passes (see `evaluator::inputs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalHead {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub enrolled_at: DateTime<Utc>,
    /// When the last report arrived; `None` before the first.
    pub last_seen: Option<DateTime<Utc>>,
    /// When the stored body was collected, and its content hash; `None` without a body.
    pub body: Option<(DateTime<Utc>, i64)>,
    /// The version of the account record (0: no baseline or confirmation yet).
    pub accounts_version: i64,
}

/// Which terminals [`AlertStore::rule_extras`] reads.
#[derive(Debug, Clone, Copy)]
pub enum TerminalSpan<'a> {
    /// Every terminal whose id is between the two (inclusive).
    Between(Uuid, Uuid),
    Ids(&'a [Uuid]),
}

/// What the rules read besides the head, body and account record, for a span of terminals.
#[derive(Debug, Default)]
pub struct RuleExtras {
    /// The few terminals with account names of their own.
    pub own_accounts: Vec<(Uuid, Vec<AccountSpec>)>,
    /// Change events the rules read, by terminal and then oldest first.
    pub events: Vec<(Uuid, Event)>,
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Every clinic with its calendar (closures ending on or after `closures_from`), rule
    /// settings and account names.
    async fn clinic_settings(&self, closures_from: NaiveDate) -> StoreResult<Vec<ClinicSettings>>;
    /// The heads of the selected active (not revoked) terminals, in id order.
    async fn terminal_heads(&self, selection: InputSelection<'_>)
    -> StoreResult<Vec<TerminalHead>>;
    /// The account records (baseline and confirmation, with their version) of these
    /// terminals; terminals without one are left out.
    async fn account_records(&self, ids: &[Uuid]) -> StoreResult<Vec<(Uuid, AccountRecord)>>;
    /// The stored snapshot bodies of these terminals, each with its content hash.
    async fn snapshot_bodies(&self, ids: &[Uuid]) -> StoreResult<Vec<(Uuid, i64, String)>>;
    /// Own account names and the change events since `events_since` of a span of terminals.
    async fn rule_extras(
        &self,
        span: TerminalSpan<'_>,
        events_since: DateTime<Utc>,
    ) -> StoreResult<RuleExtras>;
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
    /// taken from (a confirmation made meanwhile wins), and returns the records it stored.
    async fn record_baselines(
        &self,
        baselines: &[BaselineWrite],
    ) -> StoreResult<Vec<(Uuid, AccountRecord)>>;
    async fn alert_counts(&self) -> StoreResult<AlertCounts>;
}

/// Account roles as both engines store them: `windows,face_auth`.
pub(crate) fn roles_text(roles: &[AccountRole]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The roles of [`roles_text`]; unknown ones are skipped.
pub(crate) fn roles_of(text: &str) -> Vec<AccountRole> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',')
        .filter_map(|r| AccountRole::parse(r.trim()))
        .collect()
}

/// A silence's daily time as both engines store it: minutes after midnight.
pub(crate) fn minute_of(t: NaiveTime) -> i64 {
    i64::from(t.hour() * 60 + t.minute())
}

/// The time of a stored [`minute_of`], clamped to the day.
pub(crate) fn time_of(minute: i64) -> NaiveTime {
    let m = u32::try_from(minute.clamp(0, 24 * 60 - 1)).unwrap_or(0);
    NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap_or_default()
}
