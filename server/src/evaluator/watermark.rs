//! How far the evaluator has read the alerts' history, safe when several writers commit out of
//! order.
//!
//! The history's ids come from one counter, but a transaction takes its ids when it writes and
//! shows them when it commits: on PostgreSQL with two writers, id 41 can become visible after
//! id 42. A reader that remembered "everything up to 42" would never see 41: the staff action
//! behind it would be missing from the evaluator's alert cache until the next restart. So the
//! watermark remembers the ids it has not seen below the highest one it has (the gaps), reads
//! from below the lowest gap again on every pass, and gives a gap up only after [`GAP_WAIT`]
//! (a rolled-back transaction or a deleted row leaves a gap that never fills). Reading an entry
//! twice is harmless (the cache reloads the alert's current row) and is avoided anyway.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use crate::store::alerts::HistoryHead;

/// How long a gap in the history's ids is waited for: longer than any transaction of the
/// server's (a bulk action on 50,000 alerts commits in seconds).
pub(crate) const GAP_WAIT: Duration = Duration::minutes(15);

/// How many ids below the newest one a fresh watermark reads again on its first read: the
/// entries of transactions that were still open while the cache was loaded.
pub(crate) const START_OVERLAP: i64 = 100_000;

/// More gaps than this are read as one range from the lowest.
const MAX_GAP_READS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gap {
    lo: i64,
    hi: i64,
    since: DateTime<Utc>,
}

#[derive(Debug)]
pub(crate) struct Watermark {
    /// Every id at or below this was seen or given up.
    floor: i64,
    /// Ids above `floor` already seen.
    seen: BTreeSet<i64>,
    /// Ids above `floor` not seen although a higher one was, in ascending order.
    gaps: Vec<Gap>,
}

impl Watermark {
    /// A watermark for a cache loaded after the history's newest id was `newest`: the ids just
    /// below it count as not seen yet, and wait like gaps.
    pub(crate) fn starting_at(newest: i64, now: DateTime<Utc>) -> Self {
        let floor = (newest - START_OVERLAP).max(0);
        let gaps = if newest > floor {
            vec![Gap {
                lo: floor + 1,
                hi: newest,
                since: now,
            }]
        } else {
            Vec::new()
        };
        Watermark {
            floor,
            seen: BTreeSet::new(),
            gaps,
        }
    }

    /// The id ranges (inclusive) the next read asks for: every gap, and everything above the
    /// highest id seen. Many gaps (a burst of rolled-back transactions) are read as one range.
    pub(crate) fn reads(&self) -> Vec<(i64, i64)> {
        let above = (self.top() + 1, i64::MAX);
        if self.gaps.len() > MAX_GAP_READS {
            return vec![(self.floor + 1, i64::MAX)];
        }
        let mut out: Vec<(i64, i64)> = self.gaps.iter().map(|g| (g.lo, g.hi)).collect();
        out.push(above);
        out
    }

    /// Every id at or below this was seen or given up.
    #[cfg(test)]
    fn read_after(&self) -> i64 {
        self.floor
    }

