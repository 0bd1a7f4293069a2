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
pub struct AccountSpec {
    pub role: AccountRole,
    pub name: String,
}

/// Policy an agent follows until the server sends another. A key left out (of a reply, or of
/// the server's `[policy]` settings) takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentPolicy {
    pub interval_secs: u32,
    pub accounts: Vec<AccountSpec>,
    pub watched_apps: Vec<String>,
    /// `host:port` targets the agent checks with a TCP connect.
    pub probe_targets: Vec<String>,
    pub cert_issuer: String,
}

impl Default for AgentPolicy {
    fn default() -> Self {
        AgentPolicy {
            interval_secs: 60,
            accounts: Vec::new(),
            watched_apps: DEFAULT_WATCHED_APPS.iter().map(|s| s.to_string()).collect(),
            probe_targets: Vec::new(),
            cert_issuer: DEFAULT_CERT_ISSUER.to_string(),
        }
    }
}
