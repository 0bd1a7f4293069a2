//! The terminals the rule tests start from.

use chrono::{DateTime, Duration, Utc};
use onshi_shared::{BackupState, Snapshot, accounts_key, sample};
pub use onshi_testkit::reports::agent_policy;
use uuid::Uuid;

use super::{AccountRecord, ClinicPolicy, Finding, RuleInput, evaluate};
use crate::domain::{RuleKey, Severity};

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn policy() -> ClinicPolicy {
    ClinicPolicy::new(agent_policy())
}

/// The sample snapshot (collected Wed 2026-11-25 18:00 JST) with a verified backup.
pub fn healthy() -> Snapshot {
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

/// A terminal enrolled a year ago whose accounts were found under their names then (a
/// baseline for the fixture policy's names, a day old).
pub fn state(s: Snapshot) -> RuleInput {
    RuleInput {
        terminal_id: Uuid::nil(),
        clinic_id: 1,
        enrolled_at: s.collected_at - Duration::days(365),
        last_seen: Some(s.collected_at),
        collected_at: s.collected_at,
        accounts: AccountRecord {
            baseline_key: Some(accounts_key(&agent_policy().accounts)),
            baseline_at: Some(s.collected_at - Duration::days(1)),
            baseline_missing: Vec::new(),
            confirmed: false,
            confirmed_key: None,
            version: 1,
        },
        snapshot: Some(std::sync::Arc::new(s)),
        events: vec![],
        own_accounts: None,
    }
}

pub fn rules(t: &RuleInput, p: &ClinicPolicy, now: DateTime<Utc>) -> Vec<(RuleKey, Severity)> {
    evaluate(t, p, now)
        .into_iter()
        .map(|f| (f.rule, f.severity))
        .collect()
}

pub fn only(t: &RuleInput, now: DateTime<Utc>, rule: RuleKey) -> Option<Finding> {
    evaluate(t, &policy(), now)
        .into_iter()
        .find(|f| f.rule == rule)
}
