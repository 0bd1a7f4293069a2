//! The fleet overview: counts per severity, handling, liveness and rule, then one page of
//! terminals, filtered and sorted through `overview_line`'s indexes.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Html;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::format::{Nav, query_string};
use super::session::{AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::domain::{
    FleetTally, Handling, HandlingKind, Liveness, OutboxCounts, OverviewLine, Reach, RuleKey,
    SeverityFilter, actor_label_ja,
};
use crate::jst::{duration_ja, opt_time_ja, time_ja};
use crate::store::desk::{FleetQuery, FleetRead, FleetRow, FleetSort};

pub const PAGE_SIZE: i64 = 50;

/// One count chip of the overview: what it filters by and how many.
pub struct CountChip {
    pub param: &'static str,
    pub key: &'static str,
    pub label: &'static str,
    pub count: i64,
}

pub struct RuleCount {
    pub rule: &'static str,
    pub title: &'static str,
    pub count: i64,
}

/// A terminal's three badges, as every page shows them side by side: the worst open finding,
/// how staff handle it (with who and why), whether it reports.
pub struct Status {
    pub severity: &'static str,
    pub severity_label: &'static str,
    pub handling: &'static str,
    pub handling_label: String,
    pub handling_title: String,
    pub liveness: &'static str,
    pub liveness_label: &'static str,
}

impl Status {
    /// The badges of a line (`None`: not evaluated yet).
    pub fn of(line: Option<&OverviewLine>) -> Status {
        let Some(l) = line else {
            return Status {
                severity: "none",
                severity_label: "未評価",
                handling: "none",
                handling_label: String::new(),
                handling_title: String::new(),
                liveness: "",
                liveness_label: "",
            };
        };
        let severity = SeverityFilter::of(l.severity);
        let (handling_label, handling_title) = handling_ja(&l.handling);
        Status {
            severity: severity.as_str(),
            severity_label: severity.label_ja(),
            handling: l.handling.kind().as_str(),
            handling_label,
            handling_title,
            liveness: l.liveness.as_str(),
            liveness_label: l.liveness.label_ja(),
        }
    }
}

/// An open problem of a terminal, as its row names it: a short label, the rule's title.
pub struct Problem {
    pub rule: &'static str,
    pub label: &'static str,
    pub title: &'static str,
}

impl Problem {
    /// The open problems of a line, in the rules' order (most serious kinds first).
    pub fn of(line: &OverviewLine) -> Vec<Problem> {
        line.open_rules()
            .map(|r| Problem {
                rule: r.as_str(),
                label: r.short_ja(),
                title: r.title_ja(),
            })
            .collect()
    }
}

pub struct OverviewRow {
    pub id: String,
    pub status: Status,
    pub problems: Vec<Problem>,
    pub clinic: String,
    pub clinic_id: i64,
    /// `tel:` link and the number as shown (empty: none on record).
    pub clinic_phone: String,
    pub clinic_tel: String,
    pub hostname: String,
    pub last_seen: String,
    pub last_start: String,
    pub since_start: String,
    pub restart_overdue: bool,
    pub apps_behind: i64,
    pub cert_days: String,
    pub cert_urgent: bool,
    pub backup: &'static str,
    pub backup_bad: bool,
    pub open_alerts: i64,
    /// A warning nobody took for `[alerts] neglected_warning_days`.
    pub neglected: bool,
}

/// A `tel:` link for a phone number as people write it (`03-1234-5678`, `０３（１２３４）５６７８`);
/// empty when it holds no digits.
pub fn tel_link(phone: &str) -> String {
    let digits: String = phone
        .chars()
        .filter_map(|c| match c {
            '0'..='9' | '+' => Some(c),
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
            _ => None,
        })
        .collect();
    if digits.chars().filter(char::is_ascii_digit).count() < 3 {
        String::new()
    } else {
        format!("tel:{digits}")
    }
}

/// How staff handle a line, as the overview shows it beside the severity: a short label and
/// the full story for its title.
pub fn handling_ja(h: &Handling) -> (String, String) {
    match h {
        Handling::None => (String::new(), String::new()),
        Handling::Unhandled => ("未対応".into(), "まだ誰も対応していません".into()),
        Handling::InProgress { by, until } => {
            let who = actor_label_ja(by);
            let title = match until {
                Some(u) => format!("{who} が対応中 ({} まで)", time_ja(*u)),
                None => format!("{who} が対応中"),
            };
            ("対応中".into(), title)
        }
        Handling::Silenced { by, until, reason } => (
            "抑止中".into(),
            format!(
                "{} が通知を停止: {reason} ({} まで)",
                actor_label_ja(by),
                time_ja(*until)
            ),
        ),
    }
}

impl OverviewRow {
    fn new(r: FleetRow, now: DateTime<Utc>) -> Self {
        let status = Status::of(Some(&r.line));
        let s = r.line;
        let cert_days = s.cert_not_after.map(|n| (n - now).num_days());
        // As the rule decided it, with the clinic's own threshold.
        let restart_overdue = s.open_rules().any(|r| r == RuleKey::NoDailyRestart);
        let problems = Problem::of(&s);
        let phone = r.clinic_phone.unwrap_or_default();
        OverviewRow {
            id: s.terminal_id.to_string(),
            status,
            problems,
            clinic_tel: tel_link(&phone),
            clinic_phone: phone,
            clinic: s.clinic_name,
            clinic_id: s.clinic_id,
            hostname: s.hostname,
            last_seen: r.last_seen.map_or_else(|| "未受信".into(), time_ja),
            last_start: opt_time_ja(s.last_start),
            since_start: s
                .last_start
                .map_or_else(String::new, |t| duration_ja(now - t)),
            restart_overdue,
            apps_behind: s.apps_behind,
            cert_days: cert_days.map_or_else(|| "証明書なし".into(), |d| d.to_string()),
            cert_urgent: cert_days.is_none_or(|d| d <= 30),
            backup: s.backup.label_ja(),
            backup_bad: s.backup.is_bad(),
            open_alerts: s.open_alerts,
            neglected: s.neglected,
        }
    }
}

/// The overview's query string, as typed into the filter form or followed from a link.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct OverviewQuery {
    #[serde(default)]
    pub q: String,
    /// `critical`, `warning`, `info` or `ok`.
    #[serde(default)]
    pub severity: String,
    /// `unhandled`, `in_progress` or `silenced`.
    #[serde(default)]
    pub handling: String,
    /// `receiving`, `outside_hours` or `offline`.
    #[serde(default)]
    pub liveness: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub prefecture: String,
    #[serde(default)]
    pub clinic: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub desc: String,
    pub page: Option<i64>,
}

