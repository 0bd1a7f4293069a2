//! How the ingest writer tells the evaluator which terminals to look at soon.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;
use uuid::Uuid;

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
