//! Change events the agent detects between two snapshots.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::{ProtocolError, Validate, check_opt, check_str, check_strs};
use crate::snapshot::{AccountRole, StartKind};

/// One change, with a UUIDv7 id so a replayed report stores it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub id: Uuid,
    /// When the agent saw the change (or, for a restart, when the machine started).
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// A new event with a fresh, time-ordered id.
    pub fn new(at: DateTime<Utc>, kind: EventKind) -> Self {
        Event {
            id: Uuid::now_v7(),
            at,
            kind,
        }
    }
}

/// What changed to a monitored account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AccountChange {
    Created,
    Deleted,
    Renamed { from: String, to: String },
    PasswordChanged,
    Disabled,
    Enabled,
    Locked,
    Unlocked,
}

impl AccountChange {
    /// The change in Japanese, as the desk's pages and the clinics' mails word it.
    pub fn label_ja(&self) -> String {
        match self {
            AccountChange::Created => "作成".into(),
            AccountChange::Deleted => "削除".into(),
            AccountChange::Renamed { from, to } => format!("名前の変更 ({from} → {to})"),
            AccountChange::PasswordChanged => "パスワードの変更".into(),
            AccountChange::Disabled => "無効化".into(),
            AccountChange::Enabled => "有効化".into(),
            AccountChange::Locked => "ロックアウト".into(),
            AccountChange::Unlocked => "ロック解除".into(),
        }
    }

    /// Whether this change breaks a protected account (creating, enabling or unlocking one
    /// puts things back).
    pub fn breaks_protected(&self) -> bool {
        !matches!(
            self,
            AccountChange::Created | AccountChange::Enabled | AccountChange::Unlocked
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The agent process started (after install, an update, or a machine start).
    AgentStarted { version: String },
    /// The machine started since the previous snapshot.
    Rebooted {
        previous_start: Option<DateTime<Utc>>,
        start: DateTime<Utc>,
        start_kind: StartKind,
        clean_shutdown: Option<bool>,
    },
    AccountChanged {
        role: AccountRole,
        name: String,
        #[serde(flatten)]
        change: AccountChange,
    },
    NetworkChanged {
        from_fingerprint: String,
        to_fingerprint: String,
        /// Human-readable differences, e.g. `gateway 192.168.1.1 -> 192.168.2.1`.
        changes: Vec<String>,
    },
    AppUpdated {
        name: String,
        from: Option<String>,
        to: Option<String>,
    },
    CertChanged {
        thumbprint: String,
        subject: String,
        not_after: DateTime<Utc>,
        added: bool,
    },
    BackupVerified {
        thumbprint: String,
        matches_current: bool,
    },
}

impl EventKind {
    /// A short stable name for storage and filters.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::AgentStarted { .. } => "agent_started",
            EventKind::Rebooted { .. } => "rebooted",
            EventKind::AccountChanged { .. } => "account_changed",
            EventKind::NetworkChanged { .. } => "network_changed",
            EventKind::AppUpdated { .. } => "app_updated",
            EventKind::CertChanged { .. } => "cert_changed",
            EventKind::BackupVerified { .. } => "backup_verified",
        }
    }

    /// Informational events are the first the spool drops when it is full.
    pub fn is_informational(&self) -> bool {
        matches!(self, EventKind::AgentStarted { .. })
    }
}

