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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
}

/// A live session and the staff member it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: i64,
    pub name: String,
    pub role: Role,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// Who made a change: a signed-in staff member, or someone at the command line (with the
/// operating system's user name, since the CLI has no login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Staff { user_id: i64, name: String },
    CommandLine { os_user: String },
}

/// The prefix of a command-line actor's stored name.
const CLI_PREFIX: &str = "cli:";

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
        }
    }

    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::Staff { user_id, .. } => Some(*user_id),
            Actor::CommandLine { .. } => None,
        }
    }
}

/// How the pages show a stored actor name: staff by name, the command line with its OS user.
pub fn actor_label_ja(stored: &str) -> String {
    match stored.strip_prefix(CLI_PREFIX) {
        Some(user) => format!("コマンドライン ({user})"),
        None => stored.to_string(),
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
    }
}
