//! The electronic certificate issued under "Online Billing NW Common Root CA": present, with its
//! private key, not expiring, no old one left beside the renewed one, and backed up as a .pfx.

use chrono::{DateTime, Utc};
use onshi_shared::{EventKind, Snapshot};

use super::{Finding, RuleInput, Thresholds, finding};
use crate::domain::{RuleKey, Severity};
use crate::jst::time_ja;

pub(super) fn certificates(
    s: &Snapshot,
    th: &Thresholds,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let Some(current) = s.certificates.current() else {
        // A store the agent could not read says nothing about the certificate.
        if !s.notes.iter().any(|n| n.area.starts_with("cert")) {
            out.push(finding(
                RuleKey::CertMissing,
                Severity::Critical,
                "確認した場所: 「個人」の証明書 (発行者「Online Billing NW Common Root CA」)"
                    .into(),
                "",
            ));
        }
        return;
    };
    if let Some((severity, step)) = expiry_step(current.not_after, now, th) {
        let detail = if current.not_after <= now {
            format!("{} に切れました", time_ja(current.not_after))
        } else {
            format!(
                "{} まで (あと{}日)",
                time_ja(current.not_after),
                (current.not_after - now).num_days()
            )
        };
        out.push(finding(RuleKey::CertExpiry, severity, detail, step));
    }
    if !current.has_private_key {
        out.push(finding(
            RuleKey::CertNoPrivateKey,
            Severity::Critical,
            format!(
                "対象の証明書: 拇印 {} ({} まで有効)",
                current.thumbprint,
                time_ja(current.not_after)
            ),
            current.thumbprint.clone(),
        ));
    }
    let old: Vec<&str> = s
        .certificates
        .certs
        .iter()
        .filter(|c| c.thumbprint != current.thumbprint && c.not_after < current.not_after)
        .map(|c| c.thumbprint.as_str())
        .collect();
    if !old.is_empty() && current.not_after > now {
        out.push(finding(
            RuleKey::CertOldLeft,
            Severity::Warning,
            format!("{} 件 (拇印 {})", old.len(), old.join("、")),
            old.join(","),
        ));
    }
}

/// The expiry step a certificate is at: by default 90/60 days (info), 30/15 (warning), then one
/// step per day from 7 days left (critical), and expired (critical).
pub fn expiry_step(
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
    th: &Thresholds,
) -> Option<(Severity, String)> {
    if not_after <= now {
        return Some((Severity::Critical, "expired".into()));
    }
    let days = (not_after - now).num_days();
    if days <= th.cert_daily_from {
        return Some((Severity::Critical, format!("{days}d")));
    }
    let step = th.cert_steps.iter().filter(|&&step| days <= step).min()?;
    let severity = if *step > 30 {
        Severity::Info
    } else {
        Severity::Warning
    };
    Some((severity, format!("{step}d")))
}

/// When the current certificate was installed: its `cert_changed` event, else its issue date
/// (a certificate cannot be installed before it is issued, and without an event in the window
/// the install is older than the window, longer ago than the grace).
fn cert_installed_at(s: &Snapshot, t: &RuleInput) -> Option<DateTime<Utc>> {
    let current = s.certificates.current()?;
    let seen = t.events.iter().rev().find_map(|e| match &e.kind {
        EventKind::CertChanged {
            thumbprint,
            added: true,
            ..
        } if *thumbprint == current.thumbprint => Some(e.at),
        _ => None,
    });
    Some(seen.unwrap_or(current.not_before))
}

