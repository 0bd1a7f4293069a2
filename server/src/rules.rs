//! Rules of DESIGN §5 as pure functions of a terminal's stored state, its clinic's policy and a
//! clock. Nothing here reads the database or the system clock: the evaluator loads
//! [`TerminalState`]s, builds one [`ClinicPolicy`] per clinic (with the fleet's expected app
//! versions) and passes `now`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use onshi_shared::{
    AccountChange, AccountRole, AgentPolicy, Event, EventKind, Snapshot, StartKind,
};
use uuid::Uuid;

use crate::calendar::{BusinessHours, time_ja};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Severity::Info => "お知らせ",
            Severity::Warning => "注意",
            Severity::Critical => "緊急",
        }
    }
}

/// Rule keys: with the terminal, one alert per key.
pub mod key {
    pub const NO_DAILY_RESTART: &str = "no_daily_restart";
    pub const UPDATES_BEHIND: &str = "updates_behind";
    pub const PENDING_REBOOT: &str = "pending_reboot";
    pub const CERT_EXPIRY: &str = "cert_expiry";
    pub const CERT_MISSING: &str = "cert_missing";
    pub const CERT_NO_PRIVATE_KEY: &str = "cert_no_private_key";
    pub const CERT_OLD_LEFT: &str = "cert_old_left";
    pub const BACKUP_MISSING: &str = "backup_missing";
    pub const BACKUP_OUTDATED: &str = "backup_outdated";
    pub const WINDOWS_PASSWORD_EXPIRY: &str = "windows_password_expiry";
    pub const PROTECTED_ACCOUNT_WINDOWS: &str = "protected_account.windows";
    pub const PROTECTED_ACCOUNT_FACE_AUTH: &str = "protected_account.face_auth";
    pub const PROTECTED_ACCOUNT_LINKAGE: &str = "protected_account.linkage";
    pub const NETWORK_CHANGED: &str = "network_changed";
    pub const PROBE_UNREACHABLE: &str = "probe_unreachable";
    pub const OFFLINE: &str = "offline";

    /// Every key, in the order the dashboard lists them.
    pub const ALL: [&str; 16] = [
        OFFLINE,
        PROTECTED_ACCOUNT_WINDOWS,
        PROTECTED_ACCOUNT_FACE_AUTH,
        PROTECTED_ACCOUNT_LINKAGE,
        CERT_MISSING,
        CERT_EXPIRY,
        CERT_NO_PRIVATE_KEY,
        CERT_OLD_LEFT,
        BACKUP_MISSING,
        BACKUP_OUTDATED,
        WINDOWS_PASSWORD_EXPIRY,
        NO_DAILY_RESTART,
        UPDATES_BEHIND,
        PENDING_REBOOT,
        PROBE_UNREACHABLE,
        NETWORK_CHANGED,
    ];
}

/// Japanese title of a rule, for the dashboard and the e-mails.
pub fn title_ja(rule: &str) -> &'static str {
    match rule {
        key::NO_DAILY_RESTART => "毎日の再起動が行われていません",
        key::UPDATES_BEHIND => "アプリが最新版に更新されていません",
        key::PENDING_REBOOT => "更新のための再起動が保留されています",
        key::CERT_EXPIRY => "電子証明書の有効期限が近づいています",
        key::CERT_MISSING => "電子証明書が見つかりません",
        key::CERT_NO_PRIVATE_KEY => "電子証明書に秘密キーがありません",
        key::CERT_OLD_LEFT => "更新前の古い電子証明書が残っています",
        key::BACKUP_MISSING => "電子証明書のバックアップが確認できません",
        key::BACKUP_OUTDATED => "バックアップが更新前の電子証明書のものです",
        key::WINDOWS_PASSWORD_EXPIRY => "Windowsアカウントのパスワードの期限",
        key::PROTECTED_ACCOUNT_WINDOWS => "Windowsアカウントが変更されました",
        key::PROTECTED_ACCOUNT_FACE_AUTH => "顔認証アカウントが変更されました",
        key::PROTECTED_ACCOUNT_LINKAGE => "連携アカウントが変更されました",
        key::NETWORK_CHANGED => "ネットワーク構成が変わりました",
        key::PROBE_UNREACHABLE => "接続先に到達できません",
        key::OFFLINE => "端末から報告が届いていません",
        _ => "その他の問題",
    }
}

/// One broken rule on one terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub detail: String,
    /// What this firing is about (an expiry step, an event id, the set of changes). When it
    /// changes, an open alert notifies again and an alert the staff resolved opens again.
    pub occurrence: String,
}

fn finding(
    rule: &'static str,
    severity: Severity,
    detail: String,
    occurrence: impl Into<String>,
) -> Finding {
    Finding {
        rule,
        severity,
        detail,
        occurrence: occurrence.into(),
    }
}

/// What the server knows about one terminal, as the evaluator loads it.
#[derive(Debug, Clone)]
pub struct TerminalState {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub enrolled_at: DateTime<Utc>,
    /// When the last report arrived; `None` before the first.
    pub last_seen: Option<DateTime<Utc>>,
    /// The latest snapshot as stored: its per-report fields (collection time, uptime, probe
    /// latency) are blanked, so one parsed body serves every pass until its content changes.
    pub snapshot: Option<std::sync::Arc<Snapshot>>,
    /// When the agent collected that snapshot (the epoch without one).
    pub collected_at: DateTime<Utc>,
    /// Change events from the last [`EVENT_WINDOW`] (older ones may be left out), oldest first.
    pub events: Vec<Event>,
}

