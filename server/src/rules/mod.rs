//! Rules of DESIGN §5 as pure functions of a terminal's stored state, its clinic's policy and a
//! clock. Nothing here reads the database or the system clock: the evaluator loads
//! [`RuleInput`]s, builds one [`ClinicPolicy`] per clinic (with the fleet's expected app
//! versions) and passes `now`. One file per rule family, each with its table tests.

mod accounts;
mod apps;
mod certificates;
#[cfg(test)]
mod fixtures;
mod network;
mod offline;
mod restart;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use onshi_shared::{
    AccountRole, AccountSpec, AgentPolicy, Event, EventKind, Snapshot, accounts_key,
};
use uuid::Uuid;

pub use accounts::consequence_ja;
pub use certificates::expiry_step;

use crate::calendar::BusinessHours;
use crate::domain::{ExpectedVersion, RuleKey, Severity};

/// One broken rule on one terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: RuleKey,
    pub severity: Severity,
    pub detail: String,
    /// What this firing is about (an expiry step, an event id, the set of changes). When it
    /// changes, an open alert notifies again and an alert the staff resolved opens again.
    pub occurrence: String,
}

fn finding(
    rule: RuleKey,
    severity: Severity,
    detail: String,
    occurrence: impl Into<String>,
) -> Finding {
    Finding {
        rule,
        severity,
        detail,
        occurrence: occurrence.into(),
    }
}

/// What the evaluator knows about one terminal when it runs the rules.
#[derive(Debug, Clone)]
pub struct RuleInput {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub enrolled_at: DateTime<Utc>,
    /// When the last report arrived; `None` before the first.
    pub last_seen: Option<DateTime<Utc>>,
    /// The latest snapshot as stored: its per-report fields (collection time, uptime, probe
    /// latency) are blanked, so one parsed body serves every pass until its content changes.
    pub snapshot: Option<Arc<Snapshot>>,
    /// When the agent collected that snapshot (the epoch without one).
    pub collected_at: DateTime<Utc>,
    /// Change events from the last [`Thresholds::event_window`] (older ones may be left out),
    /// oldest first.
    pub events: Vec<Event>,
    /// The account names this terminal is given over its clinic's, for the roles staff set
    /// on the terminal page.
    pub own_accounts: Option<Arc<Vec<AccountSpec>>>,
    /// The terminal's stored account baseline and confirmation.
    pub accounts: AccountRecord,
}

/// What the store keeps about a terminal's protected accounts (see [`account_baseline`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRecord {
    /// The key of the names the baseline was taken for; `None` with a time: a baseline from
    /// before keys, which stands for the names the terminal has now.
    pub baseline_key: Option<u64>,
    pub baseline_at: Option<DateTime<Utc>>,
    pub baseline_missing: Vec<AccountRole>,
    /// Staff confirmed the names; `confirmed_key` is the key of those names (`None`: the
    /// names of the next baseline).
    pub confirmed: bool,
    pub confirmed_key: Option<u64>,
    /// The stored version of this record (0: nothing stored yet); a baseline is written only
    /// over the version it was taken from, so that a confirmation made meanwhile wins.
    pub version: i64,
}

/// A baseline to store for a terminal, over the record version it was taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineWrite {
    pub terminal_id: Uuid,
    pub key: u64,
    pub taken_at: DateTime<Utc>,
    pub missing: Vec<AccountRole>,
    pub version: i64,
}

/// What the terminal's protected accounts looked like when it was first seen with the names it
/// is given: a role missing then is the desk's to confirm, not a change to alert about; a
/// change after it alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBaseline {
    /// The collection time of the snapshot the baseline was taken from: protected-account
    /// events at or before it are history, not changes.
    pub taken_at: DateTime<Utc>,
    /// Protected roles whose account was not usable then: not found under its name,
    /// disabled or locked.
    pub missing: Vec<AccountRole>,
    /// Staff confirmed the names on the terminal page: what is missing is missing.
    pub confirmed: bool,
}

