//! The watched apps: behind the expected version, or a reboot pending that would install an
//! update.

use chrono::{DateTime, Utc};
use onshi_shared::Snapshot;

use super::{ClinicPolicy, Finding, PENDING_REBOOT_GRACE, UPDATE_GRACE, finding};
use crate::domain::{RuleKey, Severity, compare_versions};

pub(super) fn pending_reboot(s: &Snapshot, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    if let Some(p) = &s.apps.pending_reboot {
        let since = p.since.unwrap_or(s.uptime.last_start);
        if now - since > PENDING_REBOOT_GRACE {
            out.push(finding(
                RuleKey::PendingReboot,
                Severity::Warning,
                format!(
                    "{} 時間前から再起動待ちの更新があります ({})",
                    (now - since).num_hours(),
                    p.reasons.join(", ")
                ),
                "",
            ));
        }
    }
}

pub(super) fn updates_behind(
    s: &Snapshot,
    policy: &ClinicPolicy,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let mut behind: Vec<String> = Vec::new();
    for app in &s.apps.installed {
        let (Some(version), Some(expected)) =
            (&app.version, policy.expected_versions.get(&app.name))
        else {
            continue;
        };
        if now - expected.since >= UPDATE_GRACE
            && compare_versions(version, &expected.version) == std::cmp::Ordering::Less
        {
            behind.push(format!("{} {} → {}", app.name, version, expected.version));
        }
    }
    if !behind.is_empty() {
        behind.sort();
        let occurrence = behind.join("; ");
        out.push(finding(
            RuleKey::UpdatesBehind,
            Severity::Warning,
            format!("最新版になっていないアプリ: {occurrence}"),
            occurrence,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use crate::domain::{ExpectedVersion, RuleKey, Severity};
    use chrono::Duration;
    use onshi_shared::PendingReboot;
    use std::collections::HashMap;
    use std::sync::Arc;

    #[test]
    fn updates_behind_after_a_day_of_grace_and_pending_reboot() {
        let now = healthy().collected_at;
        let expected = |version: &str, hours: i64| {
            let mut p = policy();
            p.expected_versions = Arc::new(HashMap::from([(
                "配信アプリ".to_string(),
                ExpectedVersion {
                    version: version.into(),
                    since: now - Duration::hours(hours),
                },
            )]));
            p
        };
        // The sample has 配信アプリ 2.4.1.
        let table = [
            ("2.4.1", 48, false),
            ("2.4.0", 48, false),
            ("2.10.0", 48, true),
            ("2.10.0", 23, false),
            ("2.4.1.1", 24, true),
        ];
        let t = state(healthy());
        for (version, hours, want) in table {
            let got = rules(&t, &expected(version, hours), now);
            assert_eq!(
                got.contains(&(RuleKey::UpdatesBehind, Severity::Warning)),
                want,
                "{version} since {hours} h: {got:?}"
            );
        }
        for (hours, want) in [(23, false), (25, true)] {
            let mut s = healthy();
            s.apps.pending_reboot = Some(PendingReboot {
                reasons: vec!["CBS RebootPending".into()],
                since: Some(now - Duration::hours(hours)),
            });
            let t = state(s);
            assert_eq!(
                only(&t, now, RuleKey::PendingReboot).is_some(),
                want,
                "{hours}"
            );
        }
    }
}
