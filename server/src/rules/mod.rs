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
use onshi_shared::{AgentPolicy, Event, EventKind, Snapshot};
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
    /// Change events from the last [`EVENT_WINDOW`] (older ones may be left out), oldest first.
    pub events: Vec<Event>,
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
    /// The accounts the terminal must have (by role) and the report interval.
    pub agent: Arc<AgentPolicy>,
    pub hours: BusinessHours,
    /// Watched app name → expected version.
    pub expected_versions: Arc<HashMap<String, ExpectedVersion>>,
    /// A terminal is offline after this many missed intervals within business hours.
    pub offline_after_intervals: u32,
}

impl ClinicPolicy {
    pub fn new(agent: AgentPolicy) -> Self {
        ClinicPolicy {
            agent: Arc::new(agent),
            hours: BusinessHours::default(),
            expected_versions: Arc::new(HashMap::new()),
            offline_after_intervals: 3,
        }
    }
}

pub const RESTART_WARNING: Duration = Duration::hours(26);
pub const RESTART_CRITICAL: Duration = Duration::hours(72);
pub const UPDATE_GRACE: Duration = Duration::hours(24);
pub const PENDING_REBOOT_GRACE: Duration = Duration::hours(24);
/// Days left at which an expiry notice goes out once each; from [`CERT_DAILY_FROM`] daily.
pub const CERT_STEPS: [i64; 4] = [90, 60, 30, 15];
pub const CERT_DAILY_FROM: i64 = 7;
pub const BACKUP_GRACE: Duration = Duration::days(7);
pub const PASSWORD_WARNING: Duration = Duration::days(14);
/// How long a change event keeps its alert open unless staff resolve it.
pub const EVENT_WINDOW: Duration = Duration::days(7);
pub const OFFLINE_CRITICAL: Duration = Duration::days(3);

/// Every rule of DESIGN §5 for one terminal at `now`.
pub fn evaluate(t: &RuleInput, policy: &ClinicPolicy, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = Vec::new();
    offline::offline(t, policy, now, &mut out);
    if let Some(s) = &t.snapshot {
        restart::restart(s, t.collected_at, &mut out);
        apps::pending_reboot(s, now, &mut out);
        certificates::certificates(s, now, &mut out);
        accounts::accounts(s, &policy.agent, now, &mut out);
        network::probes(s, &mut out);
        apps::updates_behind(s, policy, now, &mut out);
        certificates::backup(s, t, now, &mut out);
    }
    accounts::account_events(t, now, &mut out);
    network::network_events(t, now, &mut out);
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
}
