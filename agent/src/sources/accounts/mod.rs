//! The accounts the policy names, per role: existence, state, password dates, and renames.

pub mod events;
#[cfg(unix)]
mod linux;
#[cfg(unix)]
pub mod parse;
#[cfg(windows)]
mod windows;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use onshi_shared::{AccountLogEntry, AccountRole, AccountSpec, AccountState, Accounts};

use super::{Ctx, Notes};

const AREA: &str = "accounts";

/// One local user as the platform's user database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    /// Stable identity: `uid:N` on Linux, the SID on Windows.
    pub sid: String,
    pub enabled: Option<bool>,
    pub locked: Option<bool>,
    pub password_last_set: Option<DateTime<Utc>>,
    pub password_expires: Option<DateTime<Utc>>,
    /// The latest event the platform's audit log records for the account (Windows).
    pub last_change: Option<AccountLogEntry>,
}

/// Reads the accounts area.
pub fn collect(ctx: &Ctx, notes: &mut Notes) -> Accounts {
    // Linux has no account-management audit log to speak of: auditing stays unknown.
    #[cfg(unix)]
    let (users, auditing) = (linux::users(ctx, notes), None);
    #[cfg(windows)]
    let (users, auditing) = windows::users(ctx, notes);
    #[cfg(not(any(unix, windows)))]
    let (users, auditing) = {
        notes.push(AREA, "not implemented on this platform");
        (Vec::new(), None)
    };
    Accounts {
        accounts: resolve(&ctx.policy.accounts, &ctx.known_sids, &users),
        auditing,
        policy_key: onshi_shared::accounts_key(&ctx.policy.accounts),
    }
}

/// The state of each watched account.
///
/// An account is found by its configured name. When that name is gone but the identity last
/// seen for the role exists under another name, the account was renamed: it is reported under
/// its new name so `detect` sees the same `sid` with a different name.
pub fn resolve(
    specs: &[AccountSpec],
    known_sids: &BTreeMap<AccountRole, String>,
    users: &[UserRecord],
) -> Vec<AccountState> {
    specs
        .iter()
        .map(|spec| {
            let by_name = users.iter().find(|u| u.name == spec.name);
            let by_sid = || {
                let sid = known_sids.get(&spec.role)?;
                users.iter().find(|u| &u.sid == sid)
            };
            match by_name.or_else(by_sid) {
                Some(user) => AccountState {
                    role: spec.role,
                    name: user.name.clone(),
                    exists: true,
                    enabled: user.enabled,
                    locked: user.locked,
                    password_last_set: user.password_last_set,
                    password_expires: user.password_expires,
                    sid: Some(user.sid.clone()),
                    last_change: user.last_change.clone(),
                },
                None => AccountState {
                    role: spec.role,
                    name: spec.name.clone(),
                    exists: false,
                    enabled: None,
                    locked: None,
                    password_last_set: None,
                    password_expires: None,
                    sid: None,
                    last_change: None,
                },
            }
        })
        .collect()
}

/// The identities to remember for the next collection: the previous ones, updated with every
/// account found now (a deleted account's identity is kept, so a re-creation under another
/// name is not mistaken for it only if the platform reuses identities).
pub fn known_sids(
    previous: &BTreeMap<AccountRole, String>,
    accounts: &Accounts,
) -> BTreeMap<AccountRole, String> {
    let mut known = previous.clone();
    for a in &accounts.accounts {
        if let (true, Some(sid)) = (a.exists, &a.sid) {
            known.insert(a.role, sid.clone());
        }
    }
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, uid: u32) -> UserRecord {
        UserRecord {
            name: name.into(),
            sid: format!("uid:{uid}"),
            enabled: Some(true),
            locked: Some(false),
            password_last_set: None,
            password_expires: None,
            last_change: None,
        }
    }

    fn spec(role: AccountRole, name: &str) -> AccountSpec {
        AccountSpec {
            role,
            name: name.into(),
        }
    }

    #[test]
    fn finds_by_name_then_by_remembered_identity() {
        let users = vec![user("onshi2", 1001), user("kao", 1002)];
        let specs = vec![
            spec(AccountRole::Windows, "onshi"),
            spec(AccountRole::FaceAuth, "kao"),
            spec(AccountRole::Linkage, "renkei"),
        ];
        let known = BTreeMap::from([(AccountRole::Windows, "uid:1001".to_string())]);
        let got = resolve(&specs, &known, &users);
        assert_eq!(got[0].name, "onshi2");
        assert!(got[0].exists);
        assert_eq!(got[0].sid.as_deref(), Some("uid:1001"));
        assert_eq!(got[1].name, "kao");
        assert!(got[1].exists);
        assert_eq!(got[2].name, "renkei");
        assert!(!got[2].exists);
        assert_eq!(got[2].sid, None);

        // Without the remembered identity a renamed account just looks missing.
        let got = resolve(&specs, &BTreeMap::new(), &users);
        assert!(!got[0].exists);
        assert_eq!(got[0].name, "onshi");
    }

    #[test]
    fn the_configured_name_wins_over_the_remembered_identity() {
        let users = vec![user("onshi", 1005), user("onshi-old", 1001)];
        let known = BTreeMap::from([(AccountRole::Windows, "uid:1001".to_string())]);
        let got = resolve(&[spec(AccountRole::Windows, "onshi")], &known, &users);
        assert_eq!(got[0].sid.as_deref(), Some("uid:1005"));
    }

    #[test]
    fn remembers_found_identities_and_keeps_old_ones() {
        let prev = BTreeMap::from([(AccountRole::Linkage, "uid:1003".to_string())]);
        let accounts = Accounts {
            policy_key: 0,
            accounts: resolve(
                &[
                    spec(AccountRole::Windows, "onshi"),
                    spec(AccountRole::Linkage, "renkei"),
                ],
                &BTreeMap::new(),
                &[user("onshi", 1001)],
            ),
            auditing: None,
        };
        let known = known_sids(&prev, &accounts);
        assert_eq!(known[&AccountRole::Windows], "uid:1001");
        assert_eq!(known[&AccountRole::Linkage], "uid:1003");
    }
}
