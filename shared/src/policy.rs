//! What the server wants an agent to watch; sent in every enroll and report reply.

use serde::{Deserialize, Serialize};

use crate::snapshot::AccountRole;

/// The default issuer of the clinic's electronic certificate.
pub const DEFAULT_CERT_ISSUER: &str = "Online Billing NW Common Root CA";

/// The four distributed apps the vendor installs (DESIGN §4).
pub const DEFAULT_WATCHED_APPS: [&str; 4] = [
    "配信アプリ",
    "連携アプリ",
    "顔認証ライブラリ",
    "顔認証付きカードリーダーアプリ",
];

/// An account the agent should look after, by the role it plays on the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountSpec {
    pub role: AccountRole,
    pub name: String,
}

/// Policy an agent follows until the server sends another. A key left out (of a reply, or of
/// the server's `[policy]` settings) takes its default. `Debug` leaves the backup passwords
/// out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AgentPolicy {
    pub interval_secs: u32,
    pub accounts: Vec<AccountSpec>,
    pub watched_apps: Vec<String>,
    /// `host:port` targets the agent checks with a TCP connect.
    pub probe_targets: Vec<String>,
    pub cert_issuer: String,
    /// Passwords the clinic chose for its certificate backups, tried after the default 1357.
    /// Sent only to the clinic's own terminals, over TLS; never logged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_passwords: Vec<String>,
}

impl std::fmt::Debug for AgentPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentPolicy")
            .field("interval_secs", &self.interval_secs)
            .field("accounts", &self.accounts)
            .field("watched_apps", &self.watched_apps)
            .field("probe_targets", &self.probe_targets)
            .field("cert_issuer", &self.cert_issuer)
            .field("backup_passwords", &self.backup_passwords.len())
            .finish()
    }
}

/// A short fingerprint of the names a terminal's protected accounts are given (FNV-1a 64 over
/// `role=name` lines in role order; other roles and the list's order do not count): the agent
/// reports it with its snapshot, the server compares it with the names it gives the terminal.
pub fn accounts_key(accounts: &[AccountSpec]) -> u64 {
    let mut protected: Vec<&AccountSpec> =
        accounts.iter().filter(|a| a.role.is_protected()).collect();
    protected.sort_by_key(|a| a.role);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for a in protected {
        eat(a.role.as_str().as_bytes());
        eat(b"=");
        eat(a.name.as_bytes());
        eat(b"\n");
    }
    // 0 means "not reported" on the wire.
    h.max(1)
}

impl AccountSpec {
    /// `base` with each role `over` names replaced by its name there (roles only in `over`
    /// are added).
    pub fn merged(base: &[AccountSpec], over: &[AccountSpec]) -> Vec<AccountSpec> {
        let mut out: Vec<AccountSpec> = base
            .iter()
            .filter(|b| !over.iter().any(|o| o.role == b.role))
            .cloned()
            .collect();
        out.extend(over.iter().cloned());
        out.sort_by_key(|a| a.role);
        out
    }
}

impl Default for AgentPolicy {
    fn default() -> Self {
        AgentPolicy {
            interval_secs: 60,
            accounts: Vec::new(),
            watched_apps: DEFAULT_WATCHED_APPS.iter().map(|s| s.to_string()).collect(),
            probe_targets: Vec::new(),
            cert_issuer: DEFAULT_CERT_ISSUER.to_string(),
            backup_passwords: Vec::new(),
        }
    }
}
