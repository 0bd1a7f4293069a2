//! Background jobs: the rule evaluator (full passes on an interval, targeted passes right after
//! reports that changed state) and the daily digest. The mail sender lives in [`crate::notify`].
//!
//! A full pass loads terminal states in pages (one query for the states, one for their recent
//! events), evaluates them in memory and writes only the alert changes, in batches, each batch
//! in one transaction together with the mails it causes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use onshi_shared::AgentPolicy;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::Error;
use crate::alerts::{self, Context};
use crate::calendar::jst;
use crate::notify::Composer;
use crate::rules::{self, ClinicPolicy, ExpectedVersion, TerminalState};
use crate::store::Store;
use crate::store::alerts::{
    Alert, AlertChange, AlertStatus, ClinicSettings, NewMail, Silence, SnapshotCache,
    StateSelection,
};
use crate::store::desk::{BackupKind, TerminalStateKind, TerminalSummary};

/// Terminals whose reports changed something, collected by the ingest writer (a set insert and
/// a wake-up per batch: nothing slower on the hot path) and drained by the evaluator.
#[derive(Debug, Default)]
pub struct ChangeSignal {
    ids: Mutex<HashSet<Uuid>>,
    notify: Notify,
}

impl ChangeSignal {
    pub fn mark(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut any = false;
        if let Ok(mut set) = self.ids.lock() {
            for id in ids {
                set.insert(id);
                any = true;
            }
        }
        if any {
            self.notify.notify_one();
        }
    }

    pub fn take(&self) -> Vec<Uuid> {
        self.ids
            .lock()
            .map(|mut s| s.drain().collect())
            .unwrap_or_default()
    }

    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// Terminals per state and per rule, kept by the evaluator as it writes summaries, so the
/// overview's counts cost nothing per request. `ready` once the summaries are loaded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FleetTally {
    pub ready: bool,
    /// Indexed by [`TerminalStateKind::rank`].
    pub states: [i64; 5],
    /// Indexed like [`rules::key::ALL`].
    pub rules: [i64; rules::key::ALL.len()],
}

impl FleetTally {
    fn apply(&mut self, s: &TerminalSummary, sign: i64) {
        if let Some(n) = usize::try_from(s.state.rank())
            .ok()
            .and_then(|i| self.states.get_mut(i))
        {
            *n += sign;
        }
        for (i, n) in self.rules.iter_mut().enumerate() {
            if s.open_rules & (1 << i) != 0 {
                *n += sign;
            }
        }
    }

