//! What clients without a valid token may cost: refused enrollment codes and agent tokens are
//! counted per client address (past the limit the address gets 429 and costs no database
//! lookup), and unauthenticated bodies (enrollment, login) are read a few at a time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client::ClientAddr;
use super::{ApiFailure, AppState};

/// Refusals per client address in one-minute windows.
#[derive(Debug)]
pub struct Refusals {
    per_minute: u32,
    started: Instant,
    /// address → (minute since `started`, refusals in that minute)
    counts: Mutex<HashMap<String, (u64, u32)>>,
}

/// Addresses remembered before the stale ones are forgotten.
const MAX_ADDRESSES: usize = 100_000;

impl Refusals {
    pub fn new(per_minute: u32) -> Refusals {
        Refusals {
            per_minute,
            started: Instant::now(),
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn minute(&self) -> (u64, u64) {
        let secs = self.started.elapsed().as_secs();
        (secs / 60, 60 - secs % 60)
    }

    /// `Some(seconds to wait)` when the address is over the limit this minute.
    pub fn over(&self, address: &str) -> Option<u64> {
        let (minute, left) = self.minute();
        let counts = self.counts.lock().ok()?;
        counts
            .get(address)
            .filter(|(m, n)| *m == minute && *n >= self.per_minute)
            .map(|_| left)
    }

    /// Counts one refusal for the address.
    pub fn refused(&self, address: &str) {
        let (minute, _) = self.minute();
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        if counts.len() > MAX_ADDRESSES {
            counts.retain(|_, (m, _)| *m == minute);
        }
        let entry = counts.entry(address.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// A token bucket per API token: `per_minute` requests at once, refilled evenly over the
/// minute (GitHub's and GitLab's API limits work this way).
pub struct Buckets {
    per_minute: u32,
    /// token id → (requests left, when that was counted)
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl Buckets {
    pub fn new(per_minute: u32) -> Buckets {
        Buckets {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `key`, or says in how many seconds one is free.
    pub fn take(&self, key: i64) -> Result<(), u64> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: i64, now: Instant) -> Result<(), u64> {
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > MAX_ADDRESSES {
            buckets.clear();
        }
        let (left, at) = buckets.entry(key).or_insert((capacity, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * per_sec;
        *left = (*left + refill).min(capacity);
        *at = now;
        if *left >= 1.0 {
            *left -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *left) / per_sec).ceil() as u64).max(1))
        }
    }
}

/// 429 for an address past its refusals, before anything is read or looked up.
pub fn refuse_if_over(state: &AppState, address: &str) -> Result<(), ApiFailure> {
    match state.refusals.over(address) {
        Some(wait) => Err(ApiFailure::too_many(
            "too many refused enrollment codes or agent tokens from this address; wait",
            wait,
        )),
        None => Ok(()),
    }
}

/// Gates a route whose body is read before anyone is authenticated (enrollment, login): an
/// address past its refusals gets 429 at once (enrollment), and at most `[limits]
/// unauthenticated_bodies` such bodies are read at a time (503 at once past it), so held-open
/// uploads cannot hold memory.
pub async fn unauthenticated_body(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/api/")
        && let Err(refusal) = refuse_if_over(&state, &address)
    {
        return refusal.into_response();
    }
    let Ok(_permit) = state.body_permits.clone().try_acquire_owned() else {
        tracing::warn!(%address, "unauthenticated request refused: too many bodies being read");
        return ApiFailure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many requests are being read; try again shortly",
        )
        .retry_after(1)
        .into_response();
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_alone_and_for_the_rest_of_the_minute() {
        let r = Refusals::new(3);
        for _ in 0..3 {
            assert_eq!(r.over("192.0.2.1"), None);
            r.refused("192.0.2.1");
        }
        let wait = r.over("192.0.2.1").unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(r.over("192.0.2.2"), None, "others are not affected");
    }

    #[test]
    fn a_token_has_its_burst_then_waits_for_the_refill() {
        let b = Buckets::new(60);
        let start = Instant::now();
        for _ in 0..60 {
            assert_eq!(b.take_at(7, start), Ok(()));
        }
        assert_eq!(b.take_at(7, start), Err(1), "one a second comes back");
        assert_eq!(b.take_at(8, start), Ok(()), "another token is not affected");
        let later = start + std::time::Duration::from_millis(2_500);
        assert_eq!(b.take_at(7, later), Ok(()));
        assert_eq!(b.take_at(7, later), Ok(()));
        assert!(b.take_at(7, later).is_err());
        let slow = Buckets::new(6);
        for _ in 0..6 {
            assert_eq!(slow.take_at(1, start), Ok(()));
        }
        assert_eq!(
            slow.take_at(1, start),
            Err(10),
            "6 a minute: one every 10 s"
        );
    }
}
