//! The overview's line for each terminal, and the running tally of lines per state and per rule
//! that answers the dashboard's counts without a query.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::{
    AlertStatus, BackupKind, ClinicSettings, ExpectedVersion, OverviewLine, OverviewState, RuleKey,
    Severity, compare_versions,
};
use crate::rules::RuleInput;

/// Terminals per state and per rule, kept by the evaluator as it writes overview lines, so the
/// overview's counts cost nothing per request. `ready` once the lines are loaded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FleetTally {
    pub ready: bool,
    /// Indexed by [`OverviewState::rank`].
    pub states: [i64; 5],
    /// Indexed by the rule's discriminant (its bit).
    pub rules: [i64; RuleKey::ALL.len()],
}

impl FleetTally {
    pub(super) fn apply(&mut self, s: &OverviewLine, sign: i64) {
        if let Some(n) = usize::try_from(s.state.rank())
            .ok()
            .and_then(|i| self.states.get_mut(i))
        {
            *n += sign;
        }
        for rule in s.open_rules() {
            self.rules[rule as usize] += sign;
        }
    }

    pub fn state(&self, k: OverviewState) -> i64 {
        usize::try_from(k.rank())
            .ok()
            .and_then(|i| self.states.get(i))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> i64 {
        self.states.iter().sum()
    }

    /// Terminals with an unresolved alert of `rule`.
    pub fn rule(&self, rule: RuleKey) -> i64 {
        self.rules[rule as usize]
    }
}

pub type SharedTally = Arc<std::sync::RwLock<FleetTally>>;

/// The overview's line for a terminal, from its state and its alerts after evaluation.
/// A maintenance window wins over everything, then a terminal that stopped reporting (its
/// other findings are stale), then the worst open alert.
pub fn overview_line(
    t: &RuleInput,
    clinic: &ClinicSettings,
    hostname: &str,
    alerts_after: &[(RuleKey, Severity, AlertStatus)],
    silenced: bool,
    offline: bool,
    expected: &HashMap<String, ExpectedVersion>,
) -> OverviewLine {
    let open: Vec<(RuleKey, Severity)> = alerts_after
        .iter()
        .filter(|(_, _, status)| *status != AlertStatus::Resolved)
        .map(|(rule, severity, _)| (*rule, *severity))
        .collect();
    let open_rules = open.iter().fold(0, |bits, (rule, _)| bits | rule.bit());
    let worst = open.iter().map(|(_, s)| *s).max();
    let state = if silenced {
        OverviewState::Silenced
    } else if offline {
        OverviewState::Offline
    } else {
        match worst {
            Some(Severity::Critical) => OverviewState::Critical,
            Some(Severity::Warning) => OverviewState::Warning,
            _ => OverviewState::Ok,
        }
    };
    let snapshot = t.snapshot.as_ref();
    let apps_behind = snapshot.map_or(0, |s| {
        s.apps
            .installed
            .iter()
            .filter(|app| {
                matches!(
                    (&app.version, expected.get(&app.name)),
                    (Some(v), Some(e)) if compare_versions(v, &e.version).is_lt()
                )
            })
            .count() as i64
    });
    let backup = match snapshot {
        None => BackupKind::Unknown,
        Some(s) => match (&s.certificates.backup, s.certificates.current()) {
            (_, None) => BackupKind::Unknown,
            (None, Some(_)) => BackupKind::Missing,
            (Some(b), Some(_)) if b.matches_current => BackupKind::Ok,
            (Some(_), Some(_)) => BackupKind::Stale,
        },
    };
    OverviewLine {
        terminal_id: t.terminal_id,
        clinic_id: t.clinic_id,
        clinic_name: clinic.name.clone(),
        prefecture: clinic.prefecture.clone(),
        hostname: hostname.to_string(),
        state,
        open_alerts: open.len() as i64,
        open_rules,
        apps_behind,
        backup,
        last_start: snapshot.map(|s| s.uptime.last_start),
        cert_not_after: snapshot
            .and_then(|s| s.certificates.current())
            .map(|c| c.not_after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::BusinessHours;
    use chrono::Utc;
    use uuid::Uuid;

    #[test]
    fn lines_rank_states_and_the_tally_follows_them() {
        let clinic = ClinicSettings {
            id: 1,
            name: "さくら".into(),
            email: "a@b.jp".into(),
            hours: BusinessHours::default(),
            desk_name: None,
            desk_phone: None,
            prefecture: Some("東京都".into()),
        };
        let t = RuleInput {
            terminal_id: Uuid::now_v7(),
            clinic_id: 1,
            enrolled_at: Utc::now(),
            last_seen: Some(Utc::now()),
            collected_at: Utc::now(),
            snapshot: Some(Arc::new(onshi_shared::sample::snapshot())),
            events: Vec::new(),
        };
        use Severity::{Critical, Warning};
        let alerts = [
            (RuleKey::CertExpiry, Critical, AlertStatus::Open),
            (RuleKey::PendingReboot, Warning, AlertStatus::Acknowledged),
            (RuleKey::Offline, Critical, AlertStatus::Resolved),
        ];
        let expected = HashMap::new();
        let s = |alerts: &[(RuleKey, Severity, AlertStatus)], silenced, offline| {
            overview_line(&t, &clinic, "PC", alerts, silenced, offline, &expected)
        };
        // (alerts, silenced, offline) -> state
        let cases = [
            (&alerts[..], false, false, OverviewState::Critical),
            (&alerts[1..], false, false, OverviewState::Warning),
            (&alerts[2..], false, false, OverviewState::Ok),
            (&alerts[..], false, true, OverviewState::Offline),
            (&alerts[..], true, true, OverviewState::Silenced),
        ];
        for (a, silenced, offline, want) in cases {
            assert_eq!(
                s(a, silenced, offline).state,
                want,
                "{a:?} {silenced} {offline}"
            );
        }
        let full = s(&alerts, false, false);
        assert_eq!(full.open_alerts, 2, "the resolved one does not count");
        assert_eq!(
            full.open_rules,
            RuleKey::CertExpiry.bit() | RuleKey::PendingReboot.bit()
        );
        assert_eq!(full.prefecture.as_deref(), Some("東京都"));
        let mut tally = FleetTally::default();
        tally.apply(&full, 1);
        tally.apply(&s(&alerts[1..], false, false), 1);
        assert_eq!(tally.total(), 2);
        assert_eq!(tally.state(OverviewState::Critical), 1);
        assert_eq!(tally.rule(RuleKey::PendingReboot), 2);
        tally.apply(&full, -1);
        assert_eq!(tally.rule(RuleKey::CertExpiry), 0);
        assert_eq!(tally.state(OverviewState::Warning), 1);
    }
}
