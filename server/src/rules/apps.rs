//! The watched apps: behind the expected version, or a reboot pending that would install an
//! update.

use chrono::{DateTime, Utc};
use onshi_shared::{RebootSource, Snapshot};

use super::{ClinicPolicy, Finding, finding};
use crate::domain::{RuleKey, Severity, compare_versions};
use crate::jst::duration_ja;

/// A reboot that installs something has been pending past the grace. Each marker counts on
/// its own; a pending file rename alone does not (security software keeps it set on many
/// PCs) unless the clinic says it does.
pub(super) fn pending_reboot(
    s: &Snapshot,
    policy: &ClinicPolicy,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let Some(p) = &s.apps.pending_reboot else {
        return;
    };
    let counting: Vec<_> = p
        .sources()
        .into_iter()
        .filter(|m| policy.file_rename_counts || m.source != RebootSource::FileRename)
        .collect();
    let Some(since) = counting
        .iter()
        .map(|m| m.since.or(p.since).unwrap_or(s.uptime.last_start))
        .min()
    else {
        return;
    };
    if now - since <= policy.thresholds.pending_reboot_grace {
        return;
    }
    let mut sources: Vec<RebootSource> = counting.iter().map(|m| m.source).collect();
    sources.sort_by_key(|s| *s as u8);
    sources.dedup();
    let why: Vec<&str> = sources.iter().map(|s| s.label_ja()).collect();
    out.push(finding(
        RuleKey::PendingReboot,
        Severity::Warning,
        format!(
            "{}前から。理由: {}",
            duration_ja(now - since),
            why.join("、")
        ),
        "",
    ));
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
        if now - expected.since >= policy.thresholds.update_grace
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
    use onshi_shared::{PendingReboot, RebootMarker, RebootSource};
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
                markers: Vec::new(),
            });
            let t = state(s);
            assert_eq!(
                only(&t, now, RuleKey::PendingReboot).is_some(),
                want,
                "{hours}"
            );
        }
    }

    #[test]
    fn a_pending_file_rename_alone_is_shown_not_alerted() {
        let now = healthy().collected_at;
        let old = Some(now - Duration::days(30));
        let marker = |source| RebootMarker {
            source,
            since: old,
            detail: None,
        };
        let reboot = |markers: Vec<RebootMarker>, reasons: Vec<&str>| {
            let mut s = healthy();
            s.apps.pending_reboot = Some(PendingReboot {
                reasons: reasons.into_iter().map(str::to_string).collect(),
                since: old,
                markers,
            });
            state(s)
        };
        let rename_only = reboot(vec![marker(RebootSource::FileRename)], vec![]);
        assert_eq!(only(&rename_only, now, RuleKey::PendingReboot), None);
        // An older agent says the same in words only.
        let legacy = reboot(vec![], vec!["PendingFileRenameOperations"]);
        assert_eq!(only(&legacy, now, RuleKey::PendingReboot), None);
        // A clinic whose policy says a rename counts.
        let mut counts = policy();
        counts.file_rename_counts = true;
        assert!(
            super::super::evaluate(&rename_only, &counts, now)
                .iter()
                .any(|f| f.rule == RuleKey::PendingReboot)
        );
        // With Windows Update waiting too, it fires, and says why in Japanese.
        let both = reboot(
            vec![
                marker(RebootSource::FileRename),
                marker(RebootSource::WindowsUpdate),
            ],
            vec![],
        );
        let f = only(&both, now, RuleKey::PendingReboot).unwrap();
        assert!(
            f.detail.contains("Windows Update が再起動を待っています"),
            "{}",
            f.detail
        );
        assert!(
            !f.detail.contains("ファイル"),
            "the rename is not the reason: {}",
            f.detail
        );
        assert!(f.detail.starts_with("30日前から"), "{}", f.detail);
        let legacy_cbs = reboot(
            vec![],
            vec!["CBS RebootPending", "PendingFileRenameOperations"],
        );
        let f = only(&legacy_cbs, now, RuleKey::PendingReboot).unwrap();
        assert!(
            !f.detail.contains("CBS"),
            "no raw marker names: {}",
            f.detail
        );
    }
}
