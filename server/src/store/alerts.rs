//! The alert side of the store: clinic settings, terminal states for the evaluator, alerts with
//! their history, silences, the audit log and the mail outbox.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::calendar::BusinessHours;
use crate::rules::{AuditEntry, Severity, TerminalState};

/// A clinic as the rules and the mails need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicSettings {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub hours: BusinessHours,
    /// The clinic's own support desk, named first in e-mails.
    pub desk_name: Option<String>,
    pub desk_phone: Option<String>,
    pub prefecture: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<AlertStatus> {
        match s {
            "open" => Some(AlertStatus::Open),
            "acknowledged" => Some(AlertStatus::Acknowledged),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

/// Who resolves an alert when its condition has been clear for the hold-down time.
pub const AUTO_ACTOR: &str = "evaluator";

/// One alert row, keyed by (terminal, rule). `id` is 0 for an alert not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: i64,
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub rule: String,
    pub severity: Severity,
    pub status: AlertStatus,
    pub detail: String,
    pub occurrence: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the evaluator first found the condition gone (hold-down start).
    pub clear_since: Option<DateTime<Utc>>,
    pub ack_by: Option<String>,
    pub ack_note: Option<String>,
    pub ack_until: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
}

impl Alert {
    /// Whether the evaluator must compare this alert with fresh findings: the same rows
    /// [`AlertStore::active_alerts`] selects.
    pub fn tracked(&self) -> bool {
        self.status != AlertStatus::Resolved
            || (self.occurrence.is_some()
                && self.resolved_by.as_deref().is_some_and(|b| b != AUTO_ACTOR))
    }
}

/// What happened to an alert, as the history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    /// Opened, or re-opened when the row existed (the store tells them apart).
    Opened,
    Escalated,
    /// Same rule, new occurrence (another expiry step, another event) or a lower severity.
    Changed,
    AckExpired,
    Resolved,
    /// Internal bookkeeping (hold-down start, forgetting a cleared occurrence): no history row.
    Quiet,
}

impl AlertAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertAction::Opened => "opened",
            AlertAction::Escalated => "escalated",
            AlertAction::Changed => "changed",
            AlertAction::AckExpired => "ack_expired",
            AlertAction::Resolved => "resolved",
            AlertAction::Quiet => "quiet",
        }
    }
}

/// A mail to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// `critical`, `digest`, `desk` or `test`.
    pub kind: String,
    pub clinic_id: Option<i64>,
    pub recipient: String,
    pub subject: String,
    pub message_id: String,
    pub body_text: String,
    pub body_html: String,
    /// At most one row per key is ever stored (one digest per clinic per day).
    pub dedupe_key: Option<String>,
}

/// One alert write from the evaluator: the whole new row, the history action and the mails it
/// causes, stored in one transaction.
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub alert: Alert,
    pub action: AlertAction,
    pub mails: Vec<NewMail>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub severity: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: i64,
    pub terminal_id: Option<Uuid>,
    pub clinic_id: Option<i64>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub created_by: String,
}

