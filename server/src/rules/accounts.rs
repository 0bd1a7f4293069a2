//! The three accounts made at install (Windows, face authentication, linkage) must never change;
//! the Windows account's password must not expire. Changes to the accounts a clinic may change
//! are recorded for audit, never alerted on.

use std::collections::HashMap;
use std::mem::Discriminant;

use chrono::{DateTime, Utc};
use onshi_shared::{AccountChange, AccountRole, EventKind, Snapshot};

use super::{AccountBaseline, ClinicPolicy, Finding, RuleInput, Thresholds, finding};
use crate::domain::{RuleKey, Severity};
use crate::jst::{duration_ja, time_ja};

/// What stops working when a protected account changes (vendor notes, in our own words).
pub fn consequence_ja(role: AccountRole) -> &'static str {
    match role {
        AccountRole::Windows => {
            "各アプリが自動アップデートしなくなり、レセプト等システムとも連携できなくなります。"
        }
        AccountRole::FaceAuth => {
            "顔認証付きカードリーダーがエラーになり、マイナンバーカードでの資格確認ができなくなります。"
        }
        AccountRole::Linkage => {
            "レセプト等システムと連携できなくなり、保険証等の資格確認や薬剤情報等の確認もできなくなります。"
        }
        _ => "",
    }
}

/// Per protected role: (each kind of change seen with its wording, occurrence parts).
type RoleChanges = HashMap<AccountRole, (Vec<(Discriminant<AccountChange>, String)>, Vec<String>)>;

/// Records a change to a protected role; the same kind of change seen twice (in the snapshot
/// and as an event) is worded once.
fn push_protected(
    found: &mut RoleChanges,
    role: AccountRole,
    change: &AccountChange,
    what: String,
    occurrence: String,
) {
    let entry = found.entry(role).or_default();
    let kind = std::mem::discriminant(change);
    if !entry.0.iter().any(|(k, _)| *k == kind) {
        entry.0.push((kind, what));
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
        let whats: Vec<&str> = whats.iter().map(|(_, w)| w.as_str()).collect();
        out.push(finding(
            rule,
            Severity::Critical,
            // The title names the role already.
            format!("{}。{}", whats.join("、"), consequence_ja(role)),
            occurrences.join(","),
        ));
    }
}

/// The protected accounts, from the latest snapshot and the change events since the
/// baseline: one finding per role.
pub(super) fn accounts(
    t: &RuleInput,
    baseline: Option<&AccountBaseline>,
    policy: &ClinicPolicy,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let mut found = RoleChanges::new();
    if let Some(s) = &t.snapshot {
        snapshot_accounts(s, t, baseline, policy, now, &mut found, out);
    }
    if let Some(baseline) = baseline {
        account_events(t, baseline, &policy.thresholds, now, &mut found);
    }
    emit_protected(found, out);
}

fn snapshot_accounts(
    s: &Snapshot,
    t: &RuleInput,
    baseline: Option<&AccountBaseline>,
    policy: &ClinicPolicy,
    now: DateTime<Utc>,
    found: &mut RoleChanges,
    out: &mut Vec<Finding>,
) {
    let th = &policy.thresholds;
    let mut unconfirmed: Vec<String> = Vec::new();
    for a in s.accounts.accounts.iter().filter(|a| a.role.is_protected()) {
        let expected = policy.expected_name(t, a.role);
        let matched = a.exists && expected.is_none_or(|name| name == a.name);
        if matched && a.role == AccountRole::Windows {
            password_expiry(a.password_expires, th, now, out);
        }
        // Without a baseline for the names it is given (the agent has not applied them yet)
        // the terminal's accounts say nothing about changes.
        let Some(baseline) = baseline else {
            continue;
        };
        if baseline.unconfirmed(a.role) {
            // Unusable at the baseline: the desk's while it stays so, nothing once it is
            // usable (until staff confirm the names and a new baseline is taken).
            if !super::usable(a, expected) {
                let name = expected.unwrap_or(&a.name);
                let state = if !matched {
                    "見つかりません"
                } else if a.enabled == Some(false) {
                    "無効"
                } else {
                    "ロック中"
                };
                unconfirmed.push(format!("{}「{name}」({state})", a.role.label_ja()));
            }
            continue;
        }
        if !a.exists {
            push_protected(
                found,
                a.role,
                &AccountChange::Deleted,
                format!("削除 (「{}」が見つかりません)", a.name),
                "deleted".into(),
            );
        } else if let Some(name) = expected.filter(|&name| name != a.name) {
            let change = AccountChange::Renamed {
                from: name.to_string(),
                to: a.name.clone(),
            };
            let what = change.label_ja();
            push_protected(found, a.role, &change, what, format!("renamed:{}", a.name));
        }
        for (on, change, occurrence) in [
            (
                a.enabled == Some(false),
                AccountChange::Disabled,
                "disabled",
            ),
            (a.locked == Some(true), AccountChange::Locked, "locked"),
        ] {
            if a.exists && on {
                let what = change.label_ja();
                push_protected(found, a.role, &change, what, occurrence.into());
            }
        }
        if let Some(c) = &a.last_change
            && baseline.before(c.at)
            && now - c.at <= th.event_window
            && matches!(c.event_id, 4723 | 4724)
        {
            let change = AccountChange::PasswordChanged;
            let what = change.label_ja();
            push_protected(
                found,
                a.role,
                &change,
                what,
                format!("log:{}", c.at.timestamp()),
            );
        }
    }
    if !unconfirmed.is_empty() {
        out.push(finding(
            RuleKey::AccountsUnconfirmed,
            Severity::Warning,
            format!(
                "{}。基準を取得したときから使えない状態です。端末の画面で実際の名前と状態を\
                 確かめ、端末ページで名前を確認してください。このアカウントについて医療機関へ\
                 メールは送りません。",
                unconfirmed.join("、")
            ),
            unconfirmed.join(","),
        ));
    }
}

