//! `onshi-server`: ingests agent reports, keeps the fleet's state, shows the support desk a
//! dashboard. The binary is a thin CLI over this library; tests drive the same entry points.

pub mod alerts;
pub mod auth;
pub mod calendar;
pub mod config;
pub mod demo;
pub mod enroll;
pub mod ingest;
pub mod jobs;
pub mod notify;
pub mod rules;
pub mod startup;
pub mod store;
pub mod web;

use thiserror::Error;

pub use config::Config;
pub use startup::Application;

/// Every failure the server library reports.
#[derive(Debug, Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database (ingest writer): {0}")]
    Sqlite(#[from] rusqlite::Error),
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
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("password hashing: {0}")]
    Password(String),
}

/// Installs the process-wide rustls crypto provider (ring). sqlx and reqwest may each pull in a
/// different one; installing ours first makes the choice explicit.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
