//! A terminal's line in the fleet overview, as the evaluator writes it after each evaluation.
//! Three things are kept apart and shown side by side: how bad its worst open finding is
//! (severity), what staff do about it (handling), and whether it reports (liveness).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rule::{RuleKey, Severity};

/// One terminal's line in the overview (stored in `overview_line`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewLine {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub clinic_name: String,
    pub prefecture: Option<String>,
    pub hostname: String,
    /// The worst open (unresolved) finding; `None`: nothing open.
    pub severity: Option<Severity>,
    pub handling: Handling,
    pub liveness: Liveness,
    pub open_alerts: i64,
    /// The rules with an unresolved alert on this terminal, as [`RuleKey::bit`]s.
    pub open_rules: u32,
    pub apps_behind: i64,
    pub backup: BackupKind,
    pub last_start: Option<DateTime<Utc>>,
    pub cert_not_after: Option<DateTime<Utc>>,
    /// A warning open and not acknowledged for `[alerts] neglected_warning_days`: the terminal
    /// comes first among those of its severity.
    pub neglected: bool,
}

impl OverviewLine {
    pub fn open_rules(&self) -> impl Iterator<Item = RuleKey> {
        RuleKey::from_bits(self.open_rules)
    }

    /// The stored rank of the severity: 0 nothing open, 1 info, 2 warning, 3 critical.
    pub fn severity_rank(&self) -> i64 {
        severity_rank(self.severity)
    }
}

pub fn severity_rank(s: Option<Severity>) -> i64 {
    match s {
        None => 0,
        Some(Severity::Info) => 1,
        Some(Severity::Warning) => 2,
        Some(Severity::Critical) => 3,
    }
}

pub fn severity_of_rank(rank: i64) -> Option<Severity> {
    match rank {
        1 => Some(Severity::Info),
        2 => Some(Severity::Warning),
        3 => Some(Severity::Critical),
        _ => None,
    }
}

/// The overview's severity filter: a severity, or nothing open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeverityFilter {
    Critical,
    Warning,
    Info,
    Ok,
}

impl SeverityFilter {
    pub const ALL: [SeverityFilter; 4] = [
        SeverityFilter::Critical,
        SeverityFilter::Warning,
        SeverityFilter::Info,
        SeverityFilter::Ok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SeverityFilter::Critical => "critical",
            SeverityFilter::Warning => "warning",
            SeverityFilter::Info => "info",
            SeverityFilter::Ok => "ok",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn rank(self) -> i64 {
        match self {
            SeverityFilter::Critical => 3,
            SeverityFilter::Warning => 2,
            SeverityFilter::Info => 1,
            SeverityFilter::Ok => 0,
        }
    }

    pub fn of(s: Option<Severity>) -> SeverityFilter {
        match s {
            Some(Severity::Critical) => SeverityFilter::Critical,
            Some(Severity::Warning) => SeverityFilter::Warning,
            Some(Severity::Info) => SeverityFilter::Info,
            None => SeverityFilter::Ok,
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            SeverityFilter::Critical => "緊急",
            SeverityFilter::Warning => "注意",
            SeverityFilter::Info => "お知らせ",
            SeverityFilter::Ok => "正常",
        }
    }
}

/// What staff do about a terminal's open findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handling {
    /// Nothing open.
    None,
    /// An open finding nobody has taken.
    Unhandled,
    /// Every one of the worst open findings is acknowledged.
    InProgress {
        by: String,
        until: Option<DateTime<Utc>>,
    },
    /// A maintenance window holds the terminal's mail back.
    Silenced {
        by: String,
        until: DateTime<Utc>,
        reason: String,
    },
}

/// [`Handling`] without its details, for filters and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandlingKind {
    None,
    Unhandled,
    InProgress,
    Silenced,
}

impl HandlingKind {
    pub const ALL: [HandlingKind; 4] = [
        HandlingKind::Unhandled,
        HandlingKind::InProgress,
        HandlingKind::Silenced,
        HandlingKind::None,
    ];

    /// The states an open alert can be in: what the desk filters alerts by.
    pub const OF_ALERTS: [HandlingKind; 3] = [
        HandlingKind::Unhandled,
        HandlingKind::InProgress,
        HandlingKind::Silenced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HandlingKind::None => "none",
            HandlingKind::Unhandled => "unhandled",
            HandlingKind::InProgress => "in_progress",
            HandlingKind::Silenced => "silenced",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            HandlingKind::None => "—",
            HandlingKind::Unhandled => "未対応",
            HandlingKind::InProgress => "対応中",
            HandlingKind::Silenced => "抑止中",
        }
    }
}

impl Handling {
    pub fn kind(&self) -> HandlingKind {
        match self {
            Handling::None => HandlingKind::None,
            Handling::Unhandled => HandlingKind::Unhandled,
            Handling::InProgress { .. } => HandlingKind::InProgress,
            Handling::Silenced { .. } => HandlingKind::Silenced,
        }
    }
}

