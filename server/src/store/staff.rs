//! The one way staff change anything: a [`StaffChange`] applied together with its audit entry
//! in one transaction. The desk layer (`crate::desk`) validates and builds them; the store only
//! applies them, so no change can land without its line in the audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use onshi_shared::AccountSpec;

use crate::calendar::Closure;
use crate::domain::{AuditRecord, ClinicDetail, Contact, Role, Silence};

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
    },
    /// Resolved by hand; it stays resolved while the same occurrence persists.
    ResolveAlert {
        id: i64,
        note: String,
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

/// Staff changes, each written with its audit entry in one transaction.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Applies `change` and, when it changed something, writes `audit` (completed with the
    /// clinic, terminal and alert the change concerned, and the id of what it created).
    /// Nothing is written for [`Applied::NotFound`] and [`Applied::Conflict`].
    async fn apply(&self, change: &StaffChange, audit: &AuditRecord) -> StoreResult<Applied>;
}