impl OverviewQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("q", self.q.trim().to_string()),
            ("severity", self.severity.clone()),
            ("handling", self.handling.clone()),
            ("liveness", self.liveness.clone()),
            ("rule", self.rule.clone()),
            ("prefecture", self.prefecture.clone()),
            ("clinic", self.clinic.clone()),
            ("sort", self.sort.clone()),
            ("desc", self.desc.clone()),
        ]
    }

    fn with(&self, key: &str, value: &str) -> String {
        let mut pairs = self.pairs();
        for p in &mut pairs {
            if p.0 == key {
                p.1 = value.to_string();
            }
        }
        format!("/{}", query_string(&pairs))
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub nav: Nav,
    pub total_terminals: i64,
    pub critical_unhandled: i64,
    pub severities: Vec<CountChip>,
    pub handlings: Vec<CountChip>,
    pub livenesses: Vec<CountChip>,
    pub rules: Vec<RuleCount>,
    pub outbox: OutboxCounts,
    pub rows: Vec<OverviewRow>,
    pub matching: i64,
    pub page: i64,
    pub pages: i64,
    pub query: OverviewQuery,
    pub prefectures: Vec<String>,
    pub clinic_name: Option<String>,
    pub all_severities: Vec<(&'static str, &'static str)>,
    pub all_handlings: Vec<(&'static str, &'static str)>,
    pub all_livenesses: Vec<(&'static str, &'static str)>,
    pub all_rules: Vec<(&'static str, &'static str)>,
}

impl OverviewPage {
    /// A count chip's link: filters by it, or clears the filter when it is already set.
    pub fn link_chip(&self, chip: &CountChip) -> String {
        let current = match chip.param {
            "severity" => &self.query.severity,
            "handling" => &self.query.handling,
            _ => &self.query.liveness,
        };
        let value = if current == chip.key { "" } else { chip.key };
        self.query.with(chip.param, value)
    }

    pub fn chip_selected(&self, chip: &CountChip) -> bool {
        match chip.param {
            "severity" => self.query.severity == chip.key,
            "handling" => self.query.handling == chip.key,
            _ => self.query.liveness == chip.key,
        }
    }

