//! Settings: defaults, then a TOML file, then `ONSHI_*` environment variables and flags (clap
//! reads both; a flag wins over its variable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use onshi_shared::{AccountSpec, AgentPolicy};
use serde::Deserialize;

use crate::Error;
use crate::jobs::EvaluatorSettings;
use crate::notify::{MailConfig, TlsMode};
use crate::store::DatabaseUrl;

/// The effective configuration of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    /// The policy every agent receives in enroll and report replies.
    pub policy: AgentPolicy,
    /// Reports waiting for the writer before handlers start asking agents to slow down.
    pub queue_capacity: usize,
    /// Most reports committed in one transaction.
    pub max_batch: usize,
    /// How long a new enrollment code stays valid.
    pub enrollment_code_days: u32,
    /// A terminal is offline after this many missed intervals.
    pub offline_after_intervals: u32,
    /// How often a running server picks up terminals revoked elsewhere.
    pub revocation_check_secs: u32,
    /// `[alerts]`: the rule evaluator and the digest.
    pub evaluator: EvaluatorSettings,
    /// `[smtp]`: outgoing mail.
    pub mail: MailConfig,
    /// How often the mail sender looks at the outbox.
    pub mail_poll_secs: u32,
    /// `[dashboard]`: staff sessions.
    pub dashboard: DashboardSettings,
}

/// How staff sessions behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSettings {
    /// The dashboard is reached over HTTPS (here or at a reverse proxy): the session cookie is
    /// then `__Host-` prefixed and `Secure`.
    pub secure_cookies: bool,
    /// A session ends this long after login.
    pub session_hours: u32,
    /// Failed logins per account (and ten times that per address) within `lockout_minutes`
    /// before further attempts are refused for the rest of that window.
    pub max_failed_logins: u32,
    pub lockout_minutes: u32,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            secure_cookies: false,
            session_hours: 12,
            max_failed_logins: 5,
            lockout_minutes: 15,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let data_dir = PathBuf::from("onshi-data");
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: DatabaseUrl::Sqlite(data_dir.join("onshi.db")),
            data_dir,
            policy: AgentPolicy::default(),
            queue_capacity: 16_384,
            max_batch: 1_000,
            enrollment_code_days: 30,
            offline_after_intervals: 3,
            revocation_check_secs: 10,
            evaluator: EvaluatorSettings::default(),
            mail: MailConfig::default(),
            mail_poll_secs: 5,
            dashboard: DashboardSettings::default(),
        }
    }
}

/// The TOML file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub queue_capacity: Option<usize>,
    pub max_batch: Option<usize>,
    pub enrollment_code_days: Option<u32>,
    pub offline_after_intervals: Option<u32>,
    pub revocation_check_secs: Option<u32>,
    pub policy: Option<FilePolicy>,
    pub alerts: Option<FileAlerts>,
    pub smtp: Option<FileSmtp>,
    pub dashboard: Option<FileDashboard>,
}

/// `[dashboard]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDashboard {
    pub secure_cookies: Option<bool>,
    pub session_hours: Option<u32>,
    pub max_failed_logins: Option<u32>,
    pub lockout_minutes: Option<u32>,
}

/// `[alerts]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAlerts {
    /// Run the evaluator in this process (default true).
    pub enabled: Option<bool>,
    /// Seconds between full rule evaluations.
    pub evaluate_every_secs: Option<u64>,
    /// Seconds a condition must stay clear before its alert resolves by itself.
    pub hold_down_secs: Option<i64>,
    /// JST hour (0–23) at which the daily digests are written.
    pub digest_hour: Option<u32>,
}

