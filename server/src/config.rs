//! Settings: the structs below with their defaults, then a TOML file, then `ONSHI_*` environment
//! variables (every key; nested keys joined by `__`, e.g. `ONSHI_SMTP__HOST`), then flags.
//!
//! The layers are merged as TOML values over the serialized defaults and deserialized once, so
//! a key added to a struct is at once a file key, a variable and a line of `print-config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use onshi_shared::AgentPolicy;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::store::{DatabaseUrl, redact_url};

/// The effective configuration of one server process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite database (`onshi.db`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; when set it wins over `data_dir`.
    pub database_url: Option<String>,
    /// The key that seals secrets the server keeps (a clinic's backup password); by default
    /// `secret.key` in `data_dir`, made on first start. Servers sharing a database share it.
    pub secret_key_file: Option<PathBuf>,
    /// Reports waiting for the writer before handlers start asking agents to slow down.
    pub queue_capacity: usize,
    /// Most reports committed in one transaction.
    pub max_batch: usize,
    /// How long a new enrollment code stays valid.
    pub enrollment_code_days: u32,
    /// How often a running server picks up terminals revoked and agent policies changed by
    /// other processes (the command line, another server).
    pub revocation_check_secs: u32,
    /// The policy every agent receives in enroll and report replies.
    pub policy: AgentPolicy,
    pub alerts: AlertSettings,
    pub rules: RuleSettings,
    pub smtp: SmtpSettings,
    pub dashboard: DashboardSettings,
    pub limits: LimitSettings,
    pub metrics: MetricsSettings,
    pub retention: RetentionSettings,
    pub tls: TlsSettings,
    /// The desk's chat and webhook channels (`[[channels]]`); retried like mail, with
    /// `[smtp]`'s `retry_base_secs`, `max_attempts`, `poll_secs`, `timeout_secs` and
    /// `lease_secs`.
    pub channels: Vec<crate::notify::channels::ChannelSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("onshi-data"),
            database_url: None,
            secret_key_file: None,
            queue_capacity: 16_384,
            max_batch: 1_000,
            enrollment_code_days: 30,
            revocation_check_secs: 10,
            policy: AgentPolicy::default(),
            alerts: AlertSettings::default(),
            rules: RuleSettings::default(),
            smtp: SmtpSettings::default(),
            dashboard: DashboardSettings::default(),
            limits: LimitSettings::default(),
            metrics: MetricsSettings::default(),
            retention: RetentionSettings::default(),
            tls: TlsSettings::default(),
            channels: Vec::new(),
        }
    }
}

/// `[alerts]`: the rule evaluator and the daily digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// Run the evaluator and the digest in this process (a benchmark may turn it off).
    pub enabled: bool,
    /// Seconds between full rule evaluations.
    pub evaluate_every_secs: u64,
    /// Seconds a condition must stay clear before its alert resolves by itself.
    pub hold_down_secs: u64,
    /// JST hour (0–23) at which each clinic's daily digest is written.
    pub digest_hour: u32,
    /// Terminals loaded per query in a full pass.
    pub page_size: i64,
    /// Alert changes per transaction.
    pub write_batch: usize,
    /// Pause after reports changed state before the targeted pass, so a stream of reports is
    /// evaluated in groups.
    pub debounce_ms: u64,
    /// A warning nobody has acknowledged for this many days moves its terminal up among the
    /// terminals of its severity in the overview (「N日以上未対応」); 0: never.
    pub neglected_warning_days: u32,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            enabled: true,
            evaluate_every_secs: 60,
            hold_down_secs: 900,
            digest_hour: 8,
            page_size: 2_000,
            write_batch: 500,
            debounce_ms: 500,
            neglected_warning_days: 7,
        }
    }
}

impl AlertSettings {
    pub fn interval(&self) -> StdDuration {
        StdDuration::from_secs(self.evaluate_every_secs)
    }

    pub fn hold_down(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.hold_down_secs).unwrap_or(i64::MAX))
    }

    /// How long a warning waits before its terminal counts as neglected.
    pub fn neglected_after(&self) -> Option<chrono::Duration> {
        (self.neglected_warning_days > 0)
            .then(|| chrono::Duration::days(i64::from(self.neglected_warning_days)))
    }

    pub fn debounce(&self) -> StdDuration {
        StdDuration::from_millis(self.debounce_ms)
    }
}

