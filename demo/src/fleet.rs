//! The simulated fleet: terminals with one problem each (together every kind of alert) that
//! enroll and report through the real HTTP API, as an agent would.

use std::path::Path;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use onshi_shared::{
    AccountChange, AccountRole, AccountSpec, AgentPolicy, ApiError, BackupState, EnrollRequest,
    EnrollResponse, Event, EventKind, PendingReboot, RebootMarker, RebootSource, Report, ReportAck,
    SCHEMA_VERSION, Snapshot, sample,
};
use rand::Rng;
use uuid::Uuid;

use onshi_server::desk::Desk;
use onshi_server::domain::{Actor, Reach, Role, Scope};

use crate::Error;

const CLINIC_NAMES: [&str; 12] = [
    "さくら内科クリニック",
    "みどり薬局 駅前店",
    "あおば小児科医院",
    "ひまわり歯科",
    "つばさ整形外科",
    "かえで眼科",
    "すずらん皮膚科",
    "やまびこ診療所",
    "こもれび耳鼻咽喉科",
    "はなみずき調剤薬局",
    "わかば在宅クリニック",
    "あさひ総合診療所",
];

const TOWNS: [&str; 8] = [
    "札幌",
    "仙台",
    "千葉",
    "横浜",
    "名古屋",
    "京都",
    "広島",
    "福岡",
];

/// The accounts every simulated terminal was installed with.
pub fn demo_policy(interval_secs: u32) -> AgentPolicy {
    let spec = |role, name: &str| AccountSpec {
        role,
        name: name.into(),
    };
    AgentPolicy {
        interval_secs,
        accounts: vec![
            spec(AccountRole::Windows, "oqs-user"),
            spec(AccountRole::FaceAuth, "oqs-face"),
            spec(AccountRole::Linkage, "oqs-link"),
            spec(AccountRole::Administrator, "oqs-admin"),
        ],
        ..AgentPolicy::default()
    }
}

/// What is wrong with a simulated terminal: together they open an alert of every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Healthy,
    NoRestart,
    CertExpiring,
    AccountChanged,
    PendingReboot,
    NoBackup,
    Offline,
    UpdatesBehind,
    CertNoKey,
    OldCertLeft,
    BackupOutdated,
    PasswordExpiring,
    NetworkChanged,
    ProbeDown,
    LinkagePassword,
    /// Reports once, then is switched off as the vendor asks, at a clinic that closed for the
    /// day an hour before the demo started (or is closed today, when the demo starts just
    /// after midnight): it stays 営業時間外, not オフライン.
    SwitchedOff,
    /// Its linkage account was made under another name than the server's: a desk-only
    /// 「設定確認が必要」, no clinic mail.
    AccountsDiffer,
    /// Security software keeps `PendingFileRenameOperations` set: shown, not alerted.
    FileRenameOnly,
}

impl Profile {
    fn pick(n: usize) -> Profile {
        match n % 20 {
            0 => Profile::NoRestart,
            1 => Profile::CertExpiring,
            2 => Profile::AccountChanged,
            3 => Profile::Offline,
            4 => Profile::PendingReboot,
            5 => Profile::NoBackup,
            6 => Profile::UpdatesBehind,
            7 => Profile::CertNoKey,
            8 => Profile::OldCertLeft,
            9 => Profile::BackupOutdated,
            10 => Profile::PasswordExpiring,
            11 => Profile::NetworkChanged,
            12 => Profile::ProbeDown,
            13 => Profile::LinkagePassword,
            14 => Profile::SwitchedOff,
            15 => Profile::AccountsDiffer,
            16 => Profile::FileRenameOnly,
            _ => Profile::Healthy,
        }
    }
}

/// The version staff expect of the distribution app in the demo (the UpdatesBehind terminals
/// run an older one).
pub const DEMO_EXPECTED_APP: (&str, &str) = ("配信アプリ", "2.4.1");

/// The report at which a terminal's account changes (see [`SimTerminal::changed`]).
const CHANGE_AT: u64 = 3;

