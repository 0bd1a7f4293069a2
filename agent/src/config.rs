//! Agent settings: defaults, then a TOML file, then `ONSHI_AGENT_*` environment variables, then
//! command-line flags (clap reads the variables and the flags together, flags winning).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use onshi_shared::AccountSpec;
use serde::{Deserialize, Serialize};

use crate::error::AgentError;

/// Flags shared by every subcommand. Each one can also come from its environment variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file [default: /etc/onshi-agent/agent.toml when it exists;
    /// `%ProgramData%\OnshiWatch\agent.toml` on Windows]
    #[arg(long, value_name = "FILE", env = "ONSHI_AGENT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Base URL of the Onshi Watch server, e.g. https://watch.example.jp
    #[arg(long, value_name = "URL", env = "ONSHI_AGENT_SERVER", global = true)]
    pub server: Option<String>,
    /// Where the identity, state, spool and backup record live
    #[arg(long, value_name = "DIR", env = "ONSHI_AGENT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Directory every OS source reads under (tests point it at a prepared tree) [default: /]
    #[arg(long, value_name = "DIR", env = "ONSHI_AGENT_ROOT", global = true)]
    pub root: Option<PathBuf>,
    /// Certificate directory, relative to the root [default: etc/onshi/certs]
    #[arg(long, value_name = "DIR", env = "ONSHI_AGENT_CERTS_DIR", global = true)]
    pub certs_dir: Option<PathBuf>,
    /// Installed-apps manifest, relative to the root [default: var/lib/onshi/apps.json]
    #[arg(
        long,
        value_name = "FILE",
        env = "ONSHI_AGENT_APPS_MANIFEST",
        global = true
    )]
    pub apps_manifest: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for the server, e.g. a test server's self-signed one
    #[arg(long, value_name = "PEM", env = "ONSHI_AGENT_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Timeout of one HTTP request, in seconds [default: 30]
    #[arg(
        long,
        value_name = "SECS",
        env = "ONSHI_AGENT_REQUEST_TIMEOUT_SECS",
        global = true
    )]
    pub request_timeout_secs: Option<u64>,
    /// Log filter, e.g. `info` or `onshi_agent=debug` [default: info]
    #[arg(
        long,
        value_name = "LEVEL",
        env = "ONSHI_AGENT_LOG_LEVEL",
        global = true
    )]
    pub log_level: Option<String>,
}

/// The TOML file. Every key is optional; unknown keys are an error so typos are seen.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub certs_dir: Option<PathBuf>,
    pub apps_manifest: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    pub request_timeout_secs: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    pub log_level: Option<String>,
    pub spool_max_bytes: Option<u64>,
    pub spool_max_age_days: Option<u32>,
    /// Accounts to watch until the server's policy names some (`[[accounts]] role = "windows"
    /// name = "onshi"`).
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
}

/// The effective settings. Holds no secret, so it prints as is (`print-config`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentConfig {
    /// Where the settings file was read from, if one was.
    pub config_file: Option<PathBuf>,
    pub server: Option<String>,
    pub data_dir: PathBuf,
    pub root: PathBuf,
    /// Relative to `root`.
    pub certs_dir: PathBuf,
    /// Relative to `root`.
    pub apps_manifest: PathBuf,
    pub ca_cert: Option<PathBuf>,
    pub request_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub log_level: String,
    pub spool_max_bytes: u64,
    pub spool_max_age_days: u32,
    pub accounts: Vec<AccountSpec>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            config_file: None,
            server: None,
            data_dir: default_data_dir(),
            root: PathBuf::from(std::path::MAIN_SEPARATOR_STR),
            certs_dir: PathBuf::from("etc/onshi/certs"),
            apps_manifest: PathBuf::from("var/lib/onshi/apps.json"),
            ca_cert: None,
            request_timeout_secs: 30,
            connect_timeout_secs: 10,
            log_level: "info".to_string(),
            spool_max_bytes: 16 * 1024 * 1024,
            spool_max_age_days: 30,
            accounts: Vec::new(),
        }
    }
}

