//! Alerts, their history and the maintenance windows that hold their mail back.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rule::{RuleKey, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<AlertStatus> {
        AlertStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            AlertStatus::Open => "未対応",
            AlertStatus::Acknowledged => "確認済み",
            AlertStatus::Resolved => "解決済み",
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
    pub rule: RuleKey,
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
    /// Whether the evaluator must compare this alert with fresh findings: open, acknowledged,
    /// and staff-resolved ones whose condition has not cleared yet.
    pub fn tracked(&self) -> bool {
        self.status != AlertStatus::Resolved
            || (self.occurrence.is_some() && self.resolved_by_staff())
    }

    /// Resolved by a person (the desk or the command line), not by the evaluator.
    pub fn resolved_by_staff(&self) -> bool {
        self.resolved_by.as_deref().is_some_and(|b| b != AUTO_ACTOR)
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

/// One line of an alert's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub severity: Option<String>,
    pub note: Option<String>,
}

/// A maintenance window: alerts stay open, but no mail goes out for them.
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
