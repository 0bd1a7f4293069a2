//! The enrolled identity: who this agent is to the server, its secret token and the policy the
//! server last sent. Kept in `<data-dir>/identity.json`, owner-readable only.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use onshi_shared::AgentPolicy;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::atomic_file::{self, Access};
use crate::error::AgentError;

/// The agent's bearer token. Never printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentToken(String);

impl AgentToken {
    pub fn new(token: String) -> Self {
        AgentToken(token)
    }

    /// The secret itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for AgentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Contents of `identity.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The server this agent enrolled with; used when no `--server` is given.
    pub server: String,
    pub agent_id: Uuid,
    pub token: AgentToken,
    pub clinic_name: String,
    pub enrolled_at: DateTime<Utc>,
    /// The policy from the enrollment reply or the latest report acknowledgement.
    pub policy: AgentPolicy,
}

impl Identity {
    /// Reads `identity.json`; `Ok(None)` when the agent is not enrolled.
    pub fn load(path: &Path) -> Result<Option<Identity>, AgentError> {
        atomic_file::read_json(path)
    }

    /// Writes `identity.json` atomically, owner-readable only.
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| AgentError::io("create", dir, e))?;
        }
        atomic_file::write_json(path, self, Access::Private)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            server: "https://watch.example".into(),
            agent_id: Uuid::now_v7(),
            token: AgentToken::new("s3cret-token-value".into()),
            clinic_name: "Sample Clinic".into(),
            enrolled_at: Utc::now(),
            policy: AgentPolicy::default(),
        }
    }

    #[test]
    fn token_never_shows_in_debug() {
        let id = identity();
        let shown = format!("{id:?} {}", id.token);
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("identity.json");
        assert_eq!(Identity::load(&path).unwrap(), None);
        let id = identity();
        id.save(&path).unwrap();
        assert_eq!(Identity::load(&path).unwrap(), Some(id));
    }
}
