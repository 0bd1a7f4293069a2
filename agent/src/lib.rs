//! Onshi Watch agent: reads the terminal's state, detects changes, spools them on disk and
//! pushes reports to the server (DESIGN §1, §4).
//!
//! `sources` only read the OS, `detect` only compares two snapshots, `spool` only stores and
//! replays events, `transport` only speaks HTTP; `runner` ties them together.

#[cfg(windows)]
pub mod application_log;
pub mod atomic_file;
pub mod backup;
pub mod config;
pub mod detect;
pub mod enroll;
pub mod error;
pub mod identity;
pub mod runner;
#[cfg(windows)]
pub mod service;
pub mod sources;
pub mod spool;
pub mod state;
pub mod transport;

pub use config::{AgentConfig, ConfigArgs};
pub use error::AgentError;
pub use identity::{AgentToken, Identity};
