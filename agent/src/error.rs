//! The crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

use onshi_shared::ProtocolError;
use thiserror::Error;

use crate::transport::SendError;

/// Everything that can go wrong in the agent outside a single source field (sources degrade
/// per field with a [`SourceNote`](onshi_shared::SourceNote) instead of failing).
#[derive(Debug, Error)]
pub enum AgentError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {detail}")]
    Parse { what: &'static str, detail: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("not enrolled: run `onshi-agent enroll --server URL --code CODE` first")]
    NotEnrolled,
    #[error("already enrolled as agent {agent_id}; pass --force to enroll again")]
    AlreadyEnrolled { agent_id: uuid::Uuid },
    #[error("spool {}: {detail}", path.display())]
    Spool { path: PathBuf, detail: String },
    #[error("another onshi-agent is already using {}", path.display())]
    Locked { path: PathBuf },
    #[error("invalid message: {0}")]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Send(#[from] SendError),
}

impl AgentError {
    /// An I/O error with what was being done to which file.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        AgentError::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(what: &'static str, detail: impl Into<String>) -> Self {
        AgentError::Parse {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn json(path: impl AsRef<Path>, source: serde_json::Error) -> Self {
        AgentError::Json {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}
