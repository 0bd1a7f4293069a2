//! Security-log events about local accounts (4720–4726, 4738, 4740, 4781, 4732/4733), typed, and
//! what they add to an account's state. Pure; tested with fixtures.

use chrono::{DateTime, Utc};
use onshi_shared::AccountLogEntry;

use crate::sources::eventlog::EventRecord;

/// The Security-log query the Windows source runs.
pub const SECURITY_QUERY: &str = "*[System[Provider[@Name='Microsoft-Windows-Security-Auditing'] and \
(EventID=4720 or EventID=4722 or EventID=4723 or EventID=4724 or EventID=4725 or EventID=4726 \
or EventID=4738 or EventID=4740 or EventID=4781 or EventID=4732 or EventID=4733)]]";

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEventKind {
    /// 4720
    Created,
    /// 4722
    Enabled,
    /// 4723: the user changed their own password.
    PasswordChanged,
    /// 4724: someone reset the password.
    PasswordReset,
    /// 4725
    Disabled,
    /// 4726
    Deleted,
    /// 4738: some attribute changed.
    Changed,
    /// 4740
    LockedOut,
    /// 4781
    Renamed { from: String, to: String },
    /// 4732: added to a local group.
    AddedToGroup { group: String },
    /// 4733: removed from a local group.
    RemovedFromGroup { group: String },
}

/// An account event: when, to whom, by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEvent {
    pub time: DateTime<Utc>,
    pub event_id: u32,
    pub kind: AccountEventKind,
    /// The account's SID (for group events, the member's).
    pub sid: Option<String>,
    /// The account's name when the event names it.
    pub name: Option<String>,
    /// `DOMAIN\user` who did it.
    pub by: Option<String>,
}

/// The typed event; `None` for other events and events without a time.
pub fn account_event(e: &EventRecord) -> Option<AccountEvent> {
    if e.provider != "Microsoft-Windows-Security-Auditing" {
        return None;
    }
    let time = e.time?;
    let value = |name: &str| {
        e.data(name)
            .map(str::trim)
            .filter(|v| !v.is_empty() && *v != "-")
            .map(String::from)
    };
    let group = || value("TargetUserName").unwrap_or_else(|| "?".to_string());
    let kind = match e.event_id {
        4720 => AccountEventKind::Created,
        4722 => AccountEventKind::Enabled,
        4723 => AccountEventKind::PasswordChanged,
        4724 => AccountEventKind::PasswordReset,
        4725 => AccountEventKind::Disabled,
        4726 => AccountEventKind::Deleted,
        4738 => AccountEventKind::Changed,
        4740 => AccountEventKind::LockedOut,
        4781 => AccountEventKind::Renamed {
            from: value("OldTargetUserName")?,
            to: value("NewTargetUserName")?,
        },
        4732 => AccountEventKind::AddedToGroup { group: group() },
        4733 => AccountEventKind::RemovedFromGroup { group: group() },
        _ => return None,
    };
    let (sid, name) = match e.event_id {
        4732 | 4733 => (value("MemberSid"), value("MemberName")),
        4781 => (value("TargetSid"), value("NewTargetUserName")),
        _ => (value("TargetSid"), value("TargetUserName")),
    };
    let by = match (value("SubjectDomainName"), value("SubjectUserName")) {
        (Some(d), Some(u)) => Some(format!("{d}\\{u}")),
        (None, Some(u)) => Some(u),
        _ => None,
    };
    Some(AccountEvent {
        time,
        event_id: e.event_id,
        kind,
        sid,
        name,
        by,
    })
}

impl AccountEvent {
    /// The event as the snapshot carries it.
    pub fn log_entry(&self) -> AccountLogEntry {
        AccountLogEntry {
            at: self.time,
            event_id: self.event_id,
            what: self.kind.describe(),
            by: self.by.clone(),
        }
    }
}

impl AccountEventKind {
    /// A short stable description: `password_reset`, `renamed onshi -> onshi2`, ...
    pub fn describe(&self) -> String {
        match self {
            AccountEventKind::Created => "created".into(),
            AccountEventKind::Enabled => "enabled".into(),
            AccountEventKind::PasswordChanged => "password_changed".into(),
            AccountEventKind::PasswordReset => "password_reset".into(),
            AccountEventKind::Disabled => "disabled".into(),
            AccountEventKind::Deleted => "deleted".into(),
            AccountEventKind::Changed => "changed".into(),
            AccountEventKind::LockedOut => "locked_out".into(),
            AccountEventKind::Renamed { from, to } => format!("renamed {from} -> {to}"),
            AccountEventKind::AddedToGroup { group } => format!("added_to_group {group}"),
            AccountEventKind::RemovedFromGroup { group } => {
                format!("removed_from_group {group}")
            }
        }
    }
}

