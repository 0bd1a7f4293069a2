//! The support desk's side of the store: staff accounts and sessions, the fleet overview, the
//! terminal page, the alerts page, clinics with their contacts and codes, the outbox and the
//! audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{
    Alert, ClinicDetail, Contact, FleetTally, HandlingKind, Liveness, OverviewLine, Reach, RuleKey,
    Severity, SeverityFilter, Silence,
};
use futures_util::stream::BoxStream;

/// A session to store: only the hash of its id is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id_hash: String,
    pub user_id: i64,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The client's address, for the desk's own records.
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FleetSort {
    /// Worst open finding first, then most open alerts.
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
    pub severity: Option<SeverityFilter>,
    pub handling: Option<HandlingKind>,
    pub liveness: Option<Liveness>,
    pub rule: Option<RuleKey>,
    /// Prefix of the hostname, the clinic name or the medical institution code.
    pub search: Option<String>,
    pub sort: FleetSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
    /// How the page is read (see [`FleetQuery::plan`]).
    pub read: FleetRead,
    /// The clinics the reader may see.
    pub reach: Reach,
}

/// How a page of the overview is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FleetRead {
    /// Every match found through the filter's index, then sorted (narrow filters).
    #[default]
    Sorted,
    /// Off the sort order's index from the start, the filters checked line by line.
    InOrder,
    /// Off the sort order's index from the end (a page near the last one), the `matching`
    /// lines counted for the page.
    Reversed { matching: i64 },
}

impl FleetQuery {
    /// The cheapest way to read a filtered page, by the lines each way passes: reading in
    /// order passes about (offset + limit) × total / matching lines before the page is full,
    /// reading from the end (matching − offset) × total / matching, sorting every match. A
    /// prefecture's 50,000 terminals of 250,000 by certificate expiry: page 1 reads 250 lines
    /// in order instead of sorting 50,000, page 900 reads 25,250 from the end; one clinic's
    /// 25 terminals are sorted. A rule alone is checked on the terminal id, which every
    /// sort's index holds, so its lines are never sorted (a whole index read, 60 ms at
    /// 250,000, beats looking up and sorting the rule's 25,000 lines, 105 ms). A reader's
    /// scope is a filter like the others; `total` is the whole fleet's.
    pub fn plan(&self, matching: i64, total: i64) -> FleetRead {
        let others = !self.reach.is_all()
            || self.clinic_id.is_some()
            || self.prefecture.is_some()
            || self.severity.is_some()
            || self.handling.is_some()
            || self.liveness.is_some()
            || self.search.is_some();
        if matching <= 0 || self.offset >= matching || !(others || self.rule.is_some()) {
            return FleetRead::Sorted;
        }
        let forward = (self.offset + self.limit).saturating_mul(total) / matching;
        let backward = (matching - self.offset).saturating_mul(total) / matching;
        let sorted = if others { matching } else { i64::MAX };
        if forward <= backward && forward <= sorted {
            FleetRead::InOrder
        } else if backward <= sorted {
            FleetRead::Reversed { matching }
        } else {
            FleetRead::Sorted
        }
    }
}

/// An overview line: the summary plus the live columns.
#[derive(Debug, Clone)]
pub struct FleetRow {
    pub line: OverviewLine,
    pub last_seen: Option<DateTime<Utc>>,
    pub clinic_code: Option<String>,
    /// The clinic's own telephone number.
    pub clinic_phone: Option<String>,
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
    pub line: Option<OverviewLine>,
}

/// A terminal's account baseline and who confirmed its names, for the terminal page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalBaseline {
    pub taken_at: Option<DateTime<Utc>>,
    pub missing: Vec<onshi_shared::AccountRole>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_by: Option<String>,
}

/// An alert with the names the desk reads it by.
#[derive(Debug, Clone)]
pub struct AlertView {
    pub alert: Alert,
    pub hostname: String,
    pub clinic_name: String,
    pub clinic_phone: Option<String>,
    /// Which channels cover the alert (their `prefectures`).
    pub clinic_prefecture: Option<String>,
    pub last_note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertGroup {
    Rule,
    Clinic,
}

/// A place in the alerts' order (most severe first, then newest, then by id): a page starts
/// after it (keyset paging, no offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertCursor {
    pub severity: Severity,
    pub opened_at: DateTime<Utc>,
    pub id: i64,
}

impl AlertCursor {
    pub fn of(a: &Alert) -> AlertCursor {
        AlertCursor {
            severity: a.severity,
            opened_at: a.opened_at,
            id: a.id,
        }
    }

