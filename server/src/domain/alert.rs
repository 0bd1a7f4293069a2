//! Alerts, their history and the maintenance windows that hold their mail back.

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc};
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
    /// A critical mail a silence held back: sent when the window is over, if the alert is still
    /// open and nobody took it.
    pub mail_held: bool,
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
    /// The mail a silence held back went out after the window.
    HeldMailSent,
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
            AlertAction::HeldMailSent => "held_mail_sent",
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

/// Where a silence applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SilenceScope {
    Terminal(Uuid),
    Clinic(i64),
    Prefecture(String),
    /// Every terminal (a vendor-side outage).
    Fleet,
}

impl SilenceScope {
    pub fn label_ja(&self) -> String {
        match self {
            SilenceScope::Terminal(_) => "端末".into(),
            SilenceScope::Clinic(_) => "医療機関".into(),
            SilenceScope::Prefecture(p) => format!("{p}の全端末"),
            SilenceScope::Fleet => "全端末".into(),
        }
    }
}

/// A window repeated every day (or on some weekdays) within a silence's dates, e.g. every
/// night 03:30–05:00 for the 04:00 automatic restart. `from > to` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    pub from: NaiveTime,
    pub to: NaiveTime,
    /// Bit 0 Monday … bit 6 Sunday (of the day the window starts); 0x7f every day.
    pub weekdays: u8,
}

impl DailyWindow {
    /// Whether `t` falls in the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&crate::jst::offset());
        let time = local.time();
        let day_bit = |d: chrono::Weekday| self.weekdays & (1 << d.num_days_from_monday()) != 0;
        if self.from <= self.to {
            day_bit(local.weekday()) && self.from <= time && time < self.to
        } else if time >= self.from {
            day_bit(local.weekday())
        } else {
            // After midnight: the window began the day before.
            time < self.to && day_bit(local.weekday().pred())
        }
    }

    pub fn label_ja(&self) -> String {
        const DAYS: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
        let days = if self.weekdays & 0x7f == 0x7f {
            "毎日".to_string()
        } else {
            let names: Vec<&str> = (0..7)
                .filter(|i| self.weekdays & (1 << i) != 0)
                .map(|i| DAYS[i])
                .collect();
            format!("毎週{}", names.join("・"))
        };
        format!(
            "{days} {}〜{}",
            self.from.format("%H:%M"),
            self.to.format("%H:%M")
        )
    }
}

/// What a silence is checked against: one terminal's alert of one rule.
#[derive(Debug, Clone, Copy)]
pub struct SilenceTarget<'a> {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub prefecture: Option<&'a str>,
}

/// A maintenance window: alerts stay open, but no mail goes out for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: i64,
    pub scope: SilenceScope,
    /// Only this rule's alerts (`None`: every rule).
    pub rule: Option<RuleKey>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub daily: Option<DailyWindow>,
    pub reason: String,
    pub created_by: String,
    /// Who ended it early, if someone did.
    pub ended_by: Option<String>,
}