/// Whether a terminal reports, judged against its clinic's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// Reports arrive.
    Receiving,
    /// No recent report, but the clinic has been closed since (switched off as expected).
    OutsideHours,
    /// No report during business hours, or for days.
    Offline,
}

impl Liveness {
    pub const ALL: [Liveness; 3] = [
        Liveness::Receiving,
        Liveness::OutsideHours,
        Liveness::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Receiving => "receiving",
            Liveness::OutsideHours => "outside_hours",
            Liveness::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Liveness::Receiving => "受信中",
            Liveness::OutsideHours => "営業時間外",
            Liveness::Offline => "オフライン",
        }
    }
}

/// Terminals per severity, handling, liveness and rule, kept by the evaluator as it writes
/// overview lines, so the overview's counts cost nothing per request. `ready` once the lines
/// are loaded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FleetTally {
    pub ready: bool,
    /// Indexed by [`OverviewLine::severity_rank`] (0 nothing open … 3 critical).
    pub severities: [i64; 4],
    /// Indexed by [`HandlingKind::ALL`]'s order.
    pub handling: [i64; 4],
    /// Indexed by [`Liveness::ALL`]'s order.
    pub liveness: [i64; 3],
    /// Critical terminals nobody has taken.
    pub critical_unhandled: i64,
    /// Indexed by the rule's discriminant (its bit).
    pub rules: [i64; RuleKey::ALL.len()],
}

fn handling_index(k: HandlingKind) -> usize {
    HandlingKind::ALL.iter().position(|h| *h == k).unwrap_or(0)
}

fn liveness_index(l: Liveness) -> usize {
    Liveness::ALL.iter().position(|v| *v == l).unwrap_or(0)
}

impl FleetTally {
    pub fn apply(&mut self, s: &OverviewLine, sign: i64) {
        let rank = usize::try_from(s.severity_rank()).unwrap_or(0).min(3);
        self.severities[rank] += sign;
        self.handling[handling_index(s.handling.kind())] += sign;
        self.liveness[liveness_index(s.liveness)] += sign;
        if s.severity == Some(Severity::Critical) && s.handling.kind() == HandlingKind::Unhandled {
            self.critical_unhandled += sign;
        }
        for rule in s.open_rules() {
            self.rules[rule as usize] += sign;
        }
    }

    /// Terminals whose worst open finding is `severity` (`None`: nothing open).
    pub fn severity(&self, severity: Option<Severity>) -> i64 {
        self.severities[severity_rank(severity) as usize]
    }

    pub fn handling(&self, k: HandlingKind) -> i64 {
        self.handling[handling_index(k)]
    }

    pub fn liveness(&self, l: Liveness) -> i64 {
        self.liveness[liveness_index(l)]
    }

    pub fn total(&self) -> i64 {
        self.severities.iter().sum()
    }

    /// Terminals with an unresolved alert of `rule`.
    pub fn rule(&self, rule: RuleKey) -> i64 {
        self.rules[rule as usize]
    }

    /// Adds another tally's counts (a clinic's, to a scope's).
    pub fn add(&mut self, other: &FleetTally) {
        let sum = |a: &mut [i64], b: &[i64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        sum(&mut self.severities, &other.severities);
        sum(&mut self.handling, &other.handling);
        sum(&mut self.liveness, &other.liveness);
        sum(&mut self.rules, &other.rules);
        self.critical_unhandled += other.critical_unhandled;
    }
}

/// The evaluator's running counts: the fleet's, and each clinic's, so a reader limited to a
/// scope gets theirs by adding up their clinics' (2,000 clinics: microseconds) instead of a
/// count over the overview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tallies {
    pub fleet: FleetTally,
    clinics: std::collections::HashMap<i64, FleetTally>,
}

impl Tallies {
    /// The counts of `lines`, ready to answer.
    pub fn of_lines<'a>(lines: impl IntoIterator<Item = &'a OverviewLine>) -> Tallies {
        let mut t = Tallies::default();
        t.fleet.ready = true;
        for l in lines {
            t.apply(l, 1);
        }
        t
    }

    pub fn apply(&mut self, line: &OverviewLine, sign: i64) {
        self.fleet.apply(line, sign);
        self.clinics
            .entry(line.clinic_id)
            .or_default()
            .apply(line, sign);
    }

    /// The counts of these clinics (`None`: the fleet's).
    pub fn of(&self, clinics: Option<&[i64]>) -> FleetTally {
        let Some(ids) = clinics else {
            return self.fleet.clone();
        };
        let mut t = FleetTally {
            ready: self.fleet.ready,
            ..FleetTally::default()
        };
        for c in ids.iter().filter_map(|id| self.clinics.get(id)) {
            t.add(c);
        }
        t
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
