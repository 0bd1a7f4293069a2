//! The whole current state of one terminal, as one agent collection saw it (DESIGN §4).
//!
//! Every area can be partly unknown: a source that cannot read a field leaves it `None` and
//! adds a [`SourceNote`] saying why, rather than failing the whole snapshot.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::limits::{ProtocolError, Validate, check_all, check_opt, check_str, check_strs};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    pub collected_at: DateTime<Utc>,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub uptime: Uptime,
    pub apps: Apps,
    pub certificates: Certificates,
    pub accounts: Accounts,
    pub network: Network,
    /// What a source could not read, and why.
    #[serde(default)]
    pub notes: Vec<SourceNote>,
    /// What the agent's own spool lost over its life (absent: nothing).
    #[serde(default, skip_serializing_if = "SpoolLosses::is_nothing")]
    pub spool: SpoolLosses,
}

/// Events the agent's spool lost, over its life: the server shows them on the terminal page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpoolLosses {
    /// Every event dropped: past the spool's size or age limits, refused by the server, or
    /// corrupt.
    pub dropped: u64,
    /// Of those: records that failed their checksum on disk.
    #[serde(default)]
    pub corrupt: u64,
}

impl SpoolLosses {
    pub fn is_nothing(&self) -> bool {
        self.dropped == 0 && self.corrupt == 0
    }
}

/// Nothing lost hashes as nothing, so the hash of every snapshot from before this field
/// existed (the server keeps it with the stored body) stays what it was.
impl std::hash::Hash for SpoolLosses {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if !self.is_nothing() {
            self.dropped.hash(state);
            self.corrupt.hash(state);
        }
    }
}

/// How the machine last started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    /// A full boot: restart or power on from a real shutdown.
    ColdBoot,
    /// Windows "shut down" with fast startup, then power on: the kernel resumed, uptime kept.
    FastStartup,
    /// Resume from hibernation.
    Resume,
    Unknown,
}

impl StartKind {
    pub const ALL: [StartKind; 4] = [
        StartKind::ColdBoot,
        StartKind::FastStartup,
        StartKind::Resume,
        StartKind::Unknown,
    ];

    /// Whether this start installs pending app updates the way a daily restart must: a full
    /// boot or a fast-startup power-on does; a resume from hibernation does not.
    pub fn counts_as_restart(self) -> bool {
        matches!(self, StartKind::ColdBoot | StartKind::FastStartup)
    }

    /// The name on the wire and in the server's tables (`cold_boot`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StartKind::ColdBoot => "cold_boot",
            StartKind::FastStartup => "fast_startup",
            StartKind::Resume => "resume",
            StartKind::Unknown => "unknown",
        }
    }

    /// The stored name back; anything else is `Unknown`.
    pub fn parse(s: &str) -> StartKind {
        StartKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(StartKind::Unknown)
    }

    /// How the desk's pages name it.
    pub fn label_ja(self) -> &'static str {
        match self {
            StartKind::ColdBoot => "再起動",
            StartKind::FastStartup => "高速スタートアップ",
            StartKind::Resume => "休止状態から復帰",
            StartKind::Unknown => "不明",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uptime {
    /// Seconds since the kernel last booted (Windows: `GetTickCount64`).
    pub uptime_secs: u64,
    /// The last full kernel boot.
    pub last_boot: DateTime<Utc>,
    /// The last start of any kind, including a fast-startup power-on that did not reset uptime.
    pub last_start: DateTime<Utc>,
    pub last_start_kind: StartKind,
    /// Whether the shutdown before the last start was clean; `None` when unknown.
    pub last_shutdown_clean: Option<bool>,
    /// Who or what asked for the last restart (Windows User32 1074), when known.
    pub restart_requested_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppInfo {
    pub name: String,
    pub version: Option<String>,
    pub installed_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingReboot {
    /// Which markers say a reboot is pending (e.g. `CBS RebootPending`, `reboot-required`),
    /// as text; `markers` says the same with their sources.
    pub reasons: Vec<String>,
    pub since: Option<DateTime<Utc>>,
    /// Each marker with its source and since when it is set. Empty from agents before 0.2: the
    /// server reads `reasons` then.
    #[serde(default)]
    pub markers: Vec<RebootMarker>,
}

/// One thing that says a reboot is pending.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RebootMarker {
    pub source: RebootSource,
    pub since: Option<DateTime<Utc>>,
    /// E.g. the packages waiting (Linux).
    #[serde(default)]
    pub detail: Option<String>,
}

/// Where a pending reboot was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RebootSource {
    /// `Component Based Servicing\RebootPending`: Windows servicing (updates, features).
    ComponentServicing,
    /// `WindowsUpdate\Auto Update\RebootRequired`.
    WindowsUpdate,
    /// `Session Manager\PendingFileRenameOperations`: files to replace at the next start.
    /// Security software keeps it set on many PCs.
    FileRename,
    /// Debian's `reboot-required` (development and test terminals).
    PackageManager,
}

impl RebootSource {
    /// The source a marker's text names (what agents before 0.2 sent).
    pub fn of_reason(reason: &str) -> Option<RebootSource> {
        match reason {
            "CBS RebootPending" => Some(RebootSource::ComponentServicing),
            "WindowsUpdate RebootRequired" => Some(RebootSource::WindowsUpdate),
            "PendingFileRenameOperations" => Some(RebootSource::FileRename),
            "reboot-required" => Some(RebootSource::PackageManager),
            _ => None,
        }
    }

    /// How the desk and clinics read it.
    pub fn label_ja(self) -> &'static str {
        match self {
            RebootSource::ComponentServicing => {
                "Windows の更新（コンポーネント）が再起動を待っています"
            }
            RebootSource::WindowsUpdate => "Windows Update が再起動を待っています",
            RebootSource::FileRename => {
                "再起動時に置き換えるファイルがあります（セキュリティソフト等が常に設定していることがあります）"
            }
            RebootSource::PackageManager => "更新したパッケージが再起動を待っています",
        }
    }
}

