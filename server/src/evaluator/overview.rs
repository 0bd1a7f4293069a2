//! The overview's line for each terminal, and the running tally of lines (severity, handling,
//! liveness, rule) that answers the dashboard's counts without a query.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

pub use crate::domain::FleetTally;
use crate::domain::{
    Alert, AlertStatus, BackupKind, ClinicSettings, ExpectedVersion, Handling, Liveness,
    OverviewLine, RuleKey, Severity, Silence, compare_versions,
};
use crate::rules::{Finding, RuleInput};

pub use crate::domain::Tallies;

pub type SharedTally = Arc<std::sync::RwLock<Tallies>>;

/// Whether the terminal reports: offline when the offline rule says so (no report within
/// business hours, or for days); receiving while its reports are recent; otherwise it was
/// switched off while the clinic is closed, as the vendor asks.
pub fn liveness(
    t: &RuleInput,
    findings: &[Finding],
    recent: Duration,
    now: DateTime<Utc>,
) -> Liveness {
    if findings.iter().any(|f| f.rule == RuleKey::Offline) {
        Liveness::Offline
    } else if now - t.last_seen.unwrap_or(t.enrolled_at) <= recent {
        Liveness::Receiving
    } else {
        Liveness::OutsideHours
    }
}

/// What staff do about the worst open alerts: acknowledged (all of them, by whom, until
/// when), held back by a silence (until when, by whom, why), or nobody yet.
fn handling(open: &[&Alert], silences: &[&Silence], now: DateTime<Utc>) -> Handling {
    let Some(worst) = open.iter().map(|a| a.severity).max() else {
        return Handling::None;
    };
    let top: Vec<&&Alert> = open.iter().filter(|a| a.severity == worst).collect();
    let acknowledged =
        |a: &Alert| a.status == AlertStatus::Acknowledged && a.ack_until.is_none_or(|u| u > now);
    if top.iter().all(|a| acknowledged(a)) {
        let first = top[0];
        return Handling::InProgress {
            by: first.ack_by.clone().unwrap_or_default(),
            until: top.iter().filter_map(|a| a.ack_until).min(),
        };
    }
    let silence = silences
        .iter()
        .filter(|s| top.iter().all(|a| s.rule.is_none_or(|r| r == a.rule)))
        .max_by_key(|s| s.holds_until(now));
    match silence {
        Some(s) => Handling::Silenced {
            by: s.created_by.clone(),
            until: s.holds_until(now),
            reason: s.reason.clone(),
        },
        None => Handling::Unhandled,
    }
}

