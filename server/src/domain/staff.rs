//! The support desk's staff: roles, accounts, sessions, who acted, and the audit log.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a staff member may do: admins act, viewers only look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::Viewer]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Role::Admin => "管理者",
            Role::Viewer => "閲覧者",
        }
    }
}

/// The part of the fleet a staff member (or an API token) may see and act on: the clinics in
/// any of the prefectures, and the clinics of any of the named groups. `None` where a scope is
/// stored means the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scope {
    #[serde(default)]
    pub prefectures: Vec<String>,
    /// Clinic group ids.
    #[serde(default)]
    pub groups: Vec<i64>,
}

impl Scope {
    /// How the store keeps a scope: JSON, or NULL for the whole fleet.
    pub fn stored(scope: Option<&Scope>) -> Option<String> {
        scope.map(|s| serde_json::to_string(s).unwrap_or_else(|_| "{}".into()))
    }

    /// A stored scope read back. A value that does not parse reaches nothing (never the whole
    /// fleet).
    pub fn from_stored(text: Option<&str>) -> Option<Scope> {
        text.map(|t| serde_json::from_str(t).unwrap_or_default())
    }
}

/// A scope resolved to the clinics it reaches, once per request: every query and every check
/// of a page, an export, an API call or an action goes through it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reach {
    /// The whole fleet (unscoped staff, the evaluator, the command line).
    #[default]
    All,
    /// These clinics only (sorted, no duplicates).
    Clinics(std::sync::Arc<[i64]>),
}

impl Reach {
    pub fn clinics(mut ids: Vec<i64>) -> Reach {
        ids.sort_unstable();
        ids.dedup();
        Reach::Clinics(ids.into())
    }

    pub fn allows(&self, clinic_id: i64) -> bool {
        match self {
            Reach::All => true,
            Reach::Clinics(ids) => ids.binary_search(&clinic_id).is_ok(),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Reach::All)
    }

    /// The clinic ids, or `None` for the whole fleet.
    pub fn ids(&self) -> Option<&[i64]> {
        match self {
            Reach::All => None,
            Reach::Clinics(ids) => Some(ids),
        }
    }

    /// The clinic ids as a JSON array (SQLite reads it with `json_each`).
    pub fn ids_json(&self) -> Option<String> {
        self.ids()
            .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
    /// `None`: the whole fleet.
    pub scope: Option<Scope>,
}

/// A token another system uses on the read API: what a user is, without a password or a
/// session. Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// Viewers read; admins may also acknowledge and resolve.
    pub role: Role,
    /// `None`: the whole fleet.
    pub scope: Option<Scope>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A named set of clinics (a dealer's customers, a branch's area) that users can be limited
/// to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicGroup {
    pub id: i64,
    pub name: String,
    pub clinics: i64,
}

/// A live session and the staff member it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: i64,
    pub name: String,
    pub role: Role,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
    /// `None`: the whole fleet.
    pub scope: Option<Scope>,
}

/// Who made a change: a signed-in staff member, or someone at the command line (with the
/// operating system's user name, since the CLI has no login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Staff {
        user_id: i64,
        name: String,
    },
    CommandLine {
        os_user: String,
    },
    /// Another system, through an API token.
    Token {
        name: String,
    },
}

/// The prefix of a command-line actor's stored name.
const CLI_PREFIX: &str = "cli:";
/// The prefix of an API token's stored name.
const TOKEN_PREFIX: &str = "api:";

impl Actor {
    /// The person running this process at the command line.
    pub fn command_line() -> Actor {
        let os_user = ["USER", "USERNAME", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
            .unwrap_or_else(|| "unknown".into());
        Actor::CommandLine { os_user }
    }

    /// The name stored with the change (`yamada`, `cli:root`).
    pub fn stored_name(&self) -> String {
        match self {
            Actor::Staff { name, .. } => name.clone(),
            Actor::CommandLine { os_user } => format!("{CLI_PREFIX}{os_user}"),
            Actor::Token { name } => format!("{TOKEN_PREFIX}{name}"),
        }
    }

    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::Staff { user_id, .. } => Some(*user_id),
            Actor::CommandLine { .. } | Actor::Token { .. } => None,
        }
    }
}

