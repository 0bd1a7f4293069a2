//! The rule evaluator: full passes on an interval, targeted passes right after reports that
//! changed state, the overview's lines and counts, the fleet's expected versions and the daily
//! digest. The mail sender lives in [`crate::notify`].
//!
//! A full pass loads terminals in pages (one query for their latest reports, one for their
//! recent events), evaluates them in memory and writes only the alert changes, in batches, each
//! batch in one transaction together with the mails it causes.

mod cache;
mod digest;
mod inputs;
mod overview;
mod pass;
mod reminders;
mod signal;
mod silences;
mod versions;
mod watermark;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use onshi_shared::{AccountSpec, AgentPolicy, accounts_key};
use tokio::sync::Notify;
use uuid::Uuid;

pub use overview::{FleetTally, SharedTally, Tallies, liveness, overview_line};
pub use signal::ChangeSignal;
pub use versions::most_common;

use crate::Error;
use crate::config::{AlertSettings, RuleSettings};
use crate::domain::{ClinicSettings, ExpectedVersion, OverviewLine, effective_versions};
use crate::notify::Composer;
use crate::notify::channels::Announcer;
use crate::rules::{self, BaselineWrite, ClinicPolicy, Thresholds};
use crate::store::Store;
use crate::store::alerts::AlertChange;
use cache::AlertCache;
pub use inputs::InputCache;
use silences::SilenceIndex;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    pub terminals: usize,
    pub findings: usize,
    pub changes: usize,
    pub mails: usize,
}

impl std::ops::AddAssign for PassStats {
    fn add_assign(&mut self, s: PassStats) {
        self.terminals += s.terminals;
        self.findings += s.findings;
        self.changes += s.changes;
        self.mails += s.mails;
    }
}

pub struct Evaluator {
    store: Arc<dyn Store>,
    agent: Arc<AgentPolicy>,
    rules: RuleSettings,
    thresholds: Arc<Thresholds>,
    settings: AlertSettings,
    composer: Arc<Composer>,
    /// The desk's channels, told of critical alerts with the same changes.
    announcer: Arc<Announcer>,
    /// The reminders and escalations due at the last full pass (their dedupe keys): only
    /// new ones are queued (the outbox would skip the others anyway).
    reminded: std::collections::HashSet<String>,
    clinics: HashMap<i64, (ClinicSettings, ClinicPolicy)>,
    expected: Arc<HashMap<String, ExpectedVersion>>,
    silences: SilenceIndex,
    hostnames: HashMap<Uuid, String>,
    last_digest: Option<NaiveDate>,
    /// The overview line last written per terminal (`None` until loaded from the store), and
    /// the lines that changed and wait for the next write.
    lines: Option<HashMap<Uuid, OverviewLine>>,
    changed_lines: Vec<OverviewLine>,
    tally: SharedTally,
    /// Parsed bodies and account records kept between passes.
    inputs: Arc<InputCache>,
    /// The clinics' version and the JST date the clinics were built for.
    clinics_built: Option<((i64, i64), NaiveDate)>,
    /// The alerts findings are compared with, kept between passes (`None` until loaded, and
    /// again after a failed write).
    alerts: Option<AlertCache>,
    /// Account baselines taken in this pass, written with its alert changes.
    baselines: Vec<BaselineWrite>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Evaluator {
    pub fn new(
        store: Arc<dyn Store>,
        agent: AgentPolicy,
        rules: RuleSettings,
        settings: AlertSettings,
        composer: Arc<Composer>,
    ) -> Self {
        Evaluator {
            store,
            agent: Arc::new(agent),
            thresholds: Arc::new(rules.thresholds()),
            rules,
            settings,
            composer,
            announcer: Arc::default(),
            reminded: Default::default(),
            clinics: HashMap::new(),
            expected: Arc::new(HashMap::new()),
            silences: SilenceIndex::default(),
            hostnames: HashMap::new(),
            last_digest: None,
            lines: None,
            changed_lines: Vec::new(),
            tally: SharedTally::default(),
            inputs: Arc::default(),
            clinics_built: None,
            alerts: None,
            baselines: Vec::new(),
            metrics: Arc::default(),
        }
    }

    /// The evaluator for a server's configuration.
    pub fn from_config(store: Arc<dyn Store>, config: &crate::Config) -> Self {
        Self::new(
            store,
            config.policy.clone(),
            config.rules.clone(),
            config.alerts.clone(),
            Arc::new(Composer::new(config.smtp.clone())),
        )
        .with_announcer(Announcer::from_config(config))
    }

    /// Tells the desk's channels of critical alerts.
    pub fn with_announcer(mut self, announcer: Announcer) -> Self {
        self.announcer = Arc::new(announcer);
        self
    }

    /// Shares the evaluator's counts with the dashboard.
    pub fn with_tally(mut self, tally: SharedTally) -> Self {
        self.tally = tally;
        self
    }

    /// Times its passes in the process's metrics.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn update_tally(&self, f: impl FnOnce(&mut Tallies)) {
        if let Ok(mut t) = self.tally.write() {
            f(&mut t);
        }
    }

