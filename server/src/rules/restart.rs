//! No daily restart: the distributed app updates install only when the terminal restarts (or is
//! switched off and on) once a day.

use chrono::{DateTime, Utc};
use onshi_shared::{Snapshot, StartKind};

use super::{Finding, Thresholds, finding};
use crate::domain::{RuleKey, Severity};
use crate::jst::duration_ja;

/// The last start that installs updates. A fast-startup power-on counts (the app updates run);
/// a resume from hibernation does not, so then only the last full boot counts.
fn counting_start(s: &Snapshot) -> DateTime<Utc> {
    match s.uptime.last_start_kind {
        StartKind::Resume => s.uptime.last_boot,
        StartKind::ColdBoot | StartKind::FastStartup | StartKind::Unknown => s.uptime.last_start,
    }
}

/// Measured at the last report, not at `now`: a terminal switched off since then may well have
/// been restarted, and the offline rule speaks for it.
pub(super) fn restart(
    s: &Snapshot,
    collected_at: DateTime<Utc>,
    th: &Thresholds,
    out: &mut Vec<Finding>,
) {
    let since = collected_at - counting_start(s);
    let severity = if since > th.restart_critical {
        Severity::Critical
    } else if since > th.restart_warning {
        Severity::Warning
    } else {
        return;
    };
    out.push(finding(
        RuleKey::NoDailyRestart,
        severity,
        format!(
            "最後の起動から {}、再起動されていません",
            duration_ja(since)
        ),
        severity.as_str(),
    ));
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use crate::domain::{RuleKey, Severity};
    use chrono::Duration;
    use onshi_shared::StartKind;

    #[test]
    fn restart_thresholds_are_measured_at_the_last_report() {
        use Severity::*;
        let table = [
            // (start kind, hours since last start, hours since last full boot, want)
            (StartKind::ColdBoot, 26, 26, None),
            (StartKind::ColdBoot, 27, 27, Some(Warning)),
            (StartKind::ColdBoot, 72, 72, Some(Warning)),
            (StartKind::ColdBoot, 73, 73, Some(Critical)),
            // Fast startup: uptime and last boot are old, but the power-on counts.
            (StartKind::FastStartup, 5, 400, None),
            // Resume from hibernation does not count: the last full boot does.
            (StartKind::Resume, 5, 30, Some(Warning)),
            (StartKind::Resume, 5, 20, None),
        ];
        for (kind, start_h, boot_h, want) in table {
            let mut s = healthy();
            s.uptime.last_start_kind = kind;
            s.uptime.last_start = s.collected_at - Duration::hours(start_h);
            s.uptime.last_boot = s.collected_at - Duration::hours(boot_h);
            let t = state(s);
            let got = only(&t, t.last_seen.unwrap(), RuleKey::NoDailyRestart).map(|f| f.severity);
            assert_eq!(got, want, "{kind:?} start {start_h} h boot {boot_h} h");
        }
    }

    #[test]
    fn a_terminal_switched_off_at_night_is_not_no_restart() {
        // Started 08:00 JST, last report 18:00 JST, switched off; next morning 08:30 the
        // evaluator sees 24.5 h since the start but nothing says the terminal was on.
        let mut s = healthy();
        s.collected_at = utc("2026-11-25T09:00:00Z");
        s.uptime.last_start = utc("2026-11-24T23:00:00Z");
        s.uptime.last_boot = s.uptime.last_start;
        let t = state(s);
        for now in ["2026-11-25T23:30:00Z", "2026-11-28T08:00:00Z"] {
            assert_eq!(only(&t, utc(now), RuleKey::NoDailyRestart), None, "{now}");
        }
    }
}
