use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use onshi_server::config::DbArgs;
use onshi_server::{Application, Config, demo, enroll, notify, startup, store};

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
        /// Password of the demo's `demo` admin account (default: generated and printed).
        #[arg(long, env = "ONSHI_DEMO_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Revoke an enrollment code so it enrolls nothing more.
    RevokeCode { code: String },
    /// Revoke a terminal's agent token (the terminal must enroll again). Running servers refuse
    /// it within `revocation_check_secs`.
    RevokeTerminal { terminal_id: uuid::Uuid },
    /// Print the effective configuration, secrets redacted.
    PrintConfig,
    /// Send one test mail with the configured [smtp] settings and report the outcome.
    SendTestEmail { address: String },
    /// Work with alerts, silences, clinic hours and expected app versions.
    Alerts {
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Manage the support desk's staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a staff account. Without --password-stdin a password is generated and printed.
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "viewer"])]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (ends every session of the user).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account (ends its sessions) or enable it again.
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    /// List the accounts.
    List,
}

fn read_password_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn user_command(store: &dyn store::Store, command: UserCommand) -> Result<()> {
    use onshi_server::auth;
    use onshi_server::store::desk::{Role, StaffAudit};
    let desk = store.desk();
    let now = Utc::now();
    let find = |name: String| async move {
        desk.user_by_name(&name)
            .await?
            .with_context(|| format!("no user named {name:?}"))
    };
    let audit = |user_id: i64, what: String| StaffAudit {
        at: now,
        actor: "cli".into(),
        user_id: Some(user_id),
        terminal_id: None,
        clinic_id: None,
        what,
    };
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let role = Role::parse(&role).context("--role is admin or viewer")?;
            let password = password_stdin.then(read_password_line).transpose()?;
            match auth::add_user(store, &name, role, password, now).await? {
                Some(generated) => println!(
                    "user {name} ({}) created\npassword: {generated}\n(shown once; change it at /account/password)",
                    role.as_str()
                ),
                None => println!("user {name} ({}) created", role.as_str()),
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let user = find(name.clone()).await?;
            let (password, generated) = if password_stdin {
                let p = read_password_line()?;
                auth::check_new_password(&p).map_err(|e| anyhow::anyhow!(e))?;
                (p, false)
            } else {
                (auth::generate_password(), true)
            };
            let hash = tokio::task::spawn_blocking(move || {
                auth::hash_password(&password).map(|h| (h, password))
            })
            .await??;
            desk.set_password(user.id, &hash.0, now).await?;
            desk.record_audit(&audit(
                user.id,
                format!("ユーザー {name} のパスワードを変更"),
            ))
            .await?;
            if generated {
                println!("new password for {name}: {}", hash.1);
            } else {
                println!("password of {name} changed; its sessions have ended");
            }
        }
        UserCommand::Disable { name } => {
            let user = find(name.clone()).await?;
            desk.set_user_disabled(user.id, true, now).await?;
            desk.record_audit(&audit(user.id, format!("ユーザー {name} を無効化")))
                .await?;
            println!("user {name} disabled; its sessions have ended");
        }
        UserCommand::Enable { name } => {
            let user = find(name.clone()).await?;
            desk.set_user_disabled(user.id, false, now).await?;
            desk.record_audit(&audit(user.id, format!("ユーザー {name} を有効化")))
                .await?;
            println!("user {name} enabled");
        }
        UserCommand::List => {
            for u in desk.users().await? {
                println!(
                    "{}\t{}{}",
                    u.name,
                    u.role.as_str(),
                    if u.disabled { "\tdisabled" } else { "" }
                );
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum AlertCommand {
    /// List open, acknowledged and staff-resolved alerts.
    List,
    /// Acknowledge an alert: no more immediate mails for it until `--hours` have passed.
    Ack {
        id: i64,
        #[arg(long)]
        by: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        hours: Option<i64>,
    },
    /// Resolve an alert by hand; it stays resolved while the same occurrence persists.
    Resolve {
        id: i64,
        #[arg(long)]
        by: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Silence mails for one terminal or one clinic for a maintenance window.
    Silence {
        #[arg(long, conflicts_with = "clinic", required_unless_present = "clinic")]
        terminal: Option<uuid::Uuid>,
        /// Clinic name.
        #[arg(long)]
        clinic: Option<String>,
        #[arg(long)]
        hours: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: String,
    },
    /// Set a clinic's business hours (JST), closed weekdays and its own support desk.
    Hours {
        clinic: String,
        #[arg(long, default_value = "09:00")]
        open: chrono::NaiveTime,
        #[arg(long, default_value = "18:00")]
        close: chrono::NaiveTime,
        /// Closed weekdays, e.g. `sun` or `sun,sat`.
        #[arg(long, default_value = "sun")]
        closed: String,
        /// Open on public holidays too.
        #[arg(long)]
        open_on_holidays: bool,
        #[arg(long)]
        desk_name: Option<String>,
        #[arg(long)]
        desk_phone: Option<String>,
    },
    /// Set the version staff expect of a watched app (without VERSION: back to the fleet's
    /// most common version).
    ExpectedVersion {
        app: String,
        version: Option<String>,
        #[arg(long)]
        by: String,
    },
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
            password,
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
            config.evaluator.interval = std::time::Duration::from_secs(10);
            if !config.mail.enabled() {
                config.mail.file_dir = Some(demo::mail_dir(&config.data_dir));
                config.mail.desk = Some("desk@example.jp".into());
            }
            let mail_note = match &config.mail.file_dir {
                Some(dir) => format!("mails: written to {}/*.eml", dir.display()),
                None => format!(
                    "mails: sent through {}:{}",
                    config.mail.host, config.mail.port
                ),
            };
            let digest_after = std::time::Duration::from_secs(u64::from(interval_secs) * 4 + 20);
            let digest_config = config.clone();
            let code_days = config.enrollment_code_days;
            let app = Application::build(config).await?;
            let addr = app.local_addr()?;
            let store = app.store();
            let server = tokio::spawn(app.run_until_stopped(startup::shutdown_signal()));
            let base = format!("http://{addr}");
            let fleet = demo::enroll_fleet(store.as_ref(), &base, terminals, code_days).await?;
            demo::prepare_alerts(store.as_ref()).await?;
            let password = demo::create_demo_user(store.as_ref(), password).await?;
            // Today's digest once the fleet has reported a few times, so a newcomer can read one.
            let digest_store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(digest_after).await;
                let mut evaluator = onshi_server::jobs::Evaluator::new(
                    digest_store,
                    digest_config.policy.clone(),
                    digest_config.offline_after_intervals,
                    digest_config.evaluator.clone(),
                    std::sync::Arc::new(notify::Composer::new(digest_config.mail.clone())),
                );
                if let Err(e) = evaluator.write_digests(Utc::now()).await {
                    tracing::warn!(error = %e, "writing the demo digests failed");
                }
            });
            for t in fleet {
                tokio::spawn(demo::simulate(base.clone(), t));
            }
            println!(
                "Onshi Watch demo: {terminals} simulated terminals reporting every {interval_secs} s"
            );
            println!("dashboard: {}", demo::dashboard_url(addr));
            println!("login: {} / password: {password}", demo::DEMO_USER);
            println!("{mail_note}");
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
        Command::SendTestEmail { address } => {
            let config = Config::load(&cli.db, None)?;
            let Some(transport) = notify::Transport::from_config(&config.mail)? else {
                bail!("set [smtp] host (or file_dir) in the configuration first");
            };
            let mail = notify::Composer::new(config.mail.clone()).test_mail(&address, Utc::now());
            let outbox = store::alerts::OutboxMail {
                id: 0,
                kind: mail.kind,
                recipient: mail.recipient,
                subject: mail.subject,
                message_id: mail.message_id,
                body_text: mail.body_text,
                body_html: mail.body_html,
                attempts: 1,
            };
            let message = notify::build_message(&config.mail.from, &outbox)
                .map_err(|e| anyhow::anyhow!(e))?;
            match transport.send(message).await {
                Ok(()) => println!("test mail to {address} accepted ({})", outbox.message_id),
                Err(e) => bail!("test mail to {address} failed: {e:?}"),
            }
        }
        Command::Alerts { command } => {
            let config = Config::load(&cli.db, None)?;
            let store = store::connect(&config.database).await?;
            alert_command(store.as_ref(), command).await?;
        }
        Command::User { command } => {
            let config = Config::load(&cli.db, None)?;
            let store = store::connect(&config.database).await?;
            user_command(store.as_ref(), command).await?;
        }
        Command::PrintConfig => {
            print!("{}", Config::load(&cli.db, None)?.describe());
        }
    }
    Ok(())
}

async fn alert_command(store: &dyn store::Store, command: AlertCommand) -> Result<()> {
    let a = store.alerts();
    let now = Utc::now();
    match command {
        AlertCommand::List => {
            let clinics: std::collections::HashMap<i64, String> = a
                .clinic_settings()
                .await?
                .into_iter()
                .map(|c| (c.id, c.name))
                .collect();
            for alert in a.active_alerts(None).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    alert.id,
                    alert.status.as_str(),
                    alert.severity.as_str(),
                    alert.rule,
                    clinics.get(&alert.clinic_id).map_or("?", String::as_str),
                    alert.terminal_id,
                    alert.detail
                );
            }
        }
        AlertCommand::Ack {
            id,
            by,
            note,
            hours,
        } => {
            let until = hours.map(|h| now + chrono::Duration::hours(h));
            if !a.acknowledge_alert(id, &by, &note, until, now).await? {
                bail!("no open alert {id}");
            }
            println!("alert {id} acknowledged");
        }
        AlertCommand::Resolve { id, by, note } => {
            if !a.resolve_alert(id, &by, &note, now).await? {
                bail!("no open alert {id}");
            }
            println!("alert {id} resolved");
        }
        AlertCommand::Silence {
            terminal,
            clinic,
            hours,
            reason,
            by,
        } => {
            let clinic_id = match clinic {
                Some(name) => match store.clinic_by_name(&name).await? {
                    Some(c) => Some(c.id),
                    None => bail!("no clinic named {name:?}"),
                },
                None => None,
            };
            let silence = store::alerts::Silence {
                id: 0,
                terminal_id: terminal,
                clinic_id,
                starts_at: now,
                ends_at: now + chrono::Duration::hours(hours.max(1)),
                reason,
                created_by: by,
            };
            let id = a.add_silence(&silence, now).await?;
            println!(
                "silence {id} until {}",
                onshi_server::calendar::time_ja(silence.ends_at)
            );
        }
        AlertCommand::Hours {
            clinic,
            open,
            close,
            closed,
            open_on_holidays,
            desk_name,
            desk_phone,
        } => {
            if close <= open {
                bail!("--close must be after --open");
            }
            let Some(mut settings) = a
                .clinic_settings()
                .await?
                .into_iter()
                .find(|c| c.name == clinic)
            else {
                bail!("no clinic named {clinic:?}");
            };
            settings.hours = onshi_server::calendar::BusinessHours {
                open,
                close,
                closed_weekdays: onshi_server::calendar::parse_weekdays(&closed),
                closed_on_holidays: !open_on_holidays,
            };
            if desk_name.is_some() {
                settings.desk_name = desk_name;
            }
            if desk_phone.is_some() {
                settings.desk_phone = desk_phone;
            }
            a.set_clinic_settings(&settings).await?;
            println!("{clinic}: open {open}–{close} JST, closed {closed}");
        }
        AlertCommand::ExpectedVersion { app, version, by } => {
            a.set_expected_version(&app, "staff", version.as_deref(), now, &by)
                .await?;
            match version {
                Some(v) => println!("{app}: staff expect {v} (24 h grace from now)"),
                None => println!("{app}: the fleet's most common version applies again"),
            }
        }
    }
    Ok(())
}
