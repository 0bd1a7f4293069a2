//! The one way staff change anything: a [`StaffChange`] applied together with its audit entry
//! in one transaction. The desk layer (`crate::desk`) validates and builds them; the store only
//! applies them, so no change can land without its line in the audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use onshi_shared::AccountSpec;

use super::desk::{AuditQuery, NewSession};
use crate::calendar::Closure;
use crate::domain::{
    ApiToken, AuditRecord, AuditRow, ClinicDetail, ClinicGroup, Contact, Reach, Role, Scope,
    SessionUser, Silence, User,
};
use futures_util::stream::BoxStream;

/// A secret sealed with the server's key (AES-256-GCM): what the store keeps of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(..)")
    }
}

/// Everything staff can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffChange {
    /// No more immediate mails for the alert (until `until`, if given).
    AcknowledgeAlert {
        id: i64,
        note: String,
        until: Option<DateTime<Utc>>,
        /// The channel messages that say so, stored with the change when it applies.
        tell: Vec<crate::domain::NewMail>,
    },
    /// Resolved by hand; it stays resolved while the same occurrence persists.
    ResolveAlert {
        id: i64,
        note: String,
        tell: Vec<crate::domain::NewMail>,
    },
    NoteAlert {
        id: i64,
        note: String,
    },
    AddSilence(Silence),
    /// Ends a silence now (or drops it if it had not started).
    EndSilence {
        id: i64,
    },
    /// Creates (id 0) or updates a clinic: its details, calendar week, rule settings and the
    /// account names its terminals are given (its closures have changes of their own).
    SaveClinic(Box<ClinicDetail>),
    /// Dated closures (臨時休診, a long holiday) of a clinic, one or an imported list.
    AddClosures {
        clinic_id: i64,
        closures: Vec<Closure>,
    },
    DeleteClosure {
        clinic_id: i64,
        id: i64,
    },
    /// Staff checked the terminal's protected account names: they are given to the terminal
    /// (the roles that differ from its clinic's; an empty list: its clinic's), and what the
    /// next baseline does not find is missing for real.
    ConfirmAccounts {
        terminal_id: Uuid,
        own: Vec<AccountSpec>,
    },
    /// The clinic's own certificate backup password, sealed (`None` clears it: back to 1357).
    SetBackupPassword {
        clinic_id: i64,
        sealed: Option<SealedSecret>,
    },
    AddContact(Contact),
    DeleteContact {
        clinic_id: i64,
        id: i64,
    },
    AddEnrollmentCode {
        clinic_id: i64,
        code_hash: String,
        expires_at: DateTime<Utc>,
        /// Who it was read out to, as staff note it.
        label: String,
        /// The code's last four characters, to match it again.
        last_chars: String,
    },
    /// Revokes an active code; with `clinic_id`, only a code of that clinic.
    RevokeEnrollmentCode {
        clinic_id: Option<i64>,
        code_hash: String,
    },
    /// The terminal's token stops working; the terminal leaves the overview.
    RevokeTerminal {
        id: Uuid,
    },
    /// Sets (or with `None` clears) the version staff expect of a watched app; the grace
    /// period starts at `since`.
    SetExpectedVersion {
        app: String,
        version: Option<String>,
        since: DateTime<Utc>,
    },
    CreateUser {
        name: String,
        role: Role,
        password_hash: String,
        /// `None`: the whole fleet.
        scope: Option<Scope>,
    },
    /// Sets what a user may do and see. Their sessions read it on every request.
    SetUserAccess {
        user_id: i64,
        role: Role,
        scope: Option<Scope>,
    },
    CreateGroup {
        name: String,
    },
    /// Deletes a clinic group and its memberships; users limited to it no longer reach its
    /// clinics through it.
    DeleteGroup {
        id: i64,
    },
    /// A new API token (only its hash).
    CreateToken {
        name: String,
        token_hash: String,
        role: Role,
        scope: Option<Scope>,
    },
    /// The token stops working at once.
    RevokeToken {
        id: i64,
    },
    /// Adds a clinic to a group or takes it out.
    SetGroupMember {
        group_id: i64,
        clinic_id: i64,
        member: bool,
    },
    /// Sets a password and ends every session of the user.
    SetPassword {
        user_id: i64,
        password_hash: String,
    },
    /// Disables (ending every session) or enables a user.
    SetUserDisabled {
        user_id: i64,
        disabled: bool,
    },
}

impl StaffChange {
    /// The kind of change, as the audit log files it (its page filters by it).
    pub fn action(&self) -> &'static str {
        match self {
            StaffChange::AcknowledgeAlert { .. }
            | StaffChange::ResolveAlert { .. }
            | StaffChange::NoteAlert { .. } => "alert",
            StaffChange::AddSilence(_) | StaffChange::EndSilence { .. } => "silence",
            StaffChange::SaveClinic(_) | StaffChange::SetBackupPassword { .. } => "clinic",
            StaffChange::AddClosures { .. } | StaffChange::DeleteClosure { .. } => "closure",
            StaffChange::ConfirmAccounts { .. } | StaffChange::RevokeTerminal { .. } => "terminal",
            StaffChange::AddContact(_) | StaffChange::DeleteContact { .. } => "contact",
            StaffChange::AddEnrollmentCode { .. } | StaffChange::RevokeEnrollmentCode { .. } => {
                "code"
            }
            StaffChange::SetExpectedVersion { .. } => "version",
            StaffChange::CreateUser { .. }
            | StaffChange::SetPassword { .. }
            | StaffChange::SetUserAccess { .. }
            | StaffChange::SetUserDisabled { .. } => "user",
            StaffChange::CreateGroup { .. }
            | StaffChange::DeleteGroup { .. }
            | StaffChange::SetGroupMember { .. } => "group",
            StaffChange::CreateToken { .. } | StaffChange::RevokeToken { .. } => "token",
        }
    }
}

