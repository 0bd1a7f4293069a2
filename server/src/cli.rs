//! The command line: `serve`, and the staff actions an operator runs from a shell. Every
//! action goes through [`crate::desk`] as the command line's [`Actor`] (with the OS user name),
//! so it is validated like the dashboard's and lands in the audit log.

use std::io::Write;
use std::net::SocketAddr;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::calendar::{BusinessHours, parse_weekdays};
use crate::config::ConfigArgs;
use crate::desk::{Desk, SilenceRequest};
use crate::domain::{Actor, OutboxMail, Role};
use crate::jst::{parse_datetime_local, time_ja};
use crate::notify::{Composer, Transport, build_message};
use crate::telemetry::LogFormat;
use crate::{Application, Config, Error, store};

#[derive(Debug, Parser)]
#[command(name = "onshi-server", version, about = "Onshi Watch server")]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Log filter, e.g. `info` or `onshi_server=debug`.
    #[arg(long, env = "ONSHI_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log lines as text for people or JSON for a log collector.
    #[arg(
        long,
        env = "ONSHI_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the agent API and the dashboard.
    Serve {
        /// Address to listen on (also `ONSHI_LISTEN`, or `listen` in the file).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage clinics.
    Clinic {
        #[command(subcommand)]
        command: ClinicCommand,
    },
    /// Revoke an enrollment code so it enrolls nothing more.
    RevokeCode { code: String },
    /// Revoke a terminal's agent token (the terminal must enroll again). Running servers refuse
    /// it within `revocation_check_secs`.
    RevokeTerminal { terminal_id: Uuid },
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

#[derive(Debug, Subcommand)]
pub enum ClinicCommand {
    /// Create a clinic and print its first enrollment code.
    Add {
        name: String,
        #[arg(long)]
        email: String,
    },
    /// Print a new enrollment code for an existing clinic.
    Code { name: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a staff account. Without --password-stdin a password is generated and printed.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
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
    /// Disable an account (ends its sessions).
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// List the accounts.
    List,
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// List open, acknowledged and staff-resolved alerts.
    List,
    /// Acknowledge an alert: no more immediate mails for it until `--hours` have passed.
    Ack {
        id: i64,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        hours: Option<i64>,
    },
    /// Resolve an alert by hand; it stays resolved while the same occurrence persists.
    Resolve {
        id: i64,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Add a note to an alert's history.
    Note { id: i64, note: String },
    /// Hold back mails for one terminal or one clinic for a maintenance window.
    Silence {
        #[arg(long, conflicts_with = "clinic", required_unless_present = "clinic")]
        terminal: Option<Uuid>,
        /// Clinic name.
        #[arg(long)]
        clinic: Option<String>,
        /// Starts (JST, `2026-12-05 03:30`); default now.
        #[arg(long)]
        from: Option<String>,
        /// Lasts this many hours...
        #[arg(long, conflicts_with = "until", required_unless_present = "until")]
        hours: Option<i64>,
        /// ...or ends then (JST, `2026-12-05 05:00`).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// List the silences in force.
    Silences,
    /// End a silence now.
    EndSilence { id: i64 },
    /// Set a clinic's business hours (JST), closed weekdays and its own support desk.
    Hours {
        clinic: String,
        #[arg(long, default_value = "09:00")]
        open: NaiveTime,
        #[arg(long, default_value = "18:00")]
        close: NaiveTime,
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
    },
}

/// Runs a parsed command line (tracing is already set up).
pub async fn run(cli: Cli) -> Result<(), Error> {
    crate::install_crypto_provider();
    let load = |listen| Config::load(&cli.config, listen);
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Serve { listen } => {
            let app = Application::build(load(listen)?).await?;
            app.run_until_stopped(crate::startup::shutdown_signal())
                .await
        }
        Command::PrintConfig => write(&mut out, load(None)?.describe()),
        Command::SendTestEmail { address } => send_test_email(&load(None)?, &address).await,
        command => {
            let config = load(None)?;
            let store = store::connect(&config.database()?).await?;
            let desk = Desk::new(store, None, config.enrollment_code_days);
            let lines = staff_command(&desk, &Actor::command_line(), command, Utc::now()).await?;
            write(&mut out, lines)
        }
    }
}

fn write(out: &mut impl Write, text: String) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Io("writing to standard output".into(), e))
}

fn read_password_line() -> Result<String, Error> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Error::Io("reading the password from standard input".into(), e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn jst_time(flag: &str, s: &str) -> Result<DateTime<Utc>, Error> {
    parse_datetime_local(s)
        .map_err(|e| Error::Invalid(format!("--{flag}: {e}")))?
        .ok_or_else(|| Error::Invalid(format!("--{flag}: give a time like 2026-12-05 03:30")))
}

/// Runs one staff command as `actor` and returns what to print.
pub async fn staff_command(
    desk: &Desk,
    actor: &Actor,
    command: Command,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match command {
        Command::Clinic { command } => {
            let clinic = match command {
                ClinicCommand::Add { name, email } => {
                    desk.add_clinic(actor, &name, &email, now).await?
                }
                ClinicCommand::Code { name } => {
                    let d = desk.clinic_named(&name).await?;
                    crate::domain::Clinic {
                        id: d.settings.id,
                        name: d.settings.name,
                        email: d.settings.email,
                    }
                }
            };
            let code = desk.issue_code(actor, clinic.id, now).await?;
            line(format!("clinic {} ({})", clinic.name, clinic.id));
            line(format!("enrollment code: {code}"));
            line(format!("valid for {} days", desk.code_days()));
        }
        Command::RevokeCode { code } => {
            desk.revoke_code(actor, None, &crate::enroll::hash_code(&code), now)
                .await?;
            line("enrollment code revoked".into());
        }
        Command::RevokeTerminal { terminal_id } => {
            desk.revoke_terminal(actor, terminal_id, now).await?;
            line(format!("terminal {terminal_id} revoked"));
        }
        Command::User { command } => user_command(desk, actor, command, now, &mut line).await?,
        Command::Alerts { command } => alert_command(desk, actor, command, now, &mut line).await?,
        Command::Serve { .. } | Command::PrintConfig | Command::SendTestEmail { .. } => {
            return Err(Error::Invalid("not a staff command".into()));
        }
    }
    Ok(out)
}

async fn user_command(
    desk: &Desk,
    actor: &Actor,
    command: UserCommand,
    now: DateTime<Utc>,
    line: &mut impl FnMut(String),
) -> Result<(), Error> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let password = password_stdin.then(read_password_line).transpose()?;
            match desk.add_user(actor, &name, role, password, now).await? {
                Some(generated) => {
                    line(format!("user {name} ({}) created", role.as_str()));
                    line(format!("password: {generated}"));
                    line("(shown once; change it at /account/password)".into());
                }
                None => line(format!("user {name} ({}) created", role.as_str())),
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = password_stdin.then(read_password_line).transpose()?;
            match desk.set_password(actor, &name, password, now).await? {
                Some(generated) => line(format!("new password for {name}: {generated}")),
                None => line(format!(
                    "password of {name} changed; its sessions have ended"
                )),
            }
        }
        UserCommand::Disable { name } => {
            desk.set_user_disabled(actor, &name, true, now).await?;
            line(format!("user {name} disabled; its sessions have ended"));
        }
        UserCommand::Enable { name } => {
            desk.set_user_disabled(actor, &name, false, now).await?;
            line(format!("user {name} enabled"));
        }
        UserCommand::List => {
            for u in desk.store().desk().users().await? {
                line(format!(
                    "{}\t{}{}",
                    u.name,
                    u.role.as_str(),
                    if u.disabled { "\tdisabled" } else { "" }
                ));
            }
        }
    }
    Ok(())
}

