//! `onshi-demo`: the real `onshi-server` on embedded SQLite plus a fleet of simulated terminals
//! that enroll and report through the real HTTP API, so a newcomer sees a living dashboard and
//! the mails it writes. Not part of the production server: it is the only piece that needs an
//! HTTP client.

pub mod fleet;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use onshi_server::config::ConfigArgs;
use onshi_server::evaluator::Evaluator;
use onshi_server::store::DatabaseUrl;
use onshi_server::telemetry::LogFormat;
use onshi_server::{Application, Config};

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Server(#[from] onshi_server::Error),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    Setup(String),
}

#[derive(Debug, Parser)]
#[command(
    name = "onshi-demo",
    version,
    about = "Onshi Watch with a simulated fleet on a local SQLite database"
)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long, env = "ONSHI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Number of simulated terminals.
    #[arg(long, default_value_t = 300)]
    pub terminals: usize,
    /// Report interval of the simulated terminals, in seconds.
    #[arg(long, default_value_t = 30)]
    pub interval_secs: u32,
    /// Password of the demo's `demo` admin account (default: generated and printed).
    #[arg(long, env = "ONSHI_DEMO_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    #[arg(long, env = "ONSHI_LOG", default_value = "info")]
    pub log: String,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// A marker that makes a directory safe for the demo to wipe at start.
const DEMO_MARKER: &str = ".onshi-demo";

/// Runs the server and the fleet until Ctrl-C.
pub async fn run(args: Args) -> Result<(), Error> {
    onshi_server::install_crypto_provider();
    let mut config_args = args.config.clone();
    if config_args.data_dir.is_none() && config_args.database_url.is_none() {
        config_args.data_dir = Some(PathBuf::from("demo-data"));
    }
    let mut config = Config::load(&config_args, Some(args.listen))?;
    if !matches!(config.database()?, DatabaseUrl::Sqlite(_)) {
        return Err(Error::Setup(
            "the demo runs on embedded SQLite only; drop --database-url".into(),
        ));
    }
    reset_data_dir(&config.data_dir)?;
    config.policy = fleet::demo_policy(args.interval_secs);
    config.alerts.evaluate_every_secs = 10;
    if !config.smtp.enabled() {
        config.smtp.file_dir = Some(mail_dir(&config.data_dir));
        config.smtp.desk = Some("desk@example.jp".into());
    }
    let mail_note = match &config.smtp.file_dir {
        Some(dir) => format!("mails: written to {}/*.eml", dir.display()),
        None => format!(
            "mails: sent through {}:{}",
            config.smtp.host,
            config.smtp.port()
        ),
    };
    let digest_after = Duration::from_secs(u64::from(args.interval_secs) * 4 + 20);
    let digest_config = config.clone();
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    let desk = app.desk();
    let server = tokio::spawn(app.run_until_stopped(onshi_server::startup::shutdown_signal()));
    let base = format!("http://{addr}");
    let mut terminals = fleet::enroll_fleet(&desk, &base, args.terminals).await?;
    fleet::seed_history(desk.store(), &mut terminals, 30).await?;
    fleet::prepare_clinics(&desk).await?;
    fleet::prepare_silences(&desk, &terminals).await?;
    tokio::spawn(fleet::acknowledge_when_open(
        desk.clone(),
        terminals.iter().map(|t| t.agent_id).collect(),
    ));
    let password = fleet::create_demo_user(&desk, args.password).await?;
    // Today's digest once the fleet has reported a few times, so a newcomer can read one.
    let digest_store = desk.store().clone();
    tokio::spawn(async move {
        tokio::time::sleep(digest_after).await;
        let mut evaluator = Evaluator::from_config(digest_store, &digest_config);
        if let Err(e) = evaluator.write_digests(Utc::now()).await {
            tracing::warn!(error = %e, "writing the demo digests failed");
        }
    });
    for t in terminals {
        tokio::spawn(fleet::simulate(base.clone(), t));
    }
    println!(
        "Onshi Watch demo: {} simulated terminals reporting every {} s",
        args.terminals, args.interval_secs
    );
    println!("dashboard: {}", dashboard_url(addr));
    println!("login: {} / password: {password}", fleet::DEMO_USER);
    println!(
        "limited to a scope, same password: {} (viewer of 東京都), {} (admin of the group {})",
        fleet::DEMO_REGIONAL_USER,
        fleet::DEMO_DEALER_USER,
        fleet::DEMO_GROUP
    );
    println!("{mail_note}");
    println!("stop with Ctrl-C");
    server
        .await
        .map_err(|e| Error::Setup(format!("the server task failed: {e}")))??;
    Ok(())
}

/// Where the demo writes the mails it would send.
pub fn mail_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("mail")
}

/// Prepares the demo's data directory: refuses to wipe a directory it did not create.
pub fn reset_data_dir(dir: &Path) -> Result<(), Error> {
    let io = |what: &str, e: std::io::Error| {
        Error::Server(onshi_server::Error::Io(
            format!("{what} {}", dir.display()),
            e,
        ))
    };
    if dir.exists() {
        let is_demo = dir.join(DEMO_MARKER).exists();
        let empty = std::fs::read_dir(dir)
            .map_err(|e| io("reading", e))?
            .next()
            .is_none();
        if !is_demo && !empty {
            return Err(Error::Setup(format!(
                "{} holds data that is not the demo's; pass another --data-dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(|e| io("clearing", e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    std::fs::write(dir.join(DEMO_MARKER), "created by onshi-demo\n")
        .map_err(|e| io("writing in", e))
}

/// The dashboard address for a listen address (0.0.0.0 shows as localhost).
pub fn dashboard_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_wipes_only_its_own_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("onshi.db"), "someone's real data").unwrap();
        assert!(reset_data_dir(&data).is_err());
        assert!(data.join("onshi.db").exists());
        let demo = dir.path().join("demo");
        reset_data_dir(&demo).unwrap();
        std::fs::write(demo.join("onshi.db"), "demo data").unwrap();
        reset_data_dir(&demo).unwrap();
        assert!(
            !demo.join("onshi.db").exists(),
            "the demo's own data is reset"
        );
        assert_eq!(
            dashboard_url("0.0.0.0:8080".parse().unwrap()),
            "http://localhost:8080/"
        );
    }
}