impl PendingReboot {
    /// The markers with their sources: as sent, or read from `reasons` for older agents.
    pub fn sources(&self) -> Vec<RebootMarker> {
        if !self.markers.is_empty() {
            return self.markers.clone();
        }
        self.reasons
            .iter()
            .filter_map(|r| RebootSource::of_reason(r))
            .map(|source| RebootMarker {
                source,
                since: self.since,
                detail: None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Apps {
    /// The watched apps that are installed, with versions.
    pub installed: Vec<AppInfo>,
    /// Watched apps that were not found.
    #[serde(default)]
    pub missing: Vec<String>,
    pub pending_reboot: Option<PendingReboot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    /// SHA-1 of the DER certificate, upper-case hex, as Windows shows it.
    pub thumbprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub has_private_key: bool,
    /// Where it was found (`LocalMachine\My`, a user's store, a file path).
    pub store: String,
}

/// The last verified `.pfx` backup (`onshi-agent verify-backup`). Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupState {
    pub thumbprint: String,
    pub verified_at: DateTime<Utc>,
    pub not_after: Option<DateTime<Utc>>,
    /// Whether the backup holds the certificate installed now.
    pub matches_current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Certificates {
    /// Certificates issued under the configured root CA.
    pub certs: Vec<CertInfo>,
    pub backup: Option<BackupState>,
}

impl Certificates {
    /// The certificate that expires last: the one a renewal installed.
    pub fn current(&self) -> Option<&CertInfo> {
        self.certs.iter().max_by_key(|c| c.not_after)
    }
}

/// The role an account plays on the terminal (vendor notes: which may and may not change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    /// The Windows (auto-login) account created at install.
    Windows,
    /// The face-authentication account created at install.
    FaceAuth,
    /// The linkage account (receipt system link) created at install.
    Linkage,
    Administrator,
    General,
    MedicalViewing,
}

impl AccountRole {
    pub const ALL: [AccountRole; 6] = [
        AccountRole::Windows,
        AccountRole::FaceAuth,
        AccountRole::Linkage,
        AccountRole::Administrator,
        AccountRole::General,
        AccountRole::MedicalViewing,
    ];

    /// The protected roles, in the order the vendor lists them.
    pub const PROTECTED: [AccountRole; 3] = [
        AccountRole::Windows,
        AccountRole::FaceAuth,
        AccountRole::Linkage,
    ];

    /// The name on the wire and in the server's tables (`windows`, `face_auth`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Windows => "windows",
            AccountRole::FaceAuth => "face_auth",
            AccountRole::Linkage => "linkage",
            AccountRole::Administrator => "administrator",
            AccountRole::General => "general",
            AccountRole::MedicalViewing => "medical_viewing",
        }
    }

    pub fn parse(s: &str) -> Option<AccountRole> {
        AccountRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Accounts that must never be changed: changes break the terminal.
    pub fn is_protected(self) -> bool {
        matches!(
            self,
            AccountRole::Windows | AccountRole::FaceAuth | AccountRole::Linkage
        )
    }

    /// The name the vendor's notes use for this account.
    pub fn label_ja(self) -> &'static str {
        match self {
            AccountRole::Windows => "Windowsアカウント",
            AccountRole::FaceAuth => "顔認証アカウント",
            AccountRole::Linkage => "連携アカウント",
            AccountRole::Administrator => "管理者アカウント",
            AccountRole::General => "一般アカウント",
            AccountRole::MedicalViewing => "医療情報閲覧アカウント",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountState {
    pub role: AccountRole,
    /// The configured name, or the current name when the account was renamed.
    pub name: String,
    pub exists: bool,
    pub enabled: Option<bool>,
    pub locked: Option<bool>,
    pub password_last_set: Option<DateTime<Utc>>,
    pub password_expires: Option<DateTime<Utc>>,
    /// Stable identity (Windows SID; `uid:N` on Linux) so a rename is seen as a rename.
    pub sid: Option<String>,
    /// The latest account-management event the Windows Security log records for this account:
    /// who changed it and when. `None` when the log has none, cannot be read, or off Windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<AccountLogEntry>,
}

/// One Security-log event about an account (4720–4726, 4738, 4740, 4781, 4732/4733).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountLogEntry {
    pub at: DateTime<Utc>,
    pub event_id: u32,
    /// What happened, e.g. `password_reset`, `renamed onshi -> onshi2`.
    pub what: String,
    /// `DOMAIN\user` who did it, when the event names one.
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accounts {
    pub accounts: Vec<AccountState>,
    /// Whether account-management auditing is on (Windows); `None` when unknown.
    pub auditing: Option<bool>,
    /// [`crate::accounts_key`] of the account names the agent looked for (0 from agents
    /// before 0.2): the server takes a terminal's account baseline only from a snapshot
    /// collected with the names it currently gives that terminal.
    #[serde(default)]
    pub policy_key: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Adapter {
    pub name: String,
    pub mac: Option<String>,
    pub up: bool,
    pub addresses: Vec<String>,
    pub gateways: Vec<String>,
    pub dns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeResult {
    pub target: String,
    pub reachable: bool,
    pub latency_ms: Option<u32>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Network {
    pub adapters: Vec<Adapter>,
    pub default_gateway: Option<String>,
    pub gateway_mac: Option<String>,
    /// Hash of the layout (adapters, addresses, gateways, DNS, gateway MAC); changes when any
    /// part of it changes.
    pub fingerprint: String,
    pub probes: Vec<ProbeResult>,
}

/// A field a source could not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceNote {
    pub area: String,
    pub detail: String,
}

impl Validate for Snapshot {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_str("hostname", &self.hostname)?;
        if self.hostname.trim().is_empty() {
            return Err(ProtocolError::Invalid {
                field: "hostname",
                reason: "must not be empty",
            });
        }
        check_str("os", &self.os)?;
        check_str("agent_version", &self.agent_version)?;
        check_opt(
            "uptime.restart_requested_by",
            &self.uptime.restart_requested_by,
        )?;
        check_all("apps.installed", &self.apps.installed)?;
        check_strs("apps.missing", &self.apps.missing)?;
        if let Some(p) = &self.apps.pending_reboot {
            check_strs("apps.pending_reboot.reasons", &p.reasons)?;
        }
        check_all("certificates.certs", &self.certificates.certs)?;
        if let Some(b) = &self.certificates.backup {
            check_str("certificates.backup.thumbprint", &b.thumbprint)?;
        }
        check_all("accounts.accounts", &self.accounts.accounts)?;
        check_all("network.adapters", &self.network.adapters)?;
        check_opt("network.default_gateway", &self.network.default_gateway)?;
        check_opt("network.gateway_mac", &self.network.gateway_mac)?;
        check_str("network.fingerprint", &self.network.fingerprint)?;
        check_all("network.probes", &self.network.probes)?;
        check_all("notes", &self.notes)
    }
}

impl Validate for AppInfo {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_str("apps.installed.name", &self.name)?;
        check_opt("apps.installed.version", &self.version)?;
        check_opt("apps.installed.installed_on", &self.installed_on)
    }
}

impl Validate for CertInfo {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_str("certificates.subject", &self.subject)?;
        check_str("certificates.issuer", &self.issuer)?;
        check_str("certificates.serial", &self.serial)?;
        check_str("certificates.thumbprint", &self.thumbprint)?;
        check_str("certificates.store", &self.store)
    }
}

impl Validate for AccountState {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_str("accounts.name", &self.name)?;
        check_opt("accounts.sid", &self.sid)?;
        if let Some(c) = &self.last_change {
            check_str("accounts.last_change.what", &c.what)?;
            check_opt("accounts.last_change.by", &c.by)?;
        }
        Ok(())
    }
}

impl Validate for Adapter {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_str("network.adapters.name", &self.name)?;
        check_opt("network.adapters.mac", &self.mac)?;
        check_strs("network.adapters.addresses", &self.addresses)?;
        check_strs("network.adapters.gateways", &self.gateways)?;
        check_strs("network.adapters.dns", &self.dns)
    }
}

impl Validate for ProbeResult {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_str("network.probes.target", &self.target)?;
        check_opt("network.probes.error", &self.error)
    }
}

