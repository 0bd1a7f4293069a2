//! Offline: no report for some intervals while the clinic is open (terminals are switched off at
//! night and on closed days), or for three days whatever the hours.

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
    if now - since >= policy.thresholds.offline_critical {
        out.push(finding(
            RuleKey::Offline,
            Severity::Critical,
            format!(
                "{} から報告がありません ({})",
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
    use super::super::fixtures::*;
    use crate::domain::{RuleKey, Severity};

    #[test]
    fn offline_counts_business_hours_only() {
        use Severity::*;
        // Interval 60 s × 3: three minutes of open time without a report.
        let table = [
            // last report Wed 18:00 JST
            ("2026-11-25T09:00:00Z", "2026-11-25T23:59:00Z", None), // night
            ("2026-11-25T09:00:00Z", "2026-11-26T00:02:00Z", None), // Thu 09:02: 2 min open
            (
                "2026-11-25T09:00:00Z",
                "2026-11-26T00:03:00Z",
                Some(Warning),
            ), // 09:03
            // Wed 10:00 JST, now 10:02 / 10:04 JST
            ("2026-11-25T01:00:00Z", "2026-11-25T01:02:00Z", None),
            (
                "2026-11-25T01:00:00Z",
                "2026-11-25T01:04:00Z",
                Some(Warning),
            ),
            // Sat 2026-11-21 18:00 JST: Sunday closed, Monday 11/23 勤労感謝の日 closed,
            // Tuesday 08:59 still closed.
            ("2026-11-21T09:00:00Z", "2026-11-23T23:59:00Z", None),
            (
                "2026-11-21T09:00:00Z",
                "2026-11-24T00:05:00Z",
                Some(Warning),
            ), // Tue 09:05
            (
                "2026-11-21T09:00:00Z",
                "2026-11-24T09:00:00Z",
                Some(Critical),
            ), // 3 days
            // Sat 12:00 JST -> Mon 09:05 JST (an ordinary Monday): Sunday does not count.
            (
                "2026-11-28T03:00:00Z",
                "2026-11-29T23:59:00Z",
                Some(Warning),
            ), // Sat afternoon open
            ("2026-11-28T08:58:00Z", "2026-11-29T23:59:00Z", None), // Sat 17:58 JST, 2 min open
            (
                "2026-11-28T08:58:00Z",
                "2026-11-30T00:01:00Z",
                Some(Warning),
            ), // Mon 09:01 JST
        ];
        for (seen, now, want) in table {
            let mut t = state(healthy());
            t.last_seen = Some(utc(seen));
            let got = only(&t, utc(now), RuleKey::Offline).map(|f| f.severity);
            assert_eq!(got, want, "seen {seen} now {now}");
        }
        // Never reported: counted from enrollment.
        let mut t = state(healthy());
        t.snapshot = None;
        t.last_seen = None;
        t.enrolled_at = utc("2026-11-20T00:00:00Z");
        assert_eq!(
            rules(&t, &policy(), utc("2026-11-25T00:00:00Z")),
            vec![(RuleKey::Offline, Critical)]
        );
    }
}