/// `[rules]`: the thresholds of DESIGN §5 (clinics may override the restart and offline ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSettings {
    /// No restart for this long: warning; for `restart_critical_hours`: critical.
    pub restart_warning_hours: u32,
    pub restart_critical_hours: u32,
    /// A watched app behind the fleet's version (or a pending update) for this long: warning.
    pub update_grace_hours: u32,
    /// A reboot pending for this long: warning.
    pub pending_reboot_grace_hours: u32,
    /// Days before the certificate expires at which a notice goes out once each (above 30:
    /// information, else warning).
    pub cert_steps_days: Vec<u32>,
    /// From this many days left, a critical notice every day.
    pub cert_daily_from_days: u32,
    /// A certificate installed this long without a verified .pfx backup: warning.
    pub backup_grace_days: u32,
    /// The Windows account's password expires within this many days: warning.
    pub password_warning_days: u32,
    /// How long a change (account, network) keeps its alert open unless staff resolve it.
    pub event_window_days: u32,
    /// Missed report intervals within business hours before a terminal is offline (warning).
    pub offline_after_intervals: u32,
    /// No report on this many whole open days of the clinic's calendar: critical.
    pub offline_critical_days: u32,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            restart_warning_hours: 26,
            restart_critical_hours: 72,
            update_grace_hours: 24,
            pending_reboot_grace_hours: 24,
            cert_steps_days: vec![90, 60, 30, 15],
            cert_daily_from_days: 7,
            backup_grace_days: 7,
            password_warning_days: 14,
            event_window_days: 7,
            offline_after_intervals: 3,
            offline_critical_days: 3,
        }
    }
}

impl RuleSettings {
    /// The thresholds the rules run with.
    pub fn thresholds(&self) -> crate::rules::Thresholds {
        use chrono::Duration;
        let hours = |h: u32| Duration::hours(i64::from(h));
        let days = |d: u32| Duration::days(i64::from(d));
        crate::rules::Thresholds {
            restart_warning: hours(self.restart_warning_hours),
            restart_critical: hours(self.restart_critical_hours),
            update_grace: hours(self.update_grace_hours),
            pending_reboot_grace: hours(self.pending_reboot_grace_hours),
            cert_steps: self.cert_steps_days.iter().map(|&d| i64::from(d)).collect(),
            cert_daily_from: i64::from(self.cert_daily_from_days),
            backup_grace: days(self.backup_grace_days),
            password_warning: days(self.password_warning_days),
            event_window: days(self.event_window_days),
            offline_critical_days: self.offline_critical_days,
        }
    }

    fn check(&self) -> Result<(), Error> {
        let positive = [
            ("rules.restart_warning_hours", self.restart_warning_hours),
            ("rules.restart_critical_hours", self.restart_critical_hours),
            ("rules.event_window_days", self.event_window_days),
            (
                "rules.offline_after_intervals",
                self.offline_after_intervals,
            ),
            ("rules.offline_critical_days", self.offline_critical_days),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("{key} must be at least 1")));
            }
        }
        if self.restart_critical_hours <= self.restart_warning_hours {
            return Err(Error::Config(format!(
                "rules.restart_critical_hours ({}) must be more than rules.restart_warning_hours ({})",
                self.restart_critical_hours, self.restart_warning_hours
            )));
        }
        Ok(())
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (a relay on the same host or a test receiver).
    None,
    /// STARTTLS on the submission port (587).
    #[default]
    Starttls,
    /// Implicit TLS (465).
    Tls,
}

/// `[smtp]`: outgoing mail. The password never prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// SMTP server; empty means no SMTP.
    pub host: String,
    /// Default by `tls`: 25, 587 or 465.
    pub port: Option<u16>,
    pub tls: TlsMode,
    pub user: Option<String>,
    pub password: Option<String>,
    pub from: String,
    /// The support desk's address: it gets a copy of every mail, with terminal details.
    pub desk: Option<String>,
    /// Named first in clinic mails when the clinic has no desk of its own.
    pub desk_name: String,
    pub desk_phone: Option<String>,
    /// Write mails as `.eml` files into this folder instead of sending them.
    pub file_dir: Option<PathBuf>,
    /// First retry delay; doubles per attempt up to an hour, with ±20 % jitter.
    pub retry_base_secs: u64,
    pub max_attempts: i64,
    /// How often the sender looks at the outbox.
    pub poll_secs: u32,
    /// Seconds to wait for the SMTP server at each step before giving up.
    pub timeout_secs: u64,
    /// Seconds a claimed mail stays claimed: after a crash, unsent claims are sent again once
    /// this has passed (at least the timeout).
    pub lease_secs: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: String::new(),
            port: None,
            tls: TlsMode::Starttls,
            user: None,
            password: None,
            from: "Onshi Watch <onshi-watch@localhost>".into(),
            desk: None,
            desk_name: "サポート窓口".into(),
            desk_phone: None,
            file_dir: None,
            retry_base_secs: 30,
            max_attempts: 20,
            poll_secs: 5,
            timeout_secs: 30,
            lease_secs: 120,
        }
    }
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port())
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("desk", &self.desk)
            .field("file_dir", &self.file_dir)
            .finish()
    }
}