/// The audit log's kinds of change, with their names for the page's filter.
pub const AUDIT_ACTIONS: [(&str, &str); 14] = [
    ("alert", "アラート"),
    ("bulk", "アラートの一括操作"),
    ("silence", "通知の停止"),
    ("clinic", "医療機関"),
    ("closure", "休診日"),
    ("contact", "連絡先"),
    ("code", "登録コード"),
    ("terminal", "端末"),
    ("version", "期待するバージョン"),
    ("user", "ユーザー"),
    ("group", "医療機関グループ"),
    ("token", "APIトークン"),
    ("login", "ログイン"),
    ("agent", "端末から報告された変更"),
];

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Done. `id` is the new row's (clinic, contact, silence, user) when one was made;
    /// `terminal_id` the terminal the change concerned, when there is one (the evaluator looks
    /// at it again).
    Done {
        id: Option<i64>,
        terminal_id: Option<Uuid>,
    },
    /// Nothing to change: unknown, already resolved, already revoked.
    NotFound,
    /// A unique value is taken (a clinic's medical institution code, a user name).
    Conflict,
}

impl Applied {
    pub fn done() -> Applied {
        Applied::Done {
            id: None,
            terminal_id: None,
        }
    }
}

/// Staff: users, sessions and the audit log, and every change staff make, each written with
/// its audit entry in one transaction.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Applies `change` and, when it changed something, writes `audit` (completed with the
    /// clinic, terminal and alert the change concerned, and the id of what it created).
    /// Nothing is written for [`Applied::NotFound`] and [`Applied::Conflict`].
    async fn apply(&self, change: &StaffChange, audit: &AuditRecord) -> StoreResult<Applied>;
    /// One action on many alerts in one transaction: each alert's history, and one audit line
    /// (`audit`, its text completed with the ids it applied to). Alerts it cannot apply to
    /// (gone, or resolved for acknowledge and resolve) are skipped.
    /// `tell`: channel messages, each naming its alert (`alert_id`); those of the alerts the
    /// action applies to are stored with it.
    async fn bulk_alerts(
        &self,
        ids: &[i64],
        action: &BulkAction,
        audit: &AuditRecord,
        tell: &[crate::domain::NewMail],
    ) -> StoreResult<BulkOutcome>;

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;

    async fn users(&self) -> StoreResult<Vec<User>>;

    /// The clinics a scope reaches: those in its prefectures and those in its groups.
    async fn scope_clinics(&self, scope: &Scope) -> StoreResult<Vec<i64>>;

    /// The clinic groups, by name, with how many clinics each has.
    async fn clinic_groups(&self) -> StoreResult<Vec<ClinicGroup>>;

    /// A group's clinics (id, name), by name.
    async fn group_clinics(&self, group_id: i64) -> StoreResult<Vec<(i64, String)>>;

    /// Every API token, revoked ones too, by name.
    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>>;

    /// The token with this hash, revoked or not.
    async fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;

    /// Records that the token was used at `at`.
    async fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()>;

    /// Starts a session and records the login in the audit log, in one transaction.
    async fn create_session(&self, session: &NewSession, audit: &AuditRecord) -> StoreResult<()>;

    /// The session's user, if the session exists, has not expired and the user is enabled.
    async fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<SessionUser>>;

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;

    /// Audit lines, newest first.
    async fn audit_rows(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRow>>;

    /// The actors that appear in the audit log (for its filter).
    async fn audit_actors(&self, reach: &Reach) -> StoreResult<Vec<String>>;

    /// The audit page's lines for a CSV export, likewise.
    fn export_audit(&self, q: AuditQuery) -> BoxStream<'static, StoreResult<AuditRow>>;
}

/// What staff do to many alerts at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAction {
    Acknowledge {
        note: String,
        until: Option<DateTime<Utc>>,
    },
    Resolve {
        note: String,
    },
    Note {
        note: String,
    },
    /// No mail for each alert's terminal and rule until `until` (a silence per pair).
    Silence {
        until: DateTime<Utc>,
        reason: String,
    },
}

impl BulkAction {
    pub fn label_ja(&self) -> &'static str {
        match self {
            BulkAction::Acknowledge { .. } => "確認済みに",
            BulkAction::Resolve { .. } => "解決済みに",
            BulkAction::Note { .. } => "メモを追加",
            BulkAction::Silence { .. } => "通知を停止",
        }
    }
}

/// What a bulk action did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// The alerts it applied to.
    pub alerts: Vec<i64>,
    /// Their terminals (the evaluator looks at them again).
    pub terminals: Vec<Uuid>,
}
