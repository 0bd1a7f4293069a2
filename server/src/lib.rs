//! `onshi-server`: ingests agent reports, keeps the fleet's state, evaluates the rules into
//! alerts, mails clinics what to do and shows the support desk a dashboard. The binary is a
//! thin CLI over this library ([`cli`]); tests drive the same entry points.
//!
//! Along the pipeline: [`web::api`] → [`ingest`] → [`store`] → [`evaluator`] ([`rules`],
//! [`alerts`]) → [`notify`]; staff act through [`desk`] from [`web`] and [`cli`]; the types they
//! all speak are in [`domain`].

pub mod alerts;
pub mod auth;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod desk;
pub mod domain;
pub mod enroll;
pub mod evaluator;
pub mod ingest;
pub mod jst;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod retention;
pub mod rules;
pub mod secrets;
pub mod serve;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod wording;

use thiserror::Error;

pub use config::Config;
pub use startup::Application;

/// Every failure the server library reports.
#[derive(Debug, Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    /// A staff input that does not follow the rules; the message is for the person.
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique value is already taken.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the ingest writer has stopped")]
    WriterGone,
    #[error("storing the report failed: {0}")]
    Batch(std::sync::Arc<Error>),
    #[error("password hashing: {0}")]
    Password(String),
}

impl Error {
    /// The message for the person who asked, when the refusal is theirs to mend.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Error::Invalid(m) | Error::NotFound(m) | Error::Conflict(m) => Some(m),
            _ => None,
        }
    }
}

/// Installs the process-wide rustls crypto provider (ring). sqlx and lettre may each pull in a
/// different one; installing ours first makes the choice explicit.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
