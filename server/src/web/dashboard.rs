//! The support desk's pages, server-rendered with askama. Japanese first; times in JST.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::Deserialize;

use super::{AppState, PageFailure};
use crate::store::alerts::{AlertCounts, OutboxCounts};
use crate::store::{FleetCounts, TerminalRow};

const PAGE_SIZE: i64 = 100;

/// Japan has one time zone and no daylight saving time.
fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

/// "3日 4時間", "5時間 12分", "8分".
pub fn duration_ja(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    if days > 0 {
        format!("{days}日 {hours}時間")
    } else if hours > 0 {
        format!("{hours}時間 {mins}分")
    } else {
        format!("{mins}分")
    }
}

pub fn time_ja(t: DateTime<Utc>) -> String {
    t.with_timezone(&jst()).format("%Y-%m-%d %H:%M").to_string()
}

pub struct OverviewRow {
    pub clinic: String,
    pub hostname: String,
    pub last_seen: String,
    pub offline: bool,
    pub since_start: String,
    pub restart_overdue: bool,
    pub cert_days: String,
    pub cert_urgent: bool,
    pub problems: i64,
}

impl OverviewRow {
    fn new(t: TerminalRow, now: DateTime<Utc>, offline_before: DateTime<Utc>) -> Self {
        let offline = t.last_seen.is_none_or(|s| s < offline_before);
        let cert_days = t.cert_not_after.map(|n| (n - now).num_days());
        OverviewRow {
            clinic: t.clinic_name,
            hostname: t.hostname,
            last_seen: t.last_seen.map_or_else(|| "未受信".into(), time_ja),
            offline,
            since_start: t
                .last_start
                .map_or_else(|| "—".into(), |s| duration_ja(now - s)),
            restart_overdue: t.last_start.is_some_and(|s| now - s > Duration::hours(26)),
            cert_days: cert_days.map_or_else(|| "証明書なし".into(), |d| d.to_string()),
            cert_urgent: cert_days.is_none_or(|d| d <= 30),
            problems: t.problems + i64::from(offline),
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub counts: FleetCounts,
    pub alerts: AlertCounts,
    pub outbox: OutboxCounts,
    pub rows: Vec<OverviewRow>,
    pub page: i64,
    pub pages: i64,
    pub prev_page: Option<i64>,
    pub next_page: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

/// `GET /`: every terminal with its clinic, last report, time since start, certificate days
/// left and open problems; the ones with problems first.
pub async fn overview(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Html<String>, PageFailure> {
    let now = Utc::now();
    let interval = i64::from(state.config.policy.interval_secs);
    let missed = i64::from(state.config.offline_after_intervals);
    let offline_before = now - Duration::seconds(interval * missed);
    let counts = state.store.fleet_counts(offline_before).await?;
    let pages = ((counts.terminals + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let rows = state
        .store
        .fleet_page((page - 1) * PAGE_SIZE, PAGE_SIZE)
        .await?
        .into_iter()
        .map(|t| OverviewRow::new(t, now, offline_before))
        .collect();
    let alerts = state.store.alerts().alert_counts().await?;
    let outbox = state.store.alerts().outbox_counts().await?;
    let html = OverviewPage {
        counts,
        alerts,
        outbox,
        rows,
        page,
        pages,
        prev_page: (page > 1).then_some(page - 1),
        next_page: (page < pages).then_some(page + 1),
    }
    .render()?;
    Ok(Html(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ja(Duration::minutes(8)), "8分");
        assert_eq!(duration_ja(Duration::minutes(5 * 60 + 12)), "5時間 12分");
        assert_eq!(duration_ja(Duration::hours(76)), "3日 4時間");
    }

    #[test]
    fn times_show_in_jst() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T15:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time_ja(t), "2026-11-26 00:30");
    }
}
