//! The support desk's side of the store: staff accounts and sessions, the fleet overview, the
//! terminal page, the alerts page, clinics with their contacts and codes, the outbox and the
//! audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use super::alerts::{Alert, ClinicSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
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

/// A change made by staff, for the audit log.
#[derive(Debug, Clone)]
pub struct StaffAudit {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub user_id: Option<i64>,
    pub terminal_id: Option<Uuid>,
    pub clinic_id: Option<i64>,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub terminal_id: Option<Uuid>,
    pub clinic_id: Option<i64>,
    pub what: String,
}

/// One terminal's line in the overview, as the evaluator last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalSummary {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub clinic_name: String,
    pub prefecture: Option<String>,
    pub hostname: String,
    pub state: TerminalStateKind,
    pub open_alerts: i64,
    /// Bit `i` set: rule `rules::key::ALL[i]` has an unresolved alert on this terminal.
    pub open_rules: u32,
    pub apps_behind: i64,
    pub backup: BackupKind,
    pub last_start: Option<DateTime<Utc>>,
    pub cert_not_after: Option<DateTime<Utc>>,
}

/// The one word the overview gives a terminal, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TerminalStateKind {
    Ok,
    Silenced,
    Warning,
    Offline,
    Critical,
}

impl TerminalStateKind {
    pub const ALL: [TerminalStateKind; 5] = [
        TerminalStateKind::Critical,
        TerminalStateKind::Offline,
        TerminalStateKind::Warning,
        TerminalStateKind::Silenced,
        TerminalStateKind::Ok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TerminalStateKind::Ok => "ok",
            TerminalStateKind::Silenced => "silenced",
            TerminalStateKind::Warning => "warning",
            TerminalStateKind::Offline => "offline",
            TerminalStateKind::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn rank(self) -> i64 {
        self as i64
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            TerminalStateKind::Ok => "正常",
            TerminalStateKind::Silenced => "抑止中",
            TerminalStateKind::Warning => "注意",
            TerminalStateKind::Offline => "オフライン",
            TerminalStateKind::Critical => "緊急",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    Ok,
    Missing,
    Stale,
    Unknown,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Ok => "ok",
            BackupKind::Missing => "missing",
            BackupKind::Stale => "stale",
            BackupKind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> BackupKind {
        match s {
            "ok" => BackupKind::Ok,
            "missing" => BackupKind::Missing,
            "stale" => BackupKind::Stale,
            _ => BackupKind::Unknown,
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            BackupKind::Ok => "済",
            BackupKind::Missing => "なし",
            BackupKind::Stale => "古い証明書",
            BackupKind::Unknown => "—",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FleetSort {
    /// Worst state first, then most open alerts.
    #[default]
    State,
    Clinic,
    Hostname,
    LastStart,
    CertExpiry,
    Alerts,
}

impl FleetSort {
    pub const ALL: [FleetSort; 6] = [
        FleetSort::State,
        FleetSort::Clinic,
        FleetSort::Hostname,
        FleetSort::LastStart,
        FleetSort::CertExpiry,
        FleetSort::Alerts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FleetSort::State => "state",
            FleetSort::Clinic => "clinic",
            FleetSort::Hostname => "hostname",
            FleetSort::LastStart => "last_start",
            FleetSort::CertExpiry => "cert",
            FleetSort::Alerts => "alerts",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The overview's filters; every one is served by an index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetQuery {
    pub clinic_id: Option<i64>,
    pub prefecture: Option<String>,
    pub state: Option<TerminalStateKind>,
    pub rule: Option<String>,
    /// Prefix of the hostname, the clinic name or the medical institution code.
    pub search: Option<String>,
    pub sort: FleetSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// An overview line: the summary plus the live columns.
#[derive(Debug, Clone)]
pub struct FleetRow {
    pub summary: TerminalSummary,
    pub last_seen: Option<DateTime<Utc>>,
    pub clinic_code: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TerminalDetail {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub clinic_name: String,
    pub hostname: String,
    pub agent_version: String,
    pub os: String,
    pub enrolled_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub seq: Option<i64>,
    pub summary: Option<TerminalSummary>,
}

/// An alert with the names the desk reads it by.
#[derive(Debug, Clone)]
pub struct AlertView {
    pub alert: Alert,
    pub hostname: String,
    pub clinic_name: String,
    pub last_note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertGroup {
    Rule,
    Clinic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    pub rule: Option<String>,
    pub clinic_id: Option<i64>,
    pub terminal_id: Option<Uuid>,
    /// Resolved ones too (the terminal page shows its recent history).
    pub include_resolved: bool,
    /// Whether to count every match (else the total comes back as -1).
    pub count: bool,
    pub offset: i64,
    pub limit: i64,
}

/// How fast staff acknowledge and resolve, per clinic or per rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseTimes {
    pub key: String,
    pub alerts: i64,
    pub acknowledged: i64,
    pub mean_ack_minutes: Option<f64>,
    pub resolved: i64,
    pub mean_resolve_minutes: Option<f64>,
}

/// A clinic with everything the clinic page edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicDetail {
    pub settings: ClinicSettings,
    pub code: Option<String>,
    pub phone: Option<String>,
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicListRow {
    pub id: i64,
    pub name: String,
    pub code: Option<String>,
    pub prefecture: Option<String>,
    pub email: String,
    pub terminals: i64,
    pub open_alerts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: i64,
    pub clinic_id: i64,
    pub name: String,
    pub role: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    pub code_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub clinic_id: Option<i64>,
    pub clinic_name: Option<String>,
    pub recipient: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
}

#[async_trait]
pub trait DeskStore: Send + Sync {
    /// `None` when the name is taken.
    async fn create_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i64>>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Sets the password and ends every session of the user.
    async fn set_password(&self, user_id: i64, hash: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Disables (ending every session) or enables a user.
    async fn set_user_disabled(
        &self,
        user_id: i64,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        address: &str,
    ) -> StoreResult<()>;
    /// The session's user, if the session exists, has not expired and the user is enabled.
    async fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<SessionUser>>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    async fn record_audit(&self, entry: &StaffAudit) -> StoreResult<()>;
    async fn audit_rows(
        &self,
        clinic_id: Option<i64>,
        terminal_id: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>>;

    /// Every stored summary, to warm the evaluator at start-up.
    async fn summaries(&self) -> StoreResult<Vec<TerminalSummary>>;
    async fn write_summaries(
        &self,
        rows: &[TerminalSummary],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Terminals per state.
    async fn state_counts(&self) -> StoreResult<Vec<(TerminalStateKind, i64)>>;
    /// Terminals with an unresolved alert, per rule.
    async fn rule_counts(&self) -> StoreResult<Vec<(String, i64)>>;
    /// How many terminals match the filters (limit and offset ignored).
    async fn fleet_count(&self, q: &FleetQuery) -> StoreResult<i64>;
    /// One page of the overview.
    async fn fleet_rows(&self, q: &FleetQuery) -> StoreResult<Vec<FleetRow>>;
    async fn prefectures(&self) -> StoreResult<Vec<String>>;

    async fn terminal_detail(&self, id: Uuid) -> StoreResult<Option<TerminalDetail>>;
    /// The hours (UTC, truncated) in which the terminal reported, since `since`.
    async fn report_hours(&self, id: Uuid, since: DateTime<Utc>)
    -> StoreResult<Vec<DateTime<Utc>>>;

    /// A terminal's events since `since`, newest first.
    async fn recent_events(
        &self,
        id: Uuid,
        since: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<super::StoredEvent>>;
    async fn alert_views(&self, q: &AlertQuery) -> StoreResult<(i64, Vec<AlertView>)>;
    /// `false` when the alert does not exist.
    async fn add_alert_note(
        &self,
        id: i64,
        who: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn response_times(
        &self,
        group: AlertGroup,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<ResponseTimes>>;

    async fn clinic_list(
        &self,
        search: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(i64, Vec<ClinicListRow>)>;
    async fn clinic_detail(&self, id: i64) -> StoreResult<Option<ClinicDetail>>;
    /// Creates (id 0) or updates a clinic; `Ok(None)` when the medical institution code is
    /// already another clinic's.
    async fn save_clinic(&self, c: &ClinicDetail, now: DateTime<Utc>) -> StoreResult<Option<i64>>;
    async fn contacts(&self, clinic_id: i64) -> StoreResult<Vec<Contact>>;
    async fn add_contact(&self, c: &Contact) -> StoreResult<i64>;
    async fn delete_contact(&self, clinic_id: i64, id: i64) -> StoreResult<bool>;
    async fn enrollment_codes(&self, clinic_id: i64) -> StoreResult<Vec<CodeRow>>;
    async fn outbox_rows(&self, clinic_id: Option<i64>, limit: i64) -> StoreResult<Vec<OutboxRow>>;
}