    /// Takes in what a read of [`Self::reads`] returned (in any order) and returns the ones not seen before. Gaps older than [`GAP_WAIT`] are given up.
    pub(crate) fn take<'a>(
        &mut self,
        read: &'a [HistoryHead],
        now: DateTime<Utc>,
    ) -> Vec<&'a HistoryHead> {
        let mut fresh: Vec<&HistoryHead> = read
            .iter()
            .filter(|h| h.id > self.floor && !self.seen.contains(&h.id))
            .collect();
        fresh.sort_unstable_by_key(|h| h.id);
        fresh.dedup_by_key(|h| h.id);
        let mut top = self.top();
        for h in &fresh {
            if h.id > top {
                if h.id > top + 1 {
                    self.gaps.push(Gap {
                        lo: top + 1,
                        hi: h.id - 1,
                        since: now,
                    });
                }
                top = h.id;
            } else {
                self.fill(h.id);
            }
            self.seen.insert(h.id);
        }
        self.gaps.retain(|g| now - g.since < GAP_WAIT);
        self.advance();
        fresh
    }

    /// The highest id seen or waited for.
    fn top(&self) -> i64 {
        let seen = self.seen.last().copied().unwrap_or(self.floor);
        let waited = self.gaps.last().map_or(self.floor, |g| g.hi);
        seen.max(waited)
    }

    /// Takes an id that arrived late out of its gap.
    fn fill(&mut self, id: i64) {
        let Some(i) = self.gaps.iter().position(|g| g.lo <= id && id <= g.hi) else {
            return;
        };
        let g = self.gaps.remove(i);
        let mut parts = Vec::with_capacity(2);
        if g.lo < id {
            parts.push(Gap { hi: id - 1, ..g });
        }
        if id < g.hi {
            parts.push(Gap { lo: id + 1, ..g });
        }
        for (k, p) in parts.into_iter().enumerate() {
            self.gaps.insert(i + k, p);
        }
    }

    /// Moves the floor up to just below the lowest gap (or to the highest id seen) and forgets
    /// the seen ids below it.
    fn advance(&mut self) {
        let floor = match self.gaps.first() {
            Some(g) => g.lo - 1,
            None => self.top(),
        };
        if floor > self.floor {
            self.floor = floor;
            self.seen = self.seen.split_off(&(floor + 1));
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> Vec<(i64, i64)> {
        self.gaps.iter().map(|g| (g.lo, g.hi)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: i64) -> HistoryHead {
        HistoryHead {
            id,
            alert_id: id * 10,
            by_staff: true,
        }
    }

    fn ids(v: Vec<&HistoryHead>) -> Vec<i64> {
        v.into_iter().map(|h| h.id).collect()
    }

    /// What a reader sees of a history whose ids were taken in one order and committed in
    /// another: every committed entry above `after`.
    fn read(committed: &[i64], after: i64) -> Vec<HistoryHead> {
        committed
            .iter()
            .filter(|&&id| id > after)
            .map(|&id| head(id))
            .collect()
    }

    /// What the store returns for the watermark's ranges.
    fn read_ranges(committed: &[i64], w: &Watermark) -> Vec<HistoryHead> {
        let ranges = w.reads();
        committed
            .iter()
            .filter(|&&id| ranges.iter().any(|&(lo, hi)| lo <= id && id <= hi))
            .map(|&id| head(id))
            .collect()
    }

    #[test]
    fn an_entry_committed_after_a_higher_one_is_not_missed() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut w = Watermark::starting_at(40, t0);
        // The cache was loaded with everything up to 40 committed.
        let mut committed: Vec<i64> = (1..=40).collect();
        assert_eq!(w.take(&read_ranges(&committed, &w), t0).len(), 40);
        assert_eq!(w.read_after(), 40);
        // Writer A takes id 41 (a desk user acknowledging), writer B takes 42 and commits first.
        committed.push(42);
        let t1 = t0 + Duration::seconds(5);
        assert_eq!(ids(w.take(&read_ranges(&committed, &w), t1)), vec![42]);
        assert_eq!(w.waiting(), vec![(41, 41)]);
        assert_eq!(w.read_after(), 40, "the next read starts below the gap");
        // A commits.
        committed.push(41);
        let t2 = t1 + Duration::seconds(5);
        assert_eq!(ids(w.take(&read_ranges(&committed, &w), t2)), vec![41]);
        assert_eq!(w.read_after(), 42);
        assert!(w.waiting().is_empty());
        // Nothing is handed out twice.
        assert!(w.take(&read_ranges(&committed, &w), t2).is_empty());
    }

    #[test]
    fn a_mark_as_before_misses_the_late_entry() {
        // The old way: remember the highest id read, read above it next time.
        let mut committed = vec![1, 2, 4];
        let mark = *committed.iter().max().unwrap();
        committed.push(3);
        assert!(read(&committed, mark).is_empty());
        // The watermark, fed the same reads, hands 3 out.
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut w = Watermark::starting_at(0, t0);
        assert_eq!(ids(w.take(&read_ranges(&[1, 2, 4], &w), t0)), vec![1, 2, 4]);
        assert_eq!(ids(w.take(&read_ranges(&committed, &w), t0)), vec![3]);
    }

    #[test]
    fn a_gap_that_never_fills_is_given_up_after_the_wait() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut w = Watermark::starting_at(0, t0);
        // 3..=5 rolled back.
        assert_eq!(w.take(&read_ranges(&[1, 2, 6, 7], &w), t0).len(), 4);
        assert_eq!(w.waiting(), vec![(3, 5)]);
        assert_eq!(w.read_after(), 2);
        let later = t0 + GAP_WAIT - Duration::seconds(1);
        assert!(w.take(&read_ranges(&[1, 2, 6, 7], &w), later).is_empty());
        assert_eq!(w.read_after(), 2);
        let expired = t0 + GAP_WAIT;
        assert!(w.take(&read_ranges(&[1, 2, 6, 7, 8], &w), expired).len() == 1);
        assert_eq!(w.read_after(), 8);
        assert!(w.waiting().is_empty());
    }

    #[test]
    fn a_fresh_watermark_waits_for_entries_below_the_newest() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        // Loaded when the newest committed id was 500,000; 499,990 was still being written.
        let mut w = Watermark::starting_at(500_000, t0);
        let first: Vec<i64> = (400_001..=500_000).filter(|&i| i != 499_990).collect();
        assert_eq!(w.take(&read_ranges(&first, &w), t0).len(), first.len());
        assert_eq!(w.waiting(), vec![(499_990, 499_990)]);
        let mut all = first.clone();
        all.push(499_990);
        assert_eq!(ids(w.take(&read_ranges(&all, &w), t0)), vec![499_990]);
        assert_eq!(w.read_after(), 500_000);
    }

    #[test]
    fn several_gaps_fill_in_any_order() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut w = Watermark::starting_at(0, t0);
        w.take(&read_ranges(&[1, 3, 6, 10], &w), t0);
        assert_eq!(w.waiting(), vec![(2, 2), (4, 5), (7, 9)]);
        assert_eq!(ids(w.take(&read_ranges(&[8, 4], &w), t0)), vec![4, 8]);
        assert_eq!(w.waiting(), vec![(2, 2), (5, 5), (7, 7), (9, 9)]);
        assert_eq!(w.read_after(), 1);
        w.take(&read_ranges(&[2, 5, 7, 9], &w), t0);
        assert!(w.waiting().is_empty());
        assert_eq!(w.read_after(), 10);
    }
}