/// Where the agent keeps its files when not told otherwise.
pub fn default_data_dir() -> PathBuf {
    #[cfg(windows)]
    {
        program_data().join("OnshiWatch")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/var/lib/onshi-agent")
    }
}

/// The settings file read when `--config` is not given, if it exists.
pub fn default_config_file() -> PathBuf {
    #[cfg(windows)]
    {
        program_data().join("OnshiWatch").join("agent.toml")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/etc/onshi-agent/agent.toml")
    }
}

#[cfg(windows)]
fn program_data() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
}

impl AgentConfig {
    /// Defaults, then the settings file (`--config`, else the default file if present), then
    /// the environment and the flags.
    pub fn load(args: &ConfigArgs) -> Result<AgentConfig, AgentError> {
        let (path, required) = match &args.config {
            Some(p) => (p.clone(), true),
            None => (default_config_file(), false),
        };
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => Some((path, parse_file(&text)?)),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(AgentError::io("read settings file", &path, e)),
        };
        AgentConfig::layered(file, args)
    }

    /// Applies an already-read settings file and the flags over the defaults.
    pub fn layered(
        file: Option<(PathBuf, FileConfig)>,
        args: &ConfigArgs,
    ) -> Result<AgentConfig, AgentError> {
        let mut cfg = AgentConfig::default();
        if let Some((path, f)) = file {
            cfg.config_file = Some(path);
            set(&mut cfg.server, f.server.map(Some));
            set(&mut cfg.data_dir, f.data_dir);
            set(&mut cfg.root, f.root);
            set(&mut cfg.certs_dir, f.certs_dir);
            set(&mut cfg.apps_manifest, f.apps_manifest);
            set(&mut cfg.ca_cert, f.ca_cert.map(Some));
            set(&mut cfg.request_timeout_secs, f.request_timeout_secs);
            set(&mut cfg.connect_timeout_secs, f.connect_timeout_secs);
            set(&mut cfg.log_level, f.log_level);
            set(&mut cfg.spool_max_bytes, f.spool_max_bytes);
            set(&mut cfg.spool_max_age_days, f.spool_max_age_days);
            cfg.accounts = f.accounts;
        }
        set(&mut cfg.server, args.server.clone().map(Some));
        set(&mut cfg.data_dir, args.data_dir.clone());
        set(&mut cfg.root, args.root.clone());
        set(&mut cfg.certs_dir, args.certs_dir.clone());
        set(&mut cfg.apps_manifest, args.apps_manifest.clone());
        set(&mut cfg.ca_cert, args.ca_cert.clone().map(Some));
        set(&mut cfg.request_timeout_secs, args.request_timeout_secs);
        set(&mut cfg.log_level, args.log_level.clone());
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), AgentError> {
        if self.request_timeout_secs == 0 || self.connect_timeout_secs == 0 {
            return Err(AgentError::Config(
                "timeouts must be at least 1 second".into(),
            ));
        }
        if self.spool_max_bytes < 64 * 1024 {
            return Err(AgentError::Config(
                "spool_max_bytes must be at least 65536".into(),
            ));
        }
        if self.spool_max_age_days == 0 {
            return Err(AgentError::Config(
                "spool_max_age_days must be at least 1".into(),
            ));
        }
        if let Some(server) = &self.server
            && !(server.starts_with("https://") || server.starts_with("http://"))
        {
            return Err(AgentError::Config(format!(
                "server must be an http:// or https:// URL, got {server:?}"
            )));
        }
        Ok(())
    }

    /// Timeout of one HTTP request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Timeout of one TCP/TLS connect to the server.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// Spool bounds.
    pub fn spool_max_age(&self) -> Duration {
        Duration::from_secs(u64::from(self.spool_max_age_days) * 86_400)
    }

    pub fn identity_path(&self) -> PathBuf {
        self.data_dir.join("identity.json")
    }

    pub fn state_path(&self) -> PathBuf {
        self.data_dir.join("state.json")
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    pub fn backup_path(&self) -> PathBuf {
        self.data_dir.join("backup.json")
    }

    /// The effective settings as TOML, for `print-config`.
    pub fn to_toml(&self) -> Result<String, AgentError> {
        toml::to_string_pretty(self).map_err(|e| AgentError::Config(e.to_string()))
    }
}