/// Drops what no rule, summary or fleet count reads from a snapshot the evaluator keeps between
/// passes (operating system and agent strings, install dates, certificate issuer and serial,
/// account SIDs, adapters and network fingerprint, probe errors): at 250,000 terminals the
/// parsed bodies are the evaluator's largest memory. The terminal page reads the stored body,
/// not this copy.
pub fn slim_for_rules(s: &mut Snapshot) {
    s.os = String::new();
    s.agent_version = String::new();
    s.uptime.restart_requested_by = None;
    for app in &mut s.apps.installed {
        app.installed_on = None;
    }
    s.apps.missing = Vec::new();
    for c in &mut s.certificates.certs {
        c.issuer = String::new();
        c.serial = String::new();
        c.store = String::new();
    }
    for a in &mut s.accounts.accounts {
        a.sid = None;
    }
    s.network.adapters = Vec::new();
    s.network.fingerprint = String::new();
    s.network.default_gateway = None;
    s.network.gateway_mac = None;
    for p in &mut s.network.probes {
        p.error = None;
        p.latency_ms = None;
    }
}

/// The version a watched app should have, and since when that is so (set by staff, or first
/// seen as the fleet's most common version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedVersion {
    pub version: String,
    pub since: DateTime<Utc>,
}

/// Everything about a terminal's clinic and fleet the rules need.
#[derive(Debug, Clone)]
pub struct ClinicPolicy {
    /// The accounts the terminal must have (by role) and the report interval.
    pub agent: Arc<AgentPolicy>,
    pub hours: BusinessHours,
    /// Watched app name → expected version.
    pub expected_versions: Arc<HashMap<String, ExpectedVersion>>,
    /// A terminal is offline after this many missed intervals within business hours.
    pub offline_after_intervals: u32,
}

impl ClinicPolicy {
    pub fn new(agent: AgentPolicy) -> Self {
        ClinicPolicy {
            agent: Arc::new(agent),
            hours: BusinessHours::default(),
            expected_versions: Arc::new(HashMap::new()),
            offline_after_intervals: 3,
        }
    }
}

pub const RESTART_WARNING: Duration = Duration::hours(26);
pub const RESTART_CRITICAL: Duration = Duration::hours(72);
pub const UPDATE_GRACE: Duration = Duration::hours(24);
pub const PENDING_REBOOT_GRACE: Duration = Duration::hours(24);
/// Days left at which an expiry notice goes out once each; from [`CERT_DAILY_FROM`] daily.
pub const CERT_STEPS: [i64; 4] = [90, 60, 30, 15];
pub const CERT_DAILY_FROM: i64 = 7;
pub const BACKUP_GRACE: Duration = Duration::days(7);
pub const PASSWORD_WARNING: Duration = Duration::days(14);
/// How long a change event keeps its alert open unless staff resolve it.
pub const EVENT_WINDOW: Duration = Duration::days(7);
pub const OFFLINE_CRITICAL: Duration = Duration::days(3);

/// Every rule of DESIGN §5 for one terminal at `now`.
pub fn evaluate(t: &TerminalState, policy: &ClinicPolicy, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = Vec::new();
    offline(t, policy, now, &mut out);
    if let Some(s) = &t.snapshot {
        snapshot_rules(s, t.collected_at, &policy.agent, now, &mut out);
        updates_behind(s, policy, now, &mut out);
        backup(s, t, now, &mut out);
    }
    account_events(t, now, &mut out);
    network_events(t, now, &mut out);
    out
}

/// The rules that need nothing but the snapshot, for the dashboard's problem count at ingest.
/// The full set is [`evaluate`].
pub fn evaluate_snapshot(s: &Snapshot, policy: &AgentPolicy, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = Vec::new();
    snapshot_rules(s, s.collected_at, policy, now, &mut out);
    // Without the install time, a backup counts as missing once the certificate is a week old.
    let installed = s.certificates.current().map(|c| c.not_before);
    backup_rule(s, installed, now, &mut out);
    out
}

fn snapshot_rules(
    s: &Snapshot,
    collected_at: DateTime<Utc>,
    policy: &AgentPolicy,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    restart(s, collected_at, out);
    pending_reboot(s, now, out);
    certificates(s, now, out);
    accounts(s, policy, now, out);
    probes(s, out);
}

/// The last start that installs updates. A fast-startup power-on counts (the app updates run);
/// a resume from hibernation does not, so then only the last full boot counts.
fn counting_start(s: &Snapshot) -> DateTime<Utc> {
    match s.uptime.last_start_kind {
        StartKind::Resume => s.uptime.last_boot,
        StartKind::ColdBoot | StartKind::FastStartup | StartKind::Unknown => s.uptime.last_start,
    }
}

/// Measured at the last report, not at `now`: a terminal switched off since then may well have
/// been restarted, and the offline rule speaks for it.
fn restart(s: &Snapshot, collected_at: DateTime<Utc>, out: &mut Vec<Finding>) {
    let since = collected_at - counting_start(s);
    let hours = since.num_hours();
    let severity = if since > RESTART_CRITICAL {
        Severity::Critical
    } else if since > RESTART_WARNING {
        Severity::Warning
    } else {
        return;
    };
    out.push(finding(
        key::NO_DAILY_RESTART,
        severity,
        format!("最後の起動から {hours} 時間、再起動されていません"),
        severity.as_str(),
    ));
}

fn pending_reboot(s: &Snapshot, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    if let Some(p) = &s.apps.pending_reboot {
        let since = p.since.unwrap_or(s.uptime.last_start);
        if now - since > PENDING_REBOOT_GRACE {
            out.push(finding(
                key::PENDING_REBOOT,
                Severity::Warning,
                format!(
                    "{} 時間前から再起動待ちの更新があります ({})",
                    (now - since).num_hours(),
                    p.reasons.join(", ")
                ),
                "",
            ));
        }
    }
}

