//! The three accounts made at install (Windows, face authentication, linkage) must never change;
//! the Windows account's password must not expire. Changes to the accounts a clinic may change
//! are recorded for audit, never alerted on.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onshi_shared::{AccountChange, AccountRole, AgentPolicy, EventKind, Snapshot};

use super::{EVENT_WINDOW, Finding, PASSWORD_WARNING, RuleInput, finding};
use crate::domain::{RuleKey, Severity};
use crate::jst::time_ja;

/// What stops working when a protected account changes (vendor notes, in our own words).
pub fn consequence_ja(role: AccountRole) -> &'static str {
    match role {
        AccountRole::Windows => {
            "各アプリが自動で更新されなくなり、レセプトコンピュータ等との連携もできなくなります。"
        }
        AccountRole::FaceAuth => {
            "顔認証付きカードリーダーがエラーになり、マイナンバーカードでの資格確認ができなくなります。"
        }
        AccountRole::Linkage => {
            "レセプトコンピュータ等と連携できなくなり、保険証等の資格確認や薬剤情報の確認もできなくなります。"
        }
        _ => "",
    }
}

/// Per protected role: (changes seen, occurrence parts).
type RoleChanges = HashMap<AccountRole, (Vec<String>, Vec<String>)>;

fn push_protected(found: &mut RoleChanges, role: AccountRole, what: String, occurrence: String) {
    let entry = found.entry(role).or_default();
    if !entry.0.contains(&what) {
        entry.0.push(what);
    }
    entry.1.push(occurrence);
}

fn emit_protected(found: RoleChanges, out: &mut Vec<Finding>) {
    let mut roles: Vec<_> = found.into_iter().collect();
    roles.sort_by_key(|(role, _)| *role);
    for (role, (whats, mut occurrences)) in roles {
        let Some(rule) = RuleKey::protected_account(role) else {
            continue;
        };
        occurrences.sort();
        out.push(finding(
            rule,
            Severity::Critical,
            format!(
                "{}: {}。{}",
                role.label_ja(),
                whats.join("、"),
                consequence_ja(role)
            ),
            occurrences.join(","),
        ));
    }
}

pub(super) fn accounts(
    s: &Snapshot,
    policy: &AgentPolicy,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let mut found = RoleChanges::new();
    for a in s.accounts.accounts.iter().filter(|a| a.role.is_protected()) {
        let expected = policy.accounts.iter().find(|p| p.role == a.role);
        if !a.exists {
            push_protected(
                &mut found,
                a.role,
                format!("{} が見つかりません (削除)", a.name),
                "deleted".into(),
            );
        } else if let Some(p) = expected.filter(|p| p.name != a.name) {
            push_protected(
                &mut found,
                a.role,
                AccountChange::Renamed {
                    from: p.name.clone(),
                    to: a.name.clone(),
                }
                .label_ja(),
                format!("renamed:{}", a.name),
            );
        }
        if a.exists && a.enabled == Some(false) {
            push_protected(
                &mut found,
                a.role,
                AccountChange::Disabled.label_ja(),
                "disabled".into(),
            );
        }
        if a.exists && a.locked == Some(true) {
            push_protected(
                &mut found,
                a.role,
                AccountChange::Locked.label_ja(),
                "locked".into(),
            );
        }
        if let Some(c) = &a.last_change
            && now - c.at <= EVENT_WINDOW
            && matches!(c.event_id, 4723 | 4724)
        {
            push_protected(
                &mut found,
                a.role,
                AccountChange::PasswordChanged.label_ja(),
                format!("log:{}", c.at.timestamp()),
            );
        }
        if a.role == AccountRole::Windows
            && let Some(expires) = a.password_expires
        {
            if expires <= now {
                out.push(finding(
                    RuleKey::WindowsPasswordExpiry,
                    Severity::Critical,
                    "Windowsアカウントのパスワードの有効期限が切れています。デスクトップ画面が表示されなくなります".into(),
                    "expired",
                ));
            } else if expires - now <= PASSWORD_WARNING {
                out.push(finding(
                    RuleKey::WindowsPasswordExpiry,
                    Severity::Warning,
                    format!(
                        "Windowsアカウントのパスワードの有効期限 ({}) まであと {} 日です",
                        time_ja(expires),
                        (expires - now).num_days()
                    ),
                    "expiring",
                ));
            }
        }
    }
    emit_protected(found, out);
}