/// What the log adds to one account's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountHistory {
    /// The last password change or reset.
    pub password_set: Option<DateTime<Utc>>,
    /// The latest event about the account, and who caused it.
    pub latest: Option<AccountEvent>,
}

/// The history of the account with `sid` in `events` (any order).
pub fn history(events: &[AccountEvent], sid: &str) -> AccountHistory {
    let mut mine: Vec<&AccountEvent> = events
        .iter()
        .filter(|e| {
            e.sid
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(sid))
        })
        .collect();
    mine.sort_by_key(|e| e.time);
    AccountHistory {
        password_set: mine
            .iter()
            .rev()
            .find(|e| {
                matches!(
                    e.kind,
                    AccountEventKind::PasswordChanged | AccountEventKind::PasswordReset
                )
            })
            .map(|e| e.time),
        latest: mine.last().map(|e| (*e).clone()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::sources::eventlog::parse_event;
    use crate::sources::eventlog::tests::fixture;

    const RENKEI: &str = "S-1-5-21-1004336348-1177238915-682003330-1003";

    fn load(id: u32) -> AccountEvent {
        let e = parse_event(&fixture(&format!("security-{id}.xml"))).unwrap();
        account_event(&e).unwrap_or_else(|| panic!("{id} not read"))
    }

    #[test]
    fn reads_every_account_event() {
        use AccountEventKind::*;
        let cases = [
            (4720, Created),
            (4722, Enabled),
            (4723, PasswordChanged),
            (4724, PasswordReset),
            (4725, Disabled),
            (4726, Deleted),
            (4738, Changed),
            (4740, LockedOut),
            (
                4781,
                Renamed {
                    from: "onshi".into(),
                    to: "onshi2".into(),
                },
            ),
            (
                4732,
                AddedToGroup {
                    group: "Administrators".into(),
                },
            ),
            (
                4733,
                RemovedFromGroup {
                    group: "Administrators".into(),
                },
            ),
        ];
        for (id, kind) in cases {
            let e = load(id);
            assert_eq!(e.kind, kind, "{id}");
            assert_eq!(e.event_id, id);
            assert!(e.sid.is_some(), "{id}");
        }
        let reset = load(4724);
        assert_eq!(reset.by.as_deref(), Some("ONSHI-PC-01\\kanri"));
        assert_eq!(reset.name.as_deref(), Some("renkei"));
        assert_eq!(reset.sid.as_deref(), Some(RENKEI));
        let own = load(4723);
        assert_eq!(own.by.as_deref(), Some("ONSHI-PC-01\\renkei"));
        let group = load(4732);
        assert_eq!(
            group.sid.as_deref(),
            Some(RENKEI),
            "the member, not the group"
        );
        assert_eq!(group.name, None, "MemberName '-' is no name");
        let renamed = load(4781);
        assert_eq!(renamed.name.as_deref(), Some("onshi2"));
    }

    #[test]
    fn ignores_other_events() {
        let e = parse_event(&fixture("system-kernel-boot-27-cold.xml")).unwrap();
        assert_eq!(account_event(&e), None);
    }

    #[test]
    fn builds_one_accounts_history() {
        let events: Vec<AccountEvent> = [4733, 4720, 4722, 4723, 4724, 4725, 4738, 4740, 4732]
            .into_iter()
            .map(load)
            .collect();
        let h = history(&events, RENKEI);
        assert_eq!(
            h.password_set,
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap()),
            "the reset after the own change"
        );
        let latest = h.latest.unwrap();
        let entry = latest.log_entry();
        assert_eq!(entry.event_id, 4733);
        assert_eq!(entry.what, "removed_from_group Administrators");
        assert_eq!(entry.by.as_deref(), Some("ONSHI-PC-01\\kanri"));
        assert_eq!(load(4781).log_entry().what, "renamed onshi -> onshi2");
        assert_eq!(
            latest.kind,
            AccountEventKind::RemovedFromGroup {
                group: "Administrators".into()
            }
        );
        assert_eq!(
            history(&events, "S-1-5-21-0-0-0-9999"),
            AccountHistory::default()
        );
    }
}
