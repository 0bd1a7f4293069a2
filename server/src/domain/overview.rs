//! A terminal's line in the fleet overview, as the evaluator writes it after each evaluation.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rule::RuleKey;

/// One terminal's line in the overview (stored in `overview_line`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewLine {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub clinic_name: String,
    pub prefecture: Option<String>,
    pub hostname: String,
    pub state: OverviewState,
    pub open_alerts: i64,
    /// The rules with an unresolved alert on this terminal, as [`RuleKey::bit`]s.
    pub open_rules: u32,
    pub apps_behind: i64,
    pub backup: BackupKind,
    pub last_start: Option<DateTime<Utc>>,
    pub cert_not_after: Option<DateTime<Utc>>,
}

impl OverviewLine {
    pub fn open_rules(&self) -> impl Iterator<Item = RuleKey> {
        RuleKey::from_bits(self.open_rules)
    }
}

/// The one word the overview gives a terminal, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OverviewState {
    Ok,
    Silenced,
    Warning,
    Offline,
    Critical,
}

impl OverviewState {
    pub const ALL: [OverviewState; 5] = [
        OverviewState::Critical,
        OverviewState::Offline,
        OverviewState::Warning,
        OverviewState::Silenced,
        OverviewState::Ok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OverviewState::Ok => "ok",
            OverviewState::Silenced => "silenced",
            OverviewState::Warning => "warning",
            OverviewState::Offline => "offline",
            OverviewState::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The stored rank: higher is worse.
    pub fn rank(self) -> i64 {
        self as i64
    }

    pub fn from_rank(rank: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.rank() == rank)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            OverviewState::Ok => "正常",
            OverviewState::Silenced => "抑止中",
            OverviewState::Warning => "注意",
            OverviewState::Offline => "オフライン",
            OverviewState::Critical => "緊急",
        }
    }
}

/// Whether the current certificate is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    Ok,
    Missing,
    Stale,
    Unknown,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Ok => "ok",
            BackupKind::Missing => "missing",
            BackupKind::Stale => "stale",
            BackupKind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> BackupKind {
        match s {
            "ok" => BackupKind::Ok,
            "missing" => BackupKind::Missing,
            "stale" => BackupKind::Stale,
            _ => BackupKind::Unknown,
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            BackupKind::Ok => "済",
            BackupKind::Missing => "なし",
            BackupKind::Stale => "古い証明書",
            BackupKind::Unknown => "—",
        }
    }

    pub fn is_bad(self) -> bool {
        matches!(self, BackupKind::Missing | BackupKind::Stale)
    }
}
