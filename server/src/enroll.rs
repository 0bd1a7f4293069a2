//! Enrollment codes and agent tokens: generation, hashing, and the token cache that keeps
//! authentication off the database on the hot path.

use std::collections::HashMap;
use std::sync::RwLock;

use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Error;
use crate::store::{AgentAuth, Store};

/// Letters an installer can type without confusion (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A new enrollment code, e.g. `K7QX-M2TA-9PZD`: 12 symbols, about 59 bits.
pub fn new_code() -> String {
    let mut rng = rand::rng();
    let symbols: Vec<char> = (0..12)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    symbols
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Codes are compared case- and dash-insensitively: installers read them over the phone.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

pub fn hash_code(code: &str) -> String {
    hex::encode(Sha256::digest(normalize_code(code).as_bytes()))
}

/// A new agent token: 256 random bits, hex. Shown once; only [`hash_token`] is stored.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Tokens are 256-bit random values, so a fast hash is enough (no password stretching needed).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Valid agent tokens by hash. Filled on first use; revocation removes entries.
#[derive(Default)]
pub struct TokenCache {
    by_hash: RwLock<HashMap<String, AgentAuth>>,
}

impl TokenCache {
    /// Loads every active token, so authentication never waits on the database.
    pub async fn preload(store: &dyn Store) -> Result<TokenCache, Error> {
        let tokens = store.active_tokens().await?;
        tracing::info!(tokens = tokens.len(), "agent tokens loaded");
        Ok(TokenCache {
            by_hash: RwLock::new(tokens.into_iter().collect()),
        })
    }

    /// Looks a token up, in memory first, then in the store. Revoked tokens are not cached.
    /// Remembers a token just issued (enrollment), so its agent is known without a lookup.
    pub fn remember(&self, token_hash: String, auth: AgentAuth) {
        self.write().insert(token_hash, auth);
    }

    /// The agent of a token this cache already holds (no database lookup).
    pub fn cached(&self, token: &str) -> Option<AgentAuth> {
        self.read().get(&hash_token(token)).copied()
    }

    pub async fn lookup(&self, store: &dyn Store, token: &str) -> Result<Option<AgentAuth>, Error> {
        let hash = hash_token(token);
        if let Some(auth) = self.read().get(&hash) {
            return Ok(Some(*auth));
        }
        let found = store.agent_by_token(&hash).await?;
        if let Some(auth) = found.filter(|a| !a.revoked) {
            self.write().insert(hash, auth);
        }
        Ok(found)
    }

    /// Drops revoked terminals from the cache every `every`, so a revocation made by the CLI or
    /// another replica takes effect without a restart.
    pub async fn follow_revocations(
        self: std::sync::Arc<Self>,
        store: std::sync::Arc<dyn Store>,
        every: std::time::Duration,
    ) {
        // Look back one period more than needed: clocks of writers may differ slightly.
        let mut since = chrono::Utc::now() - every * 2;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = chrono::Utc::now();
            match store.revoked_since(since).await {
                Ok(ids) => {
                    for id in ids {
                        self.forget(id);
                    }
                    since = now - every;
                }
                Err(e) => tracing::warn!(error = %e, "checking for revoked terminals failed"),
            }
        }
    }

    pub fn forget(&self, terminal_id: Uuid) {
        self.write().retain(|_, a| a.terminal_id != terminal_id);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, AgentAuth>> {
        self.by_hash.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, AgentAuth>> {
        self.by_hash.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readable_and_normalised() {
        let code = new_code();
        assert_eq!(code.len(), 14);
        assert_eq!(code.matches('-').count(), 2);
        assert_eq!(
            hash_code(&code),
            hash_code(&code.to_lowercase().replace('-', " "))
        );
        assert_ne!(hash_code(&code), hash_code(&new_code()));
    }

    #[test]
    fn tokens_are_256_bit_and_hash_stably() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert_eq!(hash_token(&t), hash_token(&t));
        assert_ne!(hash_token(&t), t);
    }
}