    /// Loads the stored overview lines and the tally once.
    async fn load_lines(&mut self) -> Result<(), Error> {
        if self.lines.is_none() {
            let stored = self.store.fleet().overview_lines().await?;
            let tally = Tallies::of_lines(&stored);
            self.update_tally(|t| *t = tally);
            self.lines = Some(stored.into_iter().map(|s| (s.terminal_id, s)).collect());
        }
        Ok(())
    }

    /// Clinics with their policies (rebuilt when a clinic changed or the day turned), the
    /// expected versions and the silences in force.
    async fn reload(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        let a = self.store.alerts();
        self.expected = Arc::new(effective_versions(&a.expected_versions().await?));
        self.silences = SilenceIndex::new(a.silences_in_force(now).await?);
        let today = now.with_timezone(&crate::jst::offset()).date_naive();
        let version = a.clinics_version().await?;
        if self.clinics_built == Some((version, today)) {
            for (_, policy) in self.clinics.values_mut() {
                policy.expected_versions = self.expected.clone();
            }
            return Ok(());
        }
        // Closures that can still matter: the offline rule looks back this far at most.
        let closures_from = today - Duration::days(crate::calendar::LOOKBACK_DAYS + 1);
        let server_accounts = Arc::new(self.agent.accounts.clone());
        let server_key = accounts_key(&server_accounts);
        let mut clinics = HashMap::new();
        for c in a.clinic_settings(closures_from).await? {
            let policy = self.clinic_policy(&c, &server_accounts, server_key);
            clinics.insert(c.id, (c, policy));
        }
        self.clinics = clinics;
        self.clinics_built = Some((version, today));
        Ok(())
    }

    /// A clinic's policy: its names over the server's, its thresholds over the server's.
    fn clinic_policy(
        &self,
        c: &ClinicSettings,
        server_accounts: &Arc<Vec<AccountSpec>>,
        server_key: u64,
    ) -> ClinicPolicy {
        let (accounts, key) = if c.accounts.is_empty() {
            (server_accounts.clone(), server_key)
        } else {
            let merged = AccountSpec::merged(server_accounts, &c.accounts);
            let key = accounts_key(&merged);
            (Arc::new(merged), key)
        };
        let r = &c.rules;
        let thresholds = if r.restart_warning_hours.is_none()
            && r.restart_critical_hours.is_none()
            && r.offline_critical_days.is_none()
        {
            self.thresholds.clone()
        } else {
            let mut t = (*self.thresholds).clone();
            if let Some(h) = r.restart_warning_hours {
                t.restart_warning = Duration::hours(i64::from(h));
            }
            if let Some(h) = r.restart_critical_hours {
                t.restart_critical = Duration::hours(i64::from(h));
            }
            if let Some(d) = r.offline_critical_days {
                t.offline_critical_days = d;
            }
            Arc::new(t)
        };
        ClinicPolicy {
            agent: self.agent.clone(),
            accounts,
            accounts_key: key,
            hours: c.hours.clone(),
            expected_versions: self.expected.clone(),
            offline_after_intervals: r
                .offline_after_intervals
                .unwrap_or(self.rules.offline_after_intervals),
            thresholds,
            file_rename_counts: r.file_rename_counts,
        }
    }

    /// Writes the pending alert changes (in batches) and the audit entries, then the overview
    /// lines that changed.
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
        let baselines = std::mem::take(&mut self.baselines);
        let stored = self.store.alerts().record_baselines(&baselines).await?;
        self.inputs.remember_accounts(stored)?;
        // After the alerts, so a line never counts an alert that is not stored yet.
        let lines = std::mem::take(&mut self.changed_lines);
        if let Err(e) = self.store.fleet().write_overview_lines(&lines, now).await {
            // Forget what was not written: the next pass writes it again.
            if let Some(known) = &mut self.lines {
                for s in &lines {
                    known.remove(&s.terminal_id);
                }
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Runs until `stop` fires: a full pass every interval, a targeted pass on each change
    /// signal, the digest when due.
    pub async fn run(mut self, changes: Arc<ChangeSignal>, stop: Arc<Notify>) {
        let mut tick = tokio::time::interval(self.settings.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                _ = tick.tick() => {
                    let now = Utc::now();
                    let started = std::time::Instant::now();
                    match self.full_pass(now).await {
                        Ok(s) => {
                            self.metrics.pass_seconds.record(started.elapsed());
                            tracing::info!(
                                terminals = s.terminals, findings = s.findings,
                                changes = s.changes, mails = s.mails,
                                ms = started.elapsed().as_millis() as u64, "rule evaluation"
                            );
                        }
                        Err(e) => {
                            self.metrics.passes_failed.increment(1);
                            tracing::error!(error = %e, "rule evaluation failed");
                        }
                    }
                    if let Err(e) = self.digest_if_due(now).await {
                        tracing::error!(error = %e, "writing digests failed");
                    }
                }
                _ = changes.wait() => {
                    tokio::time::sleep(self.settings.debounce()).await;
                    let ids = changes.take();
                    if let Err(e) = self.targeted_pass(&ids, Utc::now()).await {
                        tracing::error!(error = %e, "targeted rule evaluation failed");
                    }
                }
            }
        }
    }
}
