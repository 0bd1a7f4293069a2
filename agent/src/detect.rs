//! Change detection: compares two snapshots and says what changed. Pure; no clock, no I/O.
//!
//! Every account change is reported for every role; the server decides which ones alert.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use onshi_shared::limits::{MAX_LIST_LEN, MAX_STRING_LEN};
use onshi_shared::{AccountChange, AccountState, Event, EventKind, Network, Snapshot};

use crate::sources::fit::truncate;

/// `last_start` moving forward by more than this is a restart; less is clock jitter (the Linux
/// boot time is computed from the uptime and wobbles by a second).
pub const RESTART_TOLERANCE: Duration = Duration::seconds(60);

/// Windows gives the password's age in whole seconds, so `now - age` wobbles by a second
/// between collections; a change of the last-set time by less than this is no change.
pub const PASSWORD_TOLERANCE: Duration = Duration::seconds(60);

/// The changes from `prev` to `cur`, oldest cause first. Without a previous snapshot there is
/// nothing to compare, so nothing changed (the run loop reports `AgentStarted` itself).
pub fn detect(prev: Option<&Snapshot>, cur: &Snapshot) -> Vec<EventKind> {
    let Some(prev) = prev else {
        return Vec::new();
    };
    let mut out = Vec::new();
    restart(prev, cur, &mut out);
    accounts(prev, cur, &mut out);
    network(&prev.network, &cur.network, &mut out);
    apps(prev, cur, &mut out);
    certs(prev, cur, &mut out);
    backup(prev, cur, &mut out);
    out
}

/// [`detect`] as events: stamped with the collection time, or for a restart with the time the
/// machine started.
pub fn events(prev: Option<&Snapshot>, cur: &Snapshot) -> Vec<Event> {
    detect(prev, cur)
        .into_iter()
        .map(|kind| {
            let at = match &kind {
                EventKind::Rebooted { start, .. } => *start,
                _ => cur.collected_at,
            };
            Event::new(at, kind)
        })
        .collect()
}

fn restart(prev: &Snapshot, cur: &Snapshot, out: &mut Vec<EventKind>) {
    let (p, c) = (&prev.uptime, &cur.uptime);
    // The epoch stands for "start unknown" (see sources::uptime); never a restart.
    let known = |t: DateTime<Utc>| t > DateTime::UNIX_EPOCH;
    if known(p.last_start) && known(c.last_start) && c.last_start - p.last_start > RESTART_TOLERANCE
    {
        out.push(EventKind::Rebooted {
            previous_start: Some(p.last_start),
            start: c.last_start,
            start_kind: c.last_start_kind,
            clean_shutdown: c.last_shutdown_clean,
        });
    }
}

fn accounts(prev: &Snapshot, cur: &Snapshot, out: &mut Vec<EventKind>) {
    for c in &cur.accounts.accounts {
        let Some(p) = prev.accounts.accounts.iter().find(|p| p.role == c.role) else {
            continue;
        };
        for change in account_changes(p, c) {
            let name = match &change {
                AccountChange::Deleted => p.name.clone(),
                _ => c.name.clone(),
            };
            out.push(EventKind::AccountChanged {
                role: c.role,
                name,
                change,
            });
        }
    }
}

fn account_changes(p: &AccountState, c: &AccountState) -> Vec<AccountChange> {
    match (p.exists, c.exists) {
        (false, false) => return Vec::new(),
        (false, true) => return vec![AccountChange::Created],
        (true, false) => return vec![AccountChange::Deleted],
        (true, true) => {}
    }
    if let (Some(ps), Some(cs)) = (&p.sid, &c.sid)
        && ps != cs
    {
        // Another account now holds the role: the old one went away, a new one came.
        return vec![AccountChange::Deleted, AccountChange::Created];
    }
    let mut out = Vec::new();
    if p.name != c.name {
        out.push(AccountChange::Renamed {
            from: p.name.clone(),
            to: c.name.clone(),
        });
    }
    if let (Some(a), Some(b)) = (p.password_last_set, c.password_last_set)
        && (a - b).abs() > PASSWORD_TOLERANCE
    {
        out.push(AccountChange::PasswordChanged);
    }
    match (p.enabled, c.enabled) {
        (Some(true), Some(false)) => out.push(AccountChange::Disabled),
        (Some(false), Some(true)) => out.push(AccountChange::Enabled),
        _ => {}
    }
    match (p.locked, c.locked) {
        (Some(false), Some(true)) => out.push(AccountChange::Locked),
        (Some(true), Some(false)) => out.push(AccountChange::Unlocked),
        _ => {}
    }
    out
}

