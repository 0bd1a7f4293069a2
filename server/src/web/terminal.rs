//! The terminal page: every area of the latest snapshot, a 30-day timeline of starts, reports
//! and events, the terminal's alerts with the same actions as the alerts page, its audit log.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{Duration, Utc};
use onshi_shared::{AccountRole, AccountSpec, Event, EventKind, RebootSource, Snapshot};
use serde::Deserialize;
use uuid::Uuid;

use super::alerts::{AlertRow, MessageLine, finish};
use super::audit::AuditLine;
use super::format::{Nav, describe_event};
use super::overview::Status;
use super::session::{Admin, AuthFailure, Staff};
use super::timeline::{Timeline, TimelineEvent, TimelineStart, timeline_svg};
use super::{AppState, PageFailure};
use crate::domain::{RuleKey, actor_label_ja, compare_versions, effective_versions};
use crate::jst::{datetime_local, duration_ja, opt_time_ja, time_ja};
use crate::store::desk::{AlertQuery, AuditQuery, TerminalBaseline};
use crate::wording::{network_change_ja, probe_error_ja, source_area_ja, source_reason_ja};

const DAYS: i64 = 30;

pub struct CertRow {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_after: String,
    pub days_left: i64,
    pub urgent: bool,
    pub has_key: bool,
    pub store: String,
    pub current: bool,
}

pub struct AccountRow {
    pub role: &'static str,
    pub protected: bool,
    pub name: String,
    pub state: String,
    pub bad: bool,
    pub password_expires: String,
    pub last_change: String,
}

pub struct AdapterRow {
    pub name: String,
    pub mac: String,
    pub up: bool,
    pub addresses: String,
    pub gateways: String,
    pub dns: String,
}

pub struct ProbeRow {
    pub target: String,
    pub reachable: bool,
    pub latency: String,
    pub error: String,
}

pub struct AppRow {
    pub name: String,
    pub version: String,
    pub expected: String,
    pub behind: bool,
}

pub struct EventRow {
    pub at: String,
    pub text: String,
}

pub struct NetworkChange {
    pub at: String,
    pub changes: Vec<String>,
}

/// One protected role on the account-confirmation form: the name the terminal is given, where
/// that name comes from, and what the terminal reports.
pub struct ExpectedAccount {
    pub field: &'static str,
    pub role: &'static str,
    pub expected: String,
    pub source: &'static str,
    pub found: String,
    pub matches: bool,
}

/// A reason the terminal waits for a restart, with its source, and whether it counts.
pub struct RebootReason {
    pub label: &'static str,
    pub since: String,
    pub counts: bool,
}

#[derive(Template)]
#[template(path = "terminal.html")]
pub struct TerminalPage {
    pub nav: Nav,
    pub id: String,
    pub hostname: String,
    pub clinic_id: i64,
    pub clinic: String,
    pub status: Status,
    pub last_seen: String,
    pub enrolled: String,
    pub agent_version: String,
    pub os: String,
    pub revoked: bool,
    pub has_snapshot: bool,
    pub last_start: String,
    pub last_start_kind: &'static str,
    pub since_start: String,
    pub restart_overdue: bool,
    pub last_boot: String,
    pub requested_by: String,
    pub timeline: String,
    /// Days of the timeline without a restart.
    pub no_restart_days: usize,
    pub certs: Vec<CertRow>,
    pub backup: String,
    pub backup_bad: bool,
    pub accounts: Vec<AccountRow>,
    pub expected_accounts: Vec<ExpectedAccount>,
    /// The baseline: when it was taken and what it did not find; who confirmed the names.
    pub baseline: String,
    pub confirmed: String,
    pub unconfirmed: bool,
    pub adapters: Vec<AdapterRow>,
    pub gateway: String,
    pub probes: Vec<ProbeRow>,
    pub network_change: Option<NetworkChange>,
    pub apps: Vec<AppRow>,
    pub missing_apps: Vec<String>,
    pub pending_reboot: Vec<RebootReason>,
    /// Sources that could not be read, by area (the rest: `notes`).
    pub notes: Vec<String>,
    pub cert_notes: Vec<String>,
    pub account_notes: Vec<String>,
    pub network_notes: Vec<String>,
    pub app_notes: Vec<String>,
    /// What the agent's spool lost (empty: nothing).
    pub spool_losses: String,
    pub alerts: Vec<AlertRow>,
    /// Alert rows without check boxes here (the alerts page has the bulk actions).
    pub selectable: bool,
    pub back: String,
    pub ack_default: String,
    pub silence_start: String,
    pub silence_end: String,
    pub events: Vec<EventRow>,
    pub audit: Vec<AuditLine>,
}

