//! `onshi-server`: parse the command line, set up logging, run. Everything else is in the
//! library (`onshi_server::cli`).

use anyhow::Context;
use clap::Parser;
use onshi_server::cli::{self, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    onshi_server::telemetry::init(&cli.log, cli.log_format).context("--log")?;
    Ok(cli::run(cli).await?)
}