/// One simulated terminal.
pub struct SimTerminal {
    pub profile: Profile,
    pub agent_id: Uuid,
    token: String,
    seq: u64,
    /// Reports sent live (the history written at start does not count).
    sent: u64,
    hostname: String,
    last_start: DateTime<Utc>,
    cert_not_after: DateTime<Utc>,
    pending_events: Vec<Event>,
    policy: AgentPolicy,
}

impl SimTerminal {
    fn new(n: usize, enrolled: EnrollResponse, hostname: String, now: DateTime<Utc>) -> Self {
        let mut rng = rand::rng();
        let profile = Profile::pick(n);
        let last_start = match profile {
            Profile::NoRestart => now - Duration::hours(rng.random_range(30..200)),
            _ => now - Duration::minutes(rng.random_range(10..20 * 60)),
        };
        let cert_not_after = match profile {
            Profile::CertExpiring => now + Duration::days(rng.random_range(2..40)),
            _ => now + Duration::days(rng.random_range(120..1100)),
        };
        let mut pending_events = vec![Event::new(
            now,
            EventKind::AgentStarted {
                version: env!("CARGO_PKG_VERSION").into(),
            },
        )];
        if profile == Profile::NetworkChanged {
            pending_events.push(Event::new(
                now,
                EventKind::NetworkChanged {
                    from_fingerprint: "9f2c4d1e0b7a6c5d".into(),
                    to_fingerprint: "1a2b3c4d5e6f7081".into(),
                    changes: vec!["gateway 192.168.10.1 -> 192.168.20.1".into()],
                },
            ));
        }
        SimTerminal {
            profile,
            agent_id: enrolled.agent_id,
            token: enrolled.token,
            seq: 0,
            sent: 0,
            hostname,
            last_start,
            cert_not_after,
            pending_events,
            policy: enrolled.policy,
        }
    }

