//! The one way staff change anything: a [`StaffChange`] applied together with its audit entry
//! in one transaction. The desk layer (`crate::desk`) validates and builds them; the store only
//! applies them, so no change can land without its line in the audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{AuditRecord, ClinicDetail, Contact, Role, Silence};

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
    /// Creates (id 0) or updates a clinic.
    SaveClinic(ClinicDetail),
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
