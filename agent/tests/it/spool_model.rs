//! A model test of the spool, in the manner of vector's disk buffer model tests: random
//! sequences of append / peek / ack / discard / reopen / enforce-limits run against the real
//! spool on disk and against a plain in-memory queue with the same rules; after every step both
//! must hold the same events, in the same order, with the same drop count.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onshi_agent::spool::{Spool, SpoolLimits};
use onshi_shared::{AccountChange, AccountRole, Event, EventKind, Validate};
use proptest::prelude::*;
use uuid::Uuid;

/// The record header the spool writes before each event's JSON.
const HEADER: u64 = 8;

/// One event to append: how many days old, whether informational, how long a name it carries.
#[derive(Debug, Clone)]
struct NewEvent {
    /// Ages stay far from the 30-day limit (≤ 5 or ≥ 35 days) so the test's clock and the
    /// spool's never disagree about which side an event is on.
    age_days: i64,
    informational: bool,
    name_len: usize,
    /// A deliberately invalid event (an id that is not a UUIDv7): dropped and counted.
    invalid: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<NewEvent>),
    Peek(usize),
    Ack(usize),
    Discard(usize),
    Reopen,
    EnforceLimits,
}

fn new_event() -> impl Strategy<Value = NewEvent> {
    (
        prop_oneof![0i64..=5, 35i64..=40],
        any::<bool>(),
        0usize..120,
        prop::bool::weighted(0.05),
    )
        .prop_map(|(age_days, informational, name_len, invalid)| NewEvent {
            age_days,
            informational,
            name_len,
            invalid,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(new_event(), 0..6).prop_map(Op::Append),
        2 => (0usize..8).prop_map(Op::Peek),
        3 => (0usize..6).prop_map(Op::Ack),
        1 => (0usize..3).prop_map(Op::Discard),
        1 => Just(Op::Reopen),
        1 => Just(Op::EnforceLimits),
    ]
}

fn event(e: &NewEvent, now: DateTime<Utc>) -> Event {
    let kind = if e.informational {
        EventKind::AgentStarted {
            version: "v".repeat(e.name_len.max(1)),
        }
    } else {
        EventKind::AccountChanged {
            role: AccountRole::Linkage,
            name: "n".repeat(e.name_len.max(1)),
            change: AccountChange::PasswordChanged,
        }
    };
    Event {
        id: if e.invalid {
            Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef)
        } else {
            Uuid::now_v7()
        },
        at: now - chrono::Duration::days(e.age_days),
        kind,
    }
}

/// The reference: a queue and a counter, with the spool's documented rules.
struct Model {
    queue: VecDeque<Event>,
    dropped: u64,
    limits: SpoolLimits,
}

fn size(e: &Event) -> u64 {
    HEADER + serde_json::to_vec(e).unwrap().len() as u64
}

impl Model {
    fn append(&mut self, events: &[Event], now: DateTime<Utc>) {
        for e in events {
            if e.validate().is_ok() {
                self.queue.push_back(e.clone());
            } else {
                self.dropped += 1;
            }
        }
        self.enforce(now);
    }

    /// Everything older than the age limit, then (while over the size limit) the oldest
    /// informational events, then the oldest others.
    fn enforce(&mut self, now: DateTime<Utc>) {
        let max_age = chrono::Duration::from_std(self.limits.max_age).unwrap();
        let mut doomed: Vec<bool> = self.queue.iter().map(|e| e.at < now - max_age).collect();
        let mut total: u64 = self
            .queue
            .iter()
            .zip(&doomed)
            .filter(|(_, d)| !**d)
            .map(|(e, _)| size(e))
            .sum();
        for informational in [true, false] {
            for (e, d) in self.queue.iter().zip(doomed.iter_mut()) {
                if total <= self.limits.max_bytes {
                    break;
                }
                if !*d && e.kind.is_informational() == informational {
                    *d = true;
                    total -= size(e);
                }
            }
        }
        self.dropped += doomed.iter().filter(|d| **d).count() as u64;
        let mut keep = doomed.iter().map(|d| !d);
        self.queue.retain(|_| keep.next().unwrap_or(true));
    }

    fn take(&mut self, n: usize) -> usize {
        let n = n.min(self.queue.len());
        self.queue.drain(..n);
        n
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let limits = SpoolLimits {
        max_bytes: 2_000,
        max_age: Duration::from_secs(30 * 86_400),
    };
    let mut spool = Some(Spool::open(dir.path(), limits).unwrap());
    let mut model = Model {
        queue: VecDeque::new(),
        dropped: 0,
        limits,
    };
    for op in ops {
        let s = spool.as_mut().unwrap();
        let now = Utc::now();
        match &op {
            Op::Append(new) => {
                let events: Vec<Event> = new.iter().map(|e| event(e, now)).collect();
                s.append(&events).unwrap();
                model.append(&events, now);
            }
            Op::Peek(n) => {
                let got = s.peek(*n).unwrap();
                let want: Vec<Event> = model.queue.iter().take(*n).cloned().collect();
                prop_assert_eq!(got, want, "peek {}", n);
            }
            Op::Ack(n) => {
                s.ack(*n).unwrap();
                model.take(*n);
            }
            Op::Discard(n) => {
                s.discard(*n).unwrap();
                model.dropped += model.take(*n) as u64;
            }
            Op::Reopen => {
                drop(spool.take());
                spool = Some(reopen(dir.path(), limits));
                model.enforce(Utc::now());
            }
            Op::EnforceLimits => {
                s.enforce_limits(now).unwrap();
                model.enforce(now);
            }
        }
        let s = spool.as_ref().unwrap();
        prop_assert_eq!(s.len(), model.queue.len(), "after {:?}", op);
        prop_assert_eq!(s.dropped(), model.dropped, "after {:?}", op);
        prop_assert_eq!(
            s.pending_bytes(),
            model.queue.iter().map(size).sum::<u64>(),
            "after {:?}",
            op
        );
        let all = s.peek(usize::MAX).unwrap();
        prop_assert!(
            all.iter().eq(model.queue.iter()),
            "the spool holds {:?} events, the model {:?}",
            all.len(),
            model.queue.len()
        );
    }
    // Whatever happened, a reopened spool still holds exactly the model's events.
    drop(spool);
    let reopened = reopen(dir.path(), limits);
    prop_assert_eq!(reopened.peek(usize::MAX).unwrap(), Vec::from(model.queue));
    Ok(())
}

/// Opens the spool again after dropping it. A process another test of this binary starts at
/// that moment holds a copy of the lock file's descriptor until it executes its program (the
/// descriptor is close-on-exec), so the lock may still be taken for an instant: wait for it, as
/// a restarted agent would never need to.
fn reopen(dir: &std::path::Path, limits: SpoolLimits) -> Spool {
    for _ in 0..200 {
        match Spool::open(dir, limits) {
            Err(onshi_agent::AgentError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other.unwrap(),
        }
    }
    panic!("the spool stayed locked for 2 s after it was closed");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_spool_behaves_like_a_queue_with_limits(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