    /// The snapshot this terminal would collect at `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Snapshot {
        self.snapshot_started(now, self.last_start)
    }

    /// The snapshot at `now` of a terminal last started at `last_start` (its history).
    fn snapshot_started(&self, now: DateTime<Utc>, last_start: DateTime<Utc>) -> Snapshot {
        let mut s = sample::snapshot_at(now);
        s.hostname = self.hostname.clone();
        s.uptime.last_start = last_start;
        s.uptime.last_boot = last_start;
        s.uptime.uptime_secs = (now - last_start).num_seconds().max(0) as u64;
        let cert = &mut s.certificates.certs[0];
        cert.not_after = self.cert_not_after;
        cert.not_before = self.cert_not_after - Duration::days(365 * 3 + 90);
        cert.thumbprint = format!("{:040X}", self.agent_id.as_u128() & 0xFFFF_FFFF_FFFF_FFFF);
        cert.has_private_key = self.profile != Profile::CertNoKey;
        match self.profile {
            Profile::NoBackup => {}
            Profile::BackupOutdated => {
                s.certificates.backup = Some(BackupState {
                    thumbprint: "0".repeat(40),
                    verified_at: self.last_start - Duration::days(400),
                    not_after: Some(now - Duration::days(20)),
                    matches_current: false,
                });
            }
            _ => {
                s.certificates.backup = Some(BackupState {
                    thumbprint: cert.thumbprint.clone(),
                    verified_at: self.last_start,
                    not_after: Some(cert.not_after),
                    matches_current: true,
                });
            }
        }
        if self.profile == Profile::OldCertLeft {
            let mut old = s.certificates.certs[0].clone();
            old.thumbprint = "F".repeat(40);
            old.serial = "1A2B3C".into();
            old.not_after = now - Duration::days(20);
            old.not_before = old.not_after - Duration::days(365 * 3 + 90);
            s.certificates.certs.push(old);
        }
        if self.profile == Profile::UpdatesBehind {
            s.apps.installed[0].version = Some("2.3.0".into());
        }
        if self.profile == Profile::ProbeDown {
            s.network.probes = vec![onshi_shared::ProbeResult {
                target: "oqs-portal.example:443".into(),
                reachable: false,
                latency_ms: None,
                error: Some("connection timed out".into()),
            }];
        }
        s.accounts.policy_key = onshi_shared::accounts_key(&self.policy.accounts);
        s.accounts.accounts = self
            .policy
            .accounts
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut a = sample::snapshot().accounts.accounts[0].clone();
                a.role = spec.role;
                a.name = spec.name.clone();
                a.sid = Some(format!(
                    "S-1-5-21-1004336348-1177238915-682003330-{}",
                    1001 + i
                ));
                if self.profile == Profile::AccountChanged
                    && spec.role == AccountRole::Windows
                    && self.changed()
                {
                    a.name = "受付PC".into();
                }
                if self.profile == Profile::PasswordExpiring && spec.role == AccountRole::Windows {
                    a.password_expires = Some(now + Duration::days(5));
                }
                if self.profile == Profile::AccountsDiffer && spec.role == AccountRole::Linkage {
                    // The installer named it otherwise: not found under the server's name.
                    a.exists = false;
                    a.enabled = None;
                    a.locked = None;
                    a.sid = None;
                    a.password_last_set = None;
                    a.password_expires = None;
                }
                a
            })
            .collect();
        let since = Some(now - Duration::hours(30));
        let marker = |source| RebootMarker {
            source,
            since,
            detail: None,
        };
        match self.profile {
            Profile::PendingReboot => {
                s.apps.pending_reboot = Some(PendingReboot {
                    reasons: vec!["CBS RebootPending".into()],
                    since,
                    markers: vec![marker(RebootSource::ComponentServicing)],
                });
            }
            Profile::FileRenameOnly => {
                s.apps.pending_reboot = Some(PendingReboot {
                    reasons: vec!["PendingFileRenameOperations".into()],
                    since,
                    markers: vec![marker(RebootSource::FileRename)],
                });
            }
            _ => {}
        }
        s
    }

    /// Whether the change this terminal's profile makes has happened: after a few reports, so
    /// that the server has its baseline first (a change before it is history).
    fn changed(&self) -> bool {
        self.sent >= CHANGE_AT
    }

    fn next_report(&mut self, now: DateTime<Utc>) -> Report {
        self.seq += 1;
        self.sent += 1;
        if self.sent == CHANGE_AT {
            let change = match self.profile {
                Profile::LinkagePassword => Some((
                    AccountRole::Linkage,
                    "oqs-link",
                    AccountChange::PasswordChanged,
                )),
                Profile::AccountChanged => Some((
                    AccountRole::Windows,
                    "受付PC",
                    AccountChange::Renamed {
                        from: "oqs-user".into(),
                        to: "受付PC".into(),
                    },
                )),
                _ => None,
            };
            if let Some((role, name, change)) = change {
                self.pending_events.push(Event::new(
                    now,
                    EventKind::AccountChanged {
                        role,
                        name: name.into(),
                        change,
                    },
                ));
            }
        }
        Report {
            schema: SCHEMA_VERSION,
            agent_id: self.agent_id,
            seq: self.seq,
            sent_at: now,
            snapshot: self.snapshot(now),
            events: self.pending_events.clone(),
        }
    }
}