pub(super) fn account_events(t: &RuleInput, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let mut found = RoleChanges::new();
    for e in t.events.iter().filter(|e| now - e.at <= EVENT_WINDOW) {
        if let EventKind::AccountChanged { role, change, .. } = &e.kind
            && role.is_protected()
            && change.breaks_protected()
        {
            push_protected(&mut found, *role, change.label_ja(), e.id.to_string());
        }
    }
    // The snapshot may already have fired the same role: merge into one finding per rule.
    let mut extra = Vec::new();
    emit_protected(found, &mut extra);
    for f in extra {
        match out.iter_mut().find(|o| o.rule == f.rule) {
            Some(o) => {
                o.detail = format!("{} / {}", o.detail, f.detail);
                o.occurrence = format!("{},{}", o.occurrence, f.occurrence);
            }
            None => out.push(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{EVENT_WINDOW, audit_entries, evaluate};
    use crate::domain::{RuleKey, Severity};
    use chrono::{DateTime, Duration, Utc};
    use onshi_shared::{AccountChange, AccountRole, Event, EventKind, Snapshot};

    #[test]
    fn windows_password_expiry() {
        use Severity::*;
        let now = healthy().collected_at;
        let table = [
            (None, None),
            (Some(Duration::days(15)), None),
            (Some(Duration::days(14)), Some(Warning)),
            (Some(Duration::hours(1)), Some(Warning)),
            (Some(Duration::zero()), Some(Critical)),
            (Some(-Duration::days(2)), Some(Critical)),
        ];
        for (left, want) in table {
            let mut s = healthy();
            s.accounts.accounts[0].password_expires = left.map(|l| now + l);
            // another role's expiry is not this rule's business
            s.accounts.accounts[1].password_expires = Some(now);
            let t = state(s);
            let got = only(&t, now, RuleKey::WindowsPasswordExpiry).map(|f| f.severity);
            assert_eq!(got, want, "{left:?}");
        }
    }

    fn account_event(at: DateTime<Utc>, role: AccountRole, change: AccountChange) -> Event {
        Event::new(
            at,
            EventKind::AccountChanged {
                role,
                name: "x".into(),
                change,
            },
        )
    }

    #[test]
    fn protected_account_changes_from_snapshot_and_events() {
        let now = healthy().collected_at;
        type Edit = fn(&mut Snapshot);
        let snapshot_table: [(Edit, RuleKey, &str); 4] = [
            (
                |s| s.accounts.accounts[0].exists = false,
                RuleKey::ProtectedAccountWindows,
                "削除",
            ),
            (
                |s| s.accounts.accounts[0].name = "受付".into(),
                RuleKey::ProtectedAccountWindows,
                "名前の変更",
            ),
            (
                |s| s.accounts.accounts[1].enabled = Some(false),
                RuleKey::ProtectedAccountFaceAuth,
                "無効化",
            ),
            (
                |s| s.accounts.accounts[1].locked = Some(true),
                RuleKey::ProtectedAccountFaceAuth,
                "ロックアウト",
            ),
        ];
        for (edit, rule, word) in snapshot_table {
            let mut s = healthy();
            edit(&mut s);
            let t = state(s);
            let f = evaluate(&t, &policy(), now);
            assert_eq!(f.len(), 1, "{rule} {f:?}");
            assert_eq!(f[0].rule, rule);
            assert_eq!(f[0].severity, Severity::Critical);
            assert!(f[0].detail.contains(word), "{}", f[0].detail);
        }
        let event_table = [
            (
                AccountRole::Windows,
                AccountChange::PasswordChanged,
                Some((RuleKey::ProtectedAccountWindows, "自動で更新されなくなり")),
            ),
            (
                AccountRole::FaceAuth,
                AccountChange::Deleted,
                Some((
                    RuleKey::ProtectedAccountFaceAuth,
                    "顔認証付きカードリーダー",
                )),
            ),
            (
                AccountRole::Linkage,
                AccountChange::Locked,
                Some((RuleKey::ProtectedAccountLinkage, "薬剤情報")),
            ),
            (
                AccountRole::Linkage,
                AccountChange::Renamed {
                    from: "a".into(),
                    to: "b".into(),
                },
                Some((RuleKey::ProtectedAccountLinkage, "a → b")),
            ),
            (
                AccountRole::Linkage,
                AccountChange::Disabled,
                Some((RuleKey::ProtectedAccountLinkage, "無効化")),
            ),
            // back to normal, or accounts the clinic may change: no alert
            (AccountRole::Windows, AccountChange::Unlocked, None),
            (
                AccountRole::Administrator,
                AccountChange::PasswordChanged,
                None,
            ),
            (AccountRole::General, AccountChange::Deleted, None),
            (
                AccountRole::MedicalViewing,
                AccountChange::Renamed {
                    from: "a".into(),
                    to: "b".into(),
                },
                None,
            ),
        ];
        for (role, change, want) in event_table {
            let mut t = state(healthy());
            let e = account_event(now - Duration::hours(1), role, change.clone());
            t.events.push(e.clone());
            let f = evaluate(&t, &policy(), now);
            match want {
                Some((rule, word)) => {
                    assert_eq!(f.len(), 1, "{change:?} {f:?}");
                    assert_eq!(f[0].rule, rule);
                    assert!(f[0].detail.contains(word), "{}", f[0].detail);
                    assert_eq!(f[0].occurrence, e.id.to_string());
                    assert!(audit_entries(&t).is_empty());
                }
                None => {
                    assert_eq!(f, vec![], "{role:?} {change:?}");
                    assert_eq!(audit_entries(&t).len(), usize::from(!role.is_protected()));
                }
            }
            // After the event window the alert may resolve.
            let later = evaluate(&t, &policy(), now + EVENT_WINDOW + Duration::hours(2));
            assert!(
                later.iter().all(|f| RuleKey::protected_account(
                    onshi_shared::AccountRole::Windows
                ) != Some(f.rule)
                    && !matches!(
                        f.rule,
                        RuleKey::ProtectedAccountFaceAuth | RuleKey::ProtectedAccountLinkage
                    )),
                "{role:?}"
            );
        }
    }
}
