//! One evaluation: load terminals, run the rules, move their alerts along, update the overview.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::cache::by_rule;
use super::overview::{liveness, overview_line};
use super::versions::tally_versions;
use super::{Evaluator, PassStats};
use crate::Error;
use crate::alerts::{self, Context, MailStep};
use crate::domain::{Alert, AlertAction, NewMail, RuleKey, Silence, SilenceTarget};
use crate::rules::{self, RuleInput};
use crate::store::alerts::{AlertChange, InputSelection};

/// Terminals per query in a targeted pass (SQLite limits bound parameters per statement).
const TARGETED_CHUNK: usize = 500;

impl Evaluator {
    /// Evaluates every active terminal.
    #[tracing::instrument(name = "evaluator_pass", skip(self), fields(kind = "full"))]
    pub async fn full_pass(&mut self, now: DateTime<Utc>) -> Result<PassStats, Error> {
        self.reload(now).await?;
        crate::notify::channels::refresh_groups(&self.announcer.channels, self.store.as_ref())
            .await?;
        self.load_lines().await?;
        let mut tracked = self.take_alerts().await?;
        let active = &mut tracked.by_terminal;
        let mut stats = PassStats::default();
        let mut versions: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut pending: Vec<AlertChange> = Vec::new();
        let mut audit = Vec::new();
        let events_since = now - self.thresholds.event_window;
        let limit = self.settings.page_size;
        let pages = self.store.clone();
        let cache = self.inputs.clone();
        let fetch = |after: Option<Uuid>| {
            let store = pages.clone();
            let cache = cache.clone();
            // Its own task: the next page loads (and parses) on the other core while this one
            // is evaluated.
            tokio::spawn(async move {
                cache
                    .load(
                        store.alerts(),
                        InputSelection::Page { after, limit },
                        events_since,
                    )
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
        if let Some(known) = &mut self.lines {
            let gone: Vec<Uuid> = known
                .keys()
                .filter(|id| !evaluated.contains(id))
                .copied()
                .collect();
            self.inputs.retain(|id| evaluated.contains(id));
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
                    hold_down: self.settings.hold_down(),
                };
                // A revoked terminal's alerts resolve; the channels hear of those they were
                // told of.
                let announce = |before: &Alert, after: &Alert, action: AlertAction| {
                    let Some((clinic, _)) = self.clinics.get(&before.clinic_id) else {
                        return Vec::new();
                    };
                    let hostname = self.hostnames.get(&before.terminal_id).cloned();
                    let hostname = hostname.unwrap_or_else(|| before.terminal_id.to_string());
                    self.announcer.on_change(
                        Some(before),
                        after,
                        action,
                        false,
                        clinic,
                        &hostname,
                        now,
                    )
                };
                cleared(rule, a, &ctx, &mut keep, &mut pending, &mut stats, announce);
            }
            if !keep.is_empty() {
                active.insert(id, keep);
            }
        }
        self.write(&mut pending, &mut audit, now).await?;
        stats.mails += self.remind(&mut tracked, now).await?;
        self.alerts = Some(tracked);
        self.update_fleet_versions(versions, now).await?;
        Ok(stats)
    }

    /// Evaluates the given terminals only (after their reports changed state), a bounded
    /// number per query.
    #[tracing::instrument(name = "evaluator_pass", skip_all, fields(kind = "targeted", terminals = ids.len()))]
    pub async fn targeted_pass(
        &mut self,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<PassStats, Error> {
        let mut total = PassStats::default();
        for chunk in ids.chunks(TARGETED_CHUNK) {
            total += self.targeted_chunk(chunk, now).await?;
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
        self.load_lines().await?;
        let store = self.store.clone();
        let a = store.alerts();
        let states = self
            .inputs
            .load(
                a,
                InputSelection::Ids(ids),
                now - self.thresholds.event_window,
            )
            .await?;
        if states
            .iter()
            .any(|t| !self.clinics.contains_key(&t.clinic_id))
        {
            self.reload(now).await?;
        }
        // Staff may have just set a maintenance window: a targeted pass must see it.
        self.silences = super::silences::SilenceIndex::new(a.silences_in_force(now).await?);
        // With the cache loaded (after the first full pass) its entries are kept current;
        // before that, these terminals' alerts come from the store.
        let mut cache = match self.alerts {
            Some(_) => Some(self.take_alerts().await?),
            None => None,
        };
        let mut fresh: HashMap<Uuid, Vec<(RuleKey, Alert)>>;
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
        t: &RuleInput,
        now: DateTime<Utc>,
        active: &mut HashMap<Uuid, Vec<(RuleKey, Alert)>>,
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
        let (baseline, new_baseline) = rules::account_baseline(t, policy);
        if let Some(b) = new_baseline {
            self.baselines.push(b);
        }
        let findings = rules::evaluate_with(t, baseline.as_ref(), policy, now);
        stats.findings += findings.len();
        let target = SilenceTarget {
            terminal_id: t.terminal_id,
            clinic_id: t.clinic_id,
            prefecture: clinic.prefecture.as_deref(),
        };
        // The silences of this terminal in force now (their daily windows included).
        let silences: Vec<&Silence> = self.silences.in_force(&target, now);
        let silenced = |rule: RuleKey| silences.iter().any(|s| s.rule.is_none_or(|r| r == rule));
        let ctx = Context {
            terminal_id: t.terminal_id,
            clinic_id: t.clinic_id,
            now,
            hold_down: self.settings.hold_down(),
        };
        // This terminal's unresolved alerts: one map lookup, then a short list by rule.
        let mut current_alerts = active.remove(&t.terminal_id).unwrap_or_default();
        let mut take = |rule: RuleKey| {
            let i = current_alerts.iter().position(|(r, _)| *r == rule)?;
            Some(current_alerts.swap_remove(i).1)
        };
        // This terminal's tracked alerts after this evaluation: compared with next time, and
        // what its overview line counts (an alert no longer tracked is resolved).
        let mut keep: Vec<(RuleKey, Alert)> = Vec::new();
        let mut send = |alert: &Alert| {
            let mails = self.composer.critical(clinic, &hostname, alert, now);
            stats.mails += mails.len();
            mails
        };
        for f in &findings {
            let current = take(f.rule);
            let mut change = alerts::transition(current.as_ref(), Some(f), &ctx);
            let (row, action) = match (&change, &current) {
                (Some((a, action)), _) => (a, Some(*action)),
                (None, Some(a)) => (a, None),
                (None, None) => continue,
            };
            let mut mails = Vec::new();
            match alerts::mail_step(row, action, silenced(f.rule)) {
                MailStep::Nothing => {}
                MailStep::Send => {
                    mails = send(row);
                    if let Some((a, _)) = &mut change {
                        a.mail_held = false;
                    }
                }
                MailStep::Hold => {
                    if let Some((a, _)) = &mut change {
                        a.mail_held = true;
                    }
                }
                MailStep::SendHeld | MailStep::Drop => {
                    let sent = alerts::mail_step(row, action, false) == MailStep::SendHeld;
                    if sent {
                        mails = send(row);
                    }
                    let mut a = row.clone();
                    a.mail_held = false;
                    a.updated_at = now;
                    let action = match change.take() {
                        Some((_, AlertAction::Quiet)) | None if sent => AlertAction::HeldMailSent,
                        Some((_, action)) => action,
                        None => AlertAction::Quiet,
                    };
                    change = Some((a, action));
                }
            }
            if let Some((a, action)) = &change {
                let told = self.announcer.on_change(
                    current.as_ref(),
                    a,
                    *action,
                    !mails.is_empty(),
                    clinic,
                    &hostname,
                    now,
                );
                mails.extend(told);
            }
            match (&change, current) {
                (Some((a, _)), _) if a.tracked() => keep.push((f.rule, a.clone())),
                (None, Some(a)) => keep.push((f.rule, a)),
                _ => {}
            }
            if let Some((alert, action)) = change {
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
            let announce = |before: &Alert, after: &Alert, action: AlertAction| {
                self.announcer
                    .on_change(Some(before), after, action, false, clinic, &hostname, now)
            };
            cleared(rule, current, &ctx, &mut keep, pending, stats, announce);
        }
        let recent = Duration::seconds(
            i64::from(policy.agent.interval_secs) * i64::from(policy.offline_after_intervals),
        );
        let liveness = liveness(t, &findings, recent, now);
        let line = overview_line(
            t,
            clinic,
            &hostname,
            &keep,
            &silences,
            liveness,
            &policy.expected_versions,
            self.settings.neglected_after(),
            now,
        );
        if !keep.is_empty() {
            active.insert(t.terminal_id, keep);
        }
        if let Some(known) = &mut self.lines
            && known.get(&t.terminal_id) != Some(&line)
        {
            let old = known.insert(t.terminal_id, line.clone());
            if let Ok(mut tally) = self.tally.write() {
                if let Some(old) = &old {
                    tally.apply(old, -1);
                }
                tally.apply(&line, 1);
            }
            self.changed_lines.push(line);
        }
    }
}

/// An alert whose condition no longer holds: its transition (if any) is queued, and it is kept
/// for the next comparison while still tracked.
/// `announce` gives the channel messages for the change.
fn cleared(
    rule: RuleKey,
    current: Alert,
    ctx: &Context,
    keep: &mut Vec<(RuleKey, Alert)>,
    pending: &mut Vec<AlertChange>,
    stats: &mut PassStats,
    announce: impl FnOnce(&Alert, &Alert, AlertAction) -> Vec<NewMail>,
) {
    match alerts::transition(Some(&current), None, ctx) {
        Some((alert, action)) => {
            if alert.tracked() {
                keep.push((rule, alert.clone()));
            }
            stats.changes += 1;
            let mails = announce(&current, &alert, action);
            pending.push(AlertChange {
                alert,
                action,
                mails,
            });
        }
        None => keep.push((rule, current)),
    }
}