/// Thirty days of history for every terminal, written straight to the store before the fleet
/// reports live, so a newcomer sees what a terminal's timeline looks like: the PC switched on
/// in the morning (a restart) and reporting until the evening on the clinic's open days (not
/// on Sundays); a terminal that has not restarted lately keeps its old start.
pub async fn seed_history(
    store: &std::sync::Arc<dyn onshi_server::store::Store>,
    fleet: &mut [SimTerminal],
    days: i64,
) -> Result<(), Error> {
    use chrono::{Datelike, NaiveTime, TimeZone, Weekday};
    let tz = onshi_server::jst::offset();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let at = |date: chrono::NaiveDate, h: u32, m: u32| {
        NaiveTime::from_hms_opt(h, m, 0)
            .and_then(|t| tz.from_local_datetime(&date.and_time(t)).single())
            .map(|t| t.with_timezone(&Utc))
    };
    let mut rows = Vec::new();
    let mut rng = rand::rng();
    for t in fleet.iter_mut() {
        for back in (1..=days).rev() {
            let date = today - Duration::days(back);
            if date.weekday() == Weekday::Sun {
                continue;
            }
            let Some(morning) = at(date, 8, rng.random_range(20..50)) else {
                continue;
            };
            for (h, m) in [(9, 0), (13, 0), (17, 30)] {
                let Some(when) = at(date, h, m) else { continue };
                // Not restarted since: the live start holds (the no-restart terminals).
                let started = if when >= t.last_start {
                    t.last_start
                } else {
                    morning
                };
                t.seq += 1;
                let report = Report {
                    schema: SCHEMA_VERSION,
                    agent_id: t.agent_id,
                    seq: t.seq,
                    sent_at: when,
                    snapshot: t.snapshot_started(when, started),
                    events: Vec::new(),
                };
                rows.push(
                    onshi_server::ingest::prepare(report, t.agent_id, when)
                        .map_err(|e| Error::Setup(format!("demo history: {e}")))?,
                );
            }
        }
    }
    let sink = store.ingest_sink();
    for chunk in rows.chunks(1_000) {
        sink.write_batch(chunk)
            .await
            .map_err(|e| Error::Setup(format!("demo history: {e}")))?;
    }
    sink.sync_committed()
        .map_err(|e| Error::Setup(format!("demo history: {e}")))?;
    Ok(())
}

async fn api_error(resp: reqwest::Response) -> Error {
    let status = resp.status();
    let detail = match resp.json::<ApiError>().await {
        Ok(e) => format!("{}: {}", e.error, e.detail),
        Err(_) => String::new(),
    };
    Error::Api(format!("server answered {status} {detail}"))
}

/// Who sets up the demo's clinics and staff.
pub fn actor() -> Actor {
    Actor::CommandLine {
        os_user: "demo".into(),
    }
}

/// Enrolls `count` simulated terminals spread over demo clinics, through the HTTP API.
pub async fn enroll_fleet(
    desk: &Desk,
    base: &str,
    count: usize,
) -> Result<Vec<SimTerminal>, Error> {
    let now = Utc::now();
    let client = reqwest::Client::new();
    // Clinic 0 is open around the clock (its silent terminals are オフライン at once), clinic
    // 1 is closed today (its switched-off terminals stay 営業時間外); see `prepare_clinics`.
    let clinic_count = count.div_ceil(6).max(2);
    let mut codes = Vec::with_capacity(clinic_count);
    for i in 0..clinic_count {
        let name = format!(
            "{} {}{}",
            CLINIC_NAMES[i % CLINIC_NAMES.len()],
            TOWNS[(i / CLINIC_NAMES.len()) % TOWNS.len()],
            i / (CLINIC_NAMES.len() * TOWNS.len()) + 1
        );
        let clinic = desk
            .add_clinic(&actor(), &name, &format!("clinic{i}@example.jp"), now)
            .await?;
        codes.push(desk.issue_code(&actor(), clinic.id, now).await?);
    }
    let mut fleet = Vec::with_capacity(count);
    for n in 0..count {
        let clinic = match Profile::pick(n) {
            Profile::Offline => 0,
            Profile::SwitchedOff => 1,
            _ => n % clinic_count,
        };
        let request = EnrollRequest {
            schema: SCHEMA_VERSION,
            code: codes[clinic].clone(),
            hostname: format!("OQS-PC-{:04}", n + 1),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            os: "Windows 11 Pro 23H2".into(),
        };
        let resp = client
            .post(format!("{base}/api/v1/enroll"))
            .json(&request)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        let enrolled: EnrollResponse = resp.json().await?;
        fleet.push(SimTerminal::new(n, enrolled, request.hostname, now));
    }
    Ok(fleet)
}

const DEMO_PREFECTURES: [&str; 5] = ["東京都", "神奈川県", "大阪府", "愛知県", "福岡県"];