fn network(p: &Network, c: &Network, out: &mut Vec<EventKind>) {
    if p.fingerprint == c.fingerprint {
        return;
    }
    let mut changes = network_changes(p, c);
    if changes.is_empty() {
        changes.push("network layout changed".to_string());
    }
    for change in &mut changes {
        truncate(change, MAX_STRING_LEN);
    }
    if changes.len() > MAX_LIST_LEN {
        let more = changes.len() - (MAX_LIST_LEN - 1);
        changes.truncate(MAX_LIST_LEN - 1);
        changes.push(format!("{more} more changes"));
    }
    out.push(EventKind::NetworkChanged {
        from_fingerprint: p.fingerprint.clone(),
        to_fingerprint: c.fingerprint.clone(),
        changes,
    });
}

/// Human-readable differences, e.g. `gateway 192.168.1.1 -> 192.168.2.1`.
pub fn network_changes(p: &Network, c: &Network) -> Vec<String> {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let show_list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(",")
        }
    };
    let mut out = Vec::new();
    let gateway_changed = p.default_gateway != c.default_gateway;
    if gateway_changed {
        out.push(format!(
            "gateway {} -> {}",
            show(&p.default_gateway),
            show(&c.default_gateway)
        ));
    }
    if p.gateway_mac != c.gateway_mac {
        out.push(format!(
            "gateway MAC {} -> {}",
            show(&p.gateway_mac),
            show(&c.gateway_mac)
        ));
    }
    for pa in &p.adapters {
        if !c.adapters.iter().any(|ca| ca.name == pa.name) {
            out.push(format!("adapter {} removed", pa.name));
        }
    }
    for ca in &c.adapters {
        let Some(pa) = p.adapters.iter().find(|pa| pa.name == ca.name) else {
            out.push(format!("adapter {} added", ca.name));
            continue;
        };
        if pa.mac != ca.mac {
            out.push(format!(
                "MAC of {} {} -> {}",
                ca.name,
                show(&pa.mac),
                show(&ca.mac)
            ));
        }
        let before: BTreeSet<&String> = pa.addresses.iter().collect();
        let after: BTreeSet<&String> = ca.addresses.iter().collect();
        for gone in before.difference(&after) {
            out.push(format!("address {gone} removed from {}", ca.name));
        }
        for new in after.difference(&before) {
            out.push(format!("address {new} added on {}", ca.name));
        }
        if !gateway_changed && sorted(&pa.gateways) != sorted(&ca.gateways) {
            out.push(format!(
                "gateways on {} {} -> {}",
                ca.name,
                show_list(&pa.gateways),
                show_list(&ca.gateways)
            ));
        }
        if sorted(&pa.dns) != sorted(&ca.dns) {
            out.push(format!(
                "DNS on {} {} -> {}",
                ca.name,
                show_list(&pa.dns),
                show_list(&ca.dns)
            ));
        }
    }
    out
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = v.iter().collect();
    v.sort();
    v
}

#[derive(PartialEq)]
enum AppState<'a> {
    Installed(&'a Option<String>),
    Missing,
    Unknown,
}

fn app_state<'a>(s: &'a Snapshot, name: &str) -> AppState<'a> {
    if let Some(a) = s.apps.installed.iter().find(|a| a.name == name) {
        AppState::Installed(&a.version)
    } else if s.apps.missing.iter().any(|m| m == name) {
        AppState::Missing
    } else {
        AppState::Unknown
    }
}

