//! Mail in the outbox: what kind it is, where it is in delivery.

use chrono::{DateTime, Utc};

/// What a mail is. Each clinic mail has a desk copy of its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// One critical alert, sent at once.
    Critical,
    CriticalDesk,
    /// A clinic's daily digest of open warnings.
    Digest,
    DigestDesk,
    /// `send-test-email`.
    Test,
    /// A message to one of the desk's channels (`[[channels]]`), by the channel's kind: the
    /// row's recipient is the channel's name, its text the event (see `notify::channels`).
    Webhook,
    Slack,
    Teams,
    Line,
}

/// Which rows of the outbox one sender works: mail goes through the SMTP server, and each
/// channel's messages through their own sender, so one receiver that is down or slow holds up
/// no other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lane {
    Mail,
    /// The messages of the channel of this name.
    Channel(String),
    /// Channel messages of none of these channels (one taken out of the configuration): they
    /// fail for good.
    OtherChannels(Vec<String>),
}

/// How a lane picks rows by recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientFilter {
    Any = 0,
    Only = 1,
    Except = 2,
}

impl Lane {
    /// SQL for "the row's kind is in this lane" (`kind IN ('…', …)`), the same on both engines.
    pub fn kinds_sql(&self) -> String {
        let channel = !matches!(self, Lane::Mail);
        let kinds: Vec<String> = MailKind::ALL
            .into_iter()
            .filter(|k| k.is_channel() == channel)
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        format!("kind IN ({})", kinds.join(", "))
    }

    /// Which recipients the lane takes (bound into the claim as the filter and a list).
    pub fn recipients(&self) -> (RecipientFilter, Vec<String>) {
        match self {
            Lane::Mail => (RecipientFilter::Any, Vec::new()),
            Lane::Channel(name) => (RecipientFilter::Only, vec![name.clone()]),
            Lane::OtherChannels(names) => (RecipientFilter::Except, names.clone()),
        }
    }
}

impl MailKind {
    pub const ALL: [MailKind; 9] = [
        MailKind::Critical,
        MailKind::CriticalDesk,
        MailKind::Digest,
        MailKind::DigestDesk,
        MailKind::Test,
        MailKind::Webhook,
        MailKind::Slack,
        MailKind::Teams,
        MailKind::Line,
    ];

    pub fn is_channel(self) -> bool {
        matches!(
            self,
            MailKind::Webhook | MailKind::Slack | MailKind::Teams | MailKind::Line
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Critical => "critical",
            MailKind::CriticalDesk => "critical-desk",
            MailKind::Digest => "digest",
            MailKind::DigestDesk => "digest-desk",
            MailKind::Test => "test",
            MailKind::Webhook => "webhook",
            MailKind::Slack => "slack",
            MailKind::Teams => "teams",
            MailKind::Line => "line",
        }
    }

    pub fn parse(s: &str) -> Option<MailKind> {
        MailKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The desk's copy of a clinic mail.
    pub fn desk_copy(self) -> MailKind {
        match self {
            MailKind::Critical => MailKind::CriticalDesk,
            MailKind::Digest => MailKind::DigestDesk,
            other => other,
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            MailKind::Critical => "緊急",
            MailKind::CriticalDesk => "緊急 (窓口控え)",
            MailKind::Digest => "本日の確認事項",
            MailKind::DigestDesk => "本日の確認事項 (窓口控え)",
            MailKind::Test => "テスト",
            MailKind::Webhook => "Webhook",
            MailKind::Slack => "Slack",
            MailKind::Teams => "Teams",
            MailKind::Line => "LINE",
        }
    }
}

/// Where a mail is: pending → sending (claimed) → sent | failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    Pending,
    Sending,
    Sent,
    Failed,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 4] = [
        OutboxStatus::Pending,
        OutboxStatus::Sending,
        OutboxStatus::Sent,
        OutboxStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "送信待ち",
            OutboxStatus::Sending => "送信中",
            OutboxStatus::Sent => "送信済み",
            OutboxStatus::Failed => "失敗",
        }
    }
}

/// A mail to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub kind: MailKind,
    pub clinic_id: Option<i64>,
    pub recipient: String,
    pub subject: String,
    pub message_id: String,
    pub body_text: String,
    pub body_html: String,
    /// At most one row per key is ever stored (one digest per clinic per day).
    pub dedupe_key: Option<String>,
    /// The alert it is about, when queued outside an alert change (a reminder); an alert
    /// change's own mails take its alert.
    pub alert_id: Option<i64>,
}

/// A claimed outbox row, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: i64,
    pub kind: MailKind,
    pub recipient: String,
    pub subject: String,
    pub message_id: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i64,
    /// The alert the row is about, once stored (a new alert's id is known only then).
    pub alert_id: Option<i64>,
}

impl OutboxMail {
    /// `m` as a sender would claim it before it was ever stored (a test mail or message, sent
    /// at once): first attempt, no row.
    pub fn unsent(m: NewMail) -> OutboxMail {
        OutboxMail {
            id: 0,
            kind: m.kind,
            recipient: m.recipient,
            subject: m.subject,
            message_id: m.message_id,
            body_text: m.body_text,
            body_html: m.body_html,
            attempts: 1,
            alert_id: m.alert_id,
        }
    }
}

/// Mails per delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxCounts {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
}

/// An outbox row as the desk's pages list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: MailKind,
    pub clinic_id: Option<i64>,
    pub clinic_name: Option<String>,
    pub recipient: String,
    pub subject: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_states_round_trip() {
        for k in MailKind::ALL {
            assert_eq!(MailKind::parse(k.as_str()), Some(k));
        }
        for s in OutboxStatus::ALL {
            assert_eq!(OutboxStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(MailKind::Critical.desk_copy(), MailKind::CriticalDesk);
        assert_eq!(MailKind::Test.desk_copy(), MailKind::Test);
    }
}