/// The demo's staff accounts, all with the given password or a generated one, which is returned
/// so the demo can print it: `demo` (an admin of the whole fleet), and two limited to a scope,
/// to show what a regional desk and a dealer see: `demo-tokyo` (a viewer of 東京都) and
/// `demo-dealer` (an admin of the clinic group 「デモ販売店」, two clinics).
pub async fn create_demo_user(desk: &Desk, password: Option<String>) -> Result<String, Error> {
    let password = password.unwrap_or_else(onshi_server::auth::generate_password);
    let now = Utc::now();
    desk.add_user(
        &actor(),
        DEMO_USER,
        Role::Admin,
        None,
        Some(password.clone()),
        now,
    )
    .await?;
    let group = desk.create_group(&actor(), DEMO_GROUP, now).await?;
    let (_, clinics) = desk
        .store()
        .fleet()
        .clinic_list(None, 0, 4, &Reach::All)
        .await
        .map_err(onshi_server::Error::from)?;
    for c in clinics.iter().skip(1).step_by(2) {
        desk.set_group_member(&actor(), group, c.id, true, now)
            .await?;
    }
    let scoped = [
        (
            DEMO_REGIONAL_USER,
            Role::Viewer,
            vec!["東京都".to_string()],
            Vec::new(),
        ),
        (DEMO_DEALER_USER, Role::Admin, Vec::new(), vec![group]),
    ];
    for (name, role, prefectures, groups) in scoped {
        let scope = Scope {
            prefectures,
            groups,
        };
        desk.add_user(
            &actor(),
            name,
            role,
            Some(scope),
            Some(password.clone()),
            now,
        )
        .await?;
    }
    Ok(password)
}

pub const DEMO_USER: &str = "demo";
/// A viewer limited to 東京都.
pub const DEMO_REGIONAL_USER: &str = "demo-tokyo";
/// An admin limited to the clinic group [`DEMO_GROUP`].
pub const DEMO_DEALER_USER: &str = "demo-dealer";
pub const DEMO_GROUP: &str = "デモ販売店";

/// Calendars real clinics keep, one per demo clinic after the first two: a lunch break with
/// Thursday and Saturday afternoons off, a morning-only Saturday, a pharmacy closed for お盆.
const CALENDARS: [(&str, bool); 3] = [
    (
        "mon=09:00-12:30,15:00-18:30;tue=09:00-12:30,15:00-18:30;wed=09:00-12:30,15:00-18:30;\
         thu=09:00-12:30;fri=09:00-12:30,15:00-18:30;sat=09:00-12:30",
        false,
    ),
    (
        "mon=08:30-12:00,14:00-17:30;tue=08:30-12:00,14:00-17:30;wed=08:30-12:00;\
         thu=08:30-12:00,14:00-17:30;fri=08:30-12:00,14:00-17:30;sat=08:30-12:00",
        false,
    ),
    (
        "mon=09:00-19:00;tue=09:00-19:00;wed=09:00-19:00;thu=09:00-19:00;fri=09:00-19:00;\
         sat=09:00-13:00",
        true,
    ),
];

/// Clinic 1's week: 09:00–18:00, but today it closed an hour before `now` (JST), so that the
/// terminals switched off after closing stay 営業時間外 whenever the demo runs. `None` in the
/// first hours after midnight, when no window fits today.
fn closed_an_hour_ago(now: DateTime<Utc>) -> Option<onshi_server::calendar::BusinessHours> {
    use chrono::{Datelike, NaiveTime, Timelike};
    use onshi_server::calendar::{BusinessHours, Window};
    let local = now.with_timezone(&onshi_server::jst::offset());
    let close = local.time().hour().checked_sub(1).filter(|h| *h >= 1)?;
    let close = NaiveTime::from_hms_opt(close, 0, 0)?;
    let open = NaiveTime::from_hms_opt(9, 0, 0)?.min(close - Duration::hours(1));
    let mut hours = BusinessHours::default();
    hours.week[local.weekday().num_days_from_monday() as usize] = vec![Window::new(open, close)];
    hours.closed_on_holidays = false;
    hours.closed_new_year = false;
    Some(hours)
}

