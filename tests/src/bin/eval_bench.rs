//! Rule-evaluation benchmark: a full evaluator pass (load every terminal's state, run the rules,
//! write the alert changes and their outbox rows) over a large fleet on SQLite.
//!
//! `cargo run --release -p onshi-e2e --bin eval-bench -- --terminals 250000`

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use clap::Parser;
use onshi_server::config::{DbArgs, FileConfig};
use onshi_server::enroll::{hash_code, issue_code};
use onshi_server::jobs::Evaluator;
use onshi_server::notify::Composer;
use onshi_server::store::NewTerminal;
use onshi_server::{Config, ingest};
use onshi_shared::sample;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Terminals in the fleet; one in ten has not restarted for 30 hours.
    #[arg(long, default_value_t = 250_000)]
    terminals: usize,
    /// Full passes to time (the first one opens the alerts, later ones find nothing new).
    #[arg(long, default_value_t = 3)]
    passes: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    onshi_server::install_crypto_provider();
    let work = tempfile::tempdir()?;
    let db = DbArgs {
        data_dir: Some(work.path().to_path_buf()),
        ..Default::default()
    };
    let config = Config::resolve(FileConfig::default(), &db, None)?;
    let store = onshi_server::store::connect(&config.database).await?;
    let now = Utc::now();
    let clinic = store
        .create_clinic("ベンチマーク医院", "bench@example.jp", now)
        .await?;
    let code = issue_code(store.as_ref(), &clinic, now, 1).await?;

    let setup = Instant::now();
    let mut report = sample::report(1);
    report.events.clear();
    report.snapshot.collected_at = now;
    for chunk in 0..args.terminals.div_ceil(1000) {
        let n = 1000.min(args.terminals - chunk * 1000);
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        let terminals: Vec<NewTerminal> = ids
            .iter()
            .map(|id| NewTerminal {
                id: *id,
                token_hash: id.to_string(),
                hostname: "BENCH".into(),
                agent_version: "bench".into(),
                os: "bench".into(),
            })
            .collect();
        store
            .enroll(&hash_code(&code), &terminals, now)
            .await?
            .context("bench enrollment code refused")?;
        let rows = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut r = report.clone();
                r.agent_id = *id;
                r.snapshot.hostname = format!("BENCH-{chunk}-{i}");
                if i % 10 == 0 {
                    r.snapshot.uptime.last_start = now - Duration::hours(30);
                }
                ingest::prepare(r, *id, &config.policy, now)
            })
            .collect::<Result<Vec<_>, _>>()?;
        store.write_batch(&rows).await?;
    }
    store.sync_committed().await?;
    eprintln!(
        "{} terminals stored in {:.1} s",
        args.terminals,
        setup.elapsed().as_secs_f64()
    );

    let mut evaluator = Evaluator::new(
        store.clone(),
        config.policy.clone(),
        config.offline_after_intervals,
        config.evaluator.clone(),
        Arc::new(Composer::new(config.mail.clone())),
    );
    println!("| pass | terminals | findings | alert changes | time |\n|---|---|---|---|---|");
    for pass in 1..=args.passes {
        let started = Instant::now();
        let stats = evaluator.full_pass(now).await?;
        println!(
            "| {pass} | {} | {} | {} | {:.2} s |",
            stats.terminals,
            stats.findings,
            stats.changes,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