/// How the pages show a stored actor name: staff by name, the command line with its OS user.
pub fn actor_label_ja(stored: &str) -> String {
    if let Some(user) = stored.strip_prefix(CLI_PREFIX) {
        format!("コマンドライン ({user})")
    } else if let Some(token) = stored.strip_prefix(TOKEN_PREFIX) {
        format!("APIトークン ({token})")
    } else {
        stored.to_string()
    }
}

/// A change staff made, for the audit log: written in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub terminal_id: Option<Uuid>,
    pub clinic_id: Option<i64>,
    pub alert_id: Option<i64>,
    pub what: String,
}

impl AuditRecord {
    pub fn new(actor: &Actor, at: DateTime<Utc>, what: impl Into<String>) -> Self {
        AuditRecord {
            at,
            actor: actor.clone(),
            terminal_id: None,
            clinic_id: None,
            alert_id: None,
            what: what.into(),
        }
    }

    pub fn clinic(mut self, id: i64) -> Self {
        self.clinic_id = Some(id);
        self
    }

    pub fn terminal(mut self, id: Uuid) -> Self {
        self.terminal_id = Some(id);
        self
    }
}

/// A line of the audit log as the pages read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub terminal_id: Option<Uuid>,
    pub clinic_id: Option<i64>,
    pub alert_id: Option<i64>,
    pub what: String,
    /// What kind of change (see [`crate::store::StaffChange::action`]); older lines have none.
    pub action: Option<String>,
    /// The names of what it concerns, for the page.
    pub hostname: Option<String>,
    pub clinic_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_store_as_json_and_a_damaged_one_reaches_nothing() {
        let scope = Scope {
            prefectures: vec!["北海道".into()],
            groups: vec![4, 9],
        };
        let text = Scope::stored(Some(&scope));
        assert_eq!(Scope::from_stored(text.as_deref()), Some(scope));
        assert_eq!(Scope::stored(None), None);
        assert_eq!(Scope::from_stored(None), None);
        assert_eq!(Scope::from_stored(Some("not json")), Some(Scope::default()));
    }

    #[test]
    fn a_reach_allows_its_clinics_only() {
        let reach = Reach::clinics(vec![9, 3, 3, 5]);
        assert!(reach.allows(3) && reach.allows(5) && reach.allows(9));
        assert!(!reach.allows(4) && !reach.allows(10));
        assert_eq!(reach.ids_json().as_deref(), Some("[3,5,9]"));
        assert_eq!(Reach::clinics(vec![]).ids_json().as_deref(), Some("[]"));
        assert!(Reach::All.allows(12345) && Reach::All.ids().is_none());
    }

    #[test]
    fn actors_store_and_show_who_they_are() {
        let staff = Actor::Staff {
            user_id: 3,
            name: "yamada".into(),
        };
        assert_eq!(staff.stored_name(), "yamada");
        assert_eq!(staff.user_id(), Some(3));
        let cli = Actor::CommandLine {
            os_user: "root".into(),
        };
        assert_eq!(cli.stored_name(), "cli:root");
        assert_eq!(cli.user_id(), None);
        assert_eq!(actor_label_ja(&cli.stored_name()), "コマンドライン (root)");
        assert_eq!(actor_label_ja("yamada"), "yamada");
        let token = Actor::Token {
            name: "ticketing".into(),
        };
        assert_eq!(token.stored_name(), "api:ticketing");
        assert_eq!(token.user_id(), None);
        assert_eq!(actor_label_ja("api:ticketing"), "APIトークン (ticketing)");
    }
}