/// Gives the demo clinics their calendars, prefectures and codes: clinic 0 open around the
/// clock (so silent terminals count as offline at once), clinic 1 closed for the day an hour
/// ago (or closed today, 臨時休診, just after midnight), the others on real clinics' weeks,
/// clinic 3 with a 臨時休診 today; clinic 2 names its linkage account its own way. Staff
/// expect the current distribution app since two days (so older versions are past the grace
/// period).
pub async fn prepare_clinics(desk: &Desk) -> Result<(), Error> {
    use onshi_server::calendar::{BusinessHours, Closure, Window, parse_week};
    let now = Utc::now();
    let today = now.with_timezone(&onshi_server::jst::offset()).date_naive();
    let evening = closed_an_hour_ago(now);
    let clinics = desk
        .store()
        .alerts()
        .clinic_settings(today)
        .await
        .map_err(onshi_server::Error::from)?;
    for (i, clinic) in clinics.iter().enumerate() {
        let mut detail = desk.clinic(clinic.id).await?;
        let s = &mut detail.settings;
        s.hours = match i {
            0 => {
                let all_day = vec![Window::new(
                    chrono::NaiveTime::MIN,
                    chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap_or_default(),
                )];
                BusinessHours {
                    week: std::array::from_fn(|_| all_day.clone()),
                    closed_on_holidays: false,
                    closed_new_year: false,
                    ..BusinessHours::default()
                }
            }
            1 => evening.clone().unwrap_or_default(),
            _ => {
                let (week, obon) = CALENDARS[i % CALENDARS.len()];
                BusinessHours {
                    week: parse_week(week).map_err(Error::Setup)?,
                    closed_obon: obon,
                    ..BusinessHours::default()
                }
            }
        };
        s.prefecture = Some(DEMO_PREFECTURES[clinic.id as usize % DEMO_PREFECTURES.len()].into());
        s.desk_name = Some("オンシ・サポートデスク".into());
        s.desk_phone = Some("03-0000-0000".into());
        if i == 2 {
            s.accounts = vec![AccountSpec {
                role: AccountRole::Linkage,
                name: "renkei-uketsuke".into(),
            }];
        }
        // 医療機関コード: prefecture (2), point table (1), number (7).
        detail.code = Some(format!("131{:07}", clinic.id));
        desk.save_clinic(&actor(), &detail, now).await?;
        if (i == 1 && evening.is_none()) || i == 3 {
            let closure = Closure {
                id: 0,
                from: today,
                to: today,
                reason: "臨時休診（院長学会）".into(),
            };
            desk.add_closures(&actor(), clinic.id, vec![closure], now)
                .await?;
        }
    }
    // Expected since two days, so that older versions are past the grace period at once.
    let (app, version) = DEMO_EXPECTED_APP;
    desk.set_expected_version(&actor(), app, Some(version), now - Duration::days(2))
        .await?;
    Ok(())
}

