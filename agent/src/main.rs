//! `onshi-agent`: parse the command line, load settings, start logging, call the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use onshi_agent::backup::{self, Password};
use onshi_agent::config::{AgentConfig, ConfigArgs};
use onshi_agent::identity::Identity;
use onshi_agent::runner::{self, RunOptions};
use onshi_agent::{enroll, sources};

#[derive(Parser)]
#[command(
    name = "onshi-agent",
    version,
    about = "Onshi Watch agent for online qualification confirmation terminals"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join a clinic with the enrollment code from the support desk
    Enroll {
        /// The enrollment code
        #[arg(long, env = "ONSHI_AGENT_ENROLL_CODE", hide_env_values = true)]
        code: String,
        /// Replace an existing enrollment
        #[arg(long)]
        force: bool,
    },
    /// Collect once and print the snapshot (works without enrollment)
    Once {
        /// Print the snapshot as JSON
        #[arg(long)]
        json: bool,
    },
    /// Collect and report until stopped (ctrl-c or SIGTERM)
    Run {
        /// Collect every N seconds whatever the server says (for tests)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        interval_secs: Option<u64>,
    },
    /// Check a .pfx backup of the clinic certificate and record the result for the next report.
    ///
    /// Exit codes: 0 good backup, 3 wrong password, 4 not a usable PKCS#12 file (not PKCS#12,
    /// truncated, unsupported encryption), 5 no private key, 6 key does not match the
    /// certificate, 1 other errors.
    VerifyBackup {
        /// The .pfx / .p12 file
        path: PathBuf,
        /// The backup's password [default: 1357, the vendor's default]
        #[arg(
            long,
            env = "ONSHI_AGENT_BACKUP_PASSWORD",
            hide_env_values = true,
            value_name = "P"
        )]
        password: Option<String>,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the effective settings
    PrintConfig,
    /// Enroll (unless already enrolled) and register and start the Windows service (auto start,
    /// LocalSystem, restarts on failure)
    #[cfg(windows)]
    Install {
        /// The enrollment code (not needed when already enrolled)
        #[arg(long, env = "ONSHI_AGENT_ENROLL_CODE", hide_env_values = true)]
        code: Option<String>,
        /// Enroll again even when already enrolled
        #[arg(long)]
        force: bool,
    },
    /// Stop and remove the Windows service (the data directory stays)
    #[cfg(windows)]
    Uninstall,
    /// Run as the Windows service (started by the service control manager)
    #[cfg(windows)]
    #[command(hide = true)]
    Service,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match AgentConfig::load(&cli.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("onshi-agent: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(windows)]
    if matches!(cli.command, Command::Service) {
        // A service has no console: log to a file under the data directory.
        let log = onshi_agent::service::log_file(&cfg);
        init_file_logging(&cfg.log_level, &log);
        return match onshi_agent::service::run_dispatcher(cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "service dispatcher failed");
                eprintln!("onshi-agent: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(&cfg.log_level);
    match real_main(cli.command, cfg) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("onshi-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(command: Command, cfg: AgentConfig) -> anyhow::Result<ExitCode> {
    onshi_agent::transport::install_crypto_provider();
    // One thread: the agent does little at a time, and must stay small (DESIGN §7).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match command {
        Command::Enroll { code, force } => {
            let identity = runtime
                .block_on(enroll::enroll(&cfg, &code, force))
                .context("enrollment failed")?;
            println!(
                "enrolled: agent {} for {} at {}",
                identity.agent_id, identity.clinic_name, identity.server
            );
        }
        Command::Once { json } => {
            let snapshot = runtime
                .block_on(runner::snapshot_now(&cfg))
                .context("collecting")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&snapshot)?);
            } else {
                print!("{}", summary(&snapshot));
            }
        }
        Command::Run { interval_secs } => {
            let options = RunOptions {
                interval: interval_secs.map(Duration::from_secs),
                ..RunOptions::default()
            };
            runtime
                .block_on(runner::run(&cfg, options, runner::shutdown_signal()))
                .context("agent stopped with an error")?;
        }
        Command::VerifyBackup {
            path,
            password,
            json,
        } => {
            return Ok(verify_backup(
                &cfg,
                &path,
                password.map(Password::new),
                json,
            ));
        }
        #[cfg(windows)]
        Command::Install { code, force } => {
            let enrolled = Identity::load(&cfg.identity_path())?.is_some();
            if !enrolled || force {
                let code = code.context("not enrolled yet: install needs --code CODE")?;
                let identity = runtime
                    .block_on(enroll::enroll(&cfg, &code, force))
                    .context("enrollment failed")?;
                println!(
                    "enrolled: agent {} for {} at {}",
                    identity.agent_id, identity.clinic_name, identity.server
                );
            } else {
                println!("already enrolled; registering the service again");
            }
            onshi_agent::service::install(&cfg).context("installing the service")?;
            println!(
                "service {} installed and started",
                onshi_agent::service::SERVICE_NAME
            );
        }
        #[cfg(windows)]
        Command::Uninstall => {
            onshi_agent::service::uninstall().context("removing the service")?;
            println!("service {} removed", onshi_agent::service::SERVICE_NAME);
        }
        #[cfg(windows)]
        Command::Service => {
            anyhow::bail!("`service` is started by the service control manager")
        }
        Command::PrintConfig => {
            print!("{}", cfg.to_toml()?);
            match Identity::load(&cfg.identity_path())? {
                Some(id) => println!(
                    "\n# enrolled: agent {} for {} at {} (token kept in {})",
                    id.agent_id,
                    id.clinic_name,
                    id.server,
                    cfg.identity_path().display()
                ),
                None => println!("\n# not enrolled"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `verify-backup`: needs no runtime and has its own exit codes.
fn verify_backup(
    cfg: &AgentConfig,
    path: &std::path::Path,
    password: Option<Password>,
    json: bool,
) -> ExitCode {
    let (report, result) =
        backup::verify_with_config(cfg, path, password.as_ref(), chrono::Utc::now());
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("onshi-agent: {e}"),
        }
    } else {
        print!("{}", report.summary());
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onshi-agent: verify-backup: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(windows)]
fn init_file_logging(level: &str, path: &std::path::Path) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Nowhere to write: the service still runs; the event log and its status tell the rest.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok();
    let file_layer = file.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(f))
            .with_ansi(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(onshi_agent::application_log::ApplicationLogLayer::new(
            onshi_agent::service::SERVICE_NAME,
        ))
        .init();
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so `once --json` prints clean JSON on stdout.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn summary(s: &onshi_shared::Snapshot) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "host      {} ({})", s.hostname, s.os);
    let _ = writeln!(
        out,
        "started   {} ({:?}), up {} h",
        s.uptime.last_start,
        s.uptime.last_start_kind,
        s.uptime.uptime_secs / 3600
    );
    for a in &s.apps.installed {
        let _ = writeln!(
            out,
            "app       {} {}",
            a.name,
            a.version.as_deref().unwrap_or("(version unknown)")
        );
    }
    for m in &s.apps.missing {
        let _ = writeln!(out, "app       {m} MISSING");
    }
    if let Some(p) = &s.apps.pending_reboot {
        let _ = writeln!(out, "reboot    pending: {}", p.reasons.join(", "));
    }
    for c in &s.certificates.certs {
        let _ = writeln!(
            out,
            "cert      {} until {} key={} [{}]",
            c.subject, c.not_after, c.has_private_key, c.thumbprint
        );
    }
    for a in &s.accounts.accounts {
        let _ = writeln!(
            out,
            "account   {:?} {} exists={} enabled={:?} locked={:?}",
            a.role, a.name, a.exists, a.enabled, a.locked
        );
    }
    for a in &s.network.adapters {
        let _ = writeln!(
            out,
            "adapter   {} {} {}",
            a.name,
            a.mac.as_deref().unwrap_or("-"),
            a.addresses.join(",")
        );
    }
    let _ = writeln!(
        out,
        "gateway   {} ({}) fingerprint {}",
        s.network.default_gateway.as_deref().unwrap_or("-"),
        s.network.gateway_mac.as_deref().unwrap_or("-"),
        s.network.fingerprint
    );
    for n in &s.notes {
        let _ = writeln!(out, "note      [{}] {}", n.area, n.detail);
    }
    let _ = writeln!(out, "agent     {}", sources::AGENT_VERSION);
    out
}