/// Compares dotted versions part by part, numerically where both parts are numbers.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> Vec<String> {
        v.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map_or("0", String::as_str);
        let y = pb.get(i).map_or("0", String::as_str);
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

fn updates_behind(s: &Snapshot, policy: &ClinicPolicy, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let mut behind: Vec<String> = Vec::new();
    for app in &s.apps.installed {
        let (Some(version), Some(expected)) =
            (&app.version, policy.expected_versions.get(&app.name))
        else {
            continue;
        };
        if now - expected.since >= UPDATE_GRACE
            && compare_versions(version, &expected.version) == std::cmp::Ordering::Less
        {
            behind.push(format!("{} {} → {}", app.name, version, expected.version));
        }
    }
    if !behind.is_empty() {
        behind.sort();
        let occurrence = behind.join("; ");
        out.push(finding(
            key::UPDATES_BEHIND,
            Severity::Warning,
            format!("最新版になっていないアプリ: {occurrence}"),
            occurrence,
        ));
    }
}

fn certificates(s: &Snapshot, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let Some(current) = s.certificates.current() else {
        // A store the agent could not read says nothing about the certificate.
        if !s.notes.iter().any(|n| n.area.starts_with("cert")) {
            out.push(finding(
                key::CERT_MISSING,
                Severity::Critical,
                "「Online Billing NW Common Root CA」が発行した電子証明書が見つかりません".into(),
                "",
            ));
        }
        return;
    };
    if let Some((severity, step)) = expiry_step(current.not_after, now) {
        let detail = if current.not_after <= now {
            format!(
                "電子証明書の有効期限 ({}) が切れています",
                time_ja(current.not_after)
            )
        } else {
            format!(
                "電子証明書の有効期限 ({}) まであと {} 日です",
                time_ja(current.not_after),
                (current.not_after - now).num_days()
            )
        };
        out.push(finding(key::CERT_EXPIRY, severity, detail, step));
    }
    if !current.has_private_key {
        out.push(finding(
            key::CERT_NO_PRIVATE_KEY,
            Severity::Critical,
            format!("電子証明書 ({}) に秘密キーがありません", current.thumbprint),
            current.thumbprint.clone(),
        ));
    }
    let old: Vec<&str> = s
        .certificates
        .certs
        .iter()
        .filter(|c| c.thumbprint != current.thumbprint && c.not_after < current.not_after)
        .map(|c| c.thumbprint.as_str())
        .collect();
    if !old.is_empty() && current.not_after > now {
        out.push(finding(
            key::CERT_OLD_LEFT,
            Severity::Warning,
            format!("更新前の電子証明書が {} 件残っています", old.len()),
            old.join(","),
        ));
    }
}

/// The expiry step a certificate is at: 90/60 days (info), 30/15 (warning), then one step per
/// day from 7 days left (critical), and expired (critical).
pub fn expiry_step(not_after: DateTime<Utc>, now: DateTime<Utc>) -> Option<(Severity, String)> {
    if not_after <= now {
        return Some((Severity::Critical, "expired".into()));
    }
    let days = (not_after - now).num_days();
    if days <= CERT_DAILY_FROM {
        return Some((Severity::Critical, format!("{days}d")));
    }
    let step = CERT_STEPS.iter().rev().find(|&&step| days <= step)?;
    let severity = if *step > 30 {
        Severity::Info
    } else {
        Severity::Warning
    };
    Some((severity, format!("{step}d")))
}

/// When the current certificate was installed: its `cert_changed` event, else its issue date
/// (a certificate cannot be installed before it is issued, and without an event in the window
/// the install is older than the window, longer ago than the grace).
fn cert_installed_at(s: &Snapshot, t: &TerminalState) -> Option<DateTime<Utc>> {
    let current = s.certificates.current()?;
    let seen = t.events.iter().rev().find_map(|e| match &e.kind {
        EventKind::CertChanged {
            thumbprint,
            added: true,
            ..
        } if *thumbprint == current.thumbprint => Some(e.at),
        _ => None,
    });
    Some(seen.unwrap_or(current.not_before))
}

fn backup(s: &Snapshot, t: &TerminalState, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    backup_rule(s, cert_installed_at(s, t), now, out);
}

fn backup_rule(
    s: &Snapshot,
    installed: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let (Some(current), Some(installed)) = (s.certificates.current(), installed) else {
        return;
    };
    if now - installed < BACKUP_GRACE {
        return;
    }
    match &s.certificates.backup {
        None => out.push(finding(
            key::BACKUP_MISSING,
            Severity::Warning,
            "現在の電子証明書のバックアップ (.pfx) が確認できていません".into(),
            current.thumbprint.clone(),
        )),
        Some(b) if !b.matches_current || b.thumbprint != current.thumbprint => out.push(finding(
            key::BACKUP_OUTDATED,
            Severity::Warning,
            "確認できたバックアップは更新前の電子証明書のものです".into(),
            current.thumbprint.clone(),
        )),
        Some(_) => {}
    }
}

fn protected_key(role: AccountRole) -> Option<&'static str> {
    match role {
        AccountRole::Windows => Some(key::PROTECTED_ACCOUNT_WINDOWS),
        AccountRole::FaceAuth => Some(key::PROTECTED_ACCOUNT_FACE_AUTH),
        AccountRole::Linkage => Some(key::PROTECTED_ACCOUNT_LINKAGE),
        _ => None,
    }
}

