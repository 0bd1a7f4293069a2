use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use onshi_server::config::DbArgs;
use onshi_server::{Application, Config, demo, enroll, startup, store};

#[derive(Parser)]
#[command(name = "onshi-server", version, about = "Onshi Watch server")]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    /// Log filter, e.g. `info` or `onshi_server=debug`.
    #[arg(long, env = "ONSHI_LOG", default_value = "info", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the agent API and the dashboard.
    Serve {
        #[arg(long, env = "ONSHI_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Manage clinics.
    Clinic {
        #[command(subcommand)]
        command: ClinicCommand,
    },
    /// Run the server with a simulated fleet on a local SQLite database.
    Demo {
        #[arg(long, env = "ONSHI_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Number of simulated terminals.
        #[arg(long, default_value_t = 300)]
        terminals: usize,
        /// Report interval of the simulated terminals, in seconds.
        #[arg(long, default_value_t = 30)]
        interval_secs: u32,
    },
    /// Revoke an enrollment code so it enrolls nothing more.
    RevokeCode { code: String },
    /// Revoke a terminal's agent token (the terminal must enroll again). Running servers refuse
    /// it within `revocation_check_secs`.
    RevokeTerminal { terminal_id: uuid::Uuid },
    /// Print the effective configuration, secrets redacted.
    PrintConfig,
}

#[derive(Subcommand)]
enum ClinicCommand {
    /// Create a clinic and print its first enrollment code.
    Add {
        name: String,
        #[arg(long)]
        email: String,
    },
    /// Print a new enrollment code for an existing clinic.
    Code { name: String },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("--log")?)
        .init();
    onshi_server::install_crypto_provider();
    match cli.command {
        Command::Serve { listen } => {
            let config = Config::load(&cli.db, listen)?;
            let app = Application::build(config).await?;
            app.run_until_stopped(startup::shutdown_signal()).await?;
        }
        Command::Clinic { command } => {
            let config = Config::load(&cli.db, None)?;
            let store = store::connect(&config.database).await?;
            let now = Utc::now();
            let (clinic, code) = match command {
                ClinicCommand::Add { name, email } => {
                    if name.trim().is_empty() || !email.contains('@') {
                        bail!("give a clinic name and a valid --email");
                    }
                    let clinic = store.create_clinic(name.trim(), email.trim(), now).await?;
                    let code = enroll::issue_code(
                        store.as_ref(),
                        &clinic,
                        now,
                        config.enrollment_code_days,
                    )
                    .await?;
                    (clinic, code)
                }
                ClinicCommand::Code { name } => {
                    let Some(clinic) = store.clinic_by_name(&name).await? else {
                        bail!("no clinic named {name:?}");
                    };
                    let code = enroll::issue_code(
                        store.as_ref(),
                        &clinic,
                        now,
                        config.enrollment_code_days,
                    )
                    .await?;
                    (clinic, code)
                }
            };
            println!("clinic {} ({})", clinic.name, clinic.id);
            println!("enrollment code: {code}");
            println!("valid for {} days", config.enrollment_code_days);
        }
        Command::Demo {
            listen,
            terminals,
            interval_secs,
        } => {
            let mut db = cli.db.clone();
            if db.data_dir.is_none() && db.database_url.is_none() {
                db.data_dir = Some(PathBuf::from("demo-data"));
            }
            let mut config = Config::load(&db, Some(listen))?;
            if !matches!(config.database, store::DatabaseUrl::Sqlite(_)) {
                bail!("the demo runs on embedded SQLite only; drop --database-url");
            }
            demo::reset_data_dir(&config.data_dir)?;
            config.policy = demo::demo_policy(interval_secs);
            let code_days = config.enrollment_code_days;
            let app = Application::build(config).await?;
            let addr = app.local_addr()?;
            let store = app.store();
            let server = tokio::spawn(app.run_until_stopped(startup::shutdown_signal()));
            let base = format!("http://{addr}");
            let fleet = demo::enroll_fleet(store.as_ref(), &base, terminals, code_days).await?;
            for t in fleet {
                tokio::spawn(demo::simulate(base.clone(), t));
            }
            println!(
                "Onshi Watch demo: {terminals} simulated terminals reporting every {interval_secs} s"
            );
            println!("dashboard: {}", demo::dashboard_url(addr));
            println!("stop with Ctrl-C");
            server.await??;
        }
        Command::RevokeCode { code } => {
            let config = Config::load(&cli.db, None)?;
            let store = store::connect(&config.database).await?;
            if !store
                .revoke_enrollment_code(&enroll::hash_code(&code), Utc::now())
                .await?
            {
                bail!("no active enrollment code {code}");
            }
            println!("enrollment code revoked");
        }
        Command::RevokeTerminal { terminal_id } => {
            let config = Config::load(&cli.db, None)?;
            let store = store::connect(&config.database).await?;
            if !store.revoke_terminal(terminal_id, Utc::now()).await? {
                bail!("no active terminal {terminal_id}");
            }
            println!("terminal {terminal_id} revoked");
        }
        Command::PrintConfig => {
            print!("{}", Config::load(&cli.db, None)?.describe());
        }
    }
    Ok(())
}