fn apps(prev: &Snapshot, cur: &Snapshot, out: &mut Vec<EventKind>) {
    let names = cur
        .apps
        .installed
        .iter()
        .map(|a| &a.name)
        .chain(cur.apps.missing.iter());
    for name in names {
        let (from, to) = match (app_state(prev, name), app_state(cur, name)) {
            (AppState::Installed(a), AppState::Installed(b)) if a != b => (a.clone(), b.clone()),
            (AppState::Missing, AppState::Installed(b)) => (None, b.clone()),
            (AppState::Installed(a), AppState::Missing) => (a.clone(), None),
            _ => continue,
        };
        out.push(EventKind::AppUpdated {
            name: name.clone(),
            from,
            to,
        });
    }
}

fn certs(prev: &Snapshot, cur: &Snapshot, out: &mut Vec<EventKind>) {
    let has = |s: &Snapshot, thumb: &str| {
        s.certificates
            .certs
            .iter()
            .any(|c| c.thumbprint.eq_ignore_ascii_case(thumb))
    };
    for c in &cur.certificates.certs {
        if !has(prev, &c.thumbprint) {
            out.push(EventKind::CertChanged {
                thumbprint: c.thumbprint.clone(),
                subject: c.subject.clone(),
                not_after: c.not_after,
                added: true,
            });
        }
    }
    for p in &prev.certificates.certs {
        if !has(cur, &p.thumbprint) {
            out.push(EventKind::CertChanged {
                thumbprint: p.thumbprint.clone(),
                subject: p.subject.clone(),
                not_after: p.not_after,
                added: false,
            });
        }
    }
}

fn backup(prev: &Snapshot, cur: &Snapshot, out: &mut Vec<EventKind>) {
    let Some(b) = &cur.certificates.backup else {
        return;
    };
    let before = prev.certificates.backup.as_ref().map(|p| p.verified_at);
    if before != Some(b.verified_at) {
        out.push(EventKind::BackupVerified {
            thumbprint: b.thumbprint.clone(),
            matches_current: b.matches_current,
        });
    }
}

#[cfg(test)]
mod tests {
    use onshi_shared::{
        AccountRole, Adapter, AppInfo, BackupState, CertInfo, StartKind, Validate, sample,
    };

    use super::*;

