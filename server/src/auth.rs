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

/// Login attempts, counted before the password is checked (OWASP ASVS 2.2.1).
///
/// Keys are an account, and an (account, client address) pair; never an address alone, so one
/// address (a reverse proxy all staff share) cannot lock the desk out. A pair may fail
/// `max_failures` times; after that each attempt waits a delay that doubles with every
/// further failure, up to `max_delay`. An account that has failed `account_max` times across
/// addresses is under attack: each of its pairs may then fail only once before the delay, so
/// an attacker needs a fresh address per guess, while its owner, from an address that has not
/// failed, still gets through with the right password. A success clears the account's counts.
/// Counts are forgotten after a day without failures.
#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: u32,
    account_max: u32,
    base_delay: Duration,
    max_delay: Duration,
    forget_after: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
}

/// How many keys the throttle keeps before it forgets the stale ones.
const MAX_KEYS: usize = 100_000;

impl LoginThrottle {
    /// `max_failures` per (account, address) before the delay, which grows to `max_delay`.
    pub fn new(max_failures: u32, max_delay: Duration) -> Self {
        let max_failures = max_failures.max(1);
        LoginThrottle {
            max_failures,
            account_max: max_failures.saturating_mul(4),
            base_delay: Duration::minutes(1).min(max_delay),
            max_delay,
            forget_after: Duration::days(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn account_key(account: &str) -> String {
        format!("user:{}", account.trim().to_lowercase())
    }

    fn pair_key(account: &str, address: &str) -> String {
        format!("pair:{}\u{0}{address}", account.trim().to_lowercase())
    }

    /// Counts an attempt for this account from this address before its password is checked,
    /// or refuses it: `Err` holds how long until it may be tried. A success must then call
    /// [`LoginThrottle::succeeded`].
    pub fn begin(
        &self,
        account: &str,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<(), std::time::Duration> {
        let Ok(mut map) = self.failures.lock() else {
            return Err(std::time::Duration::from_secs(60));
        };
        let forget = self.forget_after;
        if map.len() > MAX_KEYS {
            map.retain(|_, f| now - f.last < forget);
        }
        let current = |map: &HashMap<String, Failures>, key: &str| {
            map.get(key)
                .filter(|f| now - f.last < forget)
                .map_or(0, |f| f.count)
        };
        let (account_key, pair_key) =
            (Self::account_key(account), Self::pair_key(account, address));
        let limit = if current(&map, &account_key) >= self.account_max {
            1
        } else {
            self.max_failures
        };
        if let Some(f) = map.get(&pair_key).filter(|f| now - f.last < forget)
            && f.count >= limit
        {
            let doublings = (f.count - limit).min(20);
            let delay = (self.base_delay * 2i32.pow(doublings)).min(self.max_delay);
            let until = f.last + delay;
            if now < until {
                return Err((until - now).to_std().unwrap_or_default());
            }
        }
        for key in [account_key, pair_key] {
            let count = current(&map, &key);
            map.insert(
                key,
                Failures {
                    count: count.saturating_add(1),
                    last: now,
                },
            );
        }
        Ok(())
    }

    /// The password was right: the account's counts (and this pair's) start again.
    pub fn succeeded(&self, account: &str, address: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&Self::account_key(account));
            map.remove(&Self::pair_key(account, address));
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

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_pair_waits_longer_after_each_failure_past_the_limit() {
        let t0 = t("2026-11-25T10:00:00Z");
        let th = LoginThrottle::new(3, Duration::minutes(15));
        for i in 0..3 {
            assert!(th.begin("Alice", "10.0.0.1", t0).is_ok(), "attempt {i}");
        }
        // Counted before the check: the fourth is refused for a minute, then 2, 4, 8, 15.
        let wait = th.begin("alice", "10.0.0.1", t0).unwrap_err();
        assert_eq!(wait.as_secs(), 60);
        let mut at = t0;
        for minutes in [1, 2, 4, 8, 15, 15] {
            at += Duration::minutes(minutes);
            assert!(
                th.begin("alice", "10.0.0.1", at - Duration::seconds(1))
                    .is_err()
            );
            assert!(
                th.begin("alice", "10.0.0.1", at).is_ok(),
                "after {minutes} min"
            );
        }
        // The right password from another address gets through meanwhile, and clears the
        // account.
        assert!(th.begin("alice", "10.0.0.2", at).is_ok());
        th.succeeded("alice", "10.0.0.2");
        // A day later the old failures are forgotten.
        assert!(
            th.begin("alice", "10.0.0.1", at + Duration::days(1))
                .is_ok()
        );
    }

    #[test]
    fn one_address_cannot_lock_out_other_accounts_or_the_owner() {
        let t0 = Utc::now();
        let th = LoginThrottle::new(5, Duration::minutes(15));
        // A proxy all staff share: fifty failures for fifty accounts from it.
        for i in 0..50 {
            assert!(
                th.begin(&format!("user{i}"), "192.0.2.7", t0).is_ok(),
                "{i}"
            );
        }
        assert!(th.begin("fresh-user", "192.0.2.7", t0).is_ok());
        // An account under attack from many addresses: each gets one failure, its owner from
        // an address that has not failed still gets through.
        for i in 0..40 {
            let _ = th.begin("bob", &format!("198.51.100.{i}"), t0);
        }
        assert!(
            th.begin("bob", "198.51.100.1", t0).is_err(),
            "one per address now"
        );
        assert!(th.begin("bob", "203.0.113.9", t0).is_ok(), "the owner");
    }
}
