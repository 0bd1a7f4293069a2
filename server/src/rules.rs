//! Rules of DESIGN §5 as pure functions of a terminal's snapshot and a clock.
//!
//! This is the part of the rule set that needs nothing but the latest snapshot; rules that need
//! history, fleet-wide figures or clinic hours (updates behind, offline in business hours, changes
//! seen in events) are evaluated from stored state by the alert evaluator.

use chrono::{DateTime, Duration, Utc};
use onshi_shared::{AccountRole, AgentPolicy, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One broken rule on one terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub detail: String,
}

fn finding(rule: &'static str, severity: Severity, detail: String) -> Finding {
    Finding {
        rule,
        severity,
        detail,
    }
}

/// Everything wrong with a terminal as its snapshot shows it at `now`, against the policy that
/// names the accounts it must have.
pub fn evaluate_snapshot(s: &Snapshot, policy: &AgentPolicy, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = Vec::new();
    restart(s, now, &mut out);
    pending_reboot(s, now, &mut out);
    certificates(s, now, &mut out);
    accounts(s, policy, now, &mut out);
    out
}

/// How many findings count as problems on the dashboard (warning or worse).
pub fn problem_count(findings: &[Finding]) -> usize {
    findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .count()
}

fn restart(s: &Snapshot, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let since = now - s.uptime.last_start;
    let hours = since.num_hours();
    if since > Duration::hours(72) {
        out.push(finding(
            "no_daily_restart",
            Severity::Critical,
            format!("{hours} 時間再起動されていません"),
        ));
    } else if since > Duration::hours(26) {
        out.push(finding(
            "no_daily_restart",
            Severity::Warning,
            format!("{hours} 時間再起動されていません"),
        ));
    }
}

fn pending_reboot(s: &Snapshot, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    if let Some(p) = &s.apps.pending_reboot {
        let since = p.since.unwrap_or(s.uptime.last_start);
        if now - since > Duration::hours(24) {
            out.push(finding(
                "pending_reboot",
                Severity::Warning,
                format!("再起動待ちの更新があります ({})", p.reasons.join(", ")),
            ));
        }
    }
}

fn certificates(s: &Snapshot, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let Some(current) = s.certificates.current() else {
        out.push(finding(
            "cert_missing",
            Severity::Critical,
            "電子証明書が見つかりません".into(),
        ));
        return;
    };
    let days = (current.not_after - now).num_days();
    let expiry = if current.not_after <= now {
        Some((
            Severity::Critical,
            "電子証明書の有効期限が切れています".to_string(),
        ))
    } else if days <= 7 {
        Some((
            Severity::Critical,
            format!("電子証明書の有効期限まであと {days} 日"),
        ))
    } else if days <= 30 {
        Some((
            Severity::Warning,
            format!("電子証明書の有効期限まであと {days} 日"),
        ))
    } else if days <= 90 {
        Some((
            Severity::Info,
            format!("電子証明書の有効期限まであと {days} 日"),
        ))
    } else {
        None
    };
    if let Some((severity, detail)) = expiry {
        out.push(finding("cert_expiry", severity, detail));
    }
    if !current.has_private_key {
        out.push(finding(
            "cert_no_private_key",
            Severity::Critical,
            "電子証明書に秘密鍵がありません".into(),
        ));
    }
    if s.certificates.certs.len() > 1 && current.not_after > now {
        out.push(finding(
            "cert_old_left",
            Severity::Warning,
            "更新前の古い電子証明書が残っています".into(),
        ));
    }
    match &s.certificates.backup {
        None => out.push(finding(
            "backup_missing",
            Severity::Warning,
            "電子証明書のバックアップが確認されていません".into(),
        )),
        Some(b) if !b.matches_current || b.thumbprint != current.thumbprint => out.push(finding(
            "backup_outdated",
            Severity::Warning,
            "バックアップは更新前の電子証明書です".into(),
        )),
        Some(_) => {}
    }
}