    pub fn state(&self, k: TerminalStateKind) -> i64 {
        usize::try_from(k.rank())
            .ok()
            .and_then(|i| self.states.get(i))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> i64 {
        self.states.iter().sum()
    }

    pub fn rule(&self, rule: &str) -> i64 {
        rules::key::ALL
            .iter()
            .position(|r| *r == rule)
            .map_or(0, |i| self.rules[i])
    }
}

pub type SharedTally = Arc<std::sync::RwLock<FleetTally>>;

/// The bit of `rule` in [`TerminalSummary::open_rules`].
pub fn rule_bit(rule: &str) -> u32 {
    rules::key::ALL
        .iter()
        .position(|r| *r == rule)
        .map_or(0, |i| 1 << i)
}

#[derive(Debug, Clone)]
pub struct EvaluatorSettings {
    /// Whether this process runs the evaluator and the digest (a benchmark may turn it off).
    pub enabled: bool,
    /// Seconds between full passes.
    pub interval: StdDuration,
    /// How long a condition must stay clear before its alert resolves by itself.
    pub hold_down: Duration,
    /// Local (JST) hour at which each clinic's daily digest is written.
    pub digest_hour: u32,
    pub page_size: i64,
    /// Alert changes per transaction.
    pub write_batch: usize,
    /// Pause after a targeted pass, so a stream of reports is evaluated in groups.
    pub debounce: StdDuration,
}

impl Default for EvaluatorSettings {
    fn default() -> Self {
        EvaluatorSettings {
            enabled: true,
            interval: StdDuration::from_secs(60),
            hold_down: Duration::minutes(15),
            digest_hour: 8,
            page_size: 2_000,
            write_batch: 500,
            debounce: StdDuration::from_millis(500),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    pub terminals: usize,
    pub findings: usize,
    pub changes: usize,
    pub mails: usize,
}

/// Terminals per query in a targeted pass (SQLite limits bound parameters per statement).
const TARGETED_CHUNK: usize = 500;

/// Days a terminal counts for the fleet's most common app version after its last report.
const FLEET_WINDOW: Duration = Duration::days(7);

pub struct Evaluator {
    store: Arc<dyn Store>,
    agent: Arc<AgentPolicy>,
    offline_after_intervals: u32,
    settings: EvaluatorSettings,
    composer: Arc<Composer>,
    clinics: HashMap<i64, (ClinicSettings, ClinicPolicy)>,
    expected: Arc<HashMap<String, ExpectedVersion>>,
    silences: Vec<Silence>,
    hostnames: HashMap<Uuid, String>,
    last_digest: Option<NaiveDate>,
    /// The overview line last written per terminal (`None` until loaded from the store), and
    /// the lines that changed and wait for the next write.
    summaries: Option<HashMap<Uuid, TerminalSummary>>,
    changed_summaries: Vec<TerminalSummary>,
    tally: SharedTally,
    snapshots: Arc<SnapshotCache>,
    /// The alerts findings are compared with, kept between passes (`None` until loaded, and
    /// again after a failed write).
    alerts: Option<AlertCache>,
}

/// Every tracked alert by terminal (see [`Alert::tracked`]), loaded once and then kept up to
/// date from the evaluator's own changes and from the history of what staff did.
struct AlertCache {
    by_terminal: HashMap<Uuid, Vec<(&'static str, Alert)>>,
    /// The newest history entry already applied.
    mark: i64,
}

impl AlertCache {
    /// Replaces what the cache holds for this alert's (terminal, rule).
    fn put(&mut self, alert: Alert) {
        let Some(rule) = rule_key(&alert.rule) else {
            return;
        };
        let terminal = alert.terminal_id;
        let list = self.by_terminal.entry(terminal).or_default();
        list.retain(|(r, _)| *r != rule);
        if alert.tracked() {
            list.push((rule, alert));
        }
        if list.is_empty() {
            self.by_terminal.remove(&terminal);
        }
    }
}

impl Evaluator {
    pub fn new(
        store: Arc<dyn Store>,
        agent: AgentPolicy,
        offline_after_intervals: u32,
        settings: EvaluatorSettings,
        composer: Arc<Composer>,
    ) -> Self {
        Evaluator {
            store,
            agent: Arc::new(agent),
            offline_after_intervals,
            settings,
            composer,
            clinics: HashMap::new(),
            expected: Arc::new(HashMap::new()),
            silences: Vec::new(),
            hostnames: HashMap::new(),
            last_digest: None,
            summaries: None,
            changed_summaries: Vec::new(),
            tally: SharedTally::default(),
            snapshots: Arc::default(),
            alerts: None,
        }
    }

    /// Shares the evaluator's counts with the dashboard.
    pub fn with_tally(mut self, tally: SharedTally) -> Self {
        self.tally = tally;
        self
    }

    fn update_tally(&self, f: impl FnOnce(&mut FleetTally)) {
        if let Ok(mut t) = self.tally.write() {
            f(&mut t);
        }
    }

    /// Takes the alert cache out for a pass, loading it or applying what staff changed since
    /// the last pass. The pass puts it back only when all its writes succeeded.
    async fn take_alerts(&mut self) -> Result<AlertCache, Error> {
        let a = self.store.alerts();
        // The mark first: a change made while loading is applied again next time (harmless),
        // never missed.
        let mark = a.history_mark().await?;
        match self.alerts.take() {
            None => Ok(AlertCache {
                by_terminal: by_rule(a.active_alerts(None).await?),
                mark,
            }),
            Some(mut cache) => {
                if mark > cache.mark {
                    for alert in a.alerts_changed_by_staff(cache.mark, mark).await? {
                        cache.put(alert);
                    }
                    cache.mark = mark;
                }
                Ok(cache)
            }
        }
    }

    async fn load_summaries(&mut self) -> Result<(), Error> {
        if self.summaries.is_none() {
            let stored = self.store.desk().summaries().await?;
            let mut tally = FleetTally {
                ready: true,
                ..FleetTally::default()
            };
            for s in &stored {
                tally.apply(s, 1);
            }
            self.update_tally(|t| *t = tally);
            self.summaries = Some(stored.into_iter().map(|s| (s.terminal_id, s)).collect());
        }
        Ok(())
    }

    async fn reload(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        let a = self.store.alerts();
        let mut clinics = HashMap::new();
        for c in a.clinic_settings().await? {
            let policy = ClinicPolicy {
                agent: self.agent.clone(),
                hours: c.hours.clone(),
                expected_versions: Arc::new(HashMap::new()),
                offline_after_intervals: self.offline_after_intervals,
            };
            clinics.insert(c.id, (c, policy));
        }
        self.clinics = clinics;
        let mut expected: HashMap<String, ExpectedVersion> = HashMap::new();
        let rows = a.expected_versions().await?;
        // Staff settings win over the fleet's most common version.
        for source in ["fleet", "staff"] {
            for r in rows.iter().filter(|r| r.source == source) {
                expected.insert(
                    r.app.clone(),
                    ExpectedVersion {
                        version: r.version.clone(),
                        since: r.since,
                    },
                );
            }
        }
        self.expected = Arc::new(expected);
        for (_, policy) in self.clinics.values_mut() {
            policy.expected_versions = self.expected.clone();
        }
        self.silences = a.active_silences(now).await?;
        Ok(())
    }

    /// Evaluates every active terminal.
    pub async fn full_pass(&mut self, now: DateTime<Utc>) -> Result<PassStats, Error> {
        self.reload(now).await?;
        self.load_summaries().await?;
        let mut tracked = self.take_alerts().await?;
        let active = &mut tracked.by_terminal;
        let mut stats = PassStats::default();
        let mut versions: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut pending: Vec<AlertChange> = Vec::new();
        let mut audit = Vec::new();
        let events_since = now - rules::EVENT_WINDOW;
        let limit = self.settings.page_size;
        let pages = self.store.clone();
        let cache = self.snapshots.clone();
        let fetch = |after: Option<Uuid>| {
            let store = pages.clone();
            let cache = cache.clone();
            // Its own task: the next page loads (and parses) on the other core while this one
            // is evaluated.
            tokio::spawn(async move {
                store
                    .alerts()
                    .terminal_states(StateSelection::Page { after, limit }, events_since, &cache)
                    .await
            })
        };
        let mut evaluated: HashSet<Uuid> = HashSet::new();
        let mut next = Some(fetch(None));
        while let Some(loading) = next.take() {
            let page = loading
                .await
                .map_err(|e| Error::Corrupt(format!("loading terminal states: {e}")))??;
            let Some(last) = page.last() else { break };
            if (page.len() as i64) == limit {
                next = Some(fetch(Some(last.terminal_id)));
            }
            for t in &page {
                evaluated.insert(t.terminal_id);
                tally_versions(t, now, &mut versions);
                audit.extend(rules::audit_entries(t));
                self.evaluate_one(t, now, active, &mut pending, &mut stats);
            }
            if pending.len() >= self.settings.write_batch {
                self.write(&mut pending, &mut audit, now).await?;
            }
        }
        // Terminals that are gone (revoked) leave the counts.
        if let Some(known) = &mut self.summaries {
            let gone: Vec<Uuid> = known
                .keys()
                .filter(|id| !evaluated.contains(id))
                .copied()
                .collect();
            if let Ok(mut snapshots) = self.snapshots.lock() {
                snapshots.retain(|id, _| evaluated.contains(id));
            }
            if let Ok(mut tally) = self.tally.write() {
                for id in gone {
                    if let Some(old) = known.remove(&id) {
                        tally.apply(&old, -1);
                    }
                }
            }
        }
        // Alerts of terminals that are gone (revoked): their conditions no longer hold.
        let gone: Vec<Uuid> = active
            .keys()
            .filter(|id| !evaluated.contains(id))
            .copied()
            .collect();
        for id in gone {
            let mut keep = Vec::new();
            for (rule, a) in active.remove(&id).unwrap_or_default() {
                let ctx = Context {
                    terminal_id: a.terminal_id,
                    clinic_id: a.clinic_id,
                    now,
                    hold_down: self.settings.hold_down,
                };
                cleared(rule, a, &ctx, &mut keep, &mut pending, &mut stats);
            }
            if !keep.is_empty() {
                active.insert(id, keep);
            }
        }
        self.write(&mut pending, &mut audit, now).await?;
        self.alerts = Some(tracked);
        self.update_fleet_versions(versions, now).await?;
        Ok(stats)
    }

    /// Evaluates the given terminals only (after their reports changed state), a bounded
    /// number per query.
    pub async fn targeted_pass(
        &mut self,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<PassStats, Error> {
        let mut total = PassStats::default();
        for chunk in ids.chunks(TARGETED_CHUNK) {
            let s = self.targeted_chunk(chunk, now).await?;
            total.terminals += s.terminals;
            total.findings += s.findings;
            total.changes += s.changes;
            total.mails += s.mails;
        }
        Ok(total)
    }

    async fn targeted_chunk(
        &mut self,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<PassStats, Error> {
        let mut stats = PassStats::default();
        if ids.is_empty() {
            return Ok(stats);
        }
        self.load_summaries().await?;
        let store = self.store.clone();
        let a = store.alerts();
        let states = a
            .terminal_states(
                StateSelection::Ids(ids),
                now - rules::EVENT_WINDOW,
                &self.snapshots,
            )
            .await?;
        if states
            .iter()
            .any(|t| !self.clinics.contains_key(&t.clinic_id))
        {
            self.reload(now).await?;
        }
        // Staff may have just set a maintenance window: a targeted pass must see it.
        self.silences = a.active_silences(now).await?;
        // With the cache loaded (after the first full pass) its entries are kept current;
        // before that, these terminals' alerts come from the store.
        let mut cache = match self.alerts {
            Some(_) => Some(self.take_alerts().await?),
            None => None,
        };
        let mut fresh: HashMap<Uuid, Vec<(&'static str, Alert)>>;
        let active = match &mut cache {
            Some(c) => &mut c.by_terminal,
            None => {
                fresh = by_rule(a.active_alerts(Some(ids)).await?);
                &mut fresh
            }
        };
        let mut pending = Vec::new();
        let mut audit = Vec::new();
        for t in &states {
            audit.extend(rules::audit_entries(t));
            self.evaluate_one(t, now, active, &mut pending, &mut stats);
        }
        self.write(&mut pending, &mut audit, now).await?;
        self.alerts = cache;
        Ok(stats)
    }

    fn evaluate_one(
        &mut self,
        t: &TerminalState,
        now: DateTime<Utc>,
        active: &mut HashMap<Uuid, Vec<(&'static str, Alert)>>,
        pending: &mut Vec<AlertChange>,
        stats: &mut PassStats,
    ) {
        stats.terminals += 1;
        let Some((clinic, policy)) = self.clinics.get(&t.clinic_id) else {
            tracing::warn!(terminal = %t.terminal_id, clinic = t.clinic_id, "terminal of an unknown clinic");
            return;
        };
        if let Some(s) = &t.snapshot
            && self.hostnames.get(&t.terminal_id) != Some(&s.hostname)
        {
            self.hostnames.insert(t.terminal_id, s.hostname.clone());
        }
        let hostname = self
            .hostnames
            .get(&t.terminal_id)
            .cloned()
            .unwrap_or_else(|| t.terminal_id.to_string());
        let findings = rules::evaluate(t, policy, now);
        stats.findings += findings.len();
        let silenced = self
            .silences
            .iter()
            .any(|s| s.covers(t.terminal_id, t.clinic_id, now));
        let ctx = Context {
            terminal_id: t.terminal_id,
            clinic_id: t.clinic_id,
            now,
            hold_down: self.settings.hold_down,
        };
        // This terminal's unresolved alerts: one map lookup, then a short list by rule.
        let mut current_alerts = active.remove(&t.terminal_id).unwrap_or_default();
        let mut take = |rule: &str| {
            let i = current_alerts.iter().position(|(r, _)| *r == rule)?;
            Some(current_alerts.swap_remove(i).1)
        };
        // This terminal's tracked alerts after this evaluation: compared with next time, and
        // what its overview line counts (an alert no longer tracked is resolved).
        let mut keep: Vec<(&'static str, Alert)> = Vec::new();
        for f in &findings {
            let current = take(f.rule);
            let transition = alerts::transition(current.as_ref(), Some(f), &ctx);
            match (&transition, current) {
                (Some((a, _)), _) if a.tracked() => keep.push((f.rule, a.clone())),
                (None, Some(a)) => keep.push((f.rule, a)),
                _ => {}
            }
            if let Some((alert, action)) = transition {
                let mails = if alerts::mail_now(&alert, action, silenced) {
                    self.composer.critical(clinic, &hostname, &alert, now)
                } else {
                    Vec::new()
                };
                stats.mails += mails.len();
                stats.changes += 1;
                pending.push(AlertChange {
                    alert,
                    action,
                    mails,
                });
            }
        }
        // What is left has no finding now: the condition cleared.
        for (rule, current) in current_alerts {
            cleared(rule, current, &ctx, &mut keep, pending, stats);
        }
        let after: Vec<(&str, rules::Severity, AlertStatus)> = keep
            .iter()
            .map(|(rule, a)| (*rule, a.severity, a.status))
            .collect();
        if !keep.is_empty() {
            active.insert(t.terminal_id, keep);
        }
        let offline_after = Duration::seconds(
            i64::from(self.agent.interval_secs) * i64::from(self.offline_after_intervals),
        );
        let offline = t.last_seen.is_none_or(|seen| now - seen > offline_after);
        let summary = summarize(
            t,
            clinic,
            &hostname,
            &after,
            silenced,
            offline,
            &policy.expected_versions,
        );
        if let Some(known) = &mut self.summaries
            && known.get(&t.terminal_id) != Some(&summary)
        {
            let old = known.insert(t.terminal_id, summary.clone());
            if let Ok(mut tally) = self.tally.write() {
                if let Some(old) = &old {
                    tally.apply(old, -1);
                }
                tally.apply(&summary, 1);
            }
            self.changed_summaries.push(summary);
        }
    }

    async fn write(
        &mut self,
        pending: &mut Vec<AlertChange>,
        audit: &mut Vec<rules::AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        for chunk in pending.chunks(self.settings.write_batch.max(1)) {
            self.store
                .alerts()
                .apply_alert_changes(chunk, &[], now)
                .await?;
        }
        if !audit.is_empty() {
            self.store
                .alerts()
                .apply_alert_changes(&[], audit, now)
                .await?;
        }
        pending.clear();
        audit.clear();
        // After the alerts, so a summary never counts an alert that is not stored yet.
        let summaries = std::mem::take(&mut self.changed_summaries);
        if let Err(e) = self.store.desk().write_summaries(&summaries, now).await {
            // Forget what was not written: the next pass writes it again.
            if let Some(known) = &mut self.summaries {
                for s in &summaries {
                    known.remove(&s.terminal_id);
                }
            }
            return Err(e);
        }
        Ok(())
    }

    async fn update_fleet_versions(
        &self,
        versions: HashMap<String, HashMap<String, usize>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let stored: HashMap<String, String> = self
            .store
            .alerts()
            .expected_versions()
            .await?
            .into_iter()
            .filter(|r| r.source == "fleet")
            .map(|r| (r.app, r.version))
            .collect();
        for (app, counts) in versions {
            let Some(mode) = most_common(&counts) else {
                continue;
            };
            if stored.get(&app) != Some(&mode) {
                self.store
                    .alerts()
                    .set_expected_version(&app, "fleet", Some(&mode), now, "fleet")
                    .await?;
            }
        }
        Ok(())
    }

    /// Writes today's digest for every clinic with open warnings once the digest hour has come
    /// (at most once per clinic per day, across restarts too).
    pub async fn digest_if_due(&mut self, now: DateTime<Utc>) -> Result<usize, Error> {
        let local = now.with_timezone(&jst());
        let today = local.date_naive();
        if local.hour() < self.settings.digest_hour || self.last_digest == Some(today) {
            return Ok(0);
        }
        let n = self.write_digests(now).await?;
        self.last_digest = Some(today);
        Ok(n)
    }

    /// Writes the digest of every clinic with open, unsilenced, unacknowledged warnings.
    pub async fn write_digests(&mut self, now: DateTime<Utc>) -> Result<usize, Error> {
        if self.clinics.is_empty() {
            self.reload(now).await?;
        }
        let open = self.store.alerts().active_alerts(None).await?;
        let mut by_clinic: HashMap<i64, Vec<Alert>> = HashMap::new();
        for a in open {
            if a.status != AlertStatus::Open
                || self
                    .silences
                    .iter()
                    .any(|s| s.covers(a.terminal_id, a.clinic_id, now))
            {
                continue;
            }
            by_clinic.entry(a.clinic_id).or_default().push(a);
        }
        // A fresh process has not seen the hostnames yet.
        let unknown: Vec<Uuid> = by_clinic
            .values()
            .flatten()
            .map(|a| a.terminal_id)
            .filter(|id| !self.hostnames.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for ids in unknown.chunks(500) {
            let states = self
                .store
                .alerts()
                .terminal_states(StateSelection::Ids(ids), now, &self.snapshots)
                .await?;
            for t in states {
                if let Some(s) = t.snapshot {
                    self.hostnames.insert(t.terminal_id, s.hostname.clone());
                }
            }
        }
        let mut mails: Vec<NewMail> = Vec::new();
        for (clinic_id, alerts) in by_clinic {
            if !alerts
                .iter()
                .any(|a| a.severity < rules::Severity::Critical)
            {
                continue;
            }
            let Some((clinic, _)) = self.clinics.get(&clinic_id) else {
                continue;
            };
            let named: Vec<(String, Alert)> = alerts
                .into_iter()
                .map(|a| {
                    let host = self
                        .hostnames
                        .get(&a.terminal_id)
                        .cloned()
                        .unwrap_or_else(|| a.terminal_id.to_string());
                    (host, a)
                })
                .collect();
            mails.extend(self.composer.digest(clinic, &named, now));
        }
        if mails.is_empty() {
            return Ok(0);
        }
        self.store.alerts().enqueue_mails(&mails, now).await
    }

    /// Runs until `stop` fires: a full pass every interval, a targeted pass on each change
    /// signal, the digest when due.
    pub async fn run(mut self, changes: Arc<ChangeSignal>, stop: Arc<Notify>) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                _ = tick.tick() => {
                    let now = Utc::now();
                    let started = std::time::Instant::now();
                    match self.full_pass(now).await {
                        Ok(s) => tracing::info!(
                            terminals = s.terminals, findings = s.findings, changes = s.changes,
                            mails = s.mails, ms = started.elapsed().as_millis() as u64,
                            "rule evaluation"
                        ),
                        Err(e) => tracing::error!(error = %e, "rule evaluation failed"),
                    }
                    if let Err(e) = self.digest_if_due(now).await {
                        tracing::error!(error = %e, "writing digests failed");
                    }
                }
                _ = changes.wait() => {
                    tokio::time::sleep(self.settings.debounce).await;
                    let ids = changes.take();
                    if let Err(e) = self.targeted_pass(&ids, Utc::now()).await {
                        tracing::error!(error = %e, "targeted rule evaluation failed");
                    }
                }
            }
        }
    }
}

fn tally_versions(
    t: &TerminalState,
    now: DateTime<Utc>,
    versions: &mut HashMap<String, HashMap<String, usize>>,
) {
    let (Some(s), Some(seen)) = (&t.snapshot, t.last_seen) else {
        return;
    };
    if now - seen > FLEET_WINDOW {
        return;
    }
    for app in &s.apps.installed {
        let Some(v) = &app.version else { continue };
        // Looked up by reference first: the names are copied once per fleet, not per terminal.
        let counts = match versions.get_mut(&app.name) {
            Some(c) => c,
            None => versions.entry(app.name.clone()).or_default(),
        };
        match counts.get_mut(v) {
            Some(n) => *n += 1,
            None => {
                counts.insert(v.clone(), 1);
            }
        }
    }
}

/// Unresolved alerts by terminal, each with its rule as the `&'static str` of
/// [`rules::key::ALL`], so a terminal costs one map lookup and no allocation. An alert of a rule
/// this build does not know is dropped: no finding can ever match it.
fn by_rule(alerts: Vec<Alert>) -> HashMap<Uuid, Vec<(&'static str, Alert)>> {
    let mut out: HashMap<Uuid, Vec<(&'static str, Alert)>> = HashMap::new();
    for a in alerts {
        if let Some(rule) = rule_key(&a.rule) {
            out.entry(a.terminal_id).or_default().push((rule, a));
        }
    }
    out
}

/// The `&'static str` of [`rules::key::ALL`] for a stored rule name.
fn rule_key(rule: &str) -> Option<&'static str> {
    rules::key::ALL.iter().find(|r| **r == rule).copied()
}

/// An alert whose condition no longer holds: its transition (if any) is queued, and it is kept
/// for the next comparison while still tracked.
fn cleared(
    rule: &'static str,
    current: Alert,
    ctx: &Context,
    keep: &mut Vec<(&'static str, Alert)>,
    pending: &mut Vec<AlertChange>,
    stats: &mut PassStats,
) {
    match alerts::transition(Some(&current), None, ctx) {
        Some((alert, action)) => {
            if alert.tracked() {
                keep.push((rule, alert.clone()));
            }
            stats.changes += 1;
            pending.push(AlertChange {
                alert,
                action,
                mails: Vec::new(),
            });
        }
        None => keep.push((rule, current)),
    }
}

/// The overview's line for a terminal, from its state and its alerts after evaluation.
/// A maintenance window wins over everything, then a terminal that stopped reporting (its
/// other findings are stale), then the worst open alert.
pub fn summarize(
    t: &TerminalState,
    clinic: &ClinicSettings,
    hostname: &str,
    alerts_after: &[(&str, rules::Severity, AlertStatus)],
    silenced: bool,
    offline: bool,
    expected: &HashMap<String, ExpectedVersion>,
) -> TerminalSummary {
    let open: Vec<(&str, rules::Severity)> = alerts_after
        .iter()
        .filter(|(_, _, status)| *status != AlertStatus::Resolved)
        .map(|(rule, severity, _)| (*rule, *severity))
        .collect();
    let open_rules = open.iter().fold(0, |bits, (rule, _)| bits | rule_bit(rule));
    let worst = open.iter().map(|(_, s)| *s).max();
    let state = if silenced {
        TerminalStateKind::Silenced
    } else if offline {
        TerminalStateKind::Offline
    } else {
        match worst {
            Some(rules::Severity::Critical) => TerminalStateKind::Critical,
            Some(rules::Severity::Warning) => TerminalStateKind::Warning,
            _ => TerminalStateKind::Ok,
        }
    };
    let snapshot = t.snapshot.as_ref();
    let apps_behind = snapshot.map_or(0, |s| {
        s.apps
            .installed
            .iter()
            .filter(|app| {
                matches!(
                    (&app.version, expected.get(&app.name)),
                    (Some(v), Some(e)) if rules::compare_versions(v, &e.version).is_lt()
                )
            })
            .count() as i64
    });
    let backup = match snapshot {
        None => BackupKind::Unknown,
        Some(s) => match (&s.certificates.backup, s.certificates.current()) {
            (_, None) => BackupKind::Unknown,
            (None, Some(_)) => BackupKind::Missing,
            (Some(b), Some(_)) if b.matches_current => BackupKind::Ok,
            (Some(_), Some(_)) => BackupKind::Stale,
        },
    };
    TerminalSummary {
        terminal_id: t.terminal_id,
        clinic_id: t.clinic_id,
        clinic_name: clinic.name.clone(),
        prefecture: clinic.prefecture.clone(),
        hostname: hostname.to_string(),
        state,
        open_alerts: open.len() as i64,
        open_rules,
        apps_behind,
        backup,
        last_start: snapshot.map(|s| s.uptime.last_start),
        cert_not_after: snapshot
            .and_then(|s| s.certificates.current())
            .map(|c| c.not_after),
    }
}

/// The most common version; on a tie the newest.
pub fn most_common(counts: &HashMap<String, usize>) -> Option<String> {
    counts
        .iter()
        .max_by(|(va, ca), (vb, cb)| ca.cmp(cb).then_with(|| rules::compare_versions(va, vb)))
        .map(|(v, _)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::BusinessHours;

    #[test]
    fn summaries_rank_states_and_the_tally_follows_them() {
        let clinic = ClinicSettings {
            id: 1,
            name: "さくら".into(),
            email: "a@b.jp".into(),
            hours: BusinessHours::default(),
            desk_name: None,
            desk_phone: None,
            prefecture: Some("東京都".into()),
        };
        let t = TerminalState {
            terminal_id: Uuid::now_v7(),
            clinic_id: 1,
            enrolled_at: Utc::now(),
            last_seen: Some(Utc::now()),
            collected_at: Utc::now(),
            snapshot: Some(Arc::new(onshi_shared::sample::snapshot())),
            events: Vec::new(),
        };
        use rules::Severity::{Critical, Warning};
        let alerts = [
            (rules::key::CERT_EXPIRY, Critical, AlertStatus::Open),
            (
                rules::key::PENDING_REBOOT,
                Warning,
                AlertStatus::Acknowledged,
            ),
            (rules::key::OFFLINE, Critical, AlertStatus::Resolved),
        ];
        let expected = HashMap::new();
        let s = |alerts: &[(&str, rules::Severity, AlertStatus)], silenced, offline| {
            summarize(&t, &clinic, "PC", alerts, silenced, offline, &expected)
        };
        // (alerts, silenced, offline) -> state
        let cases = [
            (&alerts[..], false, false, TerminalStateKind::Critical),
            (&alerts[1..], false, false, TerminalStateKind::Warning),
            (&alerts[2..], false, false, TerminalStateKind::Ok),
            (&alerts[..], false, true, TerminalStateKind::Offline),
            (&alerts[..], true, true, TerminalStateKind::Silenced),
        ];
        for (a, silenced, offline, want) in cases {
            assert_eq!(
                s(a, silenced, offline).state,
                want,
                "{a:?} {silenced} {offline}"
            );
        }
        let full = s(&alerts, false, false);
        assert_eq!(full.open_alerts, 2, "the resolved one does not count");
        assert_eq!(
            full.open_rules,
            rule_bit(rules::key::CERT_EXPIRY) | rule_bit(rules::key::PENDING_REBOOT)
        );
        assert_eq!(full.prefecture.as_deref(), Some("東京都"));
        let mut tally = FleetTally::default();
        tally.apply(&full, 1);
        tally.apply(&s(&alerts[1..], false, false), 1);
        assert_eq!(tally.total(), 2);
        assert_eq!(tally.state(TerminalStateKind::Critical), 1);
        assert_eq!(tally.rule(rules::key::PENDING_REBOOT), 2);
        tally.apply(&full, -1);
        assert_eq!(tally.rule(rules::key::CERT_EXPIRY), 0);
        assert_eq!(tally.state(TerminalStateKind::Warning), 1);
    }

    #[test]
    fn the_most_common_version_wins_ties_go_to_the_newest() {
        let counts = HashMap::from([
            ("2.4.1".to_string(), 3),
            ("2.10.0".to_string(), 3),
            ("2.3.0".to_string(), 1),
        ]);
        assert_eq!(most_common(&counts).as_deref(), Some("2.10.0"));
        assert_eq!(most_common(&HashMap::new()), None);
    }
}