/// What stops working when a protected account changes (vendor notes, in our own words).
pub fn consequence_ja(role: AccountRole) -> &'static str {
    match role {
        AccountRole::Windows => {
            "各アプリが自動で更新されなくなり、レセプトコンピュータ等との連携もできなくなります。"
        }
        AccountRole::FaceAuth => {
            "顔認証付きカードリーダーがエラーになり、マイナンバーカードでの資格確認ができなくなります。"
        }
        AccountRole::Linkage => {
            "レセプトコンピュータ等と連携できなくなり、保険証等の資格確認や薬剤情報の確認もできなくなります。"
        }
        _ => "",
    }
}

fn change_ja(change: &AccountChange) -> Option<String> {
    match change {
        AccountChange::Renamed { from, to } => Some(format!("名前の変更 ({from} → {to})")),
        AccountChange::PasswordChanged => Some("パスワードの変更".into()),
        AccountChange::Disabled => Some("無効化".into()),
        AccountChange::Deleted => Some("削除".into()),
        AccountChange::Locked => Some("ロックアウト".into()),
        AccountChange::Created | AccountChange::Enabled | AccountChange::Unlocked => None,
    }
}

/// Per protected role: (changes seen, occurrence parts).
type RoleChanges = HashMap<AccountRole, (Vec<String>, Vec<String>)>;

fn push_protected(found: &mut RoleChanges, role: AccountRole, what: String, occurrence: String) {
    let entry = found.entry(role).or_default();
    if !entry.0.contains(&what) {
        entry.0.push(what);
    }
    entry.1.push(occurrence);
}

fn emit_protected(found: RoleChanges, out: &mut Vec<Finding>) {
    let mut roles: Vec<_> = found.into_iter().collect();
    roles.sort_by_key(|(role, _)| *role);
    for (role, (whats, mut occurrences)) in roles {
        let Some(rule) = protected_key(role) else {
            continue;
        };
        occurrences.sort();
        out.push(finding(
            rule,
            Severity::Critical,
            format!(
                "{}: {}。{}",
                role.label_ja(),
                whats.join("、"),
                consequence_ja(role)
            ),
            occurrences.join(","),
        ));
    }
}

fn accounts(s: &Snapshot, policy: &AgentPolicy, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let mut found = RoleChanges::new();
    for a in s.accounts.accounts.iter().filter(|a| a.role.is_protected()) {
        let expected = policy.accounts.iter().find(|p| p.role == a.role);
        if !a.exists {
            push_protected(
                &mut found,
                a.role,
                format!("{} が見つかりません (削除)", a.name),
                "deleted".into(),
            );
        } else if let Some(p) = expected.filter(|p| p.name != a.name) {
            push_protected(
                &mut found,
                a.role,
                format!("名前の変更 ({} → {})", p.name, a.name),
                format!("renamed:{}", a.name),
            );
        }
        if a.exists && a.enabled == Some(false) {
            push_protected(&mut found, a.role, "無効化".into(), "disabled".into());
        }
        if a.exists && a.locked == Some(true) {
            push_protected(&mut found, a.role, "ロックアウト".into(), "locked".into());
        }
        if let Some(c) = &a.last_change
            && now - c.at <= EVENT_WINDOW
            && matches!(c.event_id, 4723 | 4724)
        {
            push_protected(
                &mut found,
                a.role,
                "パスワードの変更".into(),
                format!("log:{}", c.at.timestamp()),
            );
        }
        if a.role == AccountRole::Windows
            && let Some(expires) = a.password_expires
        {
            if expires <= now {
                out.push(finding(
                    key::WINDOWS_PASSWORD_EXPIRY,
                    Severity::Critical,
                    "Windowsアカウントのパスワードの有効期限が切れています。デスクトップ画面が表示されなくなります".into(),
                    "expired",
                ));
            } else if expires - now <= PASSWORD_WARNING {
                out.push(finding(
                    key::WINDOWS_PASSWORD_EXPIRY,
                    Severity::Warning,
                    format!(
                        "Windowsアカウントのパスワードの有効期限 ({}) まであと {} 日です",
                        time_ja(expires),
                        (expires - now).num_days()
                    ),
                    "expiring",
                ));
            }
        }
    }
    emit_protected(found, out);
}

fn account_events(t: &TerminalState, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let mut found = RoleChanges::new();
    for e in t.events.iter().filter(|e| now - e.at <= EVENT_WINDOW) {
        if let EventKind::AccountChanged { role, change, .. } = &e.kind
            && role.is_protected()
            && let Some(what) = change_ja(change)
        {
            push_protected(&mut found, *role, what, e.id.to_string());
        }
    }
    // The snapshot may already have fired the same role: merge into one finding per rule.
    let mut extra = Vec::new();
    emit_protected(found, &mut extra);
    for f in extra {
        match out.iter_mut().find(|o| o.rule == f.rule) {
            Some(o) => {
                o.detail = format!("{} / {}", o.detail, f.detail);
                o.occurrence = format!("{},{}", o.occurrence, f.occurrence);
            }
            None => out.push(f),
        }
    }
}

fn network_events(t: &TerminalState, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let recent: Vec<(&Event, &Vec<String>)> = t
        .events
        .iter()
        .filter(|e| now - e.at <= EVENT_WINDOW)
        .filter_map(|e| match &e.kind {
            EventKind::NetworkChanged { changes, .. } => Some((e, changes)),
            _ => None,
        })
        .collect();
    if let Some((last, _)) = recent.last() {
        let changes: Vec<&str> = recent
            .iter()
            .flat_map(|(_, c)| c.iter().map(String::as_str))
            .collect();
        out.push(finding(
            key::NETWORK_CHANGED,
            Severity::Warning,
            format!("ネットワーク構成の変更: {}", changes.join("、")),
            last.id.to_string(),
        ));
    }
}

