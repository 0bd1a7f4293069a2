//! Sample reports at a given time, for the server's tests.

use chrono::{DateTime, Utc};
use onshi_shared::{
    AccountChange, AccountRole, AccountSpec, AgentPolicy, BackupState, Event, EventKind, Report,
    sample,
};

/// The sample report moved to `now`, without events: a healthy terminal with a verified backup.
pub fn report_at(now: DateTime<Utc>, hostname: &str) -> Report {
    let mut r = sample::report(1);
    let shift = now - r.snapshot.collected_at;
    let s = &mut r.snapshot;
    s.hostname = hostname.into();
    s.collected_at = now;
    s.uptime.last_boot += shift;
    s.uptime.last_start += shift;
    for c in &mut s.certificates.certs {
        c.not_before += shift;
        c.not_after += shift;
    }
    let cert = s.certificates.certs[0].clone();
    s.certificates.backup = Some(BackupState {
        thumbprint: cert.thumbprint,
        verified_at: now,
        not_after: Some(cert.not_after),
        matches_current: true,
    });
    r.sent_at = now;
    r.events.clear();
    r
}

/// Someone changed the linkage account's password (a critical alert).
pub fn linkage_password_changed(at: DateTime<Utc>) -> Event {
    Event::new(
        at,
        EventKind::AccountChanged {
            role: AccountRole::Linkage,
            name: "renkei".into(),
            change: AccountChange::PasswordChanged,
        },
    )
}

/// The policy of a terminal whose Windows account is `onshi` and face-authentication account
/// `kao`, as the sample snapshot has them.
pub fn agent_policy() -> AgentPolicy {
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