impl SmtpSettings {
    /// Whether mails leave the outbox at all.
    pub fn enabled(&self) -> bool {
        !self.host.is_empty() || self.file_dir.is_some()
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }

    pub fn retry_base(&self) -> StdDuration {
        StdDuration::from_secs(self.retry_base_secs)
    }

    pub fn timeout(&self) -> StdDuration {
        StdDuration::from_secs(self.timeout_secs)
    }

    pub fn lease(&self) -> StdDuration {
        StdDuration::from_secs(self.lease_secs)
    }

    pub fn poll(&self) -> StdDuration {
        StdDuration::from_secs(u64::from(self.poll_secs))
    }

    /// The domain of the From address, for Message-IDs.
    pub fn domain(&self) -> String {
        self.from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').trim().to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "onshi-watch.invalid".into())
    }
}

/// `[dashboard]`: staff sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardSettings {
    /// The dashboard is reached over HTTPS (here or at a reverse proxy): the session cookie is
    /// then `__Host-` prefixed and `Secure`.
    pub secure_cookies: bool,
    /// A session ends this long after login.
    pub session_hours: u32,
    /// Failed logins per (account, client address) before each further attempt waits a
    /// delay that doubles from a minute up to `lockout_minutes`. An account with four times as
    /// many failures across addresses allows one failure per address (see `auth`).
    pub max_failed_logins: u32,
    pub lockout_minutes: u32,
    /// Password checks (argon2id, 19 MiB each) running at once; further logins get 429 at
    /// once.
    pub login_concurrency: u32,
    /// Addresses or CIDR ranges of reverse proxies whose `Forwarded` / `X-Forwarded-For` is
    /// believed (the right-most hop that is not one of them is the client). Empty: the peer
    /// address is the client, whatever the headers say.
    pub trusted_proxies: Vec<String>,
    /// The address agents and staff reach this server at (`https://watch.example.jp`), for the
    /// install commands the clinic page shows; unset, the address the page was asked at.
    pub public_url: Option<String>,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            secure_cookies: false,
            session_hours: 12,
            max_failed_logins: 5,
            lockout_minutes: 15,
            login_concurrency: 2,
            trusted_proxies: Vec::new(),
            public_url: None,
        }
    }
}

/// `[limits]`: what unauthenticated clients may cost the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// A connection whose request headers are not complete this long after it opened (or
    /// after the previous request) is closed.
    pub header_timeout_secs: u64,
    /// A request whose body stalls (no bytes) this long is closed.
    pub body_timeout_secs: u64,
    /// Refused enrollment codes and agent tokens per client address per minute; past it the
    /// address gets 429 (agents with a valid token are not affected).
    pub refusals_per_minute: u32,
    /// Unauthenticated request bodies (enrollment, login) read at once; more get 503 at once.
    pub unauthenticated_bodies: u32,
    /// Requests per minute one API token may make (a burst of as many, refilled evenly); past
    /// it the token gets 429 with `Retry-After`. Counted per server process.
    pub api_requests_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            refusals_per_minute: 30,
            unauthenticated_bodies: 64,
            api_requests_per_minute: 600,
        }
    }
}

impl LimitSettings {
    pub fn header_timeout(&self) -> StdDuration {
        StdDuration::from_secs(self.header_timeout_secs)
    }

    pub fn body_timeout(&self) -> StdDuration {
        StdDuration::from_secs(self.body_timeout_secs)
    }
}

