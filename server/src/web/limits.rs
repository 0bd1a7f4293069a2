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
}