impl Silence {
    pub fn covers(&self, terminal_id: Uuid, clinic_id: i64, now: DateTime<Utc>) -> bool {
        self.starts_at <= now
            && now < self.ends_at
            && (self.terminal_id == Some(terminal_id) || self.clinic_id == Some(clinic_id))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedVersionRow {
    pub app: String,
    /// `staff` or `fleet`.
    pub source: String,
    pub version: String,
    pub since: DateTime<Utc>,
}

/// A claimed outbox row, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub message_id: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxCounts {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
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
pub enum StateSelection<'a> {
    /// Terminals ordered by id, after `after`, at most `limit`.
    Page {
        after: Option<Uuid>,
        limit: i64,
    },
    Ids(&'a [Uuid]),
}

/// Parsed snapshot bodies by terminal, with the content hash they were stored under: a pass
/// fetches and parses only the bodies whose hash changed since the last one.
pub type SnapshotCache = std::sync::Mutex<
    std::collections::HashMap<Uuid, (i64, std::sync::Arc<onshi_shared::Snapshot>)>,
>;

#[async_trait]
pub trait AlertStore: Send + Sync {
    async fn clinic_settings(&self) -> StoreResult<Vec<ClinicSettings>>;
    async fn set_clinic_settings(&self, clinic: &ClinicSettings) -> StoreResult<()>;
    /// Active (not revoked) terminals with their latest state and the change events since
    /// `events_since`. Snapshot bodies come from `cache` when their hash is unchanged; the
    /// others are fetched, parsed and put in it.
    async fn terminal_states(
        &self,
        selection: StateSelection<'_>,
        events_since: DateTime<Utc>,
        cache: &SnapshotCache,
    ) -> StoreResult<Vec<TerminalState>>;
    async fn expected_versions(&self) -> StoreResult<Vec<ExpectedVersionRow>>;
    /// Sets (or with `None` clears) an expected version; `since` starts the grace period.
    async fn set_expected_version(
        &self,
        app: &str,
        source: &str,
        version: Option<&str>,
        since: DateTime<Utc>,
        by: &str,
    ) -> StoreResult<()>;
    /// Alerts the evaluator must compare with fresh findings: open, acknowledged, and
    /// staff-resolved ones whose condition has not cleared yet. `None` loads every terminal's.
    async fn active_alerts(&self, terminals: Option<&[Uuid]>) -> StoreResult<Vec<Alert>>;
    /// The newest entry of the alerts' history (0 when empty): a mark for
    /// [`AlertStore::alerts_changed_by_staff`].
    async fn history_mark(&self) -> StoreResult<i64>;
    /// The alerts whose history has an entry after `after` and up to `upto` that someone other
    /// than the evaluator made (acknowledged, resolved, noted, from the desk or the command
    /// line), whatever their status now.
    async fn alerts_changed_by_staff(&self, after: i64, upto: i64) -> StoreResult<Vec<Alert>>;
    async fn alert(&self, id: i64) -> StoreResult<Option<Alert>>;
    /// Writes alert changes, their history, their mails and audit entries in one transaction.
    async fn apply_alert_changes(
        &self,
        changes: &[AlertChange],
        audit: &[AuditEntry],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// `false` when the alert is unknown or resolved.
    async fn acknowledge_alert(
        &self,
        id: i64,
        who: &str,
        note: &str,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn resolve_alert(
        &self,
        id: i64,
        who: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn alert_history(&self, id: i64) -> StoreResult<Vec<HistoryEntry>>;
    async fn add_silence(&self, silence: &Silence, now: DateTime<Utc>) -> StoreResult<i64>;
    async fn active_silences(&self, now: DateTime<Utc>) -> StoreResult<Vec<Silence>>;
    async fn audit_log(&self, limit: i64) -> StoreResult<Vec<(DateTime<Utc>, String, String)>>;
    /// Queues mails; a mail whose dedupe key is already stored is skipped. Returns how many were
    /// queued.
    async fn enqueue_mails(&self, mails: &[NewMail], now: DateTime<Utc>) -> StoreResult<usize>;
    /// Claims up to `limit` due mails until `now + lease`; a claim left by a dead sender is due
    /// again once its lease ends.
    async fn claim_mails(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMail>>;
    async fn mark_mail_sent(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()>;
    async fn mark_mail_retry(
        &self,
        id: i64,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> StoreResult<()>;
    async fn mark_mail_failed(&self, id: i64, error: &str) -> StoreResult<()>;
    async fn outbox_counts(&self) -> StoreResult<OutboxCounts>;
    async fn alert_counts(&self) -> StoreResult<AlertCounts>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn silences_cover_their_terminal_or_clinic_within_the_window() {
        let now = Utc::now();
        let t = Uuid::now_v7();
        let silence = |terminal_id, clinic_id| Silence {
            id: 1,
            terminal_id,
            clinic_id,
            starts_at: now,
            ends_at: now + Duration::hours(2),
            reason: "工事".into(),
            created_by: "suzuki".into(),
        };
        let by_terminal = silence(Some(t), None);
        let by_clinic = silence(None, Some(7));
        let table = [
            (&by_terminal, t, 1, now, true),
            (&by_terminal, Uuid::now_v7(), 1, now, false),
            (
                &by_clinic,
                Uuid::now_v7(),
                7,
                now + Duration::minutes(90),
                true,
            ),
            (&by_clinic, t, 8, now, false),
            (&by_clinic, t, 7, now - Duration::seconds(1), false),
            (&by_clinic, t, 7, now + Duration::hours(2), false),
        ];
        for (s, terminal, clinic, at, want) in table {
            assert_eq!(s.covers(terminal, clinic, at), want, "{s:?} {clinic} {at}");
        }
    }
}
