//! The wire protocol between `onshi-agent` and `onshi-server`.
//!
//! Serde types only, no I/O. Both sides enforce the [`limits`] with [`Validate`], so an
//! agent never sends what the server would reject and the server never stores what it did not
//! expect.

pub mod event;
pub mod limits;
pub mod policy;
pub mod snapshot;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use event::{AccountChange, Event, EventKind};
pub use limits::{ProtocolError, Validate};
pub use policy::{AccountSpec, AgentPolicy, accounts_key};
pub use snapshot::*;

/// The schema version this build speaks. The server accepts this one and the previous one.
pub const SCHEMA_VERSION: u32 = 1;

/// The oldest schema version the server still accepts.
pub const MIN_SCHEMA_VERSION: u32 = if SCHEMA_VERSION > 1 {
    SCHEMA_VERSION - 1
} else {
    1
};

/// Whether a schema version is one the server accepts.
pub fn schema_supported(schema: u32) -> bool {
    (MIN_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&schema)
}

/// `POST /api/v1/enroll` body: an agent asks to join a clinic with a code from the desk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    pub schema: u32,
    pub code: String,
    pub hostname: String,
    pub agent_version: String,
    pub os: String,
}

/// `POST /api/v1/enroll` reply. The token is shown once; the server keeps only its hash.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    pub agent_id: Uuid,
    pub token: String,
    pub clinic_name: String,
    pub policy: AgentPolicy,
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("agent_id", &self.agent_id)
            .field("token", &"<redacted>")
            .field("clinic_name", &self.clinic_name)
            .field("policy", &self.policy)
            .finish()
    }
}

/// `POST /api/v1/report` body: the whole current state plus the change events not yet
/// acknowledged, in the order they happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub schema: u32,
    pub agent_id: Uuid,
    /// Strictly increasing per agent; the latest snapshot by `seq` wins.
    pub seq: u64,
    pub sent_at: DateTime<Utc>,
    pub snapshot: Snapshot,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// `POST /api/v1/report` reply, sent only after the report is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportAck {
    /// The report's `seq`; every event it carried is stored (exactly once).
    pub acked_seq: u64,
    /// When to report next. Larger than usual when the server asks agents to slow down.
    pub next_interval_secs: u32,
    pub policy: AgentPolicy,
}

/// The JSON body of every 4xx/5xx answer from the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub error: String,
    pub detail: String,
    /// With `stale_seq` (409): the highest `seq` the server holds for this agent. An agent
    /// restored from an older copy of its data sends its next report above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_seq: Option<u64>,
}

impl Validate for EnrollRequest {
    fn validate(&self) -> Result<(), ProtocolError> {
        limits::check_schema(self.schema)?;
        limits::check_str("code", &self.code)?;
        limits::check_str("hostname", &self.hostname)?;
        limits::check_str("agent_version", &self.agent_version)?;
        limits::check_str("os", &self.os)
    }
}

impl Validate for Report {
    fn validate(&self) -> Result<(), ProtocolError> {
        limits::check_schema(self.schema)?;
        if self.events.len() > limits::MAX_EVENTS_PER_REPORT {
            return Err(ProtocolError::TooMany {
                field: "events",
                len: self.events.len(),
                max: limits::MAX_EVENTS_PER_REPORT,
            });
        }
        self.snapshot.validate()?;
        self.events.iter().try_for_each(Validate::validate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_through_json() {
        let report = snapshot::sample::report(7);
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        back.validate().unwrap();
    }

    #[test]
    fn sample_report_is_small() {
        let json = serde_json::to_vec(&snapshot::sample::report(1)).unwrap();
        assert!(json.len() < 4096, "sample report is {} bytes", json.len());
    }

    #[test]
    fn schema_window_is_current_and_previous() {
        assert!(schema_supported(SCHEMA_VERSION));
        assert!(!schema_supported(SCHEMA_VERSION + 1));
        assert!(!schema_supported(0));
    }

    #[test]
    fn unknown_schema_is_rejected() {
        let mut report = snapshot::sample::report(1);
        report.schema = SCHEMA_VERSION + 1;
        assert!(matches!(
            report.validate(),
            Err(ProtocolError::Schema { .. })
        ));
    }

    #[test]
    fn too_many_events_are_rejected() {
        let mut report = snapshot::sample::report(1);
        let event = report.events[0].clone();
        report.events = vec![event; limits::MAX_EVENTS_PER_REPORT + 1];
        assert!(matches!(
            report.validate(),
            Err(ProtocolError::TooMany {
                field: "events",
                ..
            })
        ));
    }

    #[test]
    fn long_strings_anywhere_are_rejected() {
        let mut report = snapshot::sample::report(1);
        report.snapshot.accounts.accounts[0].name = "x".repeat(limits::MAX_STRING_LEN + 1);
        assert!(matches!(
            report.validate(),
            Err(ProtocolError::TooLong { .. })
        ));

        let mut report = snapshot::sample::report(1);
        report.snapshot.network.adapters[0].dns = vec!["8.8.8.8".into(); limits::MAX_LIST_LEN + 1];
        assert!(matches!(
            report.validate(),
            Err(ProtocolError::TooMany { .. })
        ));
    }

    #[test]
    fn account_last_change_is_optional_on_the_wire() {
        let report = snapshot::sample::report(1);
        let mut json = serde_json::to_value(&report).unwrap();
        let account = &mut json["snapshot"]["accounts"]["accounts"][0];
        assert!(account.get("last_change").is_none(), "absent when None");
        let back: Report = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, report, "older agents' reports still read");

        let mut report = report;
        report.snapshot.accounts.accounts[0].last_change = Some(AccountLogEntry {
            at: report.sent_at,
            event_id: 4724,
            what: "password_reset".into(),
            by: Some("PC\\kanri".into()),
        });
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        back.validate().unwrap();
        report.snapshot.accounts.accounts[0]
            .last_change
            .as_mut()
            .unwrap()
            .what = "x".repeat(limits::MAX_STRING_LEN + 1);
        assert!(report.validate().is_err());
    }

    #[test]
    fn enroll_response_debug_hides_token() {
        let resp = EnrollResponse {
            agent_id: Uuid::nil(),
            token: "secret-token".into(),
            clinic_name: "c".into(),
            policy: AgentPolicy::default(),
        };
        assert!(!format!("{resp:?}").contains("secret-token"));
    }
}