/// `GET /terminals/{id}`
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageFailure> {
    let Ok(id) = Uuid::parse_str(&id) else {
        return Ok(not_found());
    };
    let desk = state.store.fleet();
    let Some(detail) = desk.terminal_detail(id).await? else {
        return Ok(not_found());
    };
    let now = Utc::now();
    let since = now - Duration::days(DAYS);
    let snapshot = state.store.latest_snapshot(id).await?.map(|(_, s)| s);
    let starts = state.store.starts(id, 400).await?;
    let hours = desk.report_hours(id, since).await?;
    let stored = desk.recent_events(id, since, 500).await?;
    let events: Vec<Event> = stored
        .iter()
        .filter_map(|e| serde_json::from_str(&e.body_json).ok())
        .collect();
    let descriptions: Vec<String> = events.iter().map(describe_event).collect();
    let (_, alert_views) = desk
        .alert_views(&AlertQuery {
            terminal_id: Some(id),
            include_resolved: true,
            limit: 100,
            ..AlertQuery::default()
        })
        .await?;
    let expected: HashMap<String, String> =
        effective_versions(&state.store.alerts().expected_versions().await?)
            .into_iter()
            .map(|(app, v)| (app, v.version))
            .collect();
    let audit = state
        .store
        .staff()
        .audit_rows(&AuditQuery {
            terminal_id: Some(id),
            limit: 50,
            ..AuditQuery::default()
        })
        .await?;

    let timeline_events: Vec<TimelineEvent<'_>> = events
        .iter()
        .zip(&descriptions)
        .map(|(e, text)| TimelineEvent {
            at: e.at,
            kind: e.kind.name(),
            label: text,
        })
        .collect();
    let timeline_starts: Vec<TimelineStart> = starts
        .iter()
        .map(|s| TimelineStart {
            at: s.started_at,
            kind: s.kind,
        })
        .collect();
    let timeline = timeline_svg(&Timeline {
        now,
        days: DAYS,
        starts: &timeline_starts,
        report_hours: &hours,
        events: &timeline_events,
    });
    let network_change = events.iter().find_map(|e| match &e.kind {
        EventKind::NetworkChanged { changes, .. } => Some(NetworkChange {
            at: time_ja(e.at),
            changes: changes.iter().map(|c| network_change_ja(c)).collect(),
        }),
        _ => None,
    });
    let status = Status::of(detail.line.as_ref());
    let clinic = desk.clinic_detail(detail.clinic_id).await?;
    let own = desk.terminal_accounts(id).await?;
    let baseline = desk.terminal_baseline(id).await?;
    let clinic_accounts = clinic
        .as_ref()
        .map(|c| c.settings.accounts.clone())
        .unwrap_or_default();
    let file_rename_counts = clinic
        .as_ref()
        .is_some_and(|c| c.settings.rules.file_rename_counts);
    let mut page = TerminalPage {
        nav: Nav::new(&staff, "overview"),
        id: id.to_string(),
        hostname: detail.hostname,
        clinic_id: detail.clinic_id,
        clinic: detail.clinic_name,
        status,
        last_seen: detail.last_seen.map_or_else(|| "未受信".into(), time_ja),
        enrolled: time_ja(detail.enrolled_at),
        agent_version: detail.agent_version,
        os: detail.os,
        revoked: detail.revoked_at.is_some(),
        has_snapshot: snapshot.is_some(),
        last_start: String::new(),
        last_start_kind: "",
        since_start: String::new(),
        restart_overdue: false,
        last_boot: String::new(),
        requested_by: String::new(),
        no_restart_days: timeline.matches(r#"class="no-restart""#).count(),
        timeline,
        certs: Vec::new(),
        backup: String::new(),
        backup_bad: false,
        accounts: Vec::new(),
        expected_accounts: Vec::new(),
        baseline: String::new(),
        confirmed: String::new(),
        unconfirmed: false,
        adapters: Vec::new(),
        gateway: String::new(),
        probes: Vec::new(),
        network_change,
        apps: Vec::new(),
        missing_apps: Vec::new(),
        pending_reboot: Vec::new(),
        notes: Vec::new(),
        cert_notes: Vec::new(),
        account_notes: Vec::new(),
        network_notes: Vec::new(),
        app_notes: Vec::new(),
        spool_losses: String::new(),
        alerts: {
            let announcer = state.desk.announcer().await?;
            let ids: Vec<i64> = alert_views.iter().map(|v| v.alert.id).collect();
            let mut sent = state.store.outbox().alert_messages(&ids).await?;
            alert_views
                .into_iter()
                .map(|v| {
                    let mut row = AlertRow::new(v, now, announcer);
                    row.messages = sent
                        .extract_if(.., |(alert, _)| *alert == row.id)
                        .map(|(_, m)| MessageLine::new(&m))
                        .collect();
                    row
                })
                .collect()
        },
        selectable: false,
        back: format!("/terminals/{id}"),
        ack_default: datetime_local(now + Duration::days(1)),
        silence_start: datetime_local(now),
        silence_end: datetime_local(now + Duration::hours(4)),
        events: events
            .iter()
            .zip(&descriptions)
            .map(|(e, text)| EventRow {
                at: time_ja(e.at),
                text: text.clone(),
            })
            .collect(),
        audit: audit.into_iter().map(AuditLine::new).collect(),
    };
    // The clinic's own threshold over the server's, as the rule reads it.
    let restart_warning = clinic
        .as_ref()
        .and_then(|c| c.settings.rules.restart_warning_hours)
        .map_or_else(
            || state.config.rules.thresholds().restart_warning,
            |h| Duration::hours(i64::from(h)),
        );
    if let Some(s) = &snapshot {
        fill_from_snapshot(
            &mut page,
            s,
            &expected,
            restart_warning,
            file_rename_counts,
            now,
        );
    }
    fill_accounts(
        &mut page,
        snapshot.as_ref(),
        &state.config.policy.accounts,
        &clinic_accounts,
        &own,
        baseline,
    );
    agree_with_alerts(&mut page);
    Ok(Html(page.render()?).into_response())
}

/// The page's areas say what its open alerts say: an account with an open "changed" alert is
/// not shown as plainly 有効, and its last change is the alert's when the log has none.
fn agree_with_alerts(page: &mut TerminalPage) {
    for a in page.alerts.iter().filter(|a| !a.resolved) {
        let Some(rule) = RuleKey::parse(a.rule) else {
            continue;
        };
        let Some(role) = AccountRole::PROTECTED
            .into_iter()
            .find(|r| RuleKey::protected_account(*r) == Some(rule))
        else {
            continue;
        };
        let mut found = false;
        for row in page
            .accounts
            .iter_mut()
            .filter(|r| r.role == role.label_ja())
        {
            found = true;
            row.bad = true;
            if row.state == "有効" {
                row.state = "変更あり (アラート参照)".into();
            } else {
                row.state.push_str("・変更あり");
            }
            if row.last_change.is_empty() {
                row.last_change = format!("{} {}", a.opened, a.detail);
            }
        }
        if !found {
            // The latest report no longer lists the account (deleted or renamed): the alert's
            // row stands in so the table does not look clean beside a changed-account alert.
            let name = page
                .expected_accounts
                .iter()
                .find(|e| e.role == role.label_ja())
                .map(|e| e.expected.clone())
                .unwrap_or_default();
            page.accounts.push(AccountRow {
                role: role.label_ja(),
                protected: true,
                name,
                state: "変更あり (アラート参照)".into(),
                bad: true,
                password_expires: "—".into(),
                last_change: format!("{} {}", a.opened, a.detail),
            });
        }
    }
}

/// The confirmation form's rows and the baseline's story.
fn fill_accounts(
    page: &mut TerminalPage,
    snapshot: Option<&Snapshot>,
    server: &[AccountSpec],
    clinic: &[AccountSpec],
    own: &[AccountSpec],
    baseline: Option<TerminalBaseline>,
) {
    let find =
        |list: &[AccountSpec], role| list.iter().find(|a| a.role == role).map(|a| a.name.clone());
    page.expected_accounts = AccountRole::PROTECTED
        .iter()
        .map(|&role| {
            let (expected, source) = match (find(own, role), find(clinic, role), find(server, role))
            {
                (Some(n), _, _) => (n, "この端末"),
                (None, Some(n), _) => (n, "医療機関"),
                (None, None, Some(n)) => (n, "サーバー設定"),
                (None, None, None) => (String::new(), "未設定"),
            };
            let reported =
                snapshot.and_then(|s| s.accounts.accounts.iter().find(|a| a.role == role));
            let found = match reported {
                Some(a) if a.exists => a.name.clone(),
                Some(_) => String::new(),
                None => String::new(),
            };
            ExpectedAccount {
                field: role.as_str(),
                role: role.label_ja(),
                matches: !found.is_empty() && found == expected,
                expected,
                source,
                found,
            }
        })
        .collect();
    let Some(b) = baseline else { return };
    page.baseline = match b.taken_at {
        None => "まだ取得していません (この名前での最初の報告で取得します)".into(),
        Some(at) if b.missing.is_empty() => {
            format!(
                "{} に取得 (保護アカウントはすべて見つかりました)",
                time_ja(at)
            )
        }
        Some(at) => {
            let missing: Vec<&str> = b.missing.iter().map(|r| r.label_ja()).collect();
            format!(
                "{} に取得。その時点で使えなかったアカウント (見つからない・無効・ロック中): {}",
                time_ja(at),
                missing.join("、")
            )
        }
    };
    page.confirmed = match (b.confirmed_at, &b.confirmed_by) {
        (Some(at), Some(by)) => format!("{} が {} に確認", actor_label_ja(by), time_ja(at)),
        _ => String::new(),
    };
    page.unconfirmed = !b.missing.is_empty();
}

fn fill_from_snapshot(
    page: &mut TerminalPage,
    s: &Snapshot,
    expected: &HashMap<String, String>,
    restart_warning: Duration,
    file_rename_counts: bool,
    now: chrono::DateTime<Utc>,
) {
    let u = &s.uptime;
    page.last_start = time_ja(u.last_start);
    page.last_start_kind = u.last_start_kind.label_ja();
    page.since_start = duration_ja(now - u.last_start);
    page.restart_overdue = now - u.last_start > restart_warning;
    page.last_boot = time_ja(u.last_boot);
    page.requested_by = u.restart_requested_by.clone().unwrap_or_default();
    let current = s.certificates.current().map(|c| c.thumbprint.clone());
    page.certs = s
        .certificates
        .certs
        .iter()
        .map(|c| {
            let days_left = (c.not_after - now).num_days();
            CertRow {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                serial: c.serial.clone(),
                not_after: time_ja(c.not_after),
                days_left,
                urgent: days_left <= 30,
                has_key: c.has_private_key,
                store: c.store.clone(),
                current: current.as_deref() == Some(c.thumbprint.as_str()),
            }
        })
        .collect();
    (page.backup, page.backup_bad) = match (&s.certificates.backup, current.is_some()) {
        (Some(b), _) if b.matches_current => (
            format!(
                "バックアップ (.pfx) 確認済み: {} (秘密キー付き、現在の証明書)",
                time_ja(b.verified_at)
            ),
            false,
        ),
        (Some(b), _) => (
            format!(
                "バックアップは更新前の証明書のものです ({} に確認)。更新後の証明書を秘密キー付きで .pfx にエクスポートしてください",
                time_ja(b.verified_at)
            ),
            true,
        ),
        (None, true) => (
            "バックアップが確認できません。証明書を秘密キー付きで .pfx にエクスポートし、onshi-agent verify-backup で確認してください".into(),
            true,
        ),
        (None, false) => ("—".into(), false),
    };
    page.accounts = s
        .accounts
        .accounts
        .iter()
        .map(|a| {
            let mut state = Vec::new();
            if !a.exists {
                state.push("存在しません");
            }
            if a.enabled == Some(false) {
                state.push("無効");
            }
            if a.locked == Some(true) {
                state.push("ロックアウト");
            }
            let bad = !state.is_empty() && a.role.is_protected();
            AccountRow {
                role: a.role.label_ja(),
                protected: a.role.is_protected(),
                name: a.name.clone(),
                state: if state.is_empty() {
                    "有効".into()
                } else {
                    state.join("・")
                },
                bad,
                password_expires: opt_time_ja(a.password_expires),
                last_change: a
                    .last_change
                    .as_ref()
                    .map(|c| {
                        format!(
                            "{} {}{}",
                            time_ja(c.at),
                            crate::wording::account_change_ja(&c.what),
                            c.by.as_ref().map(|b| format!(" ({b})")).unwrap_or_default()
                        )
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    page.adapters = s
        .network
        .adapters
        .iter()
        .map(|a| AdapterRow {
            name: a.name.clone(),
            mac: a.mac.clone().unwrap_or_default(),
            up: a.up,
            addresses: a.addresses.join(", "),
            gateways: a.gateways.join(", "),
            dns: a.dns.join(", "),
        })
        .collect();
    page.gateway = format!(
        "{}{}",
        s.network.default_gateway.as_deref().unwrap_or("—"),
        s.network
            .gateway_mac
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    page.probes = s
        .network
        .probes
        .iter()
        .map(|p| ProbeRow {
            target: p.target.clone(),
            reachable: p.reachable,
            latency: p.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default(),
            error: p.error.as_deref().map(probe_error_ja).unwrap_or_default(),
        })
        .collect();
    page.apps = s
        .apps
        .installed
        .iter()
        .map(|a| {
            let want = expected.get(&a.name);
            AppRow {
                name: a.name.clone(),
                version: a.version.clone().unwrap_or_else(|| "—".into()),
                expected: want.cloned().unwrap_or_default(),
                behind: matches!((&a.version, want), (Some(v), Some(w)) if compare_versions(v, w).is_lt()),
            }
        })
        .collect();
    page.missing_apps = s.apps.missing.clone();
    page.pending_reboot = s
        .apps
        .pending_reboot
        .as_ref()
        .map(|p| {
            p.sources()
                .into_iter()
                .map(|m| RebootReason {
                    label: m.source.label_ja(),
                    since: opt_time_ja(m.since.or(p.since)),
                    counts: m.source != RebootSource::FileRename || file_rename_counts,
                })
                .collect()
        })
        .unwrap_or_default();
    // Each failure sits with its area: "could not be read (why)".
    for n in &s.notes {
        let line = format!(
            "{}を読み取れませんでした ({})",
            source_area_ja(&n.area),
            source_reason_ja(&n.detail)
        );
        let area = n.area.as_str();
        let slot = if area.starts_with("cert") || area.starts_with("backup") {
            &mut page.cert_notes
        } else if area.starts_with("account") {
            &mut page.account_notes
        } else if area.starts_with("network") || area.starts_with("probe") {
            &mut page.network_notes
        } else if area.starts_with("app") {
            &mut page.app_notes
        } else {
            &mut page.notes
        };
        slot.push(line);
    }
    page.spool_losses = match (s.spool.dropped, s.spool.corrupt) {
        (0, 0) => String::new(),
        (d, 0) => format!("エージェントが送れずに捨てた記録: {d} 件 (保存の上限や受付拒否)"),
        (d, c) => format!(
            "エージェントが送れずに捨てた記録: {} 件 (うち端末のディスク上で壊れていたもの {c} 件)",
            d.max(c)
        ),
    };
}

#[derive(Debug, Deserialize)]
pub struct AccountsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    windows: String,
    #[serde(default)]
    face_auth: String,
    #[serde(default)]
    linkage: String,
}

/// `POST /terminals/{id}/accounts`: staff confirm the protected account names.
pub async fn confirm_accounts(
    State(state): State<AppState>,
    Admin(staff): Admin,
    Path(id): Path<Uuid>,
    Form(form): Form<AccountsForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let given: Vec<AccountSpec> = [
        (AccountRole::Windows, &form.windows),
        (AccountRole::FaceAuth, &form.face_auth),
        (AccountRole::Linkage, &form.linkage),
    ]
    .into_iter()
    .filter(|(_, name)| !name.trim().is_empty())
    .map(|(role, name)| AccountSpec {
        role,
        name: name.clone(),
    })
    .collect();
    let done = state
        .desk
        .confirm_accounts(&staff.actor(), id, &given, Utc::now())
        .await;
    finish(&staff, done, &format!("/terminals/{id}#accounts"))
}

fn not_found() -> Response {
    super::message_page(
        StatusCode::NOT_FOUND,
        "この端末は見つかりません。",
        "/",
        "端末一覧へ",
    )
}