    /// 未対応の緊急: critical and nobody has taken it.
    pub fn link_critical_unhandled(&self) -> String {
        let mut q = self.query.clone();
        q.severity = "critical".into();
        q.handling = "unhandled".into();
        format!("/{}", query_string(&q.pairs()))
    }

    pub fn link_rule(&self, rule: &str) -> String {
        self.query.with("rule", rule)
    }

    pub fn link_clinic(&self, clinic: &i64) -> String {
        self.query.with("clinic", &clinic.to_string())
    }

    pub fn clear_clinic(&self) -> String {
        self.query.with("clinic", "")
    }

    /// A column header's link: sorts by the column, or reverses it when it is already the sort.
    pub fn link_sort(&self, sort: &str) -> String {
        let mut q = self.query.clone();
        let current = if q.sort.is_empty() { "state" } else { &q.sort };
        q.desc = if current == sort && q.desc.is_empty() {
            "1".into()
        } else {
            String::new()
        };
        q.sort = sort.to_string();
        format!("/{}", query_string(&q.pairs()))
    }

    pub fn sort_mark(&self, sort: &str) -> &'static str {
        let current = if self.query.sort.is_empty() {
            "state"
        } else {
            &self.query.sort
        };
        match (current == sort, self.query.desc.is_empty()) {
            (false, _) => "",
            (true, true) => " ▲",
            (true, false) => " ▼",
        }
    }

    /// The CSV export of every terminal these filters match.
    pub fn link_csv(&self) -> String {
        format!("/export/terminals.csv{}", query_string(&self.query.pairs()))
    }

    pub fn link_page(&self, page: i64) -> String {
        let mut pairs = self.query.pairs();
        pairs.push(("page", page.to_string()));
        format!("/{}", query_string(&pairs))
    }
}

pub(super) fn fleet_query(q: &OverviewQuery, page: i64, reach: &Reach) -> FleetQuery {
    FleetQuery {
        clinic_id: q.clinic.parse().ok(),
        prefecture: Some(q.prefecture.trim().to_string()).filter(|p| !p.is_empty()),
        severity: SeverityFilter::parse(&q.severity),
        handling: HandlingKind::parse(&q.handling),
        liveness: Liveness::parse(&q.liveness),
        rule: RuleKey::parse(&q.rule),
        search: Some(q.q.trim().to_string()).filter(|s| !s.is_empty()),
        sort: FleetSort::parse(&q.sort).unwrap_or_default(),
        descending: !q.desc.is_empty(),
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
        read: FleetRead::Sorted,
        reach: reach.clone(),
    }
}

/// The overview's counts, for the reader's scope: the evaluator's running tally, or (when this
/// process runs no evaluator) the store's.
async fn counts(state: &AppState, reach: &Reach) -> Result<FleetTally, crate::Error> {
    match state.tally(reach) {
        Some(t) => Ok(t),
        None => Ok(state.store.fleet().overview_counts(reach).await?),
    }
}