    /// `critical.1764000000000.42`, for a link.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}",
            self.severity.as_str(),
            self.opened_at.timestamp_millis(),
            self.id
        )
    }

    pub fn decode(s: &str) -> Option<AlertCursor> {
        let mut parts = s.split('.');
        let severity = Severity::parse(parts.next()?)?;
        let opened_at = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        let id = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(AlertCursor {
            severity,
            opened_at,
            id,
        })
    }
}

/// Counts of filtered alerts stop one past this: a bulk action takes at most as many, and
/// counting every one of 275,000 alerts through a filter would cost more than the page.
pub const ALERT_COUNT_CAP: i64 = 50_000;

/// The alerts page's filters (and the terminal page's list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    pub rule: Option<RuleKey>,
    pub clinic_id: Option<i64>,
    pub terminal_id: Option<Uuid>,
    pub prefecture: Option<String>,
    pub severity: Option<Severity>,
    /// 未対応 (open, the terminal not silenced), 対応中 (acknowledged), 抑止中 (the terminal
    /// is silenced).
    pub handling: Option<HandlingKind>,
    /// Opened at or before this (the age filter).
    pub opened_before: Option<DateTime<Utc>>,
    /// Resolved ones too (the terminal page shows its recent history).
    pub include_resolved: bool,
    /// Whether to count the matches, up to [`ALERT_COUNT_CAP`] + 1 (else the total comes back
    /// as -1).
    pub count: bool,
    /// The page starts after this alert.
    pub after: Option<AlertCursor>,
    pub limit: i64,
    /// The clinics the reader may see.
    pub reach: Reach,
}

impl Default for AlertQuery {
    fn default() -> Self {
        AlertQuery {
            rule: None,
            clinic_id: None,
            terminal_id: None,
            prefecture: None,
            severity: None,
            handling: None,
            opened_before: None,
            include_resolved: false,
            count: false,
            after: None,
            limit: 100,
            reach: Reach::All,
        }
    }
}

/// The audit page's filters; a page starts before the line `before` (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// The stored actor (`staff:<name>`, `cli:<user>`, `agent`, …).
    pub actor: Option<String>,
    pub clinic_id: Option<i64>,
    pub terminal_id: Option<Uuid>,
    pub alert_id: Option<i64>,
    pub action: Option<String>,
    pub before: Option<i64>,
    pub limit: i64,
    /// The clinics the reader may see: lines about other clinics, and lines about no clinic
    /// (logins, users, fleet-wide settings), are left out of a limited reach.
    pub reach: Reach,
}