/// `[smtp]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub from: Option<String>,
    pub desk: Option<String>,
    pub desk_name: Option<String>,
    pub desk_phone: Option<String>,
    pub file_dir: Option<PathBuf>,
    pub retry_base_secs: Option<u64>,
    pub max_attempts: Option<i64>,
    pub poll_secs: Option<u32>,
    /// Seconds to wait for the SMTP server at each step before giving up (default 30).
    pub timeout_secs: Option<u64>,
    /// Seconds a claimed mail stays claimed: after a crash, unsent claims are sent again once
    /// this has passed (default 120; at least the timeout).
    pub lease_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    pub interval_secs: Option<u32>,
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
    pub watched_apps: Option<Vec<String>>,
    #[serde(default)]
    pub probe_targets: Vec<String>,
    pub cert_issuer: Option<String>,
}

/// What the command line (flags and `ONSHI_*` variables) says; `None` means "not given".
#[derive(Debug, Default, Clone, clap::Args)]
pub struct DbArgs {
    /// TOML configuration file.
    #[arg(long, env = "ONSHI_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the embedded SQLite database.
    #[arg(long, env = "ONSHI_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// sqlite:// or postgres:// URL; overrides --data-dir.
    #[arg(
        long,
        env = "ONSHI_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

impl Config {
    /// Builds the effective configuration: defaults < file < environment/flags.
    pub fn load(args: &DbArgs, listen: Option<SocketAddr>) -> Result<Config, Error> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(file, args, listen)
    }

    pub fn resolve(
        file: FileConfig,
        args: &DbArgs,
        listen: Option<SocketAddr>,
    ) -> Result<Config, Error> {
        let defaults = Config::default();
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or(defaults.data_dir);
        let database = match args
            .database_url
            .as_deref()
            .or(file.database_url.as_deref())
        {
            Some(url) => DatabaseUrl::parse(url)?,
            None => DatabaseUrl::Sqlite(data_dir.join("onshi.db")),
        };
        let mut policy = defaults.policy;
        if let Some(p) = file.policy {
            if let Some(i) = p.interval_secs {
                policy.interval_secs = i;
            }
            policy.accounts = p.accounts;
            if let Some(apps) = p.watched_apps {
                policy.watched_apps = apps;
            }
            policy.probe_targets = p.probe_targets;
            if let Some(issuer) = p.cert_issuer {
                policy.cert_issuer = issuer;
            }
        }
        if policy.interval_secs == 0 {
            return Err(Error::Config(
                "policy.interval_secs must be at least 1".into(),
            ));
        }
        let mut evaluator = defaults.evaluator;
        if let Some(a) = file.alerts {
            if let Some(enabled) = a.enabled {
                evaluator.enabled = enabled;
            }
            if let Some(secs) = a.evaluate_every_secs {
                evaluator.interval = std::time::Duration::from_secs(secs.max(1));
            }
            if let Some(secs) = a.hold_down_secs {
                evaluator.hold_down = chrono::Duration::seconds(secs.max(0));
            }
            if let Some(hour) = a.digest_hour {
                if hour > 23 {
                    return Err(Error::Config("alerts.digest_hour must be 0–23".into()));
                }
                evaluator.digest_hour = hour;
            }
        }
        let mut mail = defaults.mail;
        let mut mail_poll_secs = defaults.mail_poll_secs;
        if let Some(m) = file.smtp {
            let tls = m.tls.unwrap_or(mail.tls);
            mail.port = m.port.unwrap_or(match tls {
                TlsMode::None => 25,
                TlsMode::Starttls => 587,
                TlsMode::Tls => 465,
            });
            mail.tls = tls;
            mail.host = m.host.unwrap_or_default();
            mail.user = m.user;
            mail.password = m.password;
            mail.from = m.from.unwrap_or(mail.from);
            mail.desk = m.desk;
            mail.desk_name = m.desk_name.unwrap_or(mail.desk_name);
            mail.desk_phone = m.desk_phone;
            mail.file_dir = m.file_dir;
            if let Some(secs) = m.retry_base_secs {
                mail.retry_base = std::time::Duration::from_secs(secs.max(1));
            }
            mail.max_attempts = m.max_attempts.unwrap_or(mail.max_attempts).max(1);
            if let Some(secs) = m.timeout_secs {
                mail.timeout = std::time::Duration::from_secs(secs.max(1));
            }
            if let Some(secs) = m.lease_secs {
                mail.lease = std::time::Duration::from_secs(secs.max(1));
            }
            if mail.lease < mail.timeout {
                return Err(Error::Config(format!(
                    "smtp.lease_secs ({}) must be at least smtp.timeout_secs ({}): a claim \
                     must outlast the send it covers",
                    mail.lease.as_secs(),
                    mail.timeout.as_secs()
                )));
            }
            mail_poll_secs = m.poll_secs.unwrap_or(mail_poll_secs).max(1);
        }
        if let Ok(password) = std::env::var("ONSHI_SMTP_PASSWORD")
            && !password.is_empty()
        {
            mail.password = Some(password);
        }
        let mut dashboard = defaults.dashboard;
        if let Some(d) = file.dashboard {
            dashboard.secure_cookies = d.secure_cookies.unwrap_or(dashboard.secure_cookies);
            dashboard.session_hours = d.session_hours.unwrap_or(dashboard.session_hours).max(1);
            dashboard.max_failed_logins = d
                .max_failed_logins
                .unwrap_or(dashboard.max_failed_logins)
                .max(1);
            dashboard.lockout_minutes = d
                .lockout_minutes
                .unwrap_or(dashboard.lockout_minutes)
                .max(1);
        }
        let config = Config {
            dashboard,
            evaluator,
            mail,
            mail_poll_secs,
            listen: listen.or(file.listen).unwrap_or(defaults.listen),
            data_dir,
            database,
            policy,
            queue_capacity: file
                .queue_capacity
                .unwrap_or(defaults.queue_capacity)
                .max(1),
            max_batch: file.max_batch.unwrap_or(defaults.max_batch).max(1),
            enrollment_code_days: file
                .enrollment_code_days
                .unwrap_or(defaults.enrollment_code_days),
            offline_after_intervals: file
                .offline_after_intervals
                .unwrap_or(defaults.offline_after_intervals)
                .max(1),
            revocation_check_secs: file
                .revocation_check_secs
                .unwrap_or(defaults.revocation_check_secs)
                .max(1),
        };
        Ok(config)
    }