impl Validate for SourceNote {
    fn validate(&self) -> Result<(), ProtocolError> {
        check_str("notes.area", &self.area)?;
        check_str("notes.detail", &self.detail)
    }
}

/// Realistic sample messages, for tests, the demo and the benchmark.
pub mod sample {
    use chrono::{Duration, TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::event::{AccountChange, Event, EventKind};
    use crate::{Report, SCHEMA_VERSION};

    /// A healthy terminal's snapshot, as a Windows agent would send it, collected on
    /// 2026-11-25 09:00 UTC.
    pub fn snapshot() -> Snapshot {
        snapshot_at(
            Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
                .single()
                .unwrap_or_default(),
        )
    }

    /// [`snapshot`] collected at `now`: every time in it (start, certificates, passwords) is
    /// placed relative to `now`, so the terminal is healthy at `now` whatever the date.
    pub fn snapshot_at(now: DateTime<Utc>) -> Snapshot {
        let boot = now - Duration::hours(5);
        Snapshot {
            collected_at: now,
            hostname: "ONSHI-PC-01".into(),
            os: "Windows 11 Pro 23H2".into(),
            agent_version: "0.1.0".into(),
            uptime: Uptime {
                uptime_secs: 5 * 3600,
                last_boot: boot,
                last_start: boot,
                last_start_kind: StartKind::ColdBoot,
                last_shutdown_clean: Some(true),
                restart_requested_by: None,
            },
            apps: Apps {
                installed: vec![
                    AppInfo {
                        name: "配信アプリ".into(),
                        version: Some("2.4.1".into()),
                        installed_on: Some("20260901".into()),
                    },
                    AppInfo {
                        name: "連携アプリ".into(),
                        version: Some("1.12.0".into()),
                        installed_on: Some("20260901".into()),
                    },
                ],
                missing: vec![],
                pending_reboot: None,
            },
            certificates: Certificates {
                certs: vec![CertInfo {
                    subject: "CN=1312345678,O=Sample Clinic".into(),
                    issuer: "CN=Online Billing NW Common Root CA".into(),
                    serial: "4F2A19".into(),
                    thumbprint: "3B1F6A0C9E2D4B5A6C7D8E9F0A1B2C3D4E5F6071".into(),
                    not_before: now - Duration::days(400),
                    not_after: now + Duration::days(787),
                    has_private_key: true,
                    store: "LocalMachine\\My".into(),
                }],
                backup: None,
            },
            accounts: Accounts {
                accounts: vec![
                    AccountState {
                        role: AccountRole::Windows,
                        name: "onshi".into(),
                        exists: true,
                        enabled: Some(true),
                        locked: Some(false),
                        password_last_set: Some(now - Duration::days(200)),
                        password_expires: None,
                        sid: Some("S-1-5-21-1004336348-1177238915-682003330-1001".into()),
                        last_change: None,
                    },
                    AccountState {
                        role: AccountRole::FaceAuth,
                        name: "kao".into(),
                        exists: true,
                        enabled: Some(true),
                        locked: Some(false),
                        password_last_set: Some(now - Duration::days(200)),
                        password_expires: None,
                        sid: Some("S-1-5-21-1004336348-1177238915-682003330-1002".into()),
                        last_change: None,
                    },
                ],
                auditing: Some(true),
                policy_key: 0,
            },
            network: Network {
                adapters: vec![Adapter {
                    name: "Ethernet".into(),
                    mac: Some("00:11:22:33:44:55".into()),
                    up: true,
                    addresses: vec!["192.168.10.21/24".into()],
                    gateways: vec!["192.168.10.1".into()],
                    dns: vec!["192.168.10.1".into()],
                }],
                default_gateway: Some("192.168.10.1".into()),
                gateway_mac: Some("00:aa:bb:cc:dd:ee".into()),
                fingerprint: "9f2c4d1e0b7a6c5d".into(),
                probes: vec![],
            },
            notes: vec![],
            spool: SpoolLosses::default(),
        }
    }

    /// A report carrying [`snapshot`] and one account-change event.
    pub fn report(seq: u64) -> Report {
        report_with(seq, snapshot())
    }

    /// A report carrying `snapshot` and one account-change event at its collection time.
    pub fn report_with(seq: u64, snapshot: Snapshot) -> Report {
        Report {
            schema: SCHEMA_VERSION,
            agent_id: Uuid::nil(),
            seq,
            sent_at: snapshot.collected_at,
            events: vec![Event {
                id: Uuid::now_v7(),
                at: snapshot.collected_at,
                kind: EventKind::AccountChanged {
                    role: AccountRole::Linkage,
                    name: "renkei".into(),
                    change: AccountChange::PasswordChanged,
                },
            }],
            snapshot,
        }
    }
}