/// The baseline that stands for the names the terminal is given now, and what to store when it
/// is new: the stored one when it was taken for these names (a baseline from before keys is
/// adopted for them), else one from the latest snapshot once the agent looked for these names
/// (an agent too old to say which names it looked for is taken at its word). `None` while the
/// agent has not yet applied the names.
pub fn account_baseline(
    t: &RuleInput,
    policy: &ClinicPolicy,
) -> (Option<AccountBaseline>, Option<BaselineWrite>) {
    let key = policy.accounts_key_of(t);
    let r = &t.accounts;
    let confirmed = r.confirmed && r.confirmed_key.is_none_or(|k| k == key);
    let stored = |taken_at| AccountBaseline {
        taken_at,
        missing: r.baseline_missing.clone(),
        confirmed,
    };
    match (r.baseline_at, r.baseline_key) {
        (Some(at), Some(k)) if k == key => return (Some(stored(at)), None),
        (Some(at), None) => {
            let write = BaselineWrite {
                terminal_id: t.terminal_id,
                key,
                taken_at: at,
                missing: r.baseline_missing.clone(),
                version: r.version,
            };
            return (Some(stored(at)), Some(write));
        }
        _ => {}
    }
    let Some(s) = &t.snapshot else {
        return (None, None);
    };
    if s.accounts.policy_key != 0 && s.accounts.policy_key != key {
        return (None, None);
    }
    let missing: Vec<AccountRole> = s
        .accounts
        .accounts
        .iter()
        .filter(|a| a.role.is_protected())
        .filter(|a| !usable(a, policy.expected_name(t, a.role)))
        .map(|a| a.role)
        .collect();
    let baseline = AccountBaseline {
        taken_at: t.collected_at,
        missing: missing.clone(),
        confirmed,
    };
    let write = BaselineWrite {
        terminal_id: t.terminal_id,
        key,
        taken_at: t.collected_at,
        missing,
        version: r.version,
    };
    (Some(baseline), Some(write))
}

/// A protected account as a terminal needs it: there under the name it is given, enabled and
/// not locked.
pub fn usable(a: &onshi_shared::AccountState, expected: Option<&str>) -> bool {
    a.exists
        && expected.is_none_or(|n| n == a.name)
        && a.enabled != Some(false)
        && a.locked != Some(true)
}

impl AccountBaseline {
    /// Whether something at `at` happened after the baseline (to the millisecond the store
    /// keeps times in: an event of the baseline's own report is history).
    pub fn before(&self, at: DateTime<Utc>) -> bool {
        at.timestamp_millis() > self.taken_at.timestamp_millis()
    }

    /// A role the terminal could not use at the baseline: the desk's to check, never the
    /// clinic's to be told about, even after staff confirmed the names (a typo in the names
    /// they confirm must not mail the clinic a 【緊急】). Confirming the names takes the
    /// baseline again; a role usable then alerts on every change after it.
    pub fn unconfirmed(&self, role: AccountRole) -> bool {
        self.missing.contains(&role)
    }
}

/// Drops what no rule, summary or fleet count reads from a snapshot the evaluator keeps between
/// passes (operating system and agent strings, install dates, certificate issuer and serial,
/// account SIDs, adapters and network fingerprint, probe errors): at 250,000 terminals the
/// parsed bodies are the evaluator's largest memory. The terminal page reads the stored body,
/// not this copy.
pub fn slim_for_rules(s: &mut Snapshot) {
    s.os = String::new();
    s.agent_version = String::new();
    s.uptime.restart_requested_by = None;
    for app in &mut s.apps.installed {
        app.installed_on = None;
    }
    s.apps.missing = Vec::new();
    for c in &mut s.certificates.certs {
        c.issuer = String::new();
        c.serial = String::new();
        c.store = String::new();
    }
    for a in &mut s.accounts.accounts {
        a.sid = None;
    }
    s.network.adapters = Vec::new();
    s.network.fingerprint = String::new();
    s.network.default_gateway = None;
    s.network.gateway_mac = None;
    for p in &mut s.network.probes {
        p.error = None;
        p.latency_ms = None;
    }
}

