//! The daily digest: one mail per clinic with its open warnings, written once the digest hour
//! has come.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Timelike, Utc};
use uuid::Uuid;

use super::Evaluator;
use crate::Error;
use crate::domain::{Alert, AlertStatus, NewMail, Severity, SilenceTarget};
use crate::jst;
use crate::store::alerts::InputSelection;

impl Evaluator {
    /// Writes today's digest for every clinic with open warnings once the digest hour has come
    /// (at most once per clinic per day, across restarts too).
    pub async fn digest_if_due(&mut self, now: DateTime<Utc>) -> Result<usize, Error> {
        let local = now.with_timezone(&jst::offset());
        let today = local.date_naive();
        if local.hour() < self.settings.digest_hour || self.last_digest == Some(today) {
            return Ok(0);
        }
        let n = self.write_digests(now).await?;
        self.last_digest = Some(today);
        Ok(n)
    }

    /// Writes the digest of every clinic open today with open, unsilenced, unacknowledged
    /// warnings (a clinic closed today gets it on its next open day). Findings for the desk
    /// only stay out.
    pub async fn write_digests(&mut self, now: DateTime<Utc>) -> Result<usize, Error> {
        if self.clinics.is_empty() {
            self.reload(now).await?;
        }
        let today = now.with_timezone(&jst::offset()).date_naive();
        let open = self.store.alerts().active_alerts(None).await?;
        let mut by_clinic: HashMap<i64, Vec<Alert>> = HashMap::new();
        for a in open {
            let Some((clinic, _)) = self.clinics.get(&a.clinic_id) else {
                continue;
            };
            let target = SilenceTarget {
                terminal_id: a.terminal_id,
                clinic_id: a.clinic_id,
                prefecture: clinic.prefecture.as_deref(),
            };
            if a.status != AlertStatus::Open
                || a.rule.desk_only()
                || !clinic.hours.is_open_day(today)
                || self.silences.covers(&target, a.rule, now)
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
                .inputs
                .load(self.store.alerts(), InputSelection::Ids(ids), now)
                .await?;
            for t in states {
                if let Some(s) = t.snapshot {
                    self.hostnames.insert(t.terminal_id, s.hostname.clone());
                }
            }
        }
        let mut mails: Vec<NewMail> = Vec::new();
        for (clinic_id, alerts) in by_clinic {
            if !alerts.iter().any(|a| a.severity < Severity::Critical) {
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
        Ok(self.store.outbox().enqueue_mails(&mails, now).await?)
    }
}