fn probes(s: &Snapshot, out: &mut Vec<Finding>) {
    let mut down: Vec<&str> = s
        .network
        .probes
        .iter()
        .filter(|p| !p.reachable)
        .map(|p| p.target.as_str())
        .collect();
    if !down.is_empty() {
        down.sort_unstable();
        out.push(finding(
            key::PROBE_UNREACHABLE,
            Severity::Critical,
            format!("接続先に到達できません: {}", down.join(", ")),
            down.join(","),
        ));
    }
}

fn offline(t: &TerminalState, policy: &ClinicPolicy, now: DateTime<Utc>, out: &mut Vec<Finding>) {
    let since = t.last_seen.unwrap_or(t.enrolled_at);
    if now - since >= OFFLINE_CRITICAL {
        out.push(finding(
            key::OFFLINE,
            Severity::Critical,
            format!(
                "{} から報告がありません ({} 日以上)",
                time_ja(since),
                (now - since).num_days()
            ),
            "3d",
        ));
        return;
    }
    let allowed = Duration::seconds(
        i64::from(policy.agent.interval_secs) * i64::from(policy.offline_after_intervals.max(1)),
    );
    let open = policy.hours.open_time_between(since, now, allowed);
    if open >= allowed {
        out.push(finding(
            key::OFFLINE,
            Severity::Warning,
            format!("診療時間中に {} から報告がありません", time_ja(since)),
            "hours",
        ));
    }
}

/// A change to an account the clinic may change: recorded for audit, never alerted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
    pub terminal_id: Uuid,
    pub what: String,
}

