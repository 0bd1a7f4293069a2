//! The fleet's most common version of each watched app: what a terminal is expected to run
//! when staff have set nothing.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::Evaluator;
use crate::Error;
use crate::domain::{VersionSource, compare_versions};
use crate::rules::RuleInput;

/// Days a terminal counts for the fleet's most common app version after its last report.
const FLEET_WINDOW: Duration = Duration::days(7);

pub(super) fn tally_versions(
    t: &RuleInput,
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

/// The most common version; on a tie the newest.
pub fn most_common(counts: &HashMap<String, usize>) -> Option<String> {
    counts
        .iter()
        .max_by(|(va, ca), (vb, cb)| ca.cmp(cb).then_with(|| compare_versions(va, vb)))
        .map(|(v, _)| v.clone())
}

impl Evaluator {
    pub(super) async fn update_fleet_versions(
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
            .filter(|r| r.source == VersionSource::Fleet)
            .map(|r| (r.app, r.version))
            .collect();
        for (app, counts) in versions {
            let Some(mode) = most_common(&counts) else {
                continue;
            };
            if stored.get(&app) != Some(&mode) {
                self.store
                    .alerts()
                    .set_fleet_version(&app, &mode, now)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