pub(super) fn backup(
    s: &Snapshot,
    t: &RuleInput,
    th: &Thresholds,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let (Some(current), Some(installed)) = (s.certificates.current(), cert_installed_at(s, t))
    else {
        return;
    };
    if now - installed < th.backup_grace {
        return;
    }
    match &s.certificates.backup {
        None => out.push(finding(
            RuleKey::BackupMissing,
            Severity::Warning,
            // Cheap: every terminal without a backup formats it on every pass.
            format!(
                "現在の証明書: 拇印 {}。確認できた .pfx: なし",
                current.thumbprint
            ),
            current.thumbprint.clone(),
        )),
        Some(b) if !b.matches_current || b.thumbprint != current.thumbprint => out.push(finding(
            RuleKey::BackupOutdated,
            Severity::Warning,
            format!(
                "確認できた .pfx: 拇印 {} ({} に確認)。現在の証明書: 拇印 {}",
                b.thumbprint,
                time_ja(b.verified_at),
                current.thumbprint
            ),
            current.thumbprint.clone(),
        )),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::evaluate;
    use super::super::fixtures::*;
    use crate::domain::{RuleKey, Severity};
    use chrono::{DateTime, Duration, Utc};
    use onshi_shared::{BackupState, CertInfo, Event, EventKind};

    #[test]
    fn certificate_steps_each_once_then_daily() {
        use Severity::*;
        let s = healthy();
        let end = s.certificates.certs[0].not_after;
        let table = [
            (Duration::days(91), None),
            (Duration::days(90), Some((Info, "90d"))),
            (Duration::days(61), Some((Info, "90d"))),
            (Duration::days(60), Some((Info, "60d"))),
            (Duration::days(30), Some((Warning, "30d"))),
            (Duration::days(16), Some((Warning, "30d"))),
            (Duration::days(15), Some((Warning, "15d"))),
            (Duration::days(8), Some((Warning, "15d"))),
            (Duration::days(7), Some((Critical, "7d"))),
            (
                Duration::days(6) + Duration::hours(1),
                Some((Critical, "6d")),
            ),
            (Duration::hours(3), Some((Critical, "0d"))),
            (Duration::zero(), Some((Critical, "expired"))),
            (-Duration::days(3), Some((Critical, "expired"))),
        ];
        let t = state(s);
        for (left, want) in table {
            let got = only(&t, end - left, RuleKey::CertExpiry).map(|f| (f.severity, f.occurrence));
            let want = want.map(|(s, o)| (s, o.to_string()));
            assert_eq!(got, want, "{left} left");
        }
    }

    #[test]
    fn certificate_steps_follow_the_settings() {
        use Severity::*;
        let th = super::super::Thresholds {
            cert_steps: vec![45, 20],
            cert_daily_from: 3,
            ..Default::default()
        };
        let end = healthy().certificates.certs[0].not_after;
        let table = [
            (46, None),
            (45, Some((Info, "45d"))),
            (21, Some((Info, "45d"))),
            (20, Some((Warning, "20d"))),
            (4, Some((Warning, "20d"))),
            (3, Some((Critical, "3d"))),
        ];
        for (days, want) in table {
            let got = super::expiry_step(end, end - Duration::days(days), &th);
            assert_eq!(
                got,
                want.map(|(s, o)| (s, o.to_string())),
                "{days} days left"
            );
        }
    }

    fn cert(thumb: &str, not_after: DateTime<Utc>, key: bool) -> CertInfo {
        CertInfo {
            subject: "CN=1312345678".into(),
            issuer: "CN=Online Billing NW Common Root CA".into(),
            serial: thumb.into(),
            thumbprint: thumb.into(),
            not_before: not_after - Duration::days(365 * 3 + 90),
            not_after,
            has_private_key: key,
            store: "LocalMachine\\My".into(),
        }
    }

    #[test]
    fn certificate_presence_key_and_old_certs() {
        use Severity::*;
        let now = healthy().collected_at;
        let far = now + Duration::days(800);
        type Case = (Vec<CertInfo>, bool, Vec<(RuleKey, Severity)>);
        let table: Vec<Case> = vec![
            (vec![], false, vec![(RuleKey::CertMissing, Critical)]),
            // the agent could not read the store: unknown, not missing
            (vec![], true, vec![]),
            (
                vec![cert("AA", far, false)],
                false,
                vec![(RuleKey::CertNoPrivateKey, Critical)],
            ),
            (
                vec![
                    cert("OLD", now + Duration::days(20), true),
                    cert("AA", far, true),
                ],
                false,
                vec![(RuleKey::CertOldLeft, Warning)],
            ),
            (
                vec![
                    cert("OLD", now - Duration::days(20), true),
                    cert("AA", far, true),
                ],
                false,
                vec![(RuleKey::CertOldLeft, Warning)],
            ),
        ];
        for (certs, unreadable, want) in table {
            let mut s = healthy();
            s.certificates.certs = certs.clone();
            if let Some(c) = certs.iter().max_by_key(|c| c.not_after) {
                s.certificates.backup.as_mut().unwrap().thumbprint = c.thumbprint.clone();
            }
            if unreadable {
                s.notes.push(onshi_shared::SourceNote {
                    area: "certificates".into(),
                    detail: "access denied".into(),
                });
            }
            let t = state(s);
            assert_eq!(rules(&t, &policy(), now), want, "{certs:?}");
        }
    }

    #[test]
    fn backup_after_a_week_and_of_the_current_cert() {
        let base = healthy();
        let now = base.collected_at;
        let current = base.certificates.certs[0].clone();
        // (backup, current cert installed (event) days ago, want)
        let table = [
            (None, None, Some(RuleKey::BackupMissing)),
            (None, Some(6), None),
            (None, Some(7), Some(RuleKey::BackupMissing)),
            (Some(("OLD", false)), Some(8), Some(RuleKey::BackupOutdated)),
            (Some(("OLD", false)), Some(2), None),
            (Some((current.thumbprint.as_str(), true)), Some(30), None),
        ];
        for (backup, installed_days, want) in table {
            let mut s = base.clone();
            s.certificates.backup = backup.map(|(thumb, matches)| BackupState {
                thumbprint: thumb.into(),
                verified_at: now,
                not_after: None,
                matches_current: matches,
            });
            let mut t = state(s);
            if let Some(days) = installed_days {
                t.events.push(Event::new(
                    now - Duration::days(days),
                    EventKind::CertChanged {
                        thumbprint: current.thumbprint.clone(),
                        subject: current.subject.clone(),
                        not_after: current.not_after,
                        added: true,
                    },
                ));
            }
            let got: Vec<_> = evaluate(&t, &policy(), now)
                .into_iter()
                .map(|f| f.rule)
                .filter(|r| matches!(r, RuleKey::BackupMissing | RuleKey::BackupOutdated))
                .collect();
            assert_eq!(
                got,
                want.into_iter().collect::<Vec<_>>(),
                "{backup:?} {installed_days:?}"
            );
        }
        // No event: the issue date stands in for the install; a certificate issued three days
        // ago gets its week.
        let mut s = base.clone();
        s.certificates.backup = None;
        s.certificates.certs[0].not_before = now - Duration::days(3);
        assert_eq!(only(&state(s), now, RuleKey::BackupMissing), None);
    }
}