/// The outbox page's filters; a page starts before the mail `before` (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxQuery {
    pub clinic_id: Option<i64>,
    pub status: Option<crate::domain::OutboxStatus>,
    /// Part of the recipient, the subject or the clinic's name.
    pub search: Option<String>,
    pub before: Option<i64>,
    pub limit: i64,
    /// The clinics the reader may see: mail to other clinics, and mail to no clinic, are left
    /// out of a limited reach.
    pub reach: Reach,
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
pub struct CodeRow {
    pub code_hash: String,
    /// What staff called it (who it was read out to).
    pub label: String,
    /// The code's last four characters (the code itself is shown once).
    pub last_chars: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait FleetView: Send + Sync {
    /// Every stored overview line, to warm the evaluator at start-up.
    async fn overview_lines(&self) -> StoreResult<Vec<OverviewLine>>;
    async fn write_overview_lines(
        &self,
        rows: &[OverviewLine],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Terminals per severity, handling and liveness, and with an unresolved alert per rule
    /// (what the evaluator's tally holds, for a process that runs none).
    async fn overview_counts(&self, reach: &Reach) -> StoreResult<FleetTally>;
    /// How many terminals match the filters (limit and offset ignored).
    async fn fleet_count(&self, q: &FleetQuery) -> StoreResult<i64>;
    /// One page of the overview.
    async fn fleet_rows(&self, q: &FleetQuery) -> StoreResult<Vec<FleetRow>>;
    async fn prefectures(&self, reach: &Reach) -> StoreResult<Vec<String>>;

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
    /// The ids of every unresolved alert the filters match ("select all matching"), at most
    /// `limit`.
    async fn alert_ids(&self, q: &AlertQuery, limit: i64) -> StoreResult<Vec<i64>>;
    async fn response_times(
        &self,
        group: AlertGroup,
        since: DateTime<Utc>,
        reach: &Reach,
    ) -> StoreResult<Vec<ResponseTimes>>;

    async fn clinic_list(
        &self,
        search: Option<&str>,
        offset: i64,
        limit: i64,
        reach: &Reach,
    ) -> StoreResult<(i64, Vec<ClinicListRow>)>;
    async fn clinic_detail(&self, id: i64) -> StoreResult<Option<ClinicDetail>>;
    /// The read API's terminals: the lines `q`'s filters (and reach) match, by terminal id
    /// after `after`, at most `q.limit` (`q`'s sort and offset are not used).
    async fn terminals_after(
        &self,
        q: &FleetQuery,
        after: Option<Uuid>,
    ) -> StoreResult<Vec<FleetRow>>;
    /// The read API's clinics: those the reach allows (in `prefecture`), by id after `after`,
    /// at most `limit`.
    async fn clinics_after(
        &self,
        reach: &Reach,
        prefecture: Option<&str>,
        after: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<ClinicListRow>>;
    async fn contacts(&self, clinic_id: i64) -> StoreResult<Vec<Contact>>;
    async fn enrollment_codes(&self, clinic_id: i64) -> StoreResult<Vec<CodeRow>>;
    /// The overview's rows for a CSV export: every match, read page by page in one read
    /// transaction (a consistent snapshot), so 250,000 rows need no more memory than a page.
    fn export_fleet(&self, q: FleetQuery) -> BoxStream<'static, StoreResult<FleetRow>>;
    /// The alerts page's rows for a CSV export, likewise.
    fn export_alerts(&self, q: AlertQuery) -> BoxStream<'static, StoreResult<AlertView>>;
    /// Silences not over at `now` (in force or to come), then those that ended since
    /// `ended_since`, newest first.
    async fn silences(
        &self,
        now: DateTime<Utc>,
        ended_since: DateTime<Utc>,
    ) -> StoreResult<Vec<Silence>>;
    /// The names the terminal is given of its own (by staff, over its clinic's).
    async fn terminal_accounts(&self, id: Uuid) -> StoreResult<Vec<onshi_shared::AccountSpec>>;
    /// Who set the clinic's own backup password and when, if it has one.
    async fn backup_password_set(
        &self,
        clinic_id: i64,
    ) -> StoreResult<Option<(String, DateTime<Utc>)>>;
    /// The terminal's account baseline and confirmation.
    async fn terminal_baseline(&self, id: Uuid) -> StoreResult<Option<TerminalBaseline>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_filters_read_off_the_sort_index_and_narrow_ones_sort() {
        let page = |offset, q: FleetQuery| FleetQuery {
            offset,
            limit: 50,
            ..q
        };
        let prefecture = FleetQuery {
            prefecture: Some("東京都".into()),
            ..FleetQuery::default()
        };
        let plan =
            |offset, q: &FleetQuery, matching| page(offset, q.clone()).plan(matching, 250_000);
        // A prefecture's 50,000 of 250,000: the first pages in order, the middle sorted, the
        // last ones from the end.
        assert_eq!(plan(0, &prefecture, 50_000), FleetRead::InOrder);
        assert_eq!(plan(9_950, &prefecture, 50_000), FleetRead::InOrder);
        assert_eq!(plan(24_950, &prefecture, 50_000), FleetRead::Sorted);
        assert_eq!(
            plan(44_950, &prefecture, 50_000),
            FleetRead::Reversed { matching: 50_000 }
        );
        // One clinic's 25 terminals: sorted.
        let clinic = FleetQuery {
            clinic_id: Some(42),
            ..FleetQuery::default()
        };
        assert_eq!(plan(0, &clinic, 25), FleetRead::Sorted);
        // A reader's scope is a filter too: a fifth of the fleet reads in order, a dealer's
        // 1,250 terminals are sorted.
        let scoped = |ids: Vec<i64>| FleetQuery {
            reach: Reach::clinics(ids),
            ..FleetQuery::default()
        };
        assert_eq!(plan(0, &scoped(vec![1, 2]), 50_000), FleetRead::InOrder);
        assert_eq!(plan(0, &scoped(vec![3]), 1_250), FleetRead::Sorted);
        // Nothing matches, past the end, or no filter at all (the sort's index serves it).
        assert_eq!(plan(0, &prefecture, 0), FleetRead::Sorted);
        assert_eq!(plan(60_000, &prefecture, 50_000), FleetRead::Sorted);
        assert_eq!(plan(0, &FleetQuery::default(), 250_000), FleetRead::Sorted);
        // A rule alone is never sorted; with a prefecture, by the count.
        let rule = FleetQuery {
            rule: Some(RuleKey::NoDailyRestart),
            ..FleetQuery::default()
        };
        assert_eq!(plan(4_950, &rule, 25_000), FleetRead::InOrder);
        assert_eq!(
            plan(14_950, &rule, 25_000),
            FleetRead::Reversed { matching: 25_000 }
        );
        let both = FleetQuery {
            prefecture: prefecture.prefecture.clone(),
            ..rule
        };
        assert_eq!(plan(2_450, &both, 5_000), FleetRead::Sorted);
    }
}