fn accounts(s: &Snapshot, policy: &AgentPolicy, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    for a in s.accounts.accounts.iter().filter(|a| a.role.is_protected()) {
        let label = a.role.label_ja();
        let expected = policy.accounts.iter().find(|p| p.role == a.role);
        let problem = if !a.exists {
            Some(format!("{label} ({}) が見つかりません", a.name))
        } else if let Some(p) = expected.filter(|p| p.name != a.name) {
            Some(format!(
                "{label} の名前が {} から {} に変更されています",
                p.name, a.name
            ))
        } else if a.enabled == Some(false) {
            Some(format!("{label} ({}) が無効になっています", a.name))
        } else if a.locked == Some(true) {
            Some(format!("{label} ({}) がロックされています", a.name))
        } else {
            None
        };
        if let Some(detail) = problem {
            out.push(finding("protected_account", Severity::Critical, detail));
        }
        if a.role == AccountRole::Windows
            && let Some(expires) = a.password_expires
        {
            if expires <= now {
                out.push(finding(
                    "windows_password_expiry",
                    Severity::Critical,
                    "Windowsアカウントのパスワードの有効期限が切れています".into(),
                ));
            } else if expires - now <= Duration::days(14) {
                out.push(finding(
                    "windows_password_expiry",
                    Severity::Warning,
                    format!(
                        "Windowsアカウントのパスワードの有効期限まであと {} 日",
                        (expires - now).num_days()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onshi_shared::{AccountSpec, BackupState, sample};

    fn policy() -> AgentPolicy {
        AgentPolicy {
            accounts: vec![
                AccountSpec {
                    role: AccountRole::Windows,
                    name: "onshi".into(),
                },
                AccountSpec {
                    role: AccountRole::FaceAuth,
                    name: "kao".into(),
                },
            ],
            ..AgentPolicy::default()
        }
    }

    fn healthy() -> Snapshot {
        let mut s = sample::snapshot();
        let cert = s.certificates.certs[0].clone();
        s.certificates.backup = Some(BackupState {
            thumbprint: cert.thumbprint,
            verified_at: s.collected_at,
            not_after: Some(cert.not_after),
            matches_current: true,
        });
        s
    }

    fn rules_at(s: &Snapshot, now: DateTime<Utc>) -> Vec<(&'static str, Severity)> {
        evaluate_snapshot(s, &policy(), now)
            .into_iter()
            .map(|f| (f.rule, f.severity))
            .collect()
    }

    #[test]
    fn healthy_terminal_has_no_findings() {
        let s = healthy();
        assert_eq!(rules_at(&s, s.collected_at), vec![]);
    }

    #[test]
    fn restart_thresholds() {
        let s = healthy();
        let start = s.uptime.last_start;
        let table = [
            (Duration::hours(26), vec![]),
            (
                Duration::hours(26) + Duration::minutes(1),
                vec![("no_daily_restart", Severity::Warning)],
            ),
            (
                Duration::hours(72),
                vec![("no_daily_restart", Severity::Warning)],
            ),
            (
                Duration::hours(73),
                vec![("no_daily_restart", Severity::Critical)],
            ),
        ];
        for (after, want) in table {
            assert_eq!(rules_at(&s, start + after), want, "after {after}");
        }
    }

    #[test]
    fn certificate_steps() {
        let s = healthy();
        let end = s.certificates.certs[0].not_after;
        let table = [
            (Duration::days(91), None),
            (Duration::days(90), Some(Severity::Info)),
            (Duration::days(30), Some(Severity::Warning)),
            (Duration::days(7), Some(Severity::Critical)),
            (Duration::zero(), Some(Severity::Critical)),
        ];
        for (left, want) in table {
            let now = end - left;
            let got = evaluate_snapshot(&s, &policy(), now)
                .into_iter()
                .find(|f| f.rule == "cert_expiry")
                .map(|f| f.severity);
            assert_eq!(got, want, "{left} left");
        }
    }

    #[test]
    fn protected_account_changes_are_critical_others_are_not() {
        let mut s = healthy();
        s.accounts.accounts[0].exists = false;
        assert_eq!(
            rules_at(&s, s.collected_at),
            vec![("protected_account", Severity::Critical)]
        );
        let mut s = healthy();
        s.accounts.accounts[1].role = AccountRole::Administrator;
        s.accounts.accounts[1].locked = Some(true);
        assert_eq!(rules_at(&s, s.collected_at), vec![]);
    }

    #[test]
    fn renamed_protected_account_is_critical() {
        let mut s = healthy();
        s.accounts.accounts[0].name = "onshi-renamed".into();
        assert_eq!(
            rules_at(&s, s.collected_at),
            vec![("protected_account", Severity::Critical)]
        );
    }

    #[test]
    fn missing_cert_and_backup() {
        let mut s = healthy();
        s.certificates.certs.clear();
        assert_eq!(
            rules_at(&s, s.collected_at),
            vec![("cert_missing", Severity::Critical)]
        );
        let mut s = healthy();
        s.certificates.backup = None;
        assert_eq!(
            rules_at(&s, s.collected_at),
            vec![("backup_missing", Severity::Warning)]
        );
    }
}
