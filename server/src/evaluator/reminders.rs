//! Reminders and escalations: a critical alert nobody has acknowledged is posted again to its
//! channels, then to their second contact (see `notify::channels::Announcer::overdue`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Evaluator;
use super::cache::AlertCache;
use crate::Error;
use crate::notify::channels::remindable;

impl Evaluator {
    /// Queues the reminders and escalations that became due since the last full pass; returns
    /// how many. Each is keyed (alert, opening, stage, channel) in the outbox, so a restart or
    /// another leader queues none twice.
    pub(super) async fn remind(
        &mut self,
        tracked: &mut AlertCache,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        let Some(first) = self.announcer.first_due() else {
            return Ok(0);
        };
        let open_critical = |a: &crate::domain::Alert| remindable(a) && a.opened_at <= now - first;
        // Alerts opened by this process are cached without their id until read back.
        let unnamed: Vec<Uuid> = tracked
            .by_terminal
            .values()
            .flatten()
            .filter(|(_, a)| a.id == 0 && open_critical(a))
            .map(|(_, a)| a.terminal_id)
            .collect();
        if !unnamed.is_empty() {
            let stored = self.store.alerts().active_alerts(Some(&unnamed)).await?;
            for s in stored {
                if let Some(list) = tracked.by_terminal.get_mut(&s.terminal_id)
                    && let Some((_, a)) = list.iter_mut().find(|(r, a)| *r == s.rule && a.id == 0)
                {
                    a.id = s.id;
                }
            }
        }
        let mut due = Vec::new();
        let mut keys = HashSet::new();
        for (_, a) in tracked.by_terminal.values().flatten() {
            if !open_critical(a) {
                continue;
            }
            let Some((clinic, _)) = self.clinics.get(&a.clinic_id) else {
                continue;
            };
            let hostname = self.hostnames.get(&a.terminal_id).cloned();
            let hostname = hostname.unwrap_or_else(|| a.terminal_id.to_string());
            for m in self.announcer.overdue(a, clinic, &hostname, now) {
                let Some(key) = m.dedupe_key.clone() else {
                    continue;
                };
                if !self.reminded.contains(&key) {
                    due.push(m);
                }
                keys.insert(key);
            }
        }
        if !due.is_empty() {
            self.store.outbox().enqueue_mails(&due, now).await?;
        }
        // What is no longer due (acknowledged, resolved) is forgotten.
        self.reminded = keys;
        Ok(due.len())
    }
}
