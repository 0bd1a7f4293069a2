//! The network layout must not change without the vendor, and the probe targets must answer.

use chrono::{DateTime, Utc};
use onshi_shared::{Event, EventKind, Snapshot};

use super::{Finding, RuleInput, Thresholds, finding};
use crate::domain::{RuleKey, Severity};
use crate::wording::network_change_ja;

pub(super) fn network_events(
    t: &RuleInput,
    th: &Thresholds,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let recent: Vec<(&Event, &Vec<String>)> = t
        .events
        .iter()
        .filter(|e| now - e.at <= th.event_window)
        .filter_map(|e| match &e.kind {
            EventKind::NetworkChanged { changes, .. } => Some((e, changes)),
            _ => None,
        })
        .collect();
    if let Some((last, _)) = recent.last() {
        let mut changes: Vec<String> = Vec::new();
        for change in recent.iter().flat_map(|(_, c)| c.iter()) {
            let ja = network_change_ja(change);
            if !changes.contains(&ja) {
                changes.push(ja);
            }
        }
        out.push(finding(
            RuleKey::NetworkChanged,
            Severity::Warning,
            changes.join("、"),
            last.id.to_string(),
        ));
    }
}

pub(super) fn probes(s: &Snapshot, out: &mut Vec<Finding>) {
    let mut down: Vec<&str> = s
        .network
        .probes
        .iter()
        .filter(|p| !p.reachable)
        .map(|p| p.target.as_str())
        .collect();
    if !down.is_empty() {
        down.sort_unstable();
        out.push(finding(
            RuleKey::ProbeUnreachable,
            Severity::Critical,
            down.join("、"),
            down.join(","),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Thresholds;
    use super::super::fixtures::*;
    use crate::domain::{RuleKey, Severity};
    use chrono::Duration;
    use onshi_shared::{Event, EventKind, ProbeResult};

    #[test]
    fn network_changes_and_probes() {
        let now = healthy().collected_at;
        let mut t = state(healthy());
        let e1 = Event::new(
            now - Duration::days(1),
            EventKind::NetworkChanged {
                from_fingerprint: "a".into(),
                to_fingerprint: "b".into(),
                changes: vec!["gateway 192.168.10.1 -> 192.168.20.1".into()],
            },
        );
        t.events.push(e1.clone());
        let f = only(&t, now, RuleKey::NetworkChanged).unwrap();
        assert_eq!(
            (f.severity, f.occurrence.clone()),
            (Severity::Warning, e1.id.to_string())
        );
        assert_eq!(
            f.detail,
            "デフォルトゲートウェイ 192.168.10.1 → 192.168.20.1"
        );
        let window = Thresholds::default().event_window;
        assert_eq!(only(&t, now + window, RuleKey::NetworkChanged), None);

        let mut s = healthy();
        s.network.probes = vec![
            ProbeResult {
                target: "a:443".into(),
                reachable: true,
                latency_ms: Some(3),
                error: None,
            },
            ProbeResult {
                target: "b:443".into(),
                reachable: false,
                latency_ms: None,
                error: Some("timeout".into()),
            },
        ];
        let t = state(s);
        let f = only(&t, now, RuleKey::ProbeUnreachable).unwrap();
        assert_eq!(
            (f.severity, f.occurrence.as_str()),
            (Severity::Critical, "b:443")
        );
    }
}