/// Everything about a terminal's clinic and fleet the rules need.
#[derive(Debug, Clone)]
pub struct ClinicPolicy {
    /// The report interval and the server's account names (the clinic's are in `accounts`).
    pub agent: Arc<AgentPolicy>,
    /// The account names the clinic's terminals are given (the server's, with the clinic's
    /// over them), and their [`accounts_key`].
    pub accounts: Arc<Vec<AccountSpec>>,
    pub accounts_key: u64,
    pub hours: BusinessHours,
    /// Watched app name → expected version.
    pub expected_versions: Arc<HashMap<String, ExpectedVersion>>,
    /// A terminal is offline after this many missed intervals within business hours.
    pub offline_after_intervals: u32,
    /// The thresholds, the clinic's over the server's.
    pub thresholds: Arc<Thresholds>,
    /// A pending file rename alone counts as a pending reboot.
    pub file_rename_counts: bool,
}

impl ClinicPolicy {
    pub fn new(agent: AgentPolicy) -> Self {
        ClinicPolicy {
            accounts_key: accounts_key(&agent.accounts),
            accounts: Arc::new(agent.accounts.clone()),
            agent: Arc::new(agent),
            hours: BusinessHours::default(),
            expected_versions: Arc::new(HashMap::new()),
            offline_after_intervals: 3,
            thresholds: Arc::new(Thresholds::default()),
            file_rename_counts: false,
        }
    }

    /// The name the given terminal's account of `role` has: the terminal's own, else the
    /// clinic's.
    pub fn expected_name<'a>(&'a self, t: &'a RuleInput, role: AccountRole) -> Option<&'a str> {
        let find = |list: &'a [AccountSpec]| {
            list.iter()
                .find(|a| a.role == role)
                .map(|a| a.name.as_str())
        };
        t.own_accounts
            .as_deref()
            .and_then(|own| find(own))
            .or_else(|| find(&self.accounts))
    }

    /// The names the terminal is given, all roles (what its agent's policy carries).
    pub fn accounts_for(&self, own: Option<&[AccountSpec]>) -> Vec<AccountSpec> {
        match own {
            Some(own) => AccountSpec::merged(&self.accounts, own),
            None => self.accounts.to_vec(),
        }
    }

    /// The [`accounts_key`] of the names the terminal is given.
    pub fn accounts_key_of(&self, t: &RuleInput) -> u64 {
        match t.own_accounts.as_deref() {
            Some(own) => accounts_key(&self.accounts_for(Some(own))),
            None => self.accounts_key,
        }
    }
}

/// Every threshold of the rules (DESIGN §5's values by default; `[rules]` in the settings,
/// some per clinic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    pub restart_warning: Duration,
    pub restart_critical: Duration,
    pub update_grace: Duration,
    pub pending_reboot_grace: Duration,
    /// Days left at which an expiry notice goes out once each (above 30 days: information).
    pub cert_steps: Vec<i64>,
    /// From this many days left, a critical notice every day.
    pub cert_daily_from: i64,
    pub backup_grace: Duration,
    pub password_warning: Duration,
    /// How long a change event keeps its alert open unless staff resolve it.
    pub event_window: Duration,
    /// Whole open days (by the clinic's calendar) without a report before offline is
    /// critical.
    pub offline_critical_days: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            restart_warning: Duration::hours(26),
            restart_critical: Duration::hours(72),
            update_grace: Duration::hours(24),
            pending_reboot_grace: Duration::hours(24),
            cert_steps: vec![90, 60, 30, 15],
            cert_daily_from: 7,
            backup_grace: Duration::days(7),
            password_warning: Duration::days(14),
            event_window: Duration::days(7),
            offline_critical_days: 3,
        }
    }
}

/// Every rule of DESIGN §5 for one terminal at `now`.
pub fn evaluate(t: &RuleInput, policy: &ClinicPolicy, now: DateTime<Utc>) -> Vec<Finding> {
    let (baseline, _) = account_baseline(t, policy);
    evaluate_with(t, baseline.as_ref(), policy, now)
}