/// `[retention]`: how long history is kept. Old rows are deleted a small batch at a time, so
/// ingest never waits long behind them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days events, starts, resolved alerts with their history, the audit log and sent or
    /// failed mail are kept (the default covers a whole certificate cycle's backups and the
    /// same month a year ago); 0 keeps everything.
    pub keep_days: u32,
    /// Days the hours a terminal reported in are kept hour by hour; older ones are thinned to
    /// the first hour of each day (JST).
    pub hourly_days: u32,
    /// The most rows one delete step takes on.
    pub batch: u32,
    /// What one step should take, in ms: steps are sized to it as they go, and each is
    /// followed by a pause four times as long, so ingest (which waits for a step in progress)
    /// barely notices.
    pub step_ms: u32,
    /// Minutes between two prunings (the first runs a minute after start-up).
    pub every_minutes: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            keep_days: 400,
            hourly_days: 30,
            batch: 5_000,
            step_ms: 2,
            every_minutes: 60,
        }
    }
}

/// `[tls]`: HTTPS on the main listener without a reverse proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain (PEM, the server's certificate first); with `key`, the main
    /// listener speaks HTTPS.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Seconds between two looks at the files (a change is loaded; SIGHUP loads at once).
    pub watch_secs: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert: None,
            key: None,
            watch_secs: 10,
        }
    }
}

impl TlsSettings {
    /// The files, when HTTPS is on.
    pub fn files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.cert.clone()?,
            key: self.key.clone()?,
        })
    }

    pub fn watch_every(&self) -> StdDuration {
        StdDuration::from_secs(self.watch_secs.max(1))
    }
}

/// `[metrics]`: who may read `/metrics`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// `/metrics` on the main listener answers only `Authorization: Bearer <token>`; unset,
    /// it is not served there.
    pub token: Option<String>,
    /// A listener of its own for `/metrics` (and `/healthz`) without a token, e.g.
    /// `127.0.0.1:9464` for a Prometheus on the same host.
    pub listen: Option<SocketAddr>,
}

impl std::fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSettings")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("listen", &self.listen)
            .finish()
    }
}

/// The flags every subcommand shares: the settings file and where the data lives.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "ONSHI_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the embedded SQLite database (also `ONSHI_DATA_DIR`).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// sqlite:// or postgres:// URL; overrides --data-dir (also `ONSHI_DATABASE_URL`).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

/// `ONSHI_*` variables that are not settings: flags of their own, the agent's, the tests'.
const NOT_SETTINGS: [&str; 3] = ["ONSHI_CONFIG", "ONSHI_LOG", "ONSHI_LOG_FORMAT"];
const NOT_SETTINGS_PREFIXES: [&str; 3] = ["ONSHI_AGENT_", "ONSHI_TEST_", "ONSHI_DEMO_"];

impl Config {
    /// Builds the effective configuration from the process's file, environment and flags.
    pub fn load(args: &ConfigArgs, listen: Option<SocketAddr>) -> Result<Config, Error> {
        let file = match &args.config {
            Some(path) => Some((path.as_path(), read_file(path)?)),
            None => None,
        };
        Self::layered(file, std::env::vars(), args, listen)
    }

