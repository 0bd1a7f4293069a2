//! What the rules read of each terminal, and what a pass keeps of it between passes: parsed
//! snapshot bodies by content hash and account records by version. The store hands out each
//! terminal's head (times, body hash, record version); only bodies and records whose stamp
//! changed are fetched, and bodies are parsed here, once per change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use onshi_shared::Snapshot;
use uuid::Uuid;

use crate::Error;
use crate::rules::{AccountRecord, RuleInput};
use crate::store::alerts::{AlertStore, InputSelection, TerminalSpan};

type Stamped<T> = HashMap<Uuid, (i64, T)>;

#[derive(Debug, Default)]
pub struct InputCache {
    snapshots: Mutex<Stamped<Arc<Snapshot>>>,
    accounts: Mutex<Stamped<AccountRecord>>,
}

fn locked<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, Error> {
    m.lock()
        .map_err(|_| Error::Corrupt("evaluator cache poisoned".into()))
}

impl InputCache {
    /// Forgets the terminals `keep` says no.
    pub fn retain(&self, keep: impl Fn(&Uuid) -> bool) {
        if let Ok(mut s) = self.snapshots.lock() {
            s.retain(|id, _| keep(id));
        }
        if let Ok(mut a) = self.accounts.lock() {
            a.retain(|id, _| keep(id));
        }
    }

    /// How many parsed bodies are kept.
    pub fn bodies_held(&self) -> usize {
        self.snapshots.lock().map_or(0, |s| s.len())
    }

    /// Keeps account records just stored (the evaluator's own baselines).
    pub fn remember_accounts(&self, records: Vec<(Uuid, AccountRecord)>) -> Result<(), Error> {
        let mut known = locked(&self.accounts)?;
        for (id, record) in records {
            known.insert(id, (record.version, record));
        }
        Ok(())
    }

    /// The rule inputs of the selected terminals, in id order.
    pub async fn load(
        &self,
        store: &dyn AlertStore,
        selection: InputSelection<'_>,
        events_since: DateTime<Utc>,
    ) -> Result<Vec<RuleInput>, Error> {
        let heads = store.terminal_heads(selection).await?;
        let (Some(first), Some(last)) = (heads.first(), heads.last()) else {
            return Ok(Vec::new());
        };
        let span = match selection {
            InputSelection::Page { .. } => {
                TerminalSpan::Between(first.terminal_id, last.terminal_id)
            }
            InputSelection::Ids(ids) => TerminalSpan::Ids(ids),
        };
        // Account records the cache does not hold at their version (0: none stored yet).
        let stale: Vec<Uuid> = {
            let known = locked(&self.accounts)?;
            heads
                .iter()
                .filter(|h| {
                    h.accounts_version > 0
                        && known.get(&h.terminal_id).map(|k| k.0) != Some(h.accounts_version)
                })
                .map(|h| h.terminal_id)
                .collect()
        };
        if !stale.is_empty() {
            self.remember_accounts(store.account_records(&stale).await?)?;
        }
        // Bodies the cache does not hold at their hash.
        let stale: Vec<Uuid> = {
            let known = locked(&self.snapshots)?;
            heads
                .iter()
                .filter(|h| {
                    h.body.is_some_and(|(_, hash)| {
                        known.get(&h.terminal_id).map(|k| k.0) != Some(hash)
                    })
                })
                .map(|h| h.terminal_id)
                .collect()
        };
        if !stale.is_empty() {
            let mut parsed = Vec::with_capacity(stale.len());
            for (id, hash, body) in store.snapshot_bodies(&stale).await? {
                let mut snapshot: Snapshot = serde_json::from_str(&body)?;
                crate::rules::slim_for_rules(&mut snapshot);
                parsed.push((id, hash, Arc::new(snapshot)));
            }
            let mut known = locked(&self.snapshots)?;
            for (id, hash, snapshot) in parsed {
                known.insert(id, (hash, snapshot));
            }
        }
        let extras = store.rule_extras(span, events_since).await?;
        let mut states = Vec::with_capacity(heads.len());
        let mut index = HashMap::with_capacity(heads.len());
        {
            let known = locked(&self.snapshots)?;
            let records = locked(&self.accounts)?;
            for h in heads {
                let snapshot = h.body.and(known.get(&h.terminal_id).map(|k| k.1.clone()));
                // Version 0, or a record that vanished between the queries: nothing stored.
                let accounts = match records.get(&h.terminal_id) {
                    Some((v, record)) if *v == h.accounts_version => record.clone(),
                    _ => AccountRecord {
                        version: h.accounts_version,
                        ..AccountRecord::default()
                    },
                };
                index.insert(h.terminal_id, states.len());
                states.push(RuleInput {
                    terminal_id: h.terminal_id,
                    clinic_id: h.clinic_id,
                    enrolled_at: h.enrolled_at,
                    last_seen: h.last_seen,
                    collected_at: h.body.map(|b| b.0).unwrap_or_default(),
                    snapshot,
                    events: Vec::new(),
                    own_accounts: None,
                    accounts,
                });
            }
        }
        for (id, mut specs) in extras.own_accounts {
            if let Some(&i) = index.get(&id) {
                specs.sort_by_key(|s| s.role);
                states[i].own_accounts = Some(Arc::new(specs));
            }
        }
        for (id, event) in extras.events {
            if let Some(&i) = index.get(&id) {
                states[i].events.push(event);
            }
        }
        Ok(states)
    }
}
