//! The alerts findings are compared with, kept between passes.

use std::collections::HashMap;

use uuid::Uuid;

use super::Evaluator;
use crate::Error;
use crate::domain::{Alert, RuleKey};

/// Every tracked alert by terminal (see [`Alert::tracked`]), loaded once and then kept up to
/// date from the evaluator's own changes and from the history of what staff did.
pub(super) struct AlertCache {
    pub(super) by_terminal: HashMap<Uuid, Vec<(RuleKey, Alert)>>,
    /// The newest history entry already applied.
    mark: i64,
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
}