async fn alert_command(
    desk: &Desk,
    actor: &Actor,
    command: AlertCommand,
    now: DateTime<Utc>,
    line: &mut impl FnMut(String),
) -> Result<(), Error> {
    let store = desk.store();
    match command {
        AlertCommand::List => {
            let a = store.alerts();
            let clinics: std::collections::HashMap<i64, String> = a
                .clinic_settings()
                .await?
                .into_iter()
                .map(|c| (c.id, c.name))
                .collect();
            for alert in a.active_alerts(None).await? {
                line(format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    alert.id,
                    alert.status.as_str(),
                    alert.severity.as_str(),
                    alert.rule,
                    clinics.get(&alert.clinic_id).map_or("?", String::as_str),
                    alert.terminal_id,
                    alert.detail
                ));
            }
        }
        AlertCommand::Ack { id, note, hours } => {
            let until = hours.map(|h| now + Duration::hours(h));
            desk.acknowledge(actor, id, &note, until, now).await?;
            line(format!("alert {id} acknowledged"));
        }
        AlertCommand::Resolve { id, note } => {
            desk.resolve(actor, id, &note, now).await?;
            line(format!("alert {id} resolved"));
        }
        AlertCommand::Note { id, note } => {
            desk.note(actor, id, &note, now).await?;
            line(format!("note added to alert {id}"));
        }
        AlertCommand::Silence {
            terminal,
            clinic,
            from,
            hours,
            until,
            reason,
        } => {
            let clinic_id = match clinic {
                Some(name) => Some(desk.clinic_named(&name).await?.settings.id),
                None => None,
            };
            let starts_at = match &from {
                Some(s) => jst_time("from", s)?,
                None => now,
            };
            let ends_at = match (hours, &until) {
                (Some(h), _) => starts_at + Duration::hours(h),
                (None, Some(u)) => jst_time("until", u)?,
                (None, None) => return Err(Error::Invalid("give --hours or --until".into())),
            };
            let request = SilenceRequest {
                terminal_id: terminal,
                clinic_id,
                starts_at,
                ends_at,
                reason,
            };
            let id = desk.silence(actor, &request, now).await?;
            line(format!(
                "silence {id} from {} until {}",
                time_ja(starts_at),
                time_ja(ends_at)
            ));
        }
        AlertCommand::Silences => {
            for s in store.alerts().active_silences(now).await? {
                let scope = match (s.terminal_id, s.clinic_id) {
                    (Some(t), _) => format!("terminal {t}"),
                    (None, Some(c)) => format!("clinic {c}"),
                    (None, None) => "?".into(),
                };
                line(format!(
                    "{}\t{scope}\t{} – {}\t{}\t{}",
                    s.id,
                    time_ja(s.starts_at),
                    time_ja(s.ends_at),
                    crate::domain::actor_label_ja(&s.created_by),
                    s.reason
                ));
            }
        }
        AlertCommand::EndSilence { id } => {
            desk.end_silence(actor, id, now).await?;
            line(format!("silence {id} ended"));
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
            let id = desk.clinic_named(&clinic).await?.settings.id;
            let hours = BusinessHours {
                open,
                close,
                closed_weekdays: parse_weekdays(&closed),
                closed_on_holidays: !open_on_holidays,
            };
            desk.set_hours(actor, id, hours, desk_name, desk_phone, now)
                .await?;
            line(format!(
                "{clinic}: open {open}–{close} JST, closed {closed}"
            ));
        }
        AlertCommand::ExpectedVersion { app, version } => {
            desk.set_expected_version(actor, &app, version.as_deref(), now)
                .await?;
            match version {
                Some(v) => line(format!("{app}: staff expect {v} (24 h grace from now)")),
                None => line(format!(
                    "{app}: the fleet's most common version applies again"
                )),
            }
        }
    }
    Ok(())
}

async fn send_test_email(config: &Config, address: &str) -> Result<(), Error> {
    let Some(transport) = Transport::from_config(&config.smtp)? else {
        return Err(Error::Config(
            "set [smtp] host (or file_dir) in the configuration first".into(),
        ));
    };
    let mail = Composer::new(config.smtp.clone()).test_mail(address, Utc::now());
    let outbox = OutboxMail {
        id: 0,
        kind: mail.kind,
        recipient: mail.recipient,
        subject: mail.subject,
        message_id: mail.message_id,
        body_text: mail.body_text,
        body_html: mail.body_html,
        attempts: 1,
    };
    let message = build_message(&config.smtp.from, &outbox).map_err(Error::Invalid)?;
    match transport.send(message).await {
        Ok(()) => {
            println!("test mail to {address} accepted ({})", outbox.message_id);
            Ok(())
        }
        Err(e) => Err(Error::Config(format!(
            "test mail to {address} failed: {e:?}"
        ))),
    }
}