/// The audit entries a terminal's events make.
pub fn audit_entries(t: &TerminalState) -> Vec<AuditEntry> {
    t.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AccountChanged { role, name, change } if !role.is_protected() => {
                Some(AuditEntry {
                    event_id: e.id,
                    at: e.at,
                    terminal_id: t.terminal_id,
                    what: format!("{} ({name}): {change:?}", role.label_ja()),
                })
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use onshi_shared::{AccountSpec, BackupState, CertInfo, PendingReboot, ProbeResult, sample};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn agent_policy() -> AgentPolicy {
        AgentPolicy {
            accounts: vec![
                AccountSpec {
                    role: AccountRole::Windows,
                    name: "onshi".into(),
                },
                AccountSpec {
                    role: AccountRole::FaceAuth,
                    name: "kao".into(),
                },
            ],
            ..AgentPolicy::default()
        }
    }

    fn policy() -> ClinicPolicy {
        ClinicPolicy::new(agent_policy())
    }

    /// The sample snapshot (collected Wed 2026-11-25 18:00 JST) with a verified backup.
    fn healthy() -> Snapshot {
        let mut s = sample::snapshot();
        let cert = s.certificates.certs[0].clone();
        s.certificates.backup = Some(BackupState {
            thumbprint: cert.thumbprint,
            verified_at: s.collected_at,
            not_after: Some(cert.not_after),
            matches_current: true,
        });
        s
    }

    fn state(s: Snapshot) -> TerminalState {
        TerminalState {
            terminal_id: Uuid::nil(),
            clinic_id: 1,
            enrolled_at: s.collected_at - Duration::days(365),
            last_seen: Some(s.collected_at),
            collected_at: s.collected_at,
            snapshot: Some(std::sync::Arc::new(s)),
            events: vec![],
        }
    }

    fn rules(
        t: &TerminalState,
        p: &ClinicPolicy,
        now: DateTime<Utc>,
    ) -> Vec<(&'static str, Severity)> {
        evaluate(t, p, now)
            .into_iter()
            .map(|f| (f.rule, f.severity))
            .collect()
    }

    fn only(t: &TerminalState, now: DateTime<Utc>, rule: &str) -> Option<Finding> {
        evaluate(t, &policy(), now)
            .into_iter()
            .find(|f| f.rule == rule)
    }

    #[test]
    fn healthy_terminal_has_no_findings() {
        let t = state(healthy());
        assert_eq!(rules(&t, &policy(), t.last_seen.unwrap()), vec![]);
    }

    #[test]
    fn restart_thresholds_are_measured_at_the_last_report() {
        use Severity::*;
        let table = [
            // (start kind, hours since last start, hours since last full boot, want)
            (StartKind::ColdBoot, 26, 26, None),
            (StartKind::ColdBoot, 27, 27, Some(Warning)),
            (StartKind::ColdBoot, 72, 72, Some(Warning)),
            (StartKind::ColdBoot, 73, 73, Some(Critical)),
            // Fast startup: uptime and last boot are old, but the power-on counts.
            (StartKind::FastStartup, 5, 400, None),
            // Resume from hibernation does not count: the last full boot does.
            (StartKind::Resume, 5, 30, Some(Warning)),
            (StartKind::Resume, 5, 20, None),
        ];
        for (kind, start_h, boot_h, want) in table {
            let mut s = healthy();
            s.uptime.last_start_kind = kind;
            s.uptime.last_start = s.collected_at - Duration::hours(start_h);
            s.uptime.last_boot = s.collected_at - Duration::hours(boot_h);
            let t = state(s);
            let got = only(&t, t.last_seen.unwrap(), key::NO_DAILY_RESTART).map(|f| f.severity);
            assert_eq!(got, want, "{kind:?} start {start_h} h boot {boot_h} h");
        }
    }

    #[test]
    fn a_terminal_switched_off_at_night_is_not_no_restart() {
        // Started 08:00 JST, last report 18:00 JST, switched off; next morning 08:30 the
        // evaluator sees 24.5 h since the start but nothing says the terminal was on.
        let mut s = healthy();
        s.collected_at = utc("2026-11-25T09:00:00Z");
        s.uptime.last_start = utc("2026-11-24T23:00:00Z");
        s.uptime.last_boot = s.uptime.last_start;
        let t = state(s);
        for now in ["2026-11-25T23:30:00Z", "2026-11-28T08:00:00Z"] {
            assert_eq!(only(&t, utc(now), key::NO_DAILY_RESTART), None, "{now}");
        }
    }

    #[test]
    fn offline_counts_business_hours_only() {
        use Severity::*;
        // Interval 60 s × 3: three minutes of open time without a report.
        let table = [
            // last report Wed 18:00 JST
            ("2026-11-25T09:00:00Z", "2026-11-25T23:59:00Z", None), // night
            ("2026-11-25T09:00:00Z", "2026-11-26T00:02:00Z", None), // Thu 09:02: 2 min open
            (
                "2026-11-25T09:00:00Z",
                "2026-11-26T00:03:00Z",
                Some(Warning),
            ), // 09:03
            // Wed 10:00 JST, now 10:02 / 10:04 JST
            ("2026-11-25T01:00:00Z", "2026-11-25T01:02:00Z", None),
            (
                "2026-11-25T01:00:00Z",
                "2026-11-25T01:04:00Z",
                Some(Warning),
            ),
            // Sat 2026-11-21 18:00 JST: Sunday closed, Monday 11/23 勤労感謝の日 closed,
            // Tuesday 08:59 still closed.
            ("2026-11-21T09:00:00Z", "2026-11-23T23:59:00Z", None),
            (
                "2026-11-21T09:00:00Z",
                "2026-11-24T00:05:00Z",
                Some(Warning),
            ), // Tue 09:05
            (
                "2026-11-21T09:00:00Z",
                "2026-11-24T09:00:00Z",
                Some(Critical),
            ), // 3 days
            // Sat 12:00 JST -> Mon 09:05 JST (an ordinary Monday): Sunday does not count.
            (
                "2026-11-28T03:00:00Z",
                "2026-11-29T23:59:00Z",
                Some(Warning),
            ), // Sat afternoon open
            ("2026-11-28T08:58:00Z", "2026-11-29T23:59:00Z", None), // Sat 17:58 JST, 2 min open
            (
                "2026-11-28T08:58:00Z",
                "2026-11-30T00:01:00Z",
                Some(Warning),
            ), // Mon 09:01 JST
        ];
        for (seen, now, want) in table {
            let mut t = state(healthy());
            t.last_seen = Some(utc(seen));
            let got = only(&t, utc(now), key::OFFLINE).map(|f| f.severity);
            assert_eq!(got, want, "seen {seen} now {now}");
        }
        // Never reported: counted from enrollment.
        let mut t = state(healthy());
        t.snapshot = None;
        t.last_seen = None;
        t.enrolled_at = utc("2026-11-20T00:00:00Z");
        assert_eq!(
            rules(&t, &policy(), utc("2026-11-25T00:00:00Z")),
            vec![(key::OFFLINE, Critical)]
        );
    }

    #[test]
    fn certificate_steps_each_once_then_daily() {
        use Severity::*;
        let s = healthy();
        let end = s.certificates.certs[0].not_after;
        let table = [
            (Duration::days(91), None),
            (Duration::days(90), Some((Info, "90d"))),
            (Duration::days(61), Some((Info, "90d"))),
            (Duration::days(60), Some((Info, "60d"))),
            (Duration::days(30), Some((Warning, "30d"))),
            (Duration::days(16), Some((Warning, "30d"))),
            (Duration::days(15), Some((Warning, "15d"))),
            (Duration::days(8), Some((Warning, "15d"))),
            (Duration::days(7), Some((Critical, "7d"))),
            (
                Duration::days(6) + Duration::hours(1),
                Some((Critical, "6d")),
            ),
            (Duration::hours(3), Some((Critical, "0d"))),
            (Duration::zero(), Some((Critical, "expired"))),
            (-Duration::days(3), Some((Critical, "expired"))),
        ];
        let t = state(s);
        for (left, want) in table {
            let got = only(&t, end - left, key::CERT_EXPIRY).map(|f| (f.severity, f.occurrence));
            let want = want.map(|(s, o)| (s, o.to_string()));
            assert_eq!(got, want, "{left} left");
        }
    }

    fn cert(thumb: &str, not_after: DateTime<Utc>, key: bool) -> CertInfo {
        CertInfo {
            subject: "CN=1312345678".into(),
            issuer: "CN=Online Billing NW Common Root CA".into(),
            serial: thumb.into(),
            thumbprint: thumb.into(),
            not_before: not_after - Duration::days(365 * 3 + 90),
            not_after,
            has_private_key: key,
            store: "LocalMachine\\My".into(),
        }
    }

    #[test]
    fn certificate_presence_key_and_old_certs() {
        use Severity::*;
        let now = healthy().collected_at;
        let far = now + Duration::days(800);
        type Case = (Vec<CertInfo>, bool, Vec<(&'static str, Severity)>);
        let table: Vec<Case> = vec![
            (vec![], false, vec![(key::CERT_MISSING, Critical)]),
            // the agent could not read the store: unknown, not missing
            (vec![], true, vec![]),
            (
                vec![cert("AA", far, false)],
                false,
                vec![(key::CERT_NO_PRIVATE_KEY, Critical)],
            ),
            (
                vec![
                    cert("OLD", now + Duration::days(20), true),
                    cert("AA", far, true),
                ],
                false,
                vec![(key::CERT_OLD_LEFT, Warning)],
            ),
            (
                vec![
                    cert("OLD", now - Duration::days(20), true),
                    cert("AA", far, true),
                ],
                false,
                vec![(key::CERT_OLD_LEFT, Warning)],
            ),
        ];
        for (certs, unreadable, want) in table {
            let mut s = healthy();
            s.certificates.certs = certs.clone();
            if let Some(c) = certs.iter().max_by_key(|c| c.not_after) {
                s.certificates.backup.as_mut().unwrap().thumbprint = c.thumbprint.clone();
            }
            if unreadable {
                s.notes.push(onshi_shared::SourceNote {
                    area: "certificates".into(),
                    detail: "access denied".into(),
                });
            }
            let t = state(s);
            assert_eq!(rules(&t, &policy(), now), want, "{certs:?}");
        }
    }

    #[test]
    fn backup_after_a_week_and_of_the_current_cert() {
        let base = healthy();
        let now = base.collected_at;
        let current = base.certificates.certs[0].clone();
        // (backup, current cert installed (event) days ago, want)
        let table = [
            (None, None, Some(key::BACKUP_MISSING)),
            (None, Some(6), None),
            (None, Some(7), Some(key::BACKUP_MISSING)),
            (Some(("OLD", false)), Some(8), Some(key::BACKUP_OUTDATED)),
            (Some(("OLD", false)), Some(2), None),
            (Some((current.thumbprint.as_str(), true)), Some(30), None),
        ];
        for (backup, installed_days, want) in table {
            let mut s = base.clone();
            s.certificates.backup = backup.map(|(thumb, matches)| BackupState {
                thumbprint: thumb.into(),
                verified_at: now,
                not_after: None,
                matches_current: matches,
            });
            let mut t = state(s);
            if let Some(days) = installed_days {
                t.events.push(Event::new(
                    now - Duration::days(days),
                    EventKind::CertChanged {
                        thumbprint: current.thumbprint.clone(),
                        subject: current.subject.clone(),
                        not_after: current.not_after,
                        added: true,
                    },
                ));
            }
            let got: Vec<_> = evaluate(&t, &policy(), now)
                .into_iter()
                .map(|f| f.rule)
                .filter(|r| r.starts_with("backup"))
                .collect();
            assert_eq!(
                got,
                want.into_iter().collect::<Vec<_>>(),
                "{backup:?} {installed_days:?}"
            );
        }
        // No event: the issue date stands in for the install; a certificate issued three days
        // ago gets its week.
        let mut s = base.clone();
        s.certificates.backup = None;
        s.certificates.certs[0].not_before = now - Duration::days(3);
        assert_eq!(only(&state(s), now, key::BACKUP_MISSING), None);
    }

    #[test]
    fn windows_password_expiry() {
        use Severity::*;
        let now = healthy().collected_at;
        let table = [
            (None, None),
            (Some(Duration::days(15)), None),
            (Some(Duration::days(14)), Some(Warning)),
            (Some(Duration::hours(1)), Some(Warning)),
            (Some(Duration::zero()), Some(Critical)),
            (Some(-Duration::days(2)), Some(Critical)),
        ];
        for (left, want) in table {
            let mut s = healthy();
            s.accounts.accounts[0].password_expires = left.map(|l| now + l);
            // another role's expiry is not this rule's business
            s.accounts.accounts[1].password_expires = Some(now);
            let t = state(s);
            let got = only(&t, now, key::WINDOWS_PASSWORD_EXPIRY).map(|f| f.severity);
            assert_eq!(got, want, "{left:?}");
        }
    }

    fn account_event(at: DateTime<Utc>, role: AccountRole, change: AccountChange) -> Event {
        Event::new(
            at,
            EventKind::AccountChanged {
                role,
                name: "x".into(),
                change,
            },
        )
    }

    #[test]
    fn protected_account_changes_from_snapshot_and_events() {
        let now = healthy().collected_at;
        type Edit = fn(&mut Snapshot);
        let snapshot_table: [(Edit, &str, &str); 4] = [
            (
                |s| s.accounts.accounts[0].exists = false,
                key::PROTECTED_ACCOUNT_WINDOWS,
                "削除",
            ),
            (
                |s| s.accounts.accounts[0].name = "受付".into(),
                key::PROTECTED_ACCOUNT_WINDOWS,
                "名前の変更",
            ),
            (
                |s| s.accounts.accounts[1].enabled = Some(false),
                key::PROTECTED_ACCOUNT_FACE_AUTH,
                "無効化",
            ),
            (
                |s| s.accounts.accounts[1].locked = Some(true),
                key::PROTECTED_ACCOUNT_FACE_AUTH,
                "ロックアウト",
            ),
        ];
        for (edit, rule, word) in snapshot_table {
            let mut s = healthy();
            edit(&mut s);
            let t = state(s);
            let f = evaluate(&t, &policy(), now);
            assert_eq!(f.len(), 1, "{rule} {f:?}");
            assert_eq!(f[0].rule, rule);
            assert_eq!(f[0].severity, Severity::Critical);
            assert!(f[0].detail.contains(word), "{}", f[0].detail);
        }
        let event_table = [
            (
                AccountRole::Windows,
                AccountChange::PasswordChanged,
                Some((key::PROTECTED_ACCOUNT_WINDOWS, "自動で更新されなくなり")),
            ),
            (
                AccountRole::FaceAuth,
                AccountChange::Deleted,
                Some((key::PROTECTED_ACCOUNT_FACE_AUTH, "顔認証付きカードリーダー")),
            ),
            (
                AccountRole::Linkage,
                AccountChange::Locked,
                Some((key::PROTECTED_ACCOUNT_LINKAGE, "薬剤情報")),
            ),
            (
                AccountRole::Linkage,
                AccountChange::Renamed {
                    from: "a".into(),
                    to: "b".into(),
                },
                Some((key::PROTECTED_ACCOUNT_LINKAGE, "a → b")),
            ),
            (
                AccountRole::Linkage,
                AccountChange::Disabled,
                Some((key::PROTECTED_ACCOUNT_LINKAGE, "無効化")),
            ),
            // back to normal, or accounts the clinic may change: no alert
            (AccountRole::Windows, AccountChange::Unlocked, None),
            (
                AccountRole::Administrator,
                AccountChange::PasswordChanged,
                None,
            ),
            (AccountRole::General, AccountChange::Deleted, None),
            (
                AccountRole::MedicalViewing,
                AccountChange::Renamed {
                    from: "a".into(),
                    to: "b".into(),
                },
                None,
            ),
        ];
        for (role, change, want) in event_table {
            let mut t = state(healthy());
            let e = account_event(now - Duration::hours(1), role, change.clone());
            t.events.push(e.clone());
            let f = evaluate(&t, &policy(), now);
            match want {
                Some((rule, word)) => {
                    assert_eq!(f.len(), 1, "{change:?} {f:?}");
                    assert_eq!(f[0].rule, rule);
                    assert!(f[0].detail.contains(word), "{}", f[0].detail);
                    assert_eq!(f[0].occurrence, e.id.to_string());
                    assert!(audit_entries(&t).is_empty());
                }
                None => {
                    assert_eq!(f, vec![], "{role:?} {change:?}");
                    assert_eq!(audit_entries(&t).len(), usize::from(!role.is_protected()));
                }
            }
            // After the event window the alert may resolve.
            let later = evaluate(&t, &policy(), now + EVENT_WINDOW + Duration::hours(2));
            assert!(
                later
                    .iter()
                    .all(|f| !f.rule.starts_with("protected_account")),
                "{role:?}"
            );
        }
    }

    #[test]
    fn network_changes_and_probes() {
        let now = healthy().collected_at;
        let mut t = state(healthy());
        let e1 = Event::new(
            now - Duration::days(1),
            EventKind::NetworkChanged {
                from_fingerprint: "a".into(),
                to_fingerprint: "b".into(),
                changes: vec!["gateway 192.168.10.1 -> 192.168.20.1".into()],
            },
        );
        t.events.push(e1.clone());
        let f = only(&t, now, key::NETWORK_CHANGED).unwrap();
        assert_eq!(
            (f.severity, f.occurrence.clone()),
            (Severity::Warning, e1.id.to_string())
        );
        assert!(f.detail.contains("192.168.20.1"));
        assert_eq!(only(&t, now + EVENT_WINDOW, key::NETWORK_CHANGED), None);

        let mut s = healthy();
        s.network.probes = vec![
            ProbeResult {
                target: "a:443".into(),
                reachable: true,
                latency_ms: Some(3),
                error: None,
            },
            ProbeResult {
                target: "b:443".into(),
                reachable: false,
                latency_ms: None,
                error: Some("timeout".into()),
            },
        ];
        let t = state(s);
        let f = only(&t, now, key::PROBE_UNREACHABLE).unwrap();
        assert_eq!(
            (f.severity, f.occurrence.as_str()),
            (Severity::Critical, "b:443")
        );
    }

    #[test]
    fn updates_behind_after_a_day_of_grace_and_pending_reboot() {
        let now = healthy().collected_at;
        let expected = |version: &str, hours: i64| {
            let mut p = policy();
            p.expected_versions = Arc::new(HashMap::from([(
                "配信アプリ".to_string(),
                ExpectedVersion {
                    version: version.into(),
                    since: now - Duration::hours(hours),
                },
            )]));
            p
        };
        // The sample has 配信アプリ 2.4.1.
        let table = [
            ("2.4.1", 48, false),
            ("2.4.0", 48, false),
            ("2.10.0", 48, true),
            ("2.10.0", 23, false),
            ("2.4.1.1", 24, true),
        ];
        let t = state(healthy());
        for (version, hours, want) in table {
            let got = rules(&t, &expected(version, hours), now);
            assert_eq!(
                got.contains(&(key::UPDATES_BEHIND, Severity::Warning)),
                want,
                "{version} since {hours} h: {got:?}"
            );
        }
        for (hours, want) in [(23, false), (25, true)] {
            let mut s = healthy();
            s.apps.pending_reboot = Some(PendingReboot {
                reasons: vec!["CBS RebootPending".into()],
                since: Some(now - Duration::hours(hours)),
            });
            let t = state(s);
            assert_eq!(
                only(&t, now, key::PENDING_REBOOT).is_some(),
                want,
                "{hours}"
            );
        }
    }

    #[test]
    fn versions_compare_numerically() {
        use std::cmp::Ordering::*;
        for (a, b, want) in [
            ("2.4.1", "2.10.0", Less),
            ("2.4.1", "2.4.1", Equal),
            ("2.4", "2.4.0", Equal),
            ("1.12.0", "1.9.9", Greater),
            ("v3", "v3", Equal),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} {b}");
        }
    }

    #[test]
    fn snapshot_only_rules_for_the_dashboard_count() {
        let mut s = healthy();
        s.certificates.backup = None;
        let f = evaluate_snapshot(&s, &agent_policy(), s.collected_at);
        assert_eq!(
            f.iter().map(|f| f.rule).collect::<Vec<_>>(),
            vec![key::BACKUP_MISSING]
        );
        assert_eq!(
            f.iter().filter(|f| f.severity >= Severity::Warning).count(),
            1
        );
    }
}