fn password_expiry(
    expires: Option<DateTime<Utc>>,
    th: &Thresholds,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let Some(expires) = expires else { return };
    if expires <= now {
        out.push(finding(
            RuleKey::WindowsPasswordExpiry,
            Severity::Critical,
            format!(
                "{} に切れました。デスクトップ画面が表示されなくなります",
                time_ja(expires)
            ),
            "expired",
        ));
    } else if expires - now <= th.password_warning {
        out.push(finding(
            RuleKey::WindowsPasswordExpiry,
            Severity::Warning,
            format!(
                "{} まで (あと{})",
                time_ja(expires),
                duration_ja(expires - now)
            ),
            "expiring",
        ));
    }
}

/// Changes since the baseline (those before it are history).
fn account_events(
    t: &RuleInput,
    baseline: &AccountBaseline,
    th: &Thresholds,
    now: DateTime<Utc>,
    found: &mut RoleChanges,
) {
    for e in t
        .events
        .iter()
        .filter(|e| baseline.before(e.at) && now - e.at <= th.event_window)
    {
        if let EventKind::AccountChanged { role, change, .. } = &e.kind
            && role.is_protected()
            && change.breaks_protected()
            && !baseline.unconfirmed(*role)
        {
            push_protected(found, *role, change, change.label_ja(), e.id.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Thresholds, audit_entries, evaluate};
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
                Some((
                    RuleKey::ProtectedAccountWindows,
                    "自動アップデートしなくなり",
                )),
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
            let window = Thresholds::default().event_window;
            let later = evaluate(&t, &policy(), now + window + Duration::hours(2));
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

    use super::super::{AccountRecord, ClinicPolicy, account_baseline};
    use onshi_shared::{AccountSpec, accounts_key};

    fn no_baseline(s: Snapshot) -> super::super::RuleInput {
        let mut t = state(s);
        t.accounts = AccountRecord::default();
        t
    }

    fn critical(t: &super::super::RuleInput, p: &ClinicPolicy, now: DateTime<Utc>) -> usize {
        evaluate(t, p, now)
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .count()
    }

    #[test]
    fn names_missing_at_enrollment_are_the_desks_to_confirm_not_a_clinic_critical() {
        let now = healthy().collected_at;
        // The installer named the face-authentication account otherwise: the agent does not find it.
        let mut s = healthy();
        s.accounts.accounts[1].exists = false;
        s.accounts.policy_key = accounts_key(&agent_policy().accounts);
        let t = no_baseline(s);
        let (baseline, write) = account_baseline(&t, &policy());
        let b = baseline.unwrap();
        assert_eq!(
            (b.taken_at, b.missing.clone(), b.confirmed),
            (t.collected_at, vec![AccountRole::FaceAuth], false)
        );
        assert_eq!(write.unwrap().missing, vec![AccountRole::FaceAuth]);
        let f = evaluate(&t, &policy(), now);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].rule, f[0].severity),
            (RuleKey::AccountsUnconfirmed, Severity::Warning)
        );
        assert!(f[0].rule.desk_only());
        assert!(
            f[0].detail
                .contains("顔認証アカウント「kao」(見つかりません)"),
            "{}",
            f[0].detail
        );
        // The enrollment's own change events are history, not changes.
        let mut t = t;
        t.events.push(account_event(
            t.collected_at,
            AccountRole::Windows,
            AccountChange::PasswordChanged,
        ));
        assert_eq!(critical(&t, &policy(), now), 0);

        // Stored, not confirmed: still the desk's. Confirmed by staff (a typo in the names
        // they confirm looks the same): still the desk's, never a clinic critical.
        let mut stored = t.clone();
        stored.events.clear();
        stored.accounts = AccountRecord {
            baseline_key: Some(accounts_key(&agent_policy().accounts)),
            baseline_at: Some(now - Duration::hours(2)),
            baseline_missing: vec![AccountRole::FaceAuth],
            confirmed: false,
            confirmed_key: None,
            version: 1,
        };
        assert_eq!(
            account_baseline(&stored, &policy()).1,
            None,
            "nothing to write"
        );
        assert_eq!(critical(&stored, &policy(), now), 0);
        stored.accounts.confirmed = true;
        let f = evaluate(&stored, &policy(), now);
        assert_eq!(
            f.iter().map(|f| (f.rule, f.severity)).collect::<Vec<_>>(),
            vec![(RuleKey::AccountsUnconfirmed, Severity::Warning)]
        );
        // Found later under its name: nothing to say; its changes count once staff confirm
        // the names and a baseline is taken with it.
        let mut found = stored.clone();
        let mut s = healthy();
        s.accounts.policy_key = accounts_key(&agent_policy().accounts);
        found.snapshot = Some(std::sync::Arc::new(s));
        assert_eq!(evaluate(&found, &policy(), now), vec![]);
    }

    #[test]
    fn an_account_disabled_or_locked_at_the_baseline_is_the_desks_not_a_change() {
        let now = healthy().collected_at;
        for (enabled, locked, state) in
            [(Some(false), None, "無効"), (None, Some(true), "ロック中")]
        {
            let mut s = healthy();
            s.accounts.accounts[0].enabled = enabled;
            s.accounts.accounts[0].locked = locked;
            s.accounts.policy_key = accounts_key(&agent_policy().accounts);
            let t = no_baseline(s);
            assert_eq!(
                account_baseline(&t, &policy()).0.unwrap().missing,
                vec![AccountRole::Windows]
            );
            let f = evaluate(&t, &policy(), now);
            assert_eq!(
                f.iter().map(|f| (f.rule, f.severity)).collect::<Vec<_>>(),
                vec![(RuleKey::AccountsUnconfirmed, Severity::Warning)],
                "{state}"
            );
            assert!(f[0].detail.contains(state), "{}", f[0].detail);
        }
        // Usable at the baseline, disabled after it: the clinic's critical.
        let mut s = healthy();
        s.accounts.accounts[0].enabled = Some(false);
        assert_eq!(
            rules(&state(s), &policy(), now),
            vec![(RuleKey::ProtectedAccountWindows, Severity::Critical)]
        );
    }

    #[test]
    fn a_change_after_the_baseline_alerts_once_per_role() {
        let now = healthy().collected_at;
        let mut t = state(healthy());
        let taken = t.accounts.baseline_at.unwrap();
        t.events.push(account_event(
            taken - Duration::minutes(1),
            AccountRole::Windows,
            AccountChange::Deleted,
        ));
        assert_eq!(evaluate(&t, &policy(), now), vec![], "before the baseline");
        // Deleted: the snapshot shows it gone and the event says so; one finding, worded once.
        let mut s = healthy();
        s.accounts.accounts[0].exists = false;
        let mut t = state(s);
        t.events.push(account_event(
            now - Duration::minutes(5),
            AccountRole::Windows,
            AccountChange::Deleted,
        ));
        let f = evaluate(&t, &policy(), now);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, RuleKey::ProtectedAccountWindows);
        assert_eq!(f[0].detail.matches("削除").count(), 1, "{}", f[0].detail);
        assert!(
            !f[0].detail.starts_with("Windowsアカウント"),
            "the title names the role"
        );
    }

    #[test]
    fn the_names_a_terminal_is_given_decide_and_an_agent_behind_them_is_waited_for() {
        let now = healthy().collected_at;
        let mut s = healthy();
        s.accounts.accounts[0].name = "受付".into();
        // The clinic's names say 受付: no rename.
        let mut p = policy();
        let merged = AccountSpec::merged(
            &p.accounts,
            &[AccountSpec {
                role: AccountRole::Windows,
                name: "受付".into(),
            }],
        );
        p.accounts_key = accounts_key(&merged);
        p.accounts = std::sync::Arc::new(merged.clone());
        s.accounts.policy_key = accounts_key(&merged);
        let mut t = no_baseline(s.clone());
        assert_eq!(evaluate(&t, &p, now), vec![]);
        // The agent still looks for the old names: no baseline yet, nothing said.
        t.snapshot = Some(std::sync::Arc::new({
            let mut old = s.clone();
            old.accounts.policy_key = accounts_key(&agent_policy().accounts);
            old
        }));
        assert_eq!(account_baseline(&t, &p), (None, None));
        assert_eq!(evaluate(&t, &p, now), vec![]);
        // A terminal's own name wins over its clinic's.
        let mut t = no_baseline(s.clone());
        t.own_accounts = Some(std::sync::Arc::new(vec![AccountSpec {
            role: AccountRole::Windows,
            name: "受付2".into(),
        }]));
        assert_eq!(p.expected_name(&t, AccountRole::Windows), Some("受付2"));
        assert_ne!(p.accounts_key_of(&t), p.accounts_key);
        // A baseline from before keys is adopted for the names the terminal has now.
        let mut legacy = state(healthy());
        legacy.accounts.baseline_key = None;
        let (b, write) = account_baseline(&legacy, &policy());
        assert_eq!(b.unwrap().taken_at, legacy.accounts.baseline_at.unwrap());
        assert_eq!(write.unwrap().key, accounts_key(&agent_policy().accounts));
    }
}
