//! The alerts findings are compared with, kept between passes.

use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;

use super::Evaluator;
use super::watermark::Watermark;
use crate::Error;
use crate::domain::{Alert, RuleKey};

/// Every tracked alert by terminal (see [`Alert::tracked`]), loaded once and then kept up to
/// date from the evaluator's own changes and from the history of what staff did.
pub(super) struct AlertCache {
    pub(super) by_terminal: HashMap<Uuid, Vec<(RuleKey, Alert)>>,
    /// What of the alerts' history has been applied.
    history: Watermark,
}

impl AlertCache {
    /// Replaces what the cache holds for this alert's (terminal, rule).
    fn put(&mut self, alert: Alert) {
        let rule = alert.rule;
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

/// Unresolved alerts by terminal, each with its rule, so a terminal costs one map lookup.
pub(super) fn by_rule(alerts: Vec<Alert>) -> HashMap<Uuid, Vec<(RuleKey, Alert)>> {
    let mut out: HashMap<Uuid, Vec<(RuleKey, Alert)>> = HashMap::new();
    for a in alerts {
        out.entry(a.terminal_id).or_default().push((a.rule, a));
    }
    out
}

impl Evaluator {
    /// Takes the alert cache out for a pass, loading it or applying what staff changed since
    /// the last pass. The pass puts it back only when all its writes succeeded.
    pub(super) async fn take_alerts(&mut self) -> Result<AlertCache, Error> {
        let a = self.store.alerts();
        match self.alerts.take() {
            None => {
                // The mark first: a change made while loading is applied again next time
                // (harmless), never missed; the watermark also reads the entries just below
                // the mark again, for transactions still open while it was taken.
                let mark = a.history_mark().await?;
                Ok(AlertCache {
                    by_terminal: by_rule(a.active_alerts(None).await?),
                    history: Watermark::starting_at(mark, Utc::now()),
                })
            }
            Some(mut cache) => {
                let read = a.history_heads(&cache.history.reads()).await?;
                let mut changed: Vec<i64> = cache
                    .history
                    .take(&read, Utc::now())
                    .into_iter()
                    .filter(|h| h.by_staff)
                    .map(|h| h.alert_id)
                    .collect();
                changed.sort_unstable();
                changed.dedup();
                if !changed.is_empty() {
                    for alert in a.alerts_by_id(&changed).await? {
                        cache.put(alert);
                    }
                }
                Ok(cache)
            }
        }
    }
}
