//! Offline: no report for some intervals while the clinic is open (terminals are switched off at
//! night and on closed days): a warning; no report on three whole open days: critical.
//!
//! DESIGN §5 says "or for 3 days"; counted in calendar days, that mails a 【緊急】 to every
//! clinic that switches its terminal off for 年末年始 or a long weekend, so the days counted
//! are the clinic's open days.

use chrono::{DateTime, Duration, Utc};

use super::{ClinicPolicy, Finding, RuleInput, finding};
use crate::domain::{RuleKey, Severity};
use crate::jst::{duration_ja, time_ja};

pub(super) fn offline(
    t: &RuleInput,
    policy: &ClinicPolicy,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let since = t.last_seen.unwrap_or(t.enrolled_at);
    let critical_days = policy.thresholds.offline_critical_days.max(1);
    // N whole open days span at least N - 1 calendar days: most terminals skip the walk.
    if now - since >= Duration::days(i64::from(critical_days) - 1)
        && policy.hours.open_days_between(since, now, critical_days) >= critical_days
    {
        out.push(finding(
            RuleKey::Offline,
            Severity::Critical,
            format!(
                "{} から{}報告がありません (診療日 {critical_days}日以上)",
                time_ja(since),
                duration_ja(now - since)
            ),
            "3d",
        ));
        return;
    }
    let allowed = Duration::seconds(
        i64::from(policy.agent.interval_secs) * i64::from(policy.offline_after_intervals.max(1)),
    );
    let open = policy.hours.open_time_between(since, now, allowed);
    if open >= allowed {
        out.push(finding(
            RuleKey::Offline,
            Severity::Warning,
            format!(
                "診療時間中に報告がありません (最後の報告: {})",
                time_ja(since)
            ),
            "hours",
        ));
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::fixtures::*;
    use crate::calendar::{BusinessHours, parse_week};
    use crate::domain::{Liveness, RuleKey, Severity};
    use crate::evaluator::liveness;
    use crate::rules::evaluate;

    /// What the offline rule and the overview's liveness say for a terminal last seen at
    /// `seen` (interval 60 s × 3: three minutes of open time without a report).
    fn offline_at(hours: &BusinessHours, seen: &str, now: &str) -> (Option<Severity>, Liveness) {
        let mut p = policy();
        p.hours = hours.clone();
        let mut t = state(healthy());
        t.last_seen = Some(utc(seen));
        let findings = evaluate(&t, &p, utc(now));
        let severity = findings
            .iter()
            .find(|f| f.rule == RuleKey::Offline)
            .map(|f| f.severity);
        let recent = Duration::seconds(
            i64::from(p.agent.interval_secs) * i64::from(p.offline_after_intervals),
        );
        (severity, liveness(&t, &findings, recent, utc(now)))
    }

    #[test]
    fn offline_counts_business_hours_only() {
        use Liveness::*;
        use Severity::*;
        let plain = BusinessHours::default();
        // Mon–Wed, Fri 09:00–12:30 and 15:00–18:30; Thu and Sat mornings only.
        let lunch = BusinessHours {
            week: parse_week(
                "mon=09:00-12:30,15:00-18:30;tue=09:00-12:30,15:00-18:30;\
                 wed=09:00-12:30,15:00-18:30;thu=09:00-12:30;fri=09:00-12:30,15:00-18:30;\
                 sat=09:00-12:30",
            )
            .unwrap(),
            ..BusinessHours::default()
        };
        let table = [
            // Last report Wed 18:00 JST: the night is not offline.
            (
                &plain,
                "2026-11-25T09:00:00Z",
                "2026-11-25T23:59:00Z",
                None,
                OutsideHours,
            ),
            (
                &plain,
                "2026-11-25T09:00:00Z",
                "2026-11-26T00:02:00Z",
                None,
                OutsideHours,
            ), // Thu 09:02
            (
                &plain,
                "2026-11-25T09:00:00Z",
                "2026-11-26T00:03:00Z",
                Some(Warning),
                Offline,
            ), // 09:03
            // Wed 10:00 JST, now 10:02 / 10:04 JST.
            (
                &plain,
                "2026-11-25T01:00:00Z",
                "2026-11-25T01:02:00Z",
                None,
                Receiving,
            ),
            (
                &plain,
                "2026-11-25T01:00:00Z",
                "2026-11-25T01:04:00Z",
                Some(Warning),
                Offline,
            ),
            // The last minutes before closing: 17:57 -> 18:00 is three open minutes, 17:58
            // -> the evening is two, and the third comes at 09:01 the next morning.
            (
                &plain,
                "2026-11-25T08:57:00Z",
                "2026-11-25T09:00:00Z",
                Some(Warning),
                Offline,
            ),
            (
                &plain,
                "2026-11-25T08:58:00Z",
                "2026-11-25T14:00:00Z",
                None,
                OutsideHours,
            ),
            (
                &plain,
                "2026-11-25T08:58:00Z",
                "2026-11-26T00:00:30Z",
                None,
                OutsideHours,
            ),
            (
                &plain,
                "2026-11-25T08:58:00Z",
                "2026-11-26T00:01:00Z",
                Some(Warning),
                Offline,
            ),
            // Lunch break: a terminal switched off at 12:29 is 営業時間外 over lunch, offline
            // at 15:02 (12:29–12:30 and 15:00–15:02).
            (
                &lunch,
                "2026-11-25T03:29:00Z",
                "2026-11-25T05:59:00Z",
                None,
                OutsideHours,
            ),
            (
                &lunch,
                "2026-11-25T03:29:00Z",
                "2026-11-25T06:01:00Z",
                None,
                OutsideHours,
            ),
            (
                &lunch,
                "2026-11-25T03:29:00Z",
                "2026-11-25T06:02:00Z",
                Some(Warning),
                Offline,
            ),
            // Thursday afternoon closed: 12:28 -> Fri 09:00 is two open minutes.
            (
                &lunch,
                "2026-11-26T03:28:00Z",
                "2026-11-27T00:00:00Z",
                None,
                OutsideHours,
            ),
            (
                &lunch,
                "2026-11-26T03:28:00Z",
                "2026-11-27T00:01:00Z",
                Some(Warning),
                Offline,
            ),
            // Sat 2026-11-21 18:00 JST: Sunday closed, Monday 11/23 勤労感謝の日 closed,
            // Tuesday 08:59 still closed.
            (
                &plain,
                "2026-11-21T09:00:00Z",
                "2026-11-23T23:59:00Z",
                None,
                OutsideHours,
            ),
            (
                &plain,
                "2026-11-21T09:00:00Z",
                "2026-11-24T00:05:00Z",
                Some(Warning),
                Offline,
            ),
            // Three calendar days later only one open day has passed: still a warning.
            (
                &plain,
                "2026-11-21T09:00:00Z",
                "2026-11-24T09:00:00Z",
                Some(Warning),
                Offline,
            ),
            // Tue, Wed, Thu without a report: critical when Thursday closes.
            (
                &plain,
                "2026-11-21T09:00:00Z",
                "2026-11-26T08:59:00Z",
                Some(Warning),
                Offline,
            ),
            (
                &plain,
                "2026-11-21T09:00:00Z",
                "2026-11-26T09:00:00Z",
                Some(Critical),
                Offline,
            ),
            // 年末年始: switched off Mon 12/28 18:00; 12/29–1/3 closed, 1/4 opens at 09:00.
            (
                &plain,
                "2026-12-28T09:00:00Z",
                "2027-01-03T14:00:00Z",
                None,
                OutsideHours,
            ),
            (
                &plain,
                "2026-12-28T09:00:00Z",
                "2027-01-04T00:02:00Z",
                None,
                OutsideHours,
            ),
            (
                &plain,
                "2026-12-28T09:00:00Z",
                "2027-01-04T00:03:00Z",
                Some(Warning),
                Offline,
            ),
            // ... and critical only after 1/4, 1/5 and 1/6, not on 12/31.
            (
                &plain,
                "2026-12-28T09:00:00Z",
                "2027-01-06T08:59:00Z",
                Some(Warning),
                Offline,
            ),
            (
                &plain,
                "2026-12-28T09:00:00Z",
                "2027-01-06T09:00:00Z",
                Some(Critical),
                Offline,
            ),
            // A substitute holiday: Sat 2026-05-02 18:00, then 5/3–5/5 holidays and Wed 5/6
            // 振替休日 (憲法記念日 fell on a Sunday); Thursday 5/7 opens.
            (
                &plain,
                "2026-05-02T09:00:00Z",
                "2026-05-06T14:00:00Z",
                None,
                OutsideHours,
            ),
            (
                &plain,
                "2026-05-02T09:00:00Z",
                "2026-05-07T00:03:00Z",
                Some(Warning),
                Offline,
            ),
            // Sat 12:00 JST -> Mon 08:59 JST: the Saturday afternoon was open.
            (
                &plain,
                "2026-11-28T03:00:00Z",
                "2026-11-29T23:59:00Z",
                Some(Warning),
                Offline,
            ),
            (
                &plain,
                "2026-11-28T08:58:00Z",
                "2026-11-29T23:59:00Z",
                None,
                OutsideHours,
            ), // Sat 17:58
            (
                &plain,
                "2026-11-28T08:58:00Z",
                "2026-11-30T00:01:00Z",
                Some(Warning),
                Offline,
            ), // Mon 09:01
        ];
        for (hours, seen, now, want, live) in table {
            assert_eq!(
                offline_at(hours, seen, now),
                (want, live),
                "seen {seen} now {now}"
            );
        }
        // A clinic may give itself more days before the critical.
        let mut p = policy();
        p.thresholds = std::sync::Arc::new(crate::rules::Thresholds {
            offline_critical_days: 5,
            ..crate::rules::Thresholds::default()
        });
        let mut t = state(healthy());
        t.last_seen = Some(utc("2026-11-21T09:00:00Z"));
        assert_eq!(
            rules(&t, &p, utc("2026-11-26T09:00:00Z")),
            vec![(RuleKey::Offline, Warning)]
        );
        // Never reported: counted from enrollment.
        let mut t = state(healthy());
        t.snapshot = None;
        t.last_seen = None;
        t.enrolled_at = utc("2026-11-16T00:00:00Z");
        assert_eq!(
            rules(&t, &policy(), utc("2026-11-25T00:00:00Z")),
            vec![(RuleKey::Offline, Critical)]
        );
        // Silent for longer than the calendar looks back: critical whatever it says.
        let mut closed = plain.clone();
        closed.week = Default::default();
        assert_eq!(
            offline_at(&closed, "2026-09-01T00:00:00Z", "2026-11-25T00:00:00Z").0,
            Some(Critical)
        );
        assert_eq!(
            offline_at(&closed, "2026-11-01T00:00:00Z", "2026-11-25T00:00:00Z").0,
            None
        );
    }
}
