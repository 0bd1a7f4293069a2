//! The command line: `serve`, and the staff actions an operator runs from a shell. Every
//! action goes through [`crate::desk`] as the command line's [`Actor`] (with the OS user name),
//! so it is validated like the dashboard's and lands in the audit log.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::calendar::{BusinessHours, Closure, format_day, parse_week, parse_weekdays};
use crate::config::ConfigArgs;
use crate::desk::{Desk, SilenceRequest};
use crate::domain::{Actor, DailyWindow, OutboxMail, Role, RuleKey, SilenceScope};
use crate::jst::parse_datetime_local;
use crate::notify::{Composer, Transport, build_message};
use crate::secrets::SecretKey;
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
    /// Confirm a terminal's protected account names (as found on the terminal): names that
    /// differ from its clinic's become its own, and from its next report a missing account
    /// is a real change.
    ConfirmAccounts {
        terminal_id: Uuid,
        #[command(flatten)]
        names: AccountNames,
    },
    /// Print the effective configuration, secrets redacted.
    PrintConfig,
    /// Send one test mail with the configured [smtp] settings and report the outcome.
    SendTestEmail { address: String },
    /// Post one test message (`channel.test`) to a configured [[channels]] entry, signed and
    /// shaped as its alerts will be, and report the receiver's answer.
    TestChannel { name: String },
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
    /// Manage the read API's tokens (for other systems).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Copy a SQLite database (`--from sqlite://…/onshi.db`) into an empty PostgreSQL one
    /// (`--to postgres://…`), verifying every table's row count: terminals keep their tokens.
    /// Stop the servers on the SQLite database first, or what they write meanwhile stays behind.
    MigrateData {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
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
    /// Set the names of the protected accounts the clinic's terminals have (a name left out
    /// takes the server's [policy]; `--clear` takes them all from there).
    Accounts {
        name: String,
        #[command(flatten)]
        names: AccountNames,
        #[arg(long, conflicts_with_all = ["windows", "face_auth", "linkage"])]
        clear: bool,
    },
    /// Set the clinic's own rule thresholds (0 goes back to the server's).
    Rules {
        name: String,
        #[arg(long)]
        restart_warning_hours: Option<u32>,
        #[arg(long)]
        restart_critical_hours: Option<u32>,
        #[arg(long)]
        offline_after_intervals: Option<u32>,
        /// Open days without a report before the offline alert is critical.
        #[arg(long)]
        offline_critical_days: Option<u32>,
        /// Whether PendingFileRenameOperations alone counts as a pending reboot.
        #[arg(long)]
        file_rename_counts: Option<bool>,
    },
    /// Set the four digits the clinic chose for its certificate backups instead of 1357,
    /// read from standard input (`--clear`: back to 1357).
    BackupPassword {
        name: String,
        #[arg(long)]
        clear: bool,
    },
    /// Dated closures (臨時休診, a long holiday).
    Closure {
        #[command(subcommand)]
        command: ClosureCommand,
    },
}

/// Protected account names by role.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AccountNames {
    /// The Windows (auto-login) account.
    #[arg(long)]
    pub windows: Option<String>,
    /// The face-authentication account.
    #[arg(long)]
    pub face_auth: Option<String>,
    /// The linkage account.
    #[arg(long)]
    pub linkage: Option<String>,
}

impl AccountNames {
    fn specs(&self) -> Vec<onshi_shared::AccountSpec> {
        use onshi_shared::AccountRole;
        [
            (AccountRole::Windows, &self.windows),
            (AccountRole::FaceAuth, &self.face_auth),
            (AccountRole::Linkage, &self.linkage),
        ]
        .into_iter()
        .filter_map(|(role, name)| {
            name.clone()
                .map(|name| onshi_shared::AccountSpec { role, name })
        })
        .collect()
    }
}

#[derive(Debug, Subcommand)]
pub enum ClosureCommand {
    /// List a clinic's closures.
    List { clinic: String },
    /// Add one closure (`--to` defaults to `--from`).
    Add {
        clinic: String,
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: Option<NaiveDate>,
        #[arg(long, default_value = "臨時休診")]
        reason: String,
    },
    /// Import closures from a CSV file: `開始日,終了日,理由` per line (`-` reads standard
    /// input).
    Import { clinic: String, file: PathBuf },
    /// Delete a closure by its id (see `list`).
    Delete { clinic: String, id: i64 },
}