/// [`evaluate`] with the account baseline already resolved.
pub fn evaluate_with(
    t: &RuleInput,
    baseline: Option<&AccountBaseline>,
    policy: &ClinicPolicy,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let th = &policy.thresholds;
    offline::offline(t, policy, now, &mut out);
    if let Some(s) = &t.snapshot {
        restart::restart(s, t.collected_at, th, &mut out);
        apps::pending_reboot(s, policy, now, &mut out);
        certificates::certificates(s, th, now, &mut out);
        network::probes(s, &mut out);
        apps::updates_behind(s, policy, now, &mut out);
        certificates::backup(s, t, th, now, &mut out);
    }
    accounts::accounts(t, baseline, policy, now, &mut out);
    network::network_events(t, th, now, &mut out);
    out
}

/// A change to an account the clinic may change: recorded for audit, never alerted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
    pub terminal_id: Uuid,
    pub what: String,
}

/// The audit entries a terminal's events make.
pub fn audit_entries(t: &RuleInput) -> Vec<AuditEntry> {
    t.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AccountChanged { role, name, change } if !role.is_protected() => {
                Some(AuditEntry {
                    event_id: e.id,
                    at: e.at,
                    terminal_id: t.terminal_id,
                    what: format!("{} ({name}): {}", role.label_ja(), change.label_ja()),
                })
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;

    #[test]
    fn healthy_terminal_has_no_findings() {
        let t = state(healthy());
        assert_eq!(rules(&t, &policy(), t.last_seen.unwrap()), vec![]);
    }

    /// What a clinic reads under each title: Japanese, and never the title again.
    #[test]
    fn every_detail_is_japanese_and_does_not_repeat_its_title() {
        use chrono::Duration;
        use onshi_shared::{
            AccountChange, AccountRole, Event, EventKind, PendingReboot, ProbeResult, RebootMarker,
            RebootSource,
        };
        let now = healthy().collected_at;
        let mut s = healthy();
        s.uptime.last_start = now - Duration::hours(100);
        let mut old = s.certificates.certs[0].clone();
        old.thumbprint = "F".repeat(40);
        old.not_after = now - Duration::days(30);
        s.certificates.certs.push(old);
        let cert = &mut s.certificates.certs[0];
        cert.has_private_key = false;
        cert.not_after = now + Duration::days(5);
        s.certificates.backup = None;
        s.network.probes = vec![ProbeResult {
            target: "oqs-portal.example:443".into(),
            reachable: false,
            latency_ms: None,
            error: Some("connection timed out".into()),
        }];
        s.apps.pending_reboot = Some(PendingReboot {
            reasons: vec!["CBS RebootPending".into()],
            since: Some(now - Duration::hours(48)),
            markers: vec![RebootMarker {
                source: RebootSource::ComponentServicing,
                since: Some(now - Duration::hours(48)),
                detail: None,
            }],
        });
        s.accounts.accounts[0].password_expires = Some(now + Duration::days(3));
        s.accounts.accounts[1].exists = false;
        let mut t = state(s);
        t.events.push(Event::new(
            now - Duration::hours(1),
            EventKind::NetworkChanged {
                from_fingerprint: "a".into(),
                to_fingerprint: "b".into(),
                changes: vec![
                    "gateway 192.168.1.1 -> 192.168.2.1".into(),
                    "something the server has no words for".into(),
                ],
            },
        ));
        t.events.push(Event::new(
            now - Duration::hours(1),
            EventKind::AccountChanged {
                role: AccountRole::Linkage,
                name: "renkei".into(),
                change: AccountChange::PasswordChanged,
            },
        ));
        let findings = super::evaluate(&t, &policy(), now);
        assert!(findings.len() >= 10, "{findings:?}");
        for f in &findings {
            let title = f.rule.title_ja();
            assert!(!f.detail.contains(title), "{title}: {}", f.detail);
            for english in [
                "gateway",
                "timed",
                "Reboot",
                "CBS",
                "pending",
                "critical",
                "warning",
                "deleted",
                "something",
                "none",
                "expired",
            ] {
                assert!(!f.detail.contains(english), "{title}: {}", f.detail);
            }
            assert!(
                !f.detail.contains(" 時間") && !f.detail.contains(" 日"),
                "{title}: durations as 7日と23時間: {}",
                f.detail
            );
        }
    }
}