impl Validate for Event {
    fn validate(&self) -> Result<(), ProtocolError> {
        if self.id.get_version_num() != 7 {
            return Err(ProtocolError::Invalid {
                field: "events.id",
                reason: "must be a UUIDv7",
            });
        }
        match &self.kind {
            EventKind::AgentStarted { version } => check_str("events.version", version),
            EventKind::Rebooted { .. } => Ok(()),
            EventKind::AccountChanged { name, change, .. } => {
                check_str("events.name", name)?;
                if let AccountChange::Renamed { from, to } = change {
                    check_str("events.from", from)?;
                    check_str("events.to", to)?;
                }
                Ok(())
            }
            EventKind::NetworkChanged {
                from_fingerprint,
                to_fingerprint,
                changes,
            } => {
                check_str("events.from_fingerprint", from_fingerprint)?;
                check_str("events.to_fingerprint", to_fingerprint)?;
                check_strs("events.changes", changes)
            }
            EventKind::AppUpdated { name, from, to } => {
                check_str("events.name", name)?;
                check_opt("events.from", from)?;
                check_opt("events.to", to)
            }
            EventKind::CertChanged {
                thumbprint,
                subject,
                ..
            } => {
                check_str("events.thumbprint", thumbprint)?;
                check_str("events.subject", subject)
            }
            EventKind::BackupVerified { thumbprint, .. } => {
                check_str("events.thumbprint", thumbprint)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_roles_store_under_their_wire_names() {
        for r in AccountRole::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
            assert_eq!(AccountRole::parse(r.as_str()), Some(r));
        }
        let specs = |name: &str| {
            vec![crate::AccountSpec {
                role: AccountRole::Linkage,
                name: name.into(),
            }]
        };
        assert_eq!(
            crate::accounts_key(&specs("renkei")),
            crate::accounts_key(&specs("renkei"))
        );
        assert_ne!(
            crate::accounts_key(&specs("renkei")),
            crate::accounts_key(&specs("renkei2"))
        );
        assert_ne!(crate::accounts_key(&[]), 0, "0 means not reported");
        // Order and unprotected roles do not count.
        let spec = |role, name: &str| crate::AccountSpec {
            role,
            name: name.into(),
        };
        let a = [
            spec(AccountRole::Windows, "onshi"),
            spec(AccountRole::Linkage, "renkei"),
        ];
        let b = [
            spec(AccountRole::Administrator, "admin"),
            spec(AccountRole::Linkage, "renkei"),
            spec(AccountRole::Windows, "onshi"),
        ];
        assert_eq!(crate::accounts_key(&a), crate::accounts_key(&b));
        let merged = crate::AccountSpec::merged(&b, &[spec(AccountRole::Windows, "受付")]);
        assert_eq!(
            merged,
            vec![
                spec(AccountRole::Windows, "受付"),
                spec(AccountRole::Linkage, "renkei"),
                spec(AccountRole::Administrator, "admin"),
            ]
        );
    }

    #[test]
    fn start_kinds_store_under_their_wire_names() {
        for k in StartKind::ALL {
            let wire = serde_json::to_string(&k).unwrap();
            assert_eq!(wire, format!("\"{}\"", k.as_str()));
            assert_eq!(StartKind::parse(k.as_str()), k);
        }
        assert_eq!(StartKind::parse("warp"), StartKind::Unknown);
        assert!(StartKind::FastStartup.counts_as_restart());
        assert!(!StartKind::Resume.counts_as_restart());
    }

    #[test]
    fn every_kind_round_trips_with_a_flat_tag() {
        let at = Utc::now();
        let kinds = vec![
            EventKind::AgentStarted {
                version: "0.1.0".into(),
            },
            EventKind::Rebooted {
                previous_start: Some(at),
                start: at,
                start_kind: StartKind::FastStartup,
                clean_shutdown: Some(false),
            },
            EventKind::AccountChanged {
                role: AccountRole::Windows,
                name: "onshi".into(),
                change: AccountChange::Renamed {
                    from: "onshi".into(),
                    to: "onshi2".into(),
                },
            },
            EventKind::NetworkChanged {
                from_fingerprint: "a".into(),
                to_fingerprint: "b".into(),
                changes: vec!["gateway 192.168.1.1 -> 192.168.2.1".into()],
            },
            EventKind::AppUpdated {
                name: "配信アプリ".into(),
                from: Some("1".into()),
                to: Some("2".into()),
            },
            EventKind::CertChanged {
                thumbprint: "AB".into(),
                subject: "CN=x".into(),
                not_after: at,
                added: true,
            },
            EventKind::BackupVerified {
                thumbprint: "AB".into(),
                matches_current: true,
            },
        ];
        for kind in kinds {
            let event = Event::new(at, kind);
            event.validate().unwrap();
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["kind"], event.kind.name());
            let back: Event = serde_json::from_value(json).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn account_change_is_flat_in_json() {
        let event = Event::new(
            Utc::now(),
            EventKind::AccountChanged {
                role: AccountRole::Linkage,
                name: "renkei".into(),
                change: AccountChange::PasswordChanged,
            },
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["role"], "linkage");
        assert_eq!(json["change"], "password_changed");
    }

    #[test]
    fn non_v7_ids_are_rejected() {
        let mut event = Event::new(
            Utc::now(),
            EventKind::AgentStarted {
                version: "0.1.0".into(),
            },
        );
        event.id = Uuid::nil();
        assert!(event.validate().is_err());
    }
}