/// Where a silence applies: exactly one of these.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(required = true, multiple = false)]
pub struct SilenceScopeArgs {
    #[arg(long)]
    pub terminal: Option<Uuid>,
    /// Clinic name.
    #[arg(long)]
    pub clinic: Option<String>,
    /// Every terminal of the clinics in this prefecture (e.g. 東京都).
    #[arg(long)]
    pub prefecture: Option<String>,
    /// Every terminal (a vendor-side outage).
    #[arg(long)]
    pub fleet: bool,
}

/// Limits a user to some prefectures and/or clinic groups (neither: the whole fleet).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ScopeArgs {
    /// A prefecture the user may see (repeat for several), e.g. 北海道.
    #[arg(long = "prefecture")]
    prefectures: Vec<String>,
    /// A clinic group, by name, the user may see (repeat for several).
    #[arg(long = "group")]
    groups: Vec<String>,
}

impl ScopeArgs {
    /// The scope, groups found by name; `None` when neither was given.
    async fn resolve(self, desk: &Desk) -> Result<Option<crate::domain::Scope>, Error> {
        if self.prefectures.is_empty() && self.groups.is_empty() {
            return Ok(None);
        }
        let known = desk.store().staff().clinic_groups().await?;
        let mut groups = Vec::with_capacity(self.groups.len());
        for name in &self.groups {
            match known.iter().find(|g| g.name == *name) {
                Some(g) => groups.push(g.id),
                None => {
                    return Err(Error::NotFound(format!(
                        "医療機関グループ {name} は見つかりません"
                    )));
                }
            }
        }
        Ok(Some(crate::domain::Scope {
            prefectures: self.prefectures,
            groups,
        }))
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; it is printed once (only its hash is kept).
    Add {
        name: String,
        /// viewer: read only; admin: also acknowledge and resolve.
        #[arg(long, value_enum)]
        role: Role,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List the tokens with their scope and last use.
    List,
    /// Revoke a token: it stops working at once.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a staff account. Without --password-stdin a password is generated and printed.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's role and scope (without --prefecture or --group: the whole fleet).
    Access {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        #[command(flatten)]
        scope: ScopeArgs,
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
    /// Hold back mails for a maintenance window: one terminal, a clinic, a prefecture or the
    /// whole fleet; every rule or one; once or every day within the dates.
    Silence {
        #[command(flatten)]
        scope: SilenceScopeArgs,
        /// Only this rule's alerts (e.g. `offline`, `no_daily_restart`).
        #[arg(long)]
        rule: Option<String>,
        /// Starts (JST, `2026-12-05 03:30`); default now.
        #[arg(long)]
        from: Option<String>,
        /// Lasts this many hours...
        #[arg(long, conflicts_with = "until", required_unless_present = "until")]
        hours: Option<i64>,
        /// ...or ends then (JST, `2026-12-05 05:00`).
        #[arg(long)]
        until: Option<String>,
        /// Only within this window every day (JST, `03:30-05:00`; may cross midnight).
        #[arg(long)]
        daily: Option<String>,
        /// With --daily: only on these weekdays (`mon,tue`; default every day).
        #[arg(long, requires = "daily")]
        weekdays: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// List the silences in force and to come.
    Silences,
    /// End a silence now.
    EndSilence { id: i64 },
    /// Set a clinic's week (JST) and closed seasons, and its own support desk.
    Hours {
        clinic: String,
        /// Open windows per weekday: `mon=09:00-12:30,15:00-18:30;sat=09:00-12:30` (a day
        /// left out is closed). Without it: --open to --close except --closed.
        #[arg(long, conflicts_with_all = ["open", "close", "closed"])]
        week: Option<String>,
        #[arg(long)]
        open: Option<NaiveTime>,
        #[arg(long)]
        close: Option<NaiveTime>,
        /// Closed weekdays, e.g. `sun` or `sun,sat`.
        #[arg(long)]
        closed: Option<String>,
        /// Open on public holidays too.
        #[arg(long)]
        open_on_holidays: bool,
        /// Open through 年末年始 (12/29–1/3).
        #[arg(long)]
        open_new_year: bool,
        /// Closed for お盆 (8/13–8/16).
        #[arg(long)]
        closed_obon: bool,
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
        Command::TestChannel { name } => test_channel(&load(None)?, &name).await,
        Command::MigrateData { from, to } => {
            let (store::DatabaseUrl::Sqlite(from), store::DatabaseUrl::Postgres(to)) = (
                store::DatabaseUrl::parse(&from)?,
                store::DatabaseUrl::parse(&to)?,
            ) else {
                return Err(Error::Config(
                    "migrate-data copies --from sqlite://… --to postgres://…".into(),
                ));
            };
            let copied = crate::migrate_data::migrate_data(&from, &to).await?;
            let mut text = String::new();
            for c in &copied {
                text.push_str(&format!("{:<18} {:>10} rows\n", c.table, c.rows));
            }
            text.push_str("every table's row count matches; the copy is committed\n");
            write(&mut out, text)
        }
        command => {
            let config = load(None)?;
            let store = store::connect(&config.database()?).await?;
            let mut desk = Desk::new(store, None, &config);
            match SecretKey::load_or_create(&config.secret_key_path()) {
                Ok(key) => desk = desk.with_secrets(Arc::new(key)),
                Err(e) => {
                    tracing::warn!(error = %e, "no secret key: backup passwords cannot be set")
                }
            }
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
        Command::Clinic { command } => clinic_command(desk, actor, command, now, &mut line).await?,
        Command::ConfirmAccounts { terminal_id, names } => {
            desk.confirm_accounts(actor, terminal_id, &names.specs(), now)
                .await?;
            line(format!(
                "terminal {terminal_id}: account names confirmed; the baseline is taken again \
                 from its next report"
            ));
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
        Command::Token { command } => match command {
            TokenCommand::Add { name, role, scope } => {
                let scope = scope.resolve(desk).await?;
                let token = desk.create_token(actor, &name, role, scope, now).await?;
                line(format!("token {name} ({}) created", role.as_str()));
                line(format!("token: {token}"));
                line("(shown once; only its hash is kept)".into());
            }
            TokenCommand::List => {
                for t in desk.store().staff().api_tokens().await? {
                    let scope = desk.check_scope(t.scope.as_ref()).await.unwrap_or_default();
                    let used = t
                        .last_used_at
                        .map_or_else(|| "never used".into(), |at| format!("used {at}"));
                    let revoked = if t.revoked_at.is_some() {
                        "\trevoked"
                    } else {
                        ""
                    };
                    line(format!(
                        "{}\t{}\t{scope}\t{used}{revoked}",
                        t.name,
                        t.role.as_str()
                    ));
                }
            }
            TokenCommand::Revoke { name } => {
                desk.revoke_token(actor, &name, now).await?;
                line(format!("token {name} revoked"));
            }
        },
        Command::Alerts { command } => alert_command(desk, actor, command, now, &mut line).await?,
        Command::Serve { .. }
        | Command::PrintConfig
        | Command::SendTestEmail { .. }
        | Command::TestChannel { .. }
        | Command::MigrateData { .. } => {
            return Err(Error::Invalid("not a staff command".into()));
        }
    }
    Ok(out)
}

async fn clinic_command(
    desk: &Desk,
    actor: &Actor,
    command: ClinicCommand,
    now: DateTime<Utc>,
    line: &mut impl FnMut(String),
) -> Result<(), Error> {
    let clinic = match command {
        ClinicCommand::Add { name, email } => desk.add_clinic(actor, &name, &email, now).await?,
        ClinicCommand::Code { name } => {
            let d = desk.clinic_named(&name).await?;
            crate::domain::Clinic {
                id: d.settings.id,
                name: d.settings.name,
                email: d.settings.email,
            }
        }
        ClinicCommand::Accounts { name, names, clear } => {
            let mut d = desk.clinic_named(&name).await?;
            d.settings.accounts = if clear { Vec::new() } else { names.specs() };
            desk.save_clinic(actor, &d, now).await?;
            line(format!("{name}: account names saved"));
            return Ok(());
        }
        ClinicCommand::Rules {
            name,
            restart_warning_hours,
            restart_critical_hours,
            offline_after_intervals,
            offline_critical_days,
            file_rename_counts,
        } => {
            let mut d = desk.clinic_named(&name).await?;
            let r = &mut d.settings.rules;
            let or_server = |v: Option<u32>, old: Option<u32>| match v {
                Some(0) => None,
                Some(v) => Some(v),
                None => old,
            };
            r.restart_warning_hours = or_server(restart_warning_hours, r.restart_warning_hours);
            r.restart_critical_hours = or_server(restart_critical_hours, r.restart_critical_hours);
            r.offline_after_intervals =
                or_server(offline_after_intervals, r.offline_after_intervals);
            r.offline_critical_days = or_server(offline_critical_days, r.offline_critical_days);
            if let Some(f) = file_rename_counts {
                r.file_rename_counts = f;
            }
            desk.save_clinic(actor, &d, now).await?;
            line(format!("{name}: rule settings saved"));
            return Ok(());
        }
        ClinicCommand::BackupPassword { name, clear } => {
            let id = desk.clinic_named(&name).await?.settings.id;
            let password = if clear {
                None
            } else {
                Some(read_password_line()?)
            };
            desk.set_backup_password(actor, id, password.as_deref(), now)
                .await?;
            line(if clear {
                format!("{name}: backups are checked with 1357 again")
            } else {
                format!(
                    "{name}: backup password saved (sealed); agents get it with their next report"
                )
            });
            return Ok(());
        }
        ClinicCommand::Closure { command } => {
            return closure_command(desk, actor, command, now, line).await;
        }
    };
    let code = desk.issue_code(actor, clinic.id, now).await?;
    line(format!("clinic {} ({})", clinic.name, clinic.id));
    line(format!("enrollment code: {code}"));
    line(format!("valid for {} days", desk.code_days()));
    Ok(())
}

async fn closure_command(
    desk: &Desk,
    actor: &Actor,
    command: ClosureCommand,
    now: DateTime<Utc>,
    line: &mut impl FnMut(String),
) -> Result<(), Error> {
    match command {
        ClosureCommand::List { clinic } => {
            for c in desk.clinic_named(&clinic).await?.settings.hours.closures {
                line(format!("{}\t{}\t{}\t{}", c.id, c.from, c.to, c.reason));
            }
        }
        ClosureCommand::Add {
            clinic,
            from,
            to,
            reason,
        } => {
            let id = desk.clinic_named(&clinic).await?.settings.id;
            let closure = Closure {
                id: 0,
                from,
                to: to.unwrap_or(from),
                reason,
            };
            desk.add_closures(actor, id, vec![closure], now).await?;
            line(format!("{clinic}: closed {from} – {}", to.unwrap_or(from)));
        }
        ClosureCommand::Import { clinic, file } => {
            let id = desk.clinic_named(&clinic).await?.settings.id;
            let mut text = String::new();
            let read = if file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text).map(|_| ())
            } else {
                std::fs::read_to_string(&file).map(|t| text = t)
            };
            read.map_err(|e| Error::Io(format!("reading {}", file.display()), e))?;
            let n = desk.import_closures(actor, id, &text, now).await?;
            line(format!("{clinic}: {n} closures imported"));
        }
        ClosureCommand::Delete { clinic, id } => {
            let clinic_id = desk.clinic_named(&clinic).await?.settings.id;
            desk.delete_closure(actor, clinic_id, id, now).await?;
            line(format!("{clinic}: closure {id} deleted"));
        }
    }
    Ok(())
}

/// `03:30-05:00` with optional weekdays.
fn daily_window(daily: &str, weekdays: Option<&str>) -> Result<DailyWindow, Error> {
    let (from, to) = daily
        .split_once('-')
        .and_then(|(a, b)| {
            let t = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").ok();
            Some((t(a)?, t(b)?))
        })
        .ok_or_else(|| Error::Invalid(format!("--daily {daily:?}: write 03:30-05:00")))?;
    let weekdays = match weekdays {
        None => 0x7f,
        Some(w) => {
            let days = parse_weekdays(w);
            if days.is_empty() {
                return Err(Error::Invalid(format!(
                    "--weekdays {w:?}: write mon,tue,… or sun"
                )));
            }
            days.iter()
                .fold(0u8, |bits, d| bits | (1 << d.num_days_from_monday()))
        }
    };
    Ok(DailyWindow { from, to, weekdays })
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
            scope,
            password_stdin,
        } => {
            let password = password_stdin.then(read_password_line).transpose()?;
            let scope = scope.resolve(desk).await?;
            match desk
                .add_user(actor, &name, role, scope, password, now)
                .await?
            {
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
        UserCommand::Access { name, role, scope } => {
            let scope = scope.resolve(desk).await?;
            let words = desk.check_scope(scope.as_ref()).await?;
            desk.set_user_access(actor, &name, role, scope, now).await?;
            line(format!("user {name}: {}, {words}", role.as_str()));
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
            for u in desk.store().staff().users().await? {
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
            let today = now.with_timezone(&crate::jst::offset()).date_naive();
            let clinics: std::collections::HashMap<i64, String> = a
                .clinic_settings(today)
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
            scope,
            rule,
            from,
            hours,
            until,
            daily,
            weekdays,
            reason,
        } => {
            let scope = match scope {
                SilenceScopeArgs {
                    terminal: Some(t), ..
                } => SilenceScope::Terminal(t),
                SilenceScopeArgs {
                    clinic: Some(name), ..
                } => SilenceScope::Clinic(desk.clinic_named(&name).await?.settings.id),
                SilenceScopeArgs {
                    prefecture: Some(p),
                    ..
                } => SilenceScope::Prefecture(p),
                _ => SilenceScope::Fleet,
            };
            let rule = rule
                .map(|r| {
                    RuleKey::parse(&r).ok_or_else(|| {
                        let keys: Vec<&str> = RuleKey::ALL.iter().map(|k| k.as_str()).collect();
                        Error::Invalid(format!("--rule {r:?}: one of {}", keys.join(", ")))
                    })
                })
                .transpose()?;
            let starts_at = match &from {
                Some(s) => jst_time("from", s)?,
                None => now,
            };
            let ends_at = match (hours, &until) {
                (Some(h), _) => starts_at + Duration::hours(h),
                (None, Some(u)) => jst_time("until", u)?,
                (None, None) => return Err(Error::Invalid("give --hours or --until".into())),
            };
            let daily = daily
                .map(|d| daily_window(&d, weekdays.as_deref()))
                .transpose()?;
            let request = SilenceRequest {
                scope,
                rule,
                starts_at,
                ends_at,
                daily,
                reason,
            };
            let id = desk.silence(actor, &request, now).await?;
            line(format!("silence {id}: {}", request.describe_ja()));
        }
        AlertCommand::Silences => {
            let since = now - Duration::days(1);
            for s in store.fleet().silences(now, since).await? {
                let request = SilenceRequest {
                    scope: s.scope.clone(),
                    rule: s.rule,
                    starts_at: s.starts_at,
                    ends_at: s.ends_at,
                    daily: s.daily,
                    reason: s.reason.clone(),
                };
                let state = if s.ends_at <= now {
                    "ended"
                } else if s.starts_at > now {
                    "to come"
                } else {
                    "in force"
                };
                line(format!(
                    "{}\t{state}\t{}\t{}\t{}",
                    s.id,
                    request.describe_ja(),
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
            week,
            open,
            close,
            closed,
            open_on_holidays,
            open_new_year,
            closed_obon,
            desk_name,
            desk_phone,
        } => {
            let id = desk.clinic_named(&clinic).await?.settings.id;
            let mut hours = match week {
                Some(w) => BusinessHours {
                    week: parse_week(&w).map_err(|e| Error::Invalid(format!("--week: {e}")))?,
                    ..BusinessHours::default()
                },
                None => {
                    let hm = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
                    let closed = parse_weekdays(closed.as_deref().unwrap_or("sun"));
                    BusinessHours::uniform(open.unwrap_or(hm(9)), close.unwrap_or(hm(18)), &closed)
                }
            };
            hours.closed_on_holidays = !open_on_holidays;
            hours.closed_new_year = !open_new_year;
            hours.closed_obon = closed_obon;
            let summary: Vec<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .zip(&hours.week)
                .map(|(d, w)| {
                    if w.is_empty() {
                        format!("{d} closed")
                    } else {
                        format!("{d} {}", format_day(w))
                    }
                })
                .collect();
            desk.set_hours(actor, id, hours, desk_name, desk_phone, now)
                .await?;
            line(format!("{clinic}: {} (JST)", summary.join("; ")));
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

async fn test_channel(config: &Config, name: &str) -> Result<(), Error> {
    let courier =
        crate::notify::channels::Courier::from_config(&config.channels, config.smtp.timeout())?;
    let row = crate::notify::channels::test_message(&config.channels, name, Utc::now())
        .ok_or_else(|| Error::Invalid(format!("no [[channels]] entry is named {name:?}")))?;
    match courier.deliver(&row).await {
        Ok(()) => {
            println!("test message to {name} accepted ({})", row.message_id);
            Ok(())
        }
        Err(e) => Err(Error::Config(format!(
            "test message to {name} failed: {e:?}"
        ))),
    }
}

async fn send_test_email(config: &Config, address: &str) -> Result<(), Error> {
    let Some(transport) = Transport::from_config(&config.smtp)? else {
        return Err(Error::Config(
            "set [smtp] host (or file_dir) in the configuration first".into(),
        ));
    };
    let mail = Composer::new(config.smtp.clone()).test_mail(address, Utc::now());
    let outbox = OutboxMail::unsent(mail);
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