    /// The effective configuration as TOML-like text, secrets redacted.
    pub fn describe(&self) -> String {
        format!(
            "listen = \"{}\"\ndata_dir = \"{}\"\ndatabase_url = \"{:?}\"\nqueue_capacity = {}\n\
             max_batch = {}\nenrollment_code_days = {}\noffline_after_intervals = {}\n\
             revocation_check_secs = {}\n\
             [policy]\ninterval_secs = {}\nwatched_apps = {:?}\nprobe_targets = {:?}\n\
             cert_issuer = {:?}\naccounts = {:?}\n\
             [alerts]\nenabled = {}\nevaluate_every_secs = {}\nhold_down_secs = {}\ndigest_hour = {}\n\
             [smtp]\nhost = {:?}\nport = {}\ntls = \"{}\"\nuser = {:?}\npassword = {}\n\
             from = {:?}\ndesk = {:?}\ndesk_name = {:?}\ndesk_phone = {:?}\nfile_dir = {:?}\n\
             retry_base_secs = {}\nmax_attempts = {}\npoll_secs = {}\ntimeout_secs = {}\n\
             lease_secs = {}\n\
             [dashboard]\nsecure_cookies = {}\nsession_hours = {}\nmax_failed_logins = {}\n\
             lockout_minutes = {}\n",
            self.listen,
            self.data_dir.display(),
            self.database,
            self.queue_capacity,
            self.max_batch,
            self.enrollment_code_days,
            self.offline_after_intervals,
            self.revocation_check_secs,
            self.policy.interval_secs,
            self.policy.watched_apps,
            self.policy.probe_targets,
            self.policy.cert_issuer,
            self.policy.accounts,
            self.evaluator.enabled,
            self.evaluator.interval.as_secs(),
            self.evaluator.hold_down.num_seconds(),
            self.evaluator.digest_hour,
            self.mail.host,
            self.mail.port,
            match self.mail.tls {
                TlsMode::None => "none",
                TlsMode::Starttls => "starttls",
                TlsMode::Tls => "tls",
            },
            self.mail.user.as_deref().unwrap_or(""),
            if self.mail.password.is_some() {
                "\"***\""
            } else {
                "\"\""
            },
            self.mail.from,
            self.mail.desk.as_deref().unwrap_or(""),
            self.mail.desk_name,
            self.mail.desk_phone.as_deref().unwrap_or(""),
            self.mail
                .file_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            self.mail.retry_base.as_secs(),
            self.mail.max_attempts,
            self.mail_poll_secs,
            self.mail.timeout.as_secs(),
            self.mail.lease.as_secs(),
            self.dashboard.secure_cookies,
            self.dashboard.session_hours,
            self.dashboard.max_failed_logins,
            self.dashboard.lockout_minutes,
        )
    }
}