/// The overview's line for a terminal, from its state and its alerts after evaluation: the
/// worst open alert, how staff handle it, and whether the terminal reports, side by side.
/// `silences` are those in force for this terminal now.
#[allow(clippy::too_many_arguments)]
pub fn overview_line(
    t: &RuleInput,
    clinic: &ClinicSettings,
    hostname: &str,
    alerts_after: &[(RuleKey, Alert)],
    silences: &[&Silence],
    liveness: Liveness,
    expected: &HashMap<String, ExpectedVersion>,
    neglected_after: Option<Duration>,
    now: DateTime<Utc>,
) -> OverviewLine {
    let open: Vec<&Alert> = alerts_after
        .iter()
        .map(|(_, a)| a)
        .filter(|a| a.status != AlertStatus::Resolved)
        .collect();
    let open_rules = open.iter().fold(0, |bits, a| bits | a.rule.bit());
    let severity = open.iter().map(|a| a.severity).max();
    let neglected = neglected_after.is_some_and(|after| {
        open.iter().any(|a| {
            a.severity == Severity::Warning
                && a.status == AlertStatus::Open
                && now - a.opened_at >= after
        })
    });
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
        severity,
        handling: handling(&open, silences, now),
        liveness,
        open_alerts: open.len() as i64,
        open_rules,
        apps_behind,
        backup,
        last_start: snapshot.map(|s| s.uptime.last_start),
        cert_not_after: snapshot
            .and_then(|s| s.certificates.current())
            .map(|c| c.not_after),
        neglected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::BusinessHours;
    use crate::domain::{ClinicRules, HandlingKind, Severity, SilenceScope};
    use uuid::Uuid;

    fn alert(rule: RuleKey, severity: Severity, status: AlertStatus) -> (RuleKey, Alert) {
        let now = Utc::now();
        let a = Alert {
            id: 1,
            terminal_id: Uuid::nil(),
            clinic_id: 1,
            rule,
            severity,
            status,
            detail: String::new(),
            occurrence: None,
            opened_at: now,
            updated_at: now,
            clear_since: None,
            ack_by: (status == AlertStatus::Acknowledged).then(|| "suzuki".to_string()),
            ack_note: None,
            ack_until: None,
            resolved_at: None,
            resolved_by: None,
            mail_held: false,
        };
        (rule, a)
    }

    #[test]
    fn severity_handling_and_liveness_stand_side_by_side() {
        let clinic = ClinicSettings {
            id: 1,
            name: "さくら".into(),
            email: "a@b.jp".into(),
            hours: BusinessHours::default(),
            desk_name: None,
            desk_phone: None,
            prefecture: Some("東京都".into()),
            accounts: Vec::new(),
            rules: ClinicRules::default(),
        };
        let now = Utc::now();
        let t = RuleInput {
            terminal_id: Uuid::now_v7(),
            clinic_id: 1,
            enrolled_at: now,
            last_seen: Some(now),
            collected_at: now,
            snapshot: Some(Arc::new(onshi_shared::sample::snapshot())),
            events: Vec::new(),
            own_accounts: None,
            accounts: Default::default(),
        };
        use AlertStatus::*;
        use Severity::{Critical, Warning};
        let alerts = [
            alert(RuleKey::CertExpiry, Critical, Open),
            alert(RuleKey::PendingReboot, Warning, Acknowledged),
            alert(RuleKey::Offline, Critical, Resolved),
        ];
        let silence = Silence {
            id: 3,
            scope: SilenceScope::Clinic(1),
            rule: None,
            starts_at: now - Duration::hours(1),
            ends_at: now + Duration::hours(2),
            daily: None,
            reason: "回線工事".into(),
            created_by: "tanaka".into(),
            ended_by: None,
        };
        let expected = HashMap::new();
        let line = |a: &[(RuleKey, Alert)], s: &[&Silence], l| {
            overview_line(
                &t,
                &clinic,
                "PC",
                a,
                s,
                l,
                &expected,
                Some(Duration::days(7)),
                now,
            )
        };
        let full = line(&alerts, &[], Liveness::Receiving);
        assert_eq!(
            (full.severity, full.handling.kind()),
            (Some(Critical), HandlingKind::Unhandled)
        );
        // Switched off at night: still critical, and 営業時間外 beside it.
        let night = line(&alerts, &[], Liveness::OutsideHours);
        assert_eq!(
            (night.severity, night.liveness),
            (Some(Critical), Liveness::OutsideHours)
        );
        // A silence does not hide the severity.
        let silenced = line(&alerts, &[&silence], Liveness::Offline);
        assert_eq!(silenced.severity, Some(Critical));
        assert_eq!(
            silenced.handling,
            Handling::Silenced {
                by: "tanaka".into(),
                until: silence.ends_at,
                reason: "回線工事".into()
            }
        );
        // Acknowledged: 対応中 by whom, still its severity.
        let warn = line(&alerts[1..], &[], Liveness::Receiving);
        assert_eq!(
            (warn.severity, warn.handling.clone()),
            (
                Some(Warning),
                Handling::InProgress {
                    by: "suzuki".into(),
                    until: None
                }
            )
        );
        let ok = line(&alerts[2..], &[&silence], Liveness::Receiving);
        assert_eq!(
            (ok.severity, ok.handling.kind()),
            (None, HandlingKind::None)
        );
        assert_eq!(full.open_alerts, 2, "the resolved one does not count");
        // A warning nobody took for seven days moves the terminal up; an acknowledged one, a
        // younger one, or the setting at 0 do not.
        assert!(!full.neglected && !warn.neglected);
        let mut old = alert(RuleKey::PendingReboot, Warning, Open);
        old.1.opened_at = now - Duration::days(7);
        let neglected = line(std::slice::from_ref(&old), &[], Liveness::Receiving);
        assert!(neglected.neglected);
        old.1.opened_at = now - Duration::days(6);
        assert!(!line(std::slice::from_ref(&old), &[], Liveness::Receiving).neglected);
        old.1.opened_at = now - Duration::days(30);
        let off = overview_line(
            &t,
            &clinic,
            "PC",
            &[old.clone()],
            &[],
            Liveness::Receiving,
            &expected,
            None,
            now,
        );
        assert!(!off.neglected);
        old.1.status = Acknowledged;
        assert!(!line(&[old], &[], Liveness::Receiving).neglected);
        assert_eq!(
            full.open_rules,
            RuleKey::CertExpiry.bit() | RuleKey::PendingReboot.bit()
        );
        let mut tally = FleetTally::default();
        tally.apply(&full, 1);
        tally.apply(&warn, 1);
        tally.apply(&night, 1);
        assert_eq!(tally.total(), 3);
        assert_eq!(tally.severity(Some(Critical)), 2);
        assert_eq!(tally.critical_unhandled, 2);
        assert_eq!(tally.liveness(Liveness::OutsideHours), 1);
        assert_eq!(tally.handling(HandlingKind::InProgress), 1);
        assert_eq!(tally.rule(RuleKey::PendingReboot), 3);
        tally.apply(&full, -1);
        assert_eq!(tally.rule(RuleKey::CertExpiry), 1);
        assert_eq!(tally.severity(Some(Warning)), 1);
        // Per clinic: a scope's counts are its clinics' added up.
        let mut elsewhere = warn.clone();
        elsewhere.clinic_id = full.clinic_id + 1;
        let mut all = Tallies::of_lines([&full, &night, &elsewhere]);
        let mine = all.of(Some(&[full.clinic_id]));
        assert_eq!(mine.total(), 2);
        assert_eq!(mine.critical_unhandled, 2);
        assert_eq!(mine.rule(RuleKey::PendingReboot), 2);
        assert!(mine.ready);
        let theirs = all.of(Some(&[elsewhere.clinic_id, 999]));
        assert_eq!((theirs.total(), theirs.severity(Some(Warning))), (1, 1));
        assert_eq!(all.of(Some(&[])).total(), 0);
        assert_eq!(all.of(None), all.fleet);
        all.apply(&full, -1);
        assert_eq!(all.of(Some(&[full.clinic_id])).total(), 1);
        assert_eq!(all.fleet.total(), 2);
    }

    #[test]
    fn liveness_follows_the_offline_rule_not_the_clock() {
        let now = Utc::now();
        let mut t = RuleInput {
            terminal_id: Uuid::nil(),
            clinic_id: 1,
            enrolled_at: now - Duration::days(30),
            last_seen: Some(now - Duration::minutes(1)),
            collected_at: now,
            snapshot: None,
            events: Vec::new(),
            own_accounts: None,
            accounts: Default::default(),
        };
        let recent = Duration::minutes(3);
        assert_eq!(liveness(&t, &[], recent, now), Liveness::Receiving);
        t.last_seen = Some(now - Duration::hours(10));
        assert_eq!(liveness(&t, &[], recent, now), Liveness::OutsideHours);
        let offline = Finding {
            rule: RuleKey::Offline,
            severity: Severity::Warning,
            detail: String::new(),
            occurrence: "hours".into(),
        };
        assert_eq!(liveness(&t, &[offline], recent, now), Liveness::Offline);
    }
}