/// The desk's day in the demo: a nightly window for the 04:00 automatic restart across the
/// fleet (for the offline rule only: a terminal restarting is briefly silent, and nothing else
/// is held back at night), and a silence for the terminals whose line is being worked on
/// (their critical mail is held back, the overview shows 抑止中 beside 緊急).
pub async fn prepare_silences(desk: &Desk, fleet: &[SimTerminal]) -> Result<(), Error> {
    use onshi_server::desk::SilenceRequest;
    use onshi_server::domain::{DailyWindow, SilenceScope};
    let now = Utc::now();
    let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
    desk.silence(
        &actor(),
        &SilenceRequest {
            scope: SilenceScope::Fleet,
            rule: Some(onshi_server::domain::RuleKey::Offline),
            starts_at: now,
            ends_at: now + Duration::days(365),
            daily: Some(DailyWindow {
                from: t(3, 30),
                to: t(5, 0),
                weekdays: 0x7f,
            }),
            reason: "自動電源設定による 04:00 の再起動".into(),
        },
        now,
    )
    .await?;
    for sim in fleet.iter().filter(|s| s.profile == Profile::ProbeDown) {
        desk.silence(
            &actor(),
            &SilenceRequest {
                scope: SilenceScope::Terminal(sim.agent_id),
                rule: None,
                starts_at: now,
                ends_at: now + Duration::hours(6),
                daily: None,
                reason: "回線業者の工事中（デモ）".into(),
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// Acknowledges the critical alerts of terminals whose certificate lost its key, as a desk
/// member would once the vendor is on it (the overview shows 対応中 beside 緊急). Waits for
/// the evaluator to open them.
pub async fn acknowledge_when_open(desk: Desk, fleet_ids: Vec<Uuid>) {
    use onshi_server::domain::{AlertStatus, RuleKey};
    for _ in 0..120 {
        tokio::time::sleep(StdDuration::from_secs(2)).await;
        let Ok(open) = desk.store().alerts().active_alerts(Some(&fleet_ids)).await else {
            continue;
        };
        let targets: Vec<_> = open
            .iter()
            .filter(|a| a.rule == RuleKey::CertNoPrivateKey && a.status == AlertStatus::Open)
            .collect();
        if targets.is_empty() {
            continue;
        }
        let now = Utc::now();
        for a in targets {
            if let Err(e) = desk
                .acknowledge(
                    &actor(),
                    a.id,
                    "ベンダーに証明書の再設定を依頼済み（デモ）",
                    Some(now + Duration::days(3)),
                    now,
                )
                .await
            {
                tracing::warn!(error = %e, "the demo's acknowledgement failed");
            }
        }
        return;
    }
}

/// Where the demo writes the mails it would send.
pub fn mail_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("mail")
}

/// Sends one report for a simulated terminal; events are cleared once acknowledged.
pub async fn report_once(
    client: &reqwest::Client,
    base: &str,
    t: &mut SimTerminal,
) -> Result<ReportAck, Error> {
    let report = t.next_report(Utc::now());
    let resp = client
        .post(format!("{base}/api/v1/report"))
        .bearer_auth(&t.token)
        .json(&report)
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(api_error(resp).await);
    }
    let ack: ReportAck = resp.json().await?;
    t.pending_events.clear();
    t.policy = ack.policy.clone();
    Ok(ack)
}

/// Keeps a simulated terminal reporting at the interval the server asks for; an offline or a
/// switched-off terminal reports once and then falls silent.
pub async fn simulate(base: String, mut t: SimTerminal) {
    let client = reqwest::Client::new();
    let jitter = rand::rng().random_range(0..3000);
    tokio::time::sleep(StdDuration::from_millis(jitter)).await;
    loop {
        let wait = match report_once(&client, &base, &mut t).await {
            Ok(ack) => u64::from(ack.next_interval_secs),
            Err(e) => {
                tracing::warn!(terminal = %t.agent_id, error = %e, "demo report failed");
                10
            }
        };
        if matches!(t.profile, Profile::Offline | Profile::SwitchedOff) {
            return;
        }
        tokio::time::sleep(StdDuration::from_secs(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(profile_index: usize) -> SimTerminal {
        let enrolled = EnrollResponse {
            agent_id: Uuid::now_v7(),
            token: "t".into(),
            clinic_name: "c".into(),
            policy: demo_policy(30),
        };
        SimTerminal::new(profile_index, enrolled, "PC".into(), Utc::now())
    }

    #[test]
    fn the_evaluators_slim_snapshots_find_what_the_full_ones_find() {
        use onshi_server::rules::{self, ClinicPolicy, RuleInput};
        let now = Utc::now();
        let policy = ClinicPolicy::new(demo_policy(30));
        for n in 0..20 {
            let t = sim(n);
            let full = t.snapshot(now);
            let mut slim = full.clone();
            rules::slim_for_rules(&mut slim);
            assert!(slim.network.adapters.is_empty() && slim.os.is_empty());
            let state = |s| RuleInput {
                terminal_id: t.agent_id,
                clinic_id: 1,
                enrolled_at: now - Duration::days(400),
                last_seen: Some(now),
                collected_at: now,
                snapshot: Some(std::sync::Arc::new(s)),
                events: t.pending_events.clone(),
                own_accounts: None,
                accounts: Default::default(),
            };
            assert_eq!(
                rules::evaluate(&state(slim), &policy, now),
                rules::evaluate(&state(full), &policy, now),
                "profile {:?}",
                Profile::pick(n)
            );
        }
    }

    #[test]
    fn every_profile_opens_its_alert() {
        use onshi_server::domain::{ExpectedVersion, RuleKey, Severity};
        use onshi_server::rules::{self, ClinicPolicy, RuleInput};
        use std::collections::HashMap;
        use std::sync::Arc;
        let now = Utc::now();
        let mut policy = ClinicPolicy::new(demo_policy(30));
        policy.expected_versions = Arc::new(HashMap::from([(
            DEMO_EXPECTED_APP.0.to_string(),
            ExpectedVersion {
                version: DEMO_EXPECTED_APP.1.into(),
                since: now - Duration::days(2),
            },
        )]));
        let rules_of = |n: usize| -> Vec<RuleKey> {
            let mut t = sim(n);
            // Past the report that makes the profile's change; the baseline is older.
            let mut events = Vec::new();
            for _ in 0..CHANGE_AT {
                events.extend(t.next_report(now).events);
                t.pending_events.clear();
            }
            let snapshot = t.snapshot(now);
            let state = RuleInput {
                terminal_id: t.agent_id,
                clinic_id: 1,
                enrolled_at: now,
                last_seen: Some(now),
                collected_at: snapshot.collected_at,
                events,
                own_accounts: None,
                accounts: rules::AccountRecord {
                    baseline_key: Some(snapshot.accounts.policy_key),
                    baseline_at: Some(now - Duration::hours(1)),
                    baseline_missing: if t.profile == Profile::AccountsDiffer {
                        vec![AccountRole::Linkage]
                    } else {
                        Vec::new()
                    },
                    confirmed: false,
                    confirmed_key: None,
                    version: 1,
                },
                snapshot: Some(std::sync::Arc::new(snapshot)),
            };
            rules::evaluate(&state, &policy, now)
                .into_iter()
                .filter(|f| f.severity >= Severity::Warning)
                .map(|f| f.rule)
                .collect()
        };
        assert_eq!(rules_of(17), Vec::<RuleKey>::new(), "healthy");
        assert_eq!(
            rules_of(14),
            Vec::<RuleKey>::new(),
            "switched off, reporting now"
        );
        assert_eq!(
            rules_of(16),
            Vec::<RuleKey>::new(),
            "a pending file rename alone"
        );
        let table = [
            (0, RuleKey::NoDailyRestart),
            (2, RuleKey::ProtectedAccountWindows),
            (4, RuleKey::PendingReboot),
            (5, RuleKey::BackupMissing),
            (6, RuleKey::UpdatesBehind),
            (7, RuleKey::CertNoPrivateKey),
            (8, RuleKey::CertOldLeft),
            (9, RuleKey::BackupOutdated),
            (10, RuleKey::WindowsPasswordExpiry),
            (11, RuleKey::NetworkChanged),
            (12, RuleKey::ProbeUnreachable),
            (13, RuleKey::ProtectedAccountLinkage),
            (15, RuleKey::AccountsUnconfirmed),
        ];
        for (n, rule) in table {
            assert_eq!(rules_of(n), vec![rule], "profile {:?}", Profile::pick(n));
        }
        let cert = rules_of(1);
        assert!(
            cert.is_empty() || cert == vec![RuleKey::CertExpiry],
            "{cert:?}"
        );
    }

    #[test]
    fn demo_reports_are_valid() {
        use onshi_shared::Validate;
        for n in 0..20 {
            sim(n).next_report(Utc::now()).validate().unwrap();
        }
    }
}
