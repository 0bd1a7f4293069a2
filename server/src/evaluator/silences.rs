//! The silences in force, indexed by what they cover: a pass asks for one terminal's in a few
//! map lookups, however many clinics have a maintenance window.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{RuleKey, Silence, SilenceScope, SilenceTarget};

#[derive(Debug, Default)]
pub struct SilenceIndex {
    all: Vec<Silence>,
    terminal: HashMap<Uuid, Vec<usize>>,
    clinic: HashMap<i64, Vec<usize>>,
    prefecture: HashMap<String, Vec<usize>>,
    fleet: Vec<usize>,
}

impl SilenceIndex {
    pub fn new(all: Vec<Silence>) -> SilenceIndex {
        let mut index = SilenceIndex::default();
        for (i, s) in all.iter().enumerate() {
            match &s.scope {
                SilenceScope::Terminal(id) => index.terminal.entry(*id).or_default().push(i),
                SilenceScope::Clinic(id) => index.clinic.entry(*id).or_default().push(i),
                SilenceScope::Prefecture(p) => {
                    index.prefecture.entry(p.clone()).or_default().push(i)
                }
                SilenceScope::Fleet => index.fleet.push(i),
            }
        }
        index.all = all;
        index
    }

    /// The silences that hold back the target's mail at `now` (their daily windows included).
    pub fn in_force(&self, t: &SilenceTarget<'_>, now: DateTime<Utc>) -> Vec<&Silence> {
        fn of(v: Option<&Vec<usize>>) -> &[usize] {
            v.map_or(&[], Vec::as_slice)
        }
        of(self.terminal.get(&t.terminal_id))
            .iter()
            .chain(of(self.clinic.get(&t.clinic_id)))
            .chain(of(t.prefecture.and_then(|p| self.prefecture.get(p))))
            .chain(&self.fleet)
            .map(|&i| &self.all[i])
            .filter(|s| s.active_at(now))
            .collect()
    }

    /// Whether a silence holds back the target's mail for `rule` at `now`.
    pub fn covers(&self, t: &SilenceTarget<'_>, rule: RuleKey, now: DateTime<Utc>) -> bool {
        self.in_force(t, now)
            .iter()
            .any(|s| s.rule.is_none_or(|r| r == rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_target_finds_its_own_its_clinics_its_prefectures_and_the_fleets() {
        let now = Utc::now();
        let t = Uuid::now_v7();
        let silence = |id, scope, rule| Silence {
            id,
            scope,
            rule,
            starts_at: now - Duration::hours(1),
            ends_at: now + Duration::hours(1),
            daily: None,
            reason: String::new(),
            created_by: String::new(),
            ended_by: None,
        };
        let index = SilenceIndex::new(vec![
            silence(1, SilenceScope::Terminal(t), None),
            silence(2, SilenceScope::Terminal(Uuid::now_v7()), None),
            silence(3, SilenceScope::Clinic(7), Some(RuleKey::Offline)),
            silence(4, SilenceScope::Clinic(8), None),
            silence(5, SilenceScope::Prefecture("東京都".into()), None),
            silence(6, SilenceScope::Fleet, Some(RuleKey::NoDailyRestart)),
        ]);
        let target = SilenceTarget {
            terminal_id: t,
            clinic_id: 7,
            prefecture: Some("東京都"),
        };
        let mut ids: Vec<i64> = index.in_force(&target, now).iter().map(|s| s.id).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 3, 5, 6]);
        let elsewhere = SilenceTarget {
            terminal_id: Uuid::now_v7(),
            clinic_id: 7,
            prefecture: None,
        };
        assert!(index.covers(&elsewhere, RuleKey::Offline, now));
        assert!(!index.covers(&elsewhere, RuleKey::CertExpiry, now));
        assert!(index.in_force(&target, now + Duration::hours(2)).is_empty());
    }
}