/// The rules with unresolved alerts, most terminals first.
fn rule_counts(t: &FleetTally) -> Vec<(RuleKey, i64)> {
    let mut rules: Vec<(RuleKey, i64)> = RuleKey::ALL
        .into_iter()
        .map(|r| (r, t.rule(r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    rules.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rules
}

/// How many lines match: the tally answers a single filter of its own; anything narrower
/// asks the store.
async fn matching(state: &AppState, t: &FleetTally, f: &FleetQuery) -> Result<i64, crate::Error> {
    // (A scoped reader's tally is their scope's own, so it answers for them as well.)
    let narrowed = f.clinic_id.is_some() || f.prefecture.is_some() || f.search.is_some();
    let filters = [
        f.severity.is_some(),
        f.handling.is_some(),
        f.liveness.is_some(),
        f.rule.is_some(),
    ]
    .iter()
    .filter(|on| **on)
    .count();
    if narrowed || filters > 1 {
        return Ok(state.store.fleet().fleet_count(f).await?);
    }
    Ok(if let Some(s) = f.severity {
        t.severities[s.rank() as usize]
    } else if let Some(h) = f.handling {
        t.handling(h)
    } else if let Some(l) = f.liveness {
        t.liveness(l)
    } else if let Some(r) = f.rule {
        t.rule(r)
    } else {
        t.total()
    })
}

/// `GET /`
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<OverviewQuery>,
) -> Result<Html<String>, PageFailure> {
    let now = Utc::now();
    let desk = state.store.fleet();
    let tally = counts(&state, &staff.reach).await?;
    let chip = |param, key, label, count| CountChip {
        param,
        key,
        label,
        count,
    };
    let severities = SeverityFilter::ALL
        .into_iter()
        .map(|s| {
            chip(
                "severity",
                s.as_str(),
                s.label_ja(),
                tally.severities[s.rank() as usize],
            )
        })
        .collect();
    let handlings = HandlingKind::OF_ALERTS
        .into_iter()
        .map(|h| chip("handling", h.as_str(), h.label_ja(), tally.handling(h)))
        .collect();
    let livenesses = Liveness::ALL
        .into_iter()
        .map(|l| chip("liveness", l.as_str(), l.label_ja(), tally.liveness(l)))
        .collect();
    let asked = query.page.unwrap_or(1).max(1);
    let matching = matching(&state, &tally, &fleet_query(&query, 1, &staff.reach)).await?;
    // A page past the end (an old link) shows the last page, not an empty table.
    let page = asked.min(((matching + PAGE_SIZE - 1) / PAGE_SIZE).max(1));
    let mut fleet = fleet_query(&query, page, &staff.reach);
    // The plan weighs the lines it passes in the whole fleet's order.
    let fleet_total = match &staff.reach {
        Reach::All => tally.total(),
        Reach::Clinics(_) => state
            .tally(&Reach::All)
            .map_or(tally.total(), |t| t.total()),
    };
    fleet.read = fleet.plan(matching, fleet_total);
    let rows = desk.fleet_rows(&fleet).await?;
    let rules = rule_counts(&tally)
        .into_iter()
        .map(|(rule, count)| RuleCount {
            title: rule.title_ja(),
            rule: rule.as_str(),
            count,
        })
        .collect();
    let pages = ((matching + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let clinic_name = match query.clinic.parse::<i64>() {
        Ok(id) if staff.reaches(id) => desk.clinic_detail(id).await?.map(|c| c.settings.name),
        Ok(_) => None,
        Err(_) => None,
    };
    let html = OverviewPage {
        nav: Nav::new(&staff, "overview"),
        total_terminals: tally.total(),
        critical_unhandled: tally.critical_unhandled,
        severities,
        handlings,
        livenesses,
        rules,
        outbox: state.store.outbox().outbox_counts(&staff.reach).await?,
        rows: rows.into_iter().map(|r| OverviewRow::new(r, now)).collect(),
        matching,
        page: page.min(pages),
        pages,
        prefectures: desk.prefectures(&staff.reach).await?,
        clinic_name,
        all_severities: SeverityFilter::ALL
            .iter()
            .map(|k| (k.as_str(), k.label_ja()))
            .collect(),
        all_handlings: HandlingKind::OF_ALERTS
            .iter()
            .map(|k| (k.as_str(), k.label_ja()))
            .collect(),
        all_livenesses: Liveness::ALL
            .iter()
            .map(|k| (k.as_str(), k.label_ja()))
            .collect(),
        all_rules: RuleKey::ALL
            .iter()
            .map(|r| (r.as_str(), r.title_ja()))
            .collect(),
        query,
    }
    .render()?;
    Ok(Html(html))
}

#[derive(serde::Serialize)]
pub struct Summary {
    pub total: i64,
    pub severities: Vec<(&'static str, i64)>,
    pub handling: Vec<(&'static str, i64)>,
    pub liveness: Vec<(&'static str, i64)>,
    pub critical_unhandled: i64,
    pub rules: Vec<(&'static str, i64)>,
}

/// `GET /api/desk/summary`: the overview's counts as JSON (401 without a session).
pub async fn summary_json(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Summary>, AuthFailure> {
    let t = counts(&state, &staff.reach).await?;
    Ok(Json(Summary {
        total: t.total(),
        severities: SeverityFilter::ALL
            .into_iter()
            .map(|s| (s.as_str(), t.severities[s.rank() as usize]))
            .collect(),
        handling: HandlingKind::ALL
            .into_iter()
            .map(|h| (h.as_str(), t.handling(h)))
            .collect(),
        liveness: Liveness::ALL
            .into_iter()
            .map(|l| (l.as_str(), t.liveness(l)))
            .collect(),
        critical_unhandled: t.critical_unhandled,
        rules: rule_counts(&t)
            .into_iter()
            .map(|(r, n)| (r.as_str(), n))
            .collect(),
    }))
}
