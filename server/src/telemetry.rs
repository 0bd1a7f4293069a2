//! Logging: `tracing` to standard error, as text for people or as one JSON object per line for
//! a log collector.

use crate::Error;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the process's subscriber with an `EnvFilter` directive such as `info` or
/// `onshi_server=debug,tower_http=info`.
pub fn init(filter: &str, format: LogFormat) -> Result<(), Error> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| Error::Config(format!("log filter {filter:?}: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| Error::Config(format!("installing the logger: {e}")))
}
