//! The server's own vocabulary: typed rule keys and severities, alerts and silences, clinics,
//! overview lines, staff and the audit log, mail kinds and states, expected versions. No I/O:
//! the store, the rules, the desk and the pages all speak in these types.

mod alert;
mod clinic;
mod mail;
mod overview;
mod rule;
mod staff;
mod version;

pub use alert::{
    AUTO_ACTOR, Alert, AlertAction, AlertStatus, DailyWindow, HistoryEntry, Silence, SilenceScope,
    SilenceTarget,
};
pub use clinic::{Clinic, ClinicDetail, ClinicRules, ClinicSettings, Contact, PREFECTURES};
pub use mail::{Lane, MailKind, NewMail, OutboxCounts, OutboxMail, OutboxRow, OutboxStatus};
pub use overview::{
    BackupKind, FleetTally, Handling, HandlingKind, Liveness, OverviewLine, SeverityFilter,
    Tallies, severity_of_rank, severity_rank,
};
pub use rule::{RuleKey, Severity};
pub use staff::{
    Actor, ApiToken, AuditRecord, AuditRow, ClinicGroup, Reach, Role, Scope, SessionUser, User,
    actor_label_ja,
};
pub use version::{
    ExpectedVersion, ExpectedVersionRow, VersionSource, compare_versions, effective_versions,
};