impl Silence {
    /// Whether the silence holds mail back at `now` (its dates, and its daily window if any).
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at && self.daily.is_none_or(|d| d.contains(now))
    }

    /// Until when it holds mail back, seen at `now`: the end of tonight's window for a daily
    /// one (never after its last date), else its end.
    pub fn holds_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(d) = self.daily.filter(|d| d.contains(now)) else {
            return self.ends_at;
        };
        let tz = crate::jst::offset();
        let local = now.with_timezone(&tz);
        let day = if d.from > d.to && local.time() >= d.from {
            local.date_naive().succ_opt().unwrap_or(local.date_naive())
        } else {
            local.date_naive()
        };
        tz.from_local_datetime(&day.and_time(d.to))
            .single()
            .map_or(self.ends_at, |end| {
                end.with_timezone(&Utc).min(self.ends_at)
            })
    }

    /// Whether it applies to the target at all, whatever the time.
    pub fn applies_to(&self, t: &SilenceTarget<'_>) -> bool {
        match &self.scope {
            SilenceScope::Terminal(id) => *id == t.terminal_id,
            SilenceScope::Clinic(id) => *id == t.clinic_id,
            SilenceScope::Prefecture(p) => t.prefecture == Some(p.as_str()),
            SilenceScope::Fleet => true,
        }
    }

    /// Whether it holds back mail for `rule` on the target at `now` (`rule: None` asks about the
    /// terminal as a whole: only silences of every rule answer yes).
    pub fn covers(&self, t: &SilenceTarget<'_>, rule: Option<RuleKey>, now: DateTime<Utc>) -> bool {
        let rule_matches = match (self.rule, rule) {
            (None, _) => true,
            (Some(own), Some(asked)) => own == asked,
            (Some(_), None) => false,
        };
        rule_matches && self.applies_to(t) && self.active_at(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn silence(scope: SilenceScope, rule: Option<RuleKey>, daily: Option<DailyWindow>) -> Silence {
        let now = utc("2026-11-25T00:00:00Z");
        Silence {
            id: 1,
            scope,
            rule,
            starts_at: now,
            ends_at: now + Duration::days(30),
            daily,
            reason: "工事".into(),
            created_by: "suzuki".into(),
            ended_by: None,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn silences_cover_their_scope_and_rule_within_their_dates() {
        let t = Uuid::now_v7();
        let here = SilenceTarget {
            terminal_id: t,
            clinic_id: 7,
            prefecture: Some("東京都"),
        };
        let elsewhere = SilenceTarget {
            terminal_id: Uuid::now_v7(),
            clinic_id: 8,
            prefecture: Some("大阪府"),
        };
        let at = utc("2026-11-26T02:00:00Z");
        let table = [
            (silence(SilenceScope::Terminal(t), None, None), true, false),
            (silence(SilenceScope::Clinic(7), None, None), true, false),
            (
                silence(SilenceScope::Prefecture("東京都".into()), None, None),
                true,
                false,
            ),
            (silence(SilenceScope::Fleet, None, None), true, true),
        ];
        for (s, here_want, elsewhere_want) in &table {
            assert_eq!(
                s.covers(&here, Some(RuleKey::Offline), at),
                *here_want,
                "{s:?}"
            );
            assert_eq!(
                s.covers(&elsewhere, Some(RuleKey::Offline), at),
                *elsewhere_want,
                "{s:?}"
            );
            assert!(!s.covers(&here, Some(RuleKey::Offline), utc("2026-11-24T23:59:59Z")));
            assert!(!s.covers(&here, Some(RuleKey::Offline), utc("2026-12-25T00:00:00Z")));
        }
        let offline_only = silence(SilenceScope::Fleet, Some(RuleKey::Offline), None);
        assert!(offline_only.covers(&here, Some(RuleKey::Offline), at));
        assert!(!offline_only.covers(&here, Some(RuleKey::CertExpiry), at));
        assert!(
            !offline_only.covers(&here, None, at),
            "not the whole terminal"
        );
    }

    #[test]
    fn a_nightly_window_repeats_and_may_cross_midnight() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let nightly = DailyWindow {
            from: t(3, 30),
            to: t(5, 0),
            weekdays: 0x7f,
        };
        let s = silence(SilenceScope::Clinic(7), None, Some(nightly));
        // JST = UTC+9: 03:30 JST is 18:30 UTC the day before.
        for (at, want) in [
            ("2026-11-26T18:29:00Z", false),
            ("2026-11-26T18:30:00Z", true),
            ("2026-11-26T19:59:00Z", true),
            ("2026-11-26T20:00:00Z", false),
            ("2026-11-27T01:00:00Z", false),
        ] {
            assert_eq!(s.active_at(utc(at)), want, "{at}");
        }
        // 22:00–02:00 on Thursdays: Thursday 23:00 and Friday 01:00, not Friday 23:00.
        let late = DailyWindow {
            from: t(22, 0),
            to: t(2, 0),
            weekdays: 1 << 3,
        };
        assert!(late.contains(utc("2026-11-26T14:00:00Z")), "Thu 23:00 JST");
        assert!(late.contains(utc("2026-11-26T16:00:00Z")), "Fri 01:00 JST");
        assert!(!late.contains(utc("2026-11-27T14:00:00Z")), "Fri 23:00 JST");
        assert_eq!(late.label_ja(), "毎週木 22:00〜02:00");
        assert_eq!(nightly.label_ja(), "毎日 03:30〜05:00");
        // It holds mail until tonight's window ends, not until the series' last date.
        assert_eq!(
            s.holds_until(utc("2026-11-26T19:00:00Z")),
            utc("2026-11-26T20:00:00Z")
        );
        let s = silence(SilenceScope::Clinic(7), None, Some(late));
        assert_eq!(
            s.holds_until(utc("2026-11-26T14:00:00Z")),
            utc("2026-11-26T17:00:00Z"),
            "Thu 23:00 -> Fri 02:00 JST"
        );
        assert_eq!(
            s.holds_until(utc("2026-11-26T16:00:00Z")),
            utc("2026-11-26T17:00:00Z"),
            "Fri 01:00 -> 02:00 JST"
        );
        let once = silence(SilenceScope::Clinic(7), None, None);
        assert_eq!(once.holds_until(utc("2026-11-26T16:00:00Z")), once.ends_at);
    }
}