    /// defaults < file < environment < flags, then checked.
    pub fn layered(
        file: Option<(&Path, String)>,
        env: impl IntoIterator<Item = (String, String)>,
        args: &ConfigArgs,
        listen: Option<SocketAddr>,
    ) -> Result<Config, Error> {
        let mut value = toml::Value::try_from(Config::default())
            .map_err(|e| Error::Config(format!("serializing the defaults: {e}")))?;
        if let Some((path, text)) = file {
            let describe = |e: toml::de::Error| Error::Config(format!("{}: {e}", path.display()));
            // Checked on its own first, so an unknown key is reported with the file's name.
            toml::from_str::<Config>(&text).map_err(describe)?;
            let table: toml::Table = toml::from_str(&text).map_err(describe)?;
            merge(&mut value, toml::Value::Table(table));
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("ONSHI_"))
            .filter(|(k, _)| {
                !NOT_SETTINGS.contains(&k.as_str())
                    && !NOT_SETTINGS_PREFIXES.iter().any(|p| k.starts_with(p))
            })
            .collect();
        env.sort();
        for (name, raw) in env {
            apply_env(&mut value, &name, &raw)?;
        }
        let mut flags = toml::Table::new();
        if let Some(dir) = &args.data_dir {
            flags.insert("data_dir".into(), path_value(dir));
        }
        if let Some(url) = &args.database_url {
            flags.insert("database_url".into(), toml::Value::String(url.clone()));
        }
        if let Some(addr) = listen {
            flags.insert("listen".into(), toml::Value::String(addr.to_string()));
        }
        merge(&mut value, toml::Value::Table(flags));
        let config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Where the data lives: `database_url`, else SQLite in `data_dir`.
    pub fn database(&self) -> Result<DatabaseUrl, Error> {
        match &self.database_url {
            Some(url) => DatabaseUrl::parse(url),
            None => Ok(DatabaseUrl::Sqlite(self.data_dir.join("onshi.db"))),
        }
    }

    /// Where the secret key lives.
    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// Refuses settings that cannot work, with the key's name.
    fn check(&self) -> Result<(), Error> {
        crate::notify::channels::check(&self.channels).map_err(Error::Config)?;
        let at_least_one: [(&str, u64); 12] = [
            ("queue_capacity", self.queue_capacity as u64),
            ("max_batch", self.max_batch as u64),
            (
                "revocation_check_secs",
                u64::from(self.revocation_check_secs),
            ),
            ("policy.interval_secs", u64::from(self.policy.interval_secs)),
            (
                "alerts.evaluate_every_secs",
                self.alerts.evaluate_every_secs,
            ),
            ("alerts.page_size", self.alerts.page_size.max(0) as u64),
            ("alerts.write_batch", self.alerts.write_batch as u64),
            ("smtp.retry_base_secs", self.smtp.retry_base_secs),
            ("smtp.max_attempts", self.smtp.max_attempts.max(0) as u64),
            ("smtp.poll_secs", u64::from(self.smtp.poll_secs)),
            ("smtp.timeout_secs", self.smtp.timeout_secs),
            (
                "dashboard.session_hours",
                u64::from(self.dashboard.session_hours),
            ),
        ];
        let more = [
            (
                "dashboard.max_failed_logins",
                u64::from(self.dashboard.max_failed_logins),
            ),
            (
                "dashboard.lockout_minutes",
                u64::from(self.dashboard.lockout_minutes),
            ),
            (
                "dashboard.login_concurrency",
                u64::from(self.dashboard.login_concurrency),
            ),
            (
                "limits.header_timeout_secs",
                self.limits.header_timeout_secs,
            ),
            ("limits.body_timeout_secs", self.limits.body_timeout_secs),
            (
                "limits.refusals_per_minute",
                u64::from(self.limits.refusals_per_minute),
            ),
            (
                "limits.unauthenticated_bodies",
                u64::from(self.limits.unauthenticated_bodies),
            ),
            (
                "limits.api_requests_per_minute",
                u64::from(self.limits.api_requests_per_minute),
            ),
        ];
        for (key, value) in at_least_one.into_iter().chain(more) {
            if value == 0 {
                return Err(Error::Config(format!("{key} must be at least 1")));
            }
        }
        self.rules.check()?;
        crate::web::client::TrustedProxies::parse(&self.dashboard.trusted_proxies)?;
        if self.metrics.token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(Error::Config(
                "metrics.token must be at least 16 characters".into(),
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(Error::Config(
                "tls.cert and tls.key go together: set both for HTTPS, or neither".into(),
            ));
        }
        if self.alerts.digest_hour > 23 {
            return Err(Error::Config("alerts.digest_hour must be 0–23".into()));
        }
        let r = &self.retention;
        if r.keep_days > 0 && r.keep_days <= r.hourly_days {
            return Err(Error::Config(format!(
                "retention.keep_days ({}) must be more than retention.hourly_days ({}), or 0 to \
                 keep everything",
                r.keep_days, r.hourly_days
            )));
        }
        if r.keep_days > 0 && r.keep_days < 31 {
            return Err(Error::Config(
                "retention.keep_days below 31 would delete the history the rules and the \
                 terminal page read"
                    .into(),
            ));
        }
        if r.batch == 0 || r.every_minutes == 0 || r.step_ms == 0 {
            return Err(Error::Config(
                "retention.batch, retention.step_ms and retention.every_minutes must be at least 1"
                    .into(),
            ));
        }
        if self.smtp.lease_secs < self.smtp.timeout_secs {
            return Err(Error::Config(format!(
                "smtp.lease_secs ({}) must be at least smtp.timeout_secs ({}): a claim must \
                 outlast the send it covers",
                self.smtp.lease_secs, self.smtp.timeout_secs
            )));
        }
        self.database()?;
        Ok(())
    }

    /// The effective configuration as TOML, secrets redacted: what `print-config` prints.
    pub fn describe(&self) -> String {
        let mut shown = self.clone();
        if shown.smtp.password.is_some() {
            shown.smtp.password = Some("***".into());
        }
        if shown.metrics.token.is_some() {
            shown.metrics.token = Some("***".into());
        }
        shown.database_url = shown.database_url.as_deref().map(redact_url);
        let mut text = toml::to_string(&shown).unwrap_or_else(|e| format!("# {e}\n"));
        if self.database_url.is_none() {
            text.push_str(&format!(
                "# database: sqlite://{} (from data_dir)\n",
                self.data_dir.join("onshi.db").display()
            ));
        }
        text
    }
}

fn read_file(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::Io(format!("reading {}", path.display()), e))
}

fn path_value(p: &Path) -> toml::Value {
    toml::Value::String(p.to_string_lossy().into_owned())
}

/// Lays `over` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Sets the key a variable names (`ONSHI_SMTP__LEASE_SECS` → `smtp.lease_secs`). The value is
/// read as the type the default has there (text for text, TOML for numbers, booleans and
/// lists); an optional key without a default takes the text as it is, or a TOML value when text
/// does not fit. A name that is no setting is an error, not silently ignored.
fn apply_env(value: &mut toml::Value, name: &str, raw: &str) -> Result<(), Error> {
    let path: Vec<String> = name["ONSHI_".len()..]
        .split("__")
        .map(str::to_lowercase)
        .collect();
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    let text = toml::Value::String(raw.to_string());
    let existing = path
        .iter()
        .try_fold(&*value, |v, key| v.as_table().and_then(|t| t.get(key)));
    let bad = |what: &str| Error::Config(format!("{name}: {raw:?} is not {what}"));
    let candidates = match existing {
        Some(toml::Value::String(_)) => vec![text],
        Some(toml::Value::Integer(_)) => {
            vec![
                parsed
                    .filter(toml::Value::is_integer)
                    .ok_or_else(|| bad("a whole number"))?,
            ]
        }
        Some(toml::Value::Boolean(_)) => {
            vec![
                parsed
                    .filter(toml::Value::is_bool)
                    .ok_or_else(|| bad("true or false"))?,
            ]
        }
        Some(other) => {
            let want = other.type_str();
            vec![
                parsed
                    .filter(|v| v.type_str() == want)
                    .ok_or_else(|| bad(&format!("a TOML {want}")))?,
            ]
        }
        None => std::iter::once(text).chain(parsed).collect(),
    };
    for candidate in candidates {
        let mut trial = value.clone();
        if set_path(&mut trial, &path, candidate) && trial.clone().try_into::<Config>().is_ok() {
            *value = trial;
            return Ok(());
        }
    }
    Err(Error::Config(format!(
        "{name}: no such setting, or {raw:?} does not fit it (nested keys are joined with __, \
         e.g. ONSHI_SMTP__HOST)"
    )))
}

/// Sets `path` in a table of tables; `false` when a parent is missing or not a table.
fn set_path(value: &mut toml::Value, path: &[String], new: toml::Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut table = match value.as_table_mut() {
        Some(t) => t,
        None => return false,
    };
    for key in parents {
        match table.get_mut(key).and_then(toml::Value::as_table_mut) {
            Some(t) => table = t,
            None => return false,
        }
    }
    table.insert(last.clone(), new);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use onshi_shared::AccountRole;

    fn layered(
        file: Option<&str>,
        env: &[(&str, &str)],
        args: &ConfigArgs,
    ) -> Result<Config, Error> {
        Config::layered(
            file.map(|t| (Path::new("server.toml"), t.to_string())),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            args,
            None,
        )
    }

    #[test]
    fn the_deployed_sample_configuration_is_valid() {
        let c = layered(
            Some(include_str!("../../deploy/config/server.toml")),
            &[],
            &ConfigArgs::default(),
        )
        .unwrap();
        // It lists the defaults: where it says a value, the value is the default.
        let d = Config::default();
        assert_eq!(c.dashboard, d.dashboard);
        assert_eq!(c.limits, d.limits);
        assert_eq!(c.metrics, d.metrics);
        assert_eq!(c.rules, d.rules);
        assert_eq!(
            (
                c.alerts.evaluate_every_secs,
                c.alerts.hold_down_secs,
                c.alerts.digest_hour
            ),
            (
                d.alerts.evaluate_every_secs,
                d.alerts.hold_down_secs,
                d.alerts.digest_hour
            )
        );
        assert_eq!(
            (c.queue_capacity, c.max_batch, c.enrollment_code_days),
            (d.queue_capacity, d.max_batch, d.enrollment_code_days)
        );
    }

    #[test]
    fn the_container_configuration_is_valid() {
        let c = layered(
            Some(include_str!("../../deploy/container/server.toml")),
            &[],
            &ConfigArgs::default(),
        )
        .unwrap();
        assert_eq!(c.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
        assert_eq!(c.smtp.tls, TlsMode::None);
        assert!(c.dashboard.secure_cookies);
        let proxies = crate::web::client::TrustedProxies::parse(&c.dashboard.trusted_proxies);
        assert!(proxies.is_ok());
        assert_eq!(c.tls, TlsSettings::default(), "TLS ends at the proxy");
    }

    #[test]
    fn the_replicas_container_configuration_is_valid() {
        let c = layered(
            Some(include_str!("../../deploy/container/server-replicas.toml")),
            &[(
                "ONSHI_DATABASE_URL",
                "postgres://onshi:change-me@postgres/onshi",
            )],
            &ConfigArgs::default(),
        )
        .unwrap();
        assert!(matches!(c.database().unwrap(), DatabaseUrl::Postgres(_)));
        assert_eq!(
            c.secret_key_path(),
            PathBuf::from("/run/onshi-keys/secret.key"),
            "every replica reads the one key"
        );
        assert!(c.dashboard.secure_cookies);
    }

    #[test]
    fn half_a_tls_pair_is_refused() {
        let only_cert = layered(
            Some("[tls]\ncert = \"/etc/onshi/tls/fullchain.pem\"\n"),
            &[],
            &ConfigArgs::default(),
        );
        let e = only_cert.unwrap_err().to_string();
        assert!(e.contains("tls.cert and tls.key"), "{e}");
    }

    #[test]
    fn rule_thresholds_come_from_the_settings_with_todays_values_by_default() {
        let defaults = layered(None, &[], &ConfigArgs::default()).unwrap();
        assert_eq!(
            defaults.rules.thresholds(),
            crate::rules::Thresholds::default()
        );
        let file = r#"
            [rules]
            restart_warning_hours = 30
            cert_steps_days = [45, 20]
            cert_daily_from_days = 3
            backup_grace_days = 14
            password_warning_days = 21
        "#;
        let env = [("ONSHI_RULES__OFFLINE_CRITICAL_DAYS", "5")];
        let c = layered(Some(file), &env, &ConfigArgs::default()).unwrap();
        let t = c.rules.thresholds();
        assert_eq!(t.restart_warning, chrono::Duration::hours(30));
        assert_eq!(t.restart_critical, chrono::Duration::hours(72), "untouched");
        assert_eq!(t.cert_steps, vec![45, 20]);
        assert_eq!(t.cert_daily_from, 3);
        assert_eq!(t.backup_grace, chrono::Duration::days(14));
        assert_eq!(t.password_warning, chrono::Duration::days(21));
        assert_eq!(t.offline_critical_days, 5);
        assert!(c.describe().contains("[rules]"));
        for (bad, key) in [
            (
                "[rules]\nrestart_critical_hours = 20",
                "rules.restart_critical_hours",
            ),
            (
                "[rules]\noffline_after_intervals = 0",
                "rules.offline_after_intervals",
            ),
        ] {
            let e = layered(Some(bad), &[], &ConfigArgs::default()).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn each_layer_sets_a_key_and_the_later_one_wins() {
        let file = r#"
            listen = "127.0.0.1:9000"
            data_dir = "/srv/onshi"
            [policy]
            interval_secs = 120
            accounts = [{ role = "windows", name = "onshi" }]
            [smtp]
            host = "smtp.file.example"
            lease_secs = 300
        "#;
        let defaults = layered(None, &[], &ConfigArgs::default()).unwrap();
        assert_eq!(defaults.smtp.lease_secs, 120, "default");
        let from_file = layered(Some(file), &[], &ConfigArgs::default()).unwrap();
        assert_eq!(from_file.smtp.lease_secs, 300, "file over default");
        assert_eq!(from_file.smtp.host, "smtp.file.example");
        let env = [
            ("ONSHI_SMTP__LEASE_SECS", "600"),
            ("ONSHI_DATA_DIR", "/env/dir"),
            ("ONSHI_SMTP__DESK_PHONE", "0312345678"),
            ("ONSHI_POLICY__WATCHED_APPS", r#"["配信アプリ"]"#),
            ("ONSHI_DASHBOARD__SECURE_COOKIES", "true"),
            ("ONSHI_AGENT_SERVER", "https://not-a-server-setting.example"),
        ];
        let from_env = layered(Some(file), &env, &ConfigArgs::default()).unwrap();
        assert_eq!(from_env.smtp.lease_secs, 600, "environment over file");
        assert_eq!(from_env.data_dir, PathBuf::from("/env/dir"));
        assert_eq!(from_env.smtp.host, "smtp.file.example", "untouched by env");
        assert_eq!(from_env.smtp.desk_phone.as_deref(), Some("0312345678"));
        assert_eq!(from_env.policy.watched_apps, vec!["配信アプリ".to_string()]);
        assert!(from_env.dashboard.secure_cookies);
        assert_eq!(from_env.policy.interval_secs, 120);
        assert_eq!(from_env.policy.accounts[0].role, AccountRole::Windows);
        let args = ConfigArgs {
            data_dir: Some("/flag/dir".into()),
            ..Default::default()
        };
        let from_flags = layered(Some(file), &env, &args).unwrap();
        assert_eq!(
            from_flags.data_dir,
            PathBuf::from("/flag/dir"),
            "flag over env"
        );
        assert_eq!(
            from_flags.database().unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/flag/dir/onshi.db"))
        );
        assert_eq!(from_flags.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
    }

    #[test]
    fn bad_keys_and_values_say_where_they_came_from() {
        let args = ConfigArgs::default();
        let e = layered(Some("lisen = \"x\""), &[], &args).unwrap_err();
        assert!(e.to_string().contains("server.toml"), "{e}");
        let e = layered(None, &[("ONSHI_SMTP__HOTS", "x")], &args).unwrap_err();
        assert!(e.to_string().contains("ONSHI_SMTP__HOTS"), "{e}");
        let e = layered(None, &[("ONSHI_SMTP__LEASE_SECS", "soon")], &args).unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = layered(None, &[("ONSHI_ALERTS__ENABLED", "yes")], &args).unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        let e = layered(Some("[smtp]\ntls = \"ssl\""), &[], &args).unwrap_err();
        assert!(e.to_string().contains("server.toml"), "{e}");
        // A claim shorter than one send would let a second sender take a mail in flight.
        let e = layered(
            Some("[smtp]\nhost = \"h\"\ntimeout_secs = 30\nlease_secs = 10"),
            &[],
            &args,
        )
        .unwrap_err();
        assert!(e.to_string().contains("lease_secs"), "{e}");
        let e = layered(Some("queue_capacity = 0"), &[], &args).unwrap_err();
        assert!(
            e.to_string().contains("queue_capacity must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn smtp_ports_follow_tls_and_print_config_hides_secrets() {
        let file = r#"
            database_url = "postgres://onshi:p@ss@word@127.0.0.1/onshi"
            [alerts]
            digest_hour = 7
            [smtp]
            host = "smtp.example.jp"
            tls = "tls"
            user = "watch"
            password = "hunter2"
        "#;
        let c = layered(Some(file), &[], &ConfigArgs::default()).unwrap();
        assert_eq!(c.smtp.port(), 465, "the TLS port by default");
        assert_eq!(c.alerts.digest_hour, 7);
        let printed = c.describe();
        for secret in ["hunter2", "p@ss", "word@"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("password = \"***\""), "{printed}");
        assert!(printed.contains("tls = \"tls\""), "{printed}");
        assert!(printed.contains("[dashboard]"), "{printed}");
        // What print-config prints reads back as the same configuration (secrets aside).
        let again = layered(Some(&printed), &[], &ConfigArgs::default()).unwrap();
        assert_eq!(again.alerts, c.alerts);
        assert_eq!(again.smtp.host, c.smtp.host);
        assert!(!format!("{c:?}").contains("hunter2"), "Debug hides it too");
    }
}
