//! `onshi-demo`: the real server on embedded SQLite plus a simulated fleet. Parse, set up
//! logging, run (everything else is in the library).

use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = onshi_demo::Args::parse();
    onshi_server::telemetry::init(&args.log, args.log_format).context("--log")?;
    Ok(onshi_demo::run(args).await?)
}
