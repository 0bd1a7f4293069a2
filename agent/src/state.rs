//! What the agent remembers between collections and across restarts: the last snapshot (so
//! changes made while the agent was down are detected at start), the next report `seq`, and the
//! account identities last seen per role. Kept in `<data-dir>/state.json`.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use onshi_shared::{AccountRole, Snapshot};
use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, Access};
use crate::error::AgentError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    pub last_snapshot: Option<Snapshot>,
    /// The `seq` of the next report; strictly increasing.
    pub next_seq: u64,
    #[serde(default)]
    pub known_sids: BTreeMap<AccountRole, String>,
}

impl AgentState {
    /// A first state. `seq` starts at the current time in milliseconds rather than 1, so that
    /// an agent whose state file was lost still sends higher `seq`s than it did before.
    pub fn fresh(now: DateTime<Utc>) -> AgentState {
        AgentState {
            last_snapshot: None,
            next_seq: u64::try_from(now.timestamp_millis()).unwrap_or(0).max(1),
            known_sids: BTreeMap::new(),
        }
    }

    /// Reads `state.json`; a missing or unreadable file gives a [fresh](Self::fresh) state (an
    /// unreadable one is logged: changes since the last run will not be seen this once).
    pub fn load(path: &Path, now: DateTime<Utc>) -> AgentState {
        match atomic_file::read_json::<AgentState>(path) {
            Ok(Some(state)) => state,
            Ok(None) => AgentState::fresh(now),
            Err(e) => {
                tracing::error!(error = %e, "state file unreadable; starting afresh");
                AgentState::fresh(now)
            }
        }
    }

    /// Writes `state.json` atomically.
    pub fn save(&self, path: &Path) -> Result<(), AgentError> {
        atomic_file::write_json(path, self, Access::Default)
    }

    /// Takes the next `seq`.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }
}

#[cfg(test)]
mod tests {
    use onshi_shared::sample;

    use super::*;

    #[test]
    fn round_trips_and_survives_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let now = Utc::now();
        let mut state = AgentState::load(&path, now);
        assert_eq!(state, AgentState::fresh(now));
        state.last_snapshot = Some(sample::snapshot());
        state
            .known_sids
            .insert(AccountRole::FaceAuth, "uid:1002".into());
        let seq = state.take_seq();
        assert_eq!(state.next_seq, seq + 1);
        state.save(&path).unwrap();
        assert_eq!(AgentState::load(&path, now), state);

        std::fs::write(&path, b"{").unwrap();
        let later = now + chrono::Duration::seconds(5);
        let again = AgentState::load(&path, later);
        assert!(
            again.next_seq > seq,
            "seq keeps increasing after the state is lost"
        );
    }
}