    /// One row of a table: what the test is about, how it changes the snapshot, what to expect.
    type Row<T, E> = (&'static str, Box<dyn FnOnce(&mut T)>, Vec<E>);

    fn base() -> Snapshot {
        sample::snapshot()
    }

    /// `cur` = `base()` changed by `edit`; a later collection time, as in real use.
    fn changed(edit: impl FnOnce(&mut Snapshot)) -> Snapshot {
        let mut s = base();
        s.collected_at += Duration::minutes(1);
        edit(&mut s);
        s
    }

    fn run(edit: impl FnOnce(&mut Snapshot)) -> Vec<EventKind> {
        let cur = changed(edit);
        detect(Some(&base()), &cur)
    }

    fn account(role: AccountRole, change: AccountChange, name: &str) -> EventKind {
        EventKind::AccountChanged {
            role,
            name: name.into(),
            change,
        }
    }

    #[test]
    fn nothing_without_a_previous_snapshot_or_a_change() {
        assert!(detect(None, &base()).is_empty());
        assert!(run(|_| {}).is_empty());
    }

    #[test]
    fn restarts() {
        let boot = base().uptime.last_start;
        let table: Vec<(&str, Duration, StartKind, bool)> = vec![
            (
                "jitter of a second",
                Duration::seconds(1),
                StartKind::ColdBoot,
                false,
            ),
            (
                "jitter at the tolerance",
                Duration::seconds(60),
                StartKind::ColdBoot,
                false,
            ),
            ("restart", Duration::hours(20), StartKind::ColdBoot, true),
            (
                "fast startup",
                Duration::hours(20),
                StartKind::FastStartup,
                true,
            ),
            (
                "clock went back",
                -Duration::hours(1),
                StartKind::ColdBoot,
                false,
            ),
        ];
        for (what, shift, kind, expect) in table {
            let got = run(|s| {
                s.uptime.last_start = boot + shift;
                s.uptime.last_start_kind = kind;
            });
            if expect {
                assert_eq!(
                    got,
                    vec![EventKind::Rebooted {
                        previous_start: Some(boot),
                        start: boot + shift,
                        start_kind: kind,
                        clean_shutdown: Some(true),
                    }],
                    "{what}"
                );
            } else {
                assert!(got.is_empty(), "{what}: {got:?}");
            }
        }
    }

    #[test]
    fn unknown_start_is_never_a_restart() {
        let mut prev = base();
        prev.uptime.last_start = DateTime::UNIX_EPOCH;
        assert!(detect(Some(&prev), &base()).is_empty());
    }

    #[test]
    fn reboot_event_is_stamped_with_the_start() {
        let cur = changed(|s| s.uptime.last_start += Duration::hours(3));
        let events = events(Some(&base()), &cur);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].at, cur.uptime.last_start);
        events[0].validate().unwrap();
    }

    #[test]
    fn account_changes() {
        let w = AccountRole::Windows;
        let table: Vec<Row<AccountState, EventKind>> = vec![
            (
                "deleted",
                Box::new(|a| {
                    a.exists = false;
                    a.sid = None;
                }),
                vec![account(w, AccountChange::Deleted, "onshi")],
            ),
            (
                "renamed",
                Box::new(|a| a.name = "onshi2".into()),
                vec![account(
                    w,
                    AccountChange::Renamed {
                        from: "onshi".into(),
                        to: "onshi2".into(),
                    },
                    "onshi2",
                )],
            ),
            (
                "password changed",
                Box::new(|a| {
                    a.password_last_set = a.password_last_set.map(|t| t + Duration::days(1))
                }),
                vec![account(w, AccountChange::PasswordChanged, "onshi")],
            ),
            (
                "password date wobbles by a second (Windows password age)",
                Box::new(|a| {
                    a.password_last_set = a.password_last_set.map(|t| t + Duration::seconds(1))
                }),
                vec![],
            ),
            (
                "password date became unknown",
                Box::new(|a| a.password_last_set = None),
                vec![],
            ),
            (
                "disabled",
                Box::new(|a| a.enabled = Some(false)),
                vec![account(w, AccountChange::Disabled, "onshi")],
            ),
            (
                "enabled state unknown",
                Box::new(|a| a.enabled = None),
                vec![],
            ),
            (
                "locked",
                Box::new(|a| a.locked = Some(true)),
                vec![account(w, AccountChange::Locked, "onshi")],
            ),
            (
                "replaced by another account of the same name",
                Box::new(|a| a.sid = Some("S-1-5-21-1-2-3-1500".into())),
                vec![
                    account(w, AccountChange::Deleted, "onshi"),
                    account(w, AccountChange::Created, "onshi"),
                ],
            ),
            (
                "renamed and locked at once",
                Box::new(|a| {
                    a.name = "x".into();
                    a.locked = Some(true);
                }),
                vec![
                    account(
                        w,
                        AccountChange::Renamed {
                            from: "onshi".into(),
                            to: "x".into(),
                        },
                        "x",
                    ),
                    account(w, AccountChange::Locked, "x"),
                ],
            ),
        ];
        for (what, edit, expect) in table {
            let got = run(|s| edit(&mut s.accounts.accounts[0]));
            assert_eq!(got, expect, "{what}");
        }
    }

    #[test]
    fn reverse_account_changes() {
        let w = AccountRole::Windows;
        let mut prev = base();
        prev.accounts.accounts[0].exists = false;
        prev.accounts.accounts[0].enabled = Some(false);
        assert_eq!(
            detect(Some(&prev), &base()),
            vec![account(w, AccountChange::Created, "onshi")]
        );
        let mut prev = base();
        prev.accounts.accounts[0].enabled = Some(false);
        prev.accounts.accounts[0].locked = Some(true);
        assert_eq!(
            detect(Some(&prev), &base()),
            vec![
                account(w, AccountChange::Enabled, "onshi"),
                account(w, AccountChange::Unlocked, "onshi"),
            ]
        );
    }

    #[test]
    fn roles_new_to_the_policy_are_not_changes() {
        let got = run(|s| {
            s.accounts.accounts.push(AccountState {
                role: AccountRole::Linkage,
                name: "renkei".into(),
                exists: true,
                enabled: Some(true),
                locked: Some(false),
                password_last_set: None,
                password_expires: None,
                sid: Some("uid:1003".into()),
                last_change: None,
            })
        });
        assert!(got.is_empty(), "{got:?}");
    }

    fn network_event(edit: impl FnOnce(&mut Network)) -> Vec<String> {
        let got = run(|s| {
            edit(&mut s.network);
            s.network.fingerprint = "changed".into();
        });
        match got.as_slice() {
            [
                EventKind::NetworkChanged {
                    from_fingerprint,
                    to_fingerprint,
                    changes,
                },
            ] => {
                assert_eq!(from_fingerprint, "9f2c4d1e0b7a6c5d");
                assert_eq!(to_fingerprint, "changed");
                changes.clone()
            }
            other => panic!("expected one network event, got {other:?}"),
        }
    }

    #[test]
    fn network_changes_read_like_a_person_wrote_them() {
        let table: Vec<Row<Network, &str>> = vec![
            (
                "gateway",
                Box::new(|n| {
                    n.default_gateway = Some("192.168.20.1".into());
                    n.adapters[0].gateways = vec!["192.168.20.1".into()];
                }),
                vec!["gateway 192.168.10.1 -> 192.168.20.1"],
            ),
            (
                "gateway MAC",
                Box::new(|n| n.gateway_mac = Some("00:aa:bb:cc:dd:ff".into())),
                vec!["gateway MAC 00:aa:bb:cc:dd:ee -> 00:aa:bb:cc:dd:ff"],
            ),
            (
                "address",
                Box::new(|n| n.adapters[0].addresses = vec!["192.168.10.22/24".into()]),
                vec![
                    "address 192.168.10.21/24 removed from Ethernet",
                    "address 192.168.10.22/24 added on Ethernet",
                ],
            ),
            (
                "DNS",
                Box::new(|n| n.adapters[0].dns.push("8.8.8.8".into())),
                vec!["DNS on Ethernet 192.168.10.1 -> 192.168.10.1,8.8.8.8"],
            ),
            (
                "adapter added",
                Box::new(|n| {
                    n.adapters.push(Adapter {
                        name: "Wi-Fi".into(),
                        mac: None,
                        up: true,
                        addresses: vec![],
                        gateways: vec![],
                        dns: vec![],
                    })
                }),
                vec!["adapter Wi-Fi added"],
            ),
            (
                "adapter removed",
                Box::new(|n| {
                    n.adapters.clear();
                    n.default_gateway = None;
                    n.gateway_mac = None;
                }),
                vec![
                    "gateway 192.168.10.1 -> none",
                    "gateway MAC 00:aa:bb:cc:dd:ee -> none",
                    "adapter Ethernet removed",
                ],
            ),
            (
                "nothing readable changed",
                Box::new(|_| {}),
                vec!["network layout changed"],
            ),
        ];
        for (what, edit, expect) in table {
            assert_eq!(network_event(edit), expect, "{what}");
        }
    }

    #[test]
    fn same_fingerprint_is_no_change() {
        assert!(run(|s| s.network.adapters[0].up = false).is_empty());
    }

    #[test]
    fn app_changes() {
        let app = |name: &str, v: &str| AppInfo {
            name: name.into(),
            version: Some(v.into()),
            installed_on: None,
        };
        let updated = run(|s| s.apps.installed[0].version = Some("2.5.0".into()));
        assert_eq!(
            updated,
            vec![EventKind::AppUpdated {
                name: "配信アプリ".into(),
                from: Some("2.4.1".into()),
                to: Some("2.5.0".into()),
            }]
        );
        let removed = run(|s| {
            s.apps.installed.remove(1);
            s.apps.missing.push("連携アプリ".into());
        });
        assert_eq!(
            removed,
            vec![EventKind::AppUpdated {
                name: "連携アプリ".into(),
                from: Some("1.12.0".into()),
                to: None,
            }]
        );
        let mut prev = base();
        prev.apps.missing.push("顔認証ライブラリ".into());
        let cur = changed(|s| s.apps.installed.push(app("顔認証ライブラリ", "3.0")));
        assert_eq!(
            detect(Some(&prev), &cur),
            vec![EventKind::AppUpdated {
                name: "顔認証ライブラリ".into(),
                from: None,
                to: Some("3.0".into()),
            }]
        );
        // The manifest could not be read: unknown, not removed.
        assert!(run(|s| s.apps.installed.clear()).is_empty());
        // Newly watched: no history to compare with.
        assert!(run(|s| s.apps.installed.push(app("顔認証ライブラリ", "3.0"))).is_empty());
    }

    #[test]
    fn cert_changes() {
        let old = base().certificates.certs[0].clone();
        let renewed = CertInfo {
            thumbprint: "AAAA000000000000000000000000000000000000".into(),
            not_after: old.not_after + Duration::days(1186),
            ..old.clone()
        };
        let added = run(|s| s.certificates.certs.push(renewed.clone()));
        assert_eq!(
            added,
            vec![EventKind::CertChanged {
                thumbprint: renewed.thumbprint.clone(),
                subject: renewed.subject.clone(),
                not_after: renewed.not_after,
                added: true,
            }]
        );
        let replaced = run(|s| s.certificates.certs = vec![renewed.clone()]);
        assert_eq!(replaced.len(), 2);
        assert!(
            matches!(&replaced[1], EventKind::CertChanged { added: false, thumbprint, .. } if *thumbprint == old.thumbprint)
        );
        assert!(run(|s| s.certificates.certs[0].thumbprint.make_ascii_lowercase()).is_empty());
    }

    #[test]
    fn backup_verification() {
        let verified_at = base().collected_at;
        let backup = BackupState {
            thumbprint: base().certificates.certs[0].thumbprint.clone(),
            verified_at,
            not_after: None,
            matches_current: true,
        };
        let b = backup.clone();
        let first = run(move |s| s.certificates.backup = Some(b));
        assert_eq!(
            first,
            vec![EventKind::BackupVerified {
                thumbprint: backup.thumbprint.clone(),
                matches_current: true,
            }]
        );
        let mut prev = base();
        prev.certificates.backup = Some(backup.clone());
        let same = changed(|s| s.certificates.backup = Some(backup.clone()));
        assert!(detect(Some(&prev), &same).is_empty());
        let again = changed(|s| {
            s.certificates.backup = Some(BackupState {
                verified_at: verified_at + Duration::days(1),
                ..backup.clone()
            })
        });
        assert_eq!(detect(Some(&prev), &again).len(), 1);
    }

    #[test]
    fn every_event_validates() {
        let cur = changed(|s| {
            s.uptime.last_start += Duration::hours(2);
            s.accounts.accounts[0].name = "x".repeat(MAX_STRING_LEN);
            s.network.fingerprint = "other".into();
            s.network.adapters = (0..MAX_LIST_LEN)
                .map(|i| Adapter {
                    name: format!("eth{i}"),
                    mac: None,
                    up: true,
                    addresses: vec![],
                    gateways: vec![],
                    dns: vec![],
                })
                .collect();
        });
        let events = events(Some(&base()), &cur);
        assert!(events.len() >= 3);
        for e in &events {
            e.validate().unwrap();
        }
    }
}
