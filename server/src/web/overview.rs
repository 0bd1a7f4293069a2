//! The fleet overview: counts per state and per rule, then one page of terminals, filtered and
//! sorted through `overview_line`'s indexes.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Html;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::format::{Nav, query_string};
use super::session::{AuthFailure, Staff};
use super::{AppState, PageFailure};
use crate::domain::{OutboxCounts, OverviewState, RuleKey};
use crate::jst::{duration_ja, opt_time_ja, time_ja};
use crate::rules;
use crate::store::desk::{FleetQuery, FleetRow, FleetSort};

pub const PAGE_SIZE: i64 = 50;

pub struct StateCount {
    pub key: &'static str,
    pub label: &'static str,
    pub count: i64,
}

pub struct RuleCount {
    pub rule: &'static str,
    pub title: &'static str,
    pub count: i64,
}

pub struct OverviewRow {
    pub id: String,
    pub state: &'static str,
    pub state_label: &'static str,
    pub clinic: String,
    pub clinic_id: i64,
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
}

impl OverviewRow {
    fn new(r: FleetRow, now: DateTime<Utc>) -> Self {
        let s = r.line;
        let cert_days = s.cert_not_after.map(|n| (n - now).num_days());
        OverviewRow {
            id: s.terminal_id.to_string(),
            state: s.state.as_str(),
            state_label: s.state.label_ja(),
            clinic: s.clinic_name,
            clinic_id: s.clinic_id,
            hostname: s.hostname,
            last_seen: r.last_seen.map_or_else(|| "未受信".into(), time_ja),
            last_start: opt_time_ja(s.last_start),
            since_start: s
                .last_start
                .map_or_else(String::new, |t| duration_ja(now - t)),
            restart_overdue: s
                .last_start
                .is_some_and(|t| now - t > rules::RESTART_WARNING),
            apps_behind: s.apps_behind,
            cert_days: cert_days.map_or_else(|| "証明書なし".into(), |d| d.to_string()),
            cert_urgent: cert_days.is_none_or(|d| d <= 30),
            backup: s.backup.label_ja(),
            backup_bad: s.backup.is_bad(),
            open_alerts: s.open_alerts,
        }
    }
}

/// The overview's query string, as typed into the filter form or followed from a link.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct OverviewQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub state: String,
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
            ("state", self.state.clone()),
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
    pub states: Vec<StateCount>,
    pub rules: Vec<RuleCount>,
    pub outbox: OutboxCounts,
    pub rows: Vec<OverviewRow>,
    pub matching: i64,
    pub page: i64,
    pub pages: i64,
    pub query: OverviewQuery,
    pub prefectures: Vec<String>,
    pub clinic_name: Option<String>,
    pub all_states: Vec<(&'static str, &'static str)>,
    pub all_rules: Vec<(&'static str, &'static str)>,
}

impl OverviewPage {
    pub fn link_state(&self, state: &str) -> String {
        self.query.with("state", state)
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

    pub fn link_page(&self, page: i64) -> String {
        let mut pairs = self.query.pairs();
        pairs.push(("page", page.to_string()));
        format!("/{}", query_string(&pairs))
    }
}

fn fleet_query(q: &OverviewQuery, page: i64) -> FleetQuery {
    FleetQuery {
        clinic_id: q.clinic.parse().ok(),
        prefecture: Some(q.prefecture.trim().to_string()).filter(|p| !p.is_empty()),
        state: OverviewState::parse(&q.state),
        rule: RuleKey::parse(&q.rule),
        search: Some(q.q.trim().to_string()).filter(|s| !s.is_empty()),
        sort: FleetSort::parse(&q.sort).unwrap_or_default(),
        descending: !q.desc.is_empty(),
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    }
}

/// Terminals per state and per rule: the evaluator's running counts, or (when this process
/// runs no evaluator) the store's.
async fn counts(
    state: &AppState,
) -> Result<(Vec<(OverviewState, i64)>, Vec<(RuleKey, i64)>), crate::Error> {
    let (states, mut rules) = match state.tally() {
        Some(t) => (
            OverviewState::ALL
                .into_iter()
                .map(|k| (k, t.state(k)))
                .collect(),
            RuleKey::ALL
                .into_iter()
                .map(|r| (r, t.rule(r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        ),
        None => {
            let desk = state.store.desk();
            (desk.state_counts().await?, desk.rule_counts().await?)
        }
    };
    rules.sort_by(|a: &(RuleKey, i64), b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok((states, rules))
}

/// `GET /`
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<OverviewQuery>,
) -> Result<Html<String>, PageFailure> {
    let now = Utc::now();
    let desk = state.store.desk();
    let (counts, rule_counts) = counts(&state).await?;
    let total_terminals = counts.iter().map(|(_, n)| n).sum();
    let states = OverviewState::ALL
        .into_iter()
        .map(|k| StateCount {
            key: k.as_str(),
            label: k.label_ja(),
            count: counts.iter().find(|(s, _)| *s == k).map_or(0, |(_, n)| *n),
        })
        .collect();
    let page = query.page.unwrap_or(1).max(1);
    let fleet = fleet_query(&query, page);
    // The counts answer the common filters without a count query.
    let narrowed =
        fleet.clinic_id.is_some() || fleet.prefecture.is_some() || fleet.search.is_some();
    let matching = match (&fleet.state, &fleet.rule) {
        (None, None) if !narrowed => total_terminals,
        (Some(k), None) if !narrowed => counts.iter().find(|(s, _)| s == k).map_or(0, |(_, n)| *n),
        (None, Some(r)) if !narrowed => rule_counts
            .iter()
            .find(|(rule, _)| rule == r)
            .map_or(0, |(_, n)| *n),
        _ => desk.fleet_count(&fleet).await?,
    };
    let rows = desk.fleet_rows(&fleet).await?;
    let rules = rule_counts
        .into_iter()
        .map(|(rule, count)| RuleCount {
            title: rule.title_ja(),
            rule: rule.as_str(),
            count,
        })
        .collect();
    let pages = ((matching + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let clinic_name = match query.clinic.parse::<i64>() {
        Ok(id) => desk.clinic_detail(id).await?.map(|c| c.settings.name),
        Err(_) => None,
    };
    let html = OverviewPage {
        nav: Nav::new(&staff, "overview"),
        total_terminals,
        states,
        rules,
        outbox: state.store.alerts().outbox_counts().await?,
        rows: rows.into_iter().map(|r| OverviewRow::new(r, now)).collect(),
        matching,
        page: page.min(pages),
        pages,
        prefectures: desk.prefectures().await?,
        clinic_name,
        all_states: OverviewState::ALL
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
    pub states: Vec<(&'static str, i64)>,
    pub rules: Vec<(&'static str, i64)>,
}

/// `GET /api/desk/summary`: the overview's counts as JSON (401 without a session).
pub async fn summary_json(
    State(state): State<AppState>,
    _staff: Staff,
) -> Result<Json<Summary>, AuthFailure> {
    let (states, rules) = counts(&state).await?;
    Ok(Json(Summary {
        states: states.into_iter().map(|(k, n)| (k.as_str(), n)).collect(),
        rules: rules.into_iter().map(|(r, n)| (r.as_str(), n)).collect(),
    }))
}