fn read_file(path: &Path) -> Result<FileConfig, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Io(format!("reading {}", path.display()), e))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onshi_shared::AccountRole;

    #[test]
    fn the_deployed_sample_configuration_is_valid() {
        let file: FileConfig =
            toml::from_str(include_str!("../../deploy/config/server.toml")).unwrap();
        let c = Config::resolve(file, &DbArgs::default(), None).unwrap();
        assert!(c.dashboard.secure_cookies);
        assert_eq!(c.dashboard.session_hours, 12);
        assert_eq!(c.dashboard.max_failed_logins, 5);
    }

    #[test]
    fn flags_beat_file_beat_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            data_dir = "/srv/onshi"
            [policy]
            interval_secs = 120
            accounts = [{ role = "windows", name = "onshi" }]
            "#,
        )
        .unwrap();
        let args = DbArgs {
            data_dir: Some("/flag/dir".into()),
            ..Default::default()
        };
        let config = Config::resolve(file, &args, None).unwrap();
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(config.data_dir, PathBuf::from("/flag/dir"));
        assert_eq!(
            config.database,
            DatabaseUrl::Sqlite(PathBuf::from("/flag/dir/onshi.db"))
        );
        assert_eq!(config.policy.interval_secs, 120);
        assert_eq!(config.policy.accounts[0].role, AccountRole::Windows);
    }

    #[test]
    fn smtp_and_alerts_sections() {
        let file: FileConfig = toml::from_str(
            r#"
            [alerts]
            evaluate_every_secs = 10
            hold_down_secs = 600
            digest_hour = 7
            [smtp]
            host = "smtp.example.jp"
            tls = "tls"
            user = "watch"
            password = "hunter2"
            from = "Onshi Watch <watch@example.jp>"
            desk = "desk@example.jp"
            "#,
        )
        .unwrap();
        let config = Config::resolve(file, &DbArgs::default(), None).unwrap();
        assert_eq!(config.mail.port, 465, "the TLS port by default");
        assert_eq!(config.mail.tls, TlsMode::Tls);
        assert_eq!(config.evaluator.digest_hour, 7);
        assert_eq!(config.evaluator.hold_down, chrono::Duration::minutes(10));
        let printed = config.describe();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("password = \"***\""));
        assert!(printed.contains("tls = \"tls\""));
        assert!(toml::from_str::<FileConfig>("[smtp]\ntls = \"ssl\"").is_err());
        assert_eq!(config.mail.lease, std::time::Duration::from_secs(120));
        // A claim shorter than one send would let a second sender take a mail in flight.
        let short: FileConfig =
            toml::from_str("[smtp]\nhost = \"h\"\ntimeout_secs = 30\nlease_secs = 10").unwrap();
        let err = Config::resolve(short, &DbArgs::default(), None).unwrap_err();
        assert!(err.to_string().contains("lease_secs"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
    }

    #[test]
    fn describe_hides_database_password() {
        let args = DbArgs {
            database_url: Some("postgres://u:secret@127.0.0.1/db".into()),
            ..Default::default()
        };
        let config = Config::resolve(FileConfig::default(), &args, None).unwrap();
        assert!(!config.describe().contains("secret"));
    }
}
