//! Staff authentication: argon2id password hashes, session ids, CSRF tokens and the login
//! throttle. The HTTP side (cookies, extractors, the login page) is in `web::session`.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::Error;

/// Shorter passwords are refused.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with a random salt.
pub fn hash_password(password: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Password(e.to_string()))
}

/// Whether `password` matches the stored hash; a malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Checks a new password against the policy; the message is for the person typing it.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "パスワードは {MIN_PASSWORD_CHARS} 文字以上にしてください"
        ));
    }
    if password.trim() != password {
        return Err("パスワードの前後に空白は使えません".into());
    }
    Ok(())
}

/// A password for a new account: 20 characters from an alphabet without look-alikes
/// (about 115 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A session id or CSRF token: 256 random bits, hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// What is stored for a session id.
pub fn hash_session(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Compares secrets without leaking where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Failed logins per key (an account name or an address) in a fixed window.
#[derive(Debug)]
pub struct LoginThrottle {
    max_per_account: u32,
    max_per_address: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (DateTime<Utc>, u32)>>,
}

impl LoginThrottle {
    pub fn new(max_per_account: u32, window: Duration) -> Self {
        LoginThrottle {
            max_per_account,
            max_per_address: max_per_account.saturating_mul(10),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(account: &str, address: &str) -> [(String, bool); 2] {
        [
            (format!("user:{}", account.trim().to_lowercase()), true),
            (format!("addr:{address}"), false),
        ]
    }

    /// Whether a login for this account from this address may be tried now.
    pub fn allowed(&self, account: &str, address: &str, now: DateTime<Utc>) -> bool {
        let Ok(map) = self.failures.lock() else {
            return false;
        };
        Self::keys(account, address)
            .iter()
            .all(|(key, is_account)| {
                let max = if *is_account {
                    self.max_per_account
                } else {
                    self.max_per_address
                };
                match map.get(key) {
                    Some(&(start, n)) if now - start < self.window => n < max,
                    _ => true,
                }
            })
    }

    pub fn failed(&self, account: &str, address: &str, now: DateTime<Utc>) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, (start, _)| now - *start < window);
        }
        for (key, _) in Self::keys(account, address) {
            let entry = map.entry(key).or_insert((now, 0));
            if now - entry.0 >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// A successful login clears the account's count (not the address's).
    pub fn succeeded(&self, account: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("user:{}", account.trim().to_lowercase()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("correct horse battery stapler", &h));
        assert!(!verify_password("anything", "not a phc string"));
        // A new salt each time.
        assert_ne!(h, hash_password("correct horse battery staple").unwrap());
    }

    #[test]
    fn new_passwords_follow_the_policy() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password(" twelve chars ok ").is_err());
        assert!(check_new_password("十二文字のパスワードです。").is_ok());
        let g = generate_password();
        assert_eq!(g.len(), 20);
        assert!(check_new_password(&g).is_ok());
        assert_ne!(g, generate_password());
    }

    #[test]
    fn secrets_compare_by_value() {
        let s = new_secret();
        assert_eq!(s.len(), 64);
        assert!(same_secret(&s, &s.clone()));
        assert!(!same_secret(&s, &new_secret()));
        assert!(!same_secret("abc", "abcd"));
        assert_eq!(hash_session("x"), hash_session("x"));
        assert_ne!(hash_session("x"), "x");
    }

    #[test]
    fn the_throttle_locks_an_account_then_lets_it_try_after_the_window() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let th = LoginThrottle::new(3, Duration::minutes(15));
        for i in 0..3 {
            assert!(th.allowed("Alice", "10.0.0.1", t0), "attempt {i}");
            th.failed("alice", "10.0.0.1", t0);
        }
        assert!(!th.allowed("alice", "10.0.0.1", t0));
        // Same account from elsewhere: still locked (per account).
        assert!(!th.allowed("ALICE", "10.0.0.2", t0 + Duration::minutes(1)));
        // Another account from the first address: allowed until the address limit.
        assert!(th.allowed("bob", "10.0.0.1", t0));
        assert!(th.allowed("alice", "10.0.0.1", t0 + Duration::minutes(15)));
        th.failed("bob", "10.0.0.9", t0);
        th.succeeded("bob");
        assert!(th.allowed("bob", "10.0.0.9", t0));
    }

    #[test]
    fn the_throttle_limits_one_address_across_accounts() {
        let t0 = Utc::now();
        let th = LoginThrottle::new(2, Duration::minutes(15));
        for i in 0..20 {
            assert!(th.allowed(&format!("user{i}"), "192.0.2.7", t0), "{i}");
            th.failed(&format!("user{i}"), "192.0.2.7", t0);
        }
        assert!(!th.allowed("fresh-user", "192.0.2.7", t0));
        assert!(th.allowed("fresh-user", "192.0.2.8", t0));
    }
}