/// Parses the TOML settings file.
pub fn parse_file(text: &str) -> Result<FileConfig, AgentError> {
    toml::from_str(text).map_err(|e| AgentError::Config(e.to_string()))
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// `rel` under `root`, keeping only its normal components so that neither an absolute path nor
/// `..` can leave the root.
pub fn under_root(root: &Path, rel: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in rel.components() {
        if let Component::Normal(part) = c {
            out.push(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use onshi_shared::AccountRole;

    use super::*;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        args: ConfigArgs,
    }

    fn args(argv: &[&str]) -> ConfigArgs {
        let mut full = vec!["test"];
        full.extend_from_slice(argv);
        TestCli::try_parse_from(full).unwrap().args
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cfg = AgentConfig::layered(None, &ConfigArgs::default()).unwrap();
        assert_eq!(cfg.certs_dir, PathBuf::from("etc/onshi/certs"));
        assert_eq!(cfg.apps_manifest, PathBuf::from("var/lib/onshi/apps.json"));
        assert_eq!(cfg.request_timeout_secs, 30);
        assert_eq!(cfg.server, None);
        #[cfg(unix)]
        {
            assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/onshi-agent"));
            assert_eq!(cfg.root, PathBuf::from("/"));
        }
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let file = parse_file(
            r#"
            server = "https://file.example"
            data_dir = "/srv/agent"
            request_timeout_secs = 5
            [[accounts]]
            role = "windows"
            name = "onshi"
            [[accounts]]
            role = "face_auth"
            name = "kao"
            "#,
        )
        .unwrap();
        let cfg = AgentConfig::layered(
            Some((PathBuf::from("agent.toml"), file)),
            &args(&["--server", "https://flag.example", "--root", "/tmp/fake"]),
        )
        .unwrap();
        assert_eq!(cfg.server.as_deref(), Some("https://flag.example"));
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/agent"));
        assert_eq!(cfg.root, PathBuf::from("/tmp/fake"));
        assert_eq!(cfg.request_timeout_secs, 5);
        assert_eq!(cfg.accounts.len(), 2);
        assert_eq!(cfg.accounts[1].role, AccountRole::FaceAuth);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(parse_file("sever = \"x\"").is_err());
        let err = AgentConfig::layered(None, &args(&["--server", "ftp://x"]));
        assert!(matches!(err, Err(AgentError::Config(_))));
        let err = AgentConfig::layered(None, &args(&["--request-timeout-secs", "0"]));
        assert!(matches!(err, Err(AgentError::Config(_))));
    }

    #[test]
    fn paths_under_root_cannot_escape() {
        let root = Path::new("/fake");
        assert_eq!(
            under_root(root, Path::new("etc/passwd")),
            Path::new("/fake/etc/passwd")
        );
        assert_eq!(
            under_root(root, Path::new("/etc/passwd")),
            Path::new("/fake/etc/passwd")
        );
        assert_eq!(
            under_root(root, Path::new("../../etc/x")),
            Path::new("/fake/etc/x")
        );
    }

    #[test]
    fn prints_as_toml() {
        let cfg = AgentConfig::layered(None, &args(&["--server", "https://a.example"])).unwrap();
        let text = cfg.to_toml().unwrap();
        assert!(text.contains("server = \"https://a.example\""), "{text}");
    }
}
