//! What each agent is told to watch: the server's `[policy]`, with its clinic's account names
//! and backup password over it, and the terminal's own account names over those. Kept in
//! memory and answered without a query on every report; reloaded after staff change names or
//! passwords here and every `revocation_check_secs` for changes made by other processes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use onshi_shared::{AccountSpec, AgentPolicy};
use uuid::Uuid;

use crate::Error;
use crate::secrets::{SecretKey, backup_password_context};
use crate::store::{PolicyOverrides, Store};

/// The policies that differ from the server's, by clinic and by terminal.
#[derive(Debug, Default)]
struct Book {
    clinics: HashMap<i64, Arc<AgentPolicy>>,
    terminals: HashMap<Uuid, Arc<AgentPolicy>>,
}

pub struct PolicyBook {
    base: Arc<AgentPolicy>,
    key: Option<Arc<SecretKey>>,
    book: RwLock<Book>,
}

impl std::fmt::Debug for PolicyBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyBook").finish_non_exhaustive()
    }
}

impl PolicyBook {
    /// A book with only the server's policy; `key` opens the clinics' backup passwords.
    pub fn new(base: AgentPolicy, key: Option<Arc<SecretKey>>) -> PolicyBook {
        PolicyBook {
            base: Arc::new(base),
            key,
            book: RwLock::new(Book::default()),
        }
    }

    /// The policy for one agent.
    pub fn policy_for(&self, terminal: Uuid, clinic: i64) -> Arc<AgentPolicy> {
        let Ok(book) = self.book.read() else {
            return self.base.clone();
        };
        book.terminals
            .get(&terminal)
            .or_else(|| book.clinics.get(&clinic))
            .cloned()
            .unwrap_or_else(|| self.base.clone())
    }

    /// Reads the clinics' and terminals' names and passwords again.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), Error> {
        let overrides = store.policy_overrides().await?;
        let book = self.build(overrides);
        if let Ok(mut current) = self.book.write() {
            *current = book;
        }
        Ok(())
    }

    fn build(&self, o: PolicyOverrides) -> Book {
        let mut passwords: HashMap<i64, String> = HashMap::new();
        for (clinic, sealed) in &o.backup_passwords {
            let Some(key) = &self.key else { break };
            match key.open(sealed, &backup_password_context(*clinic)) {
                Ok(p) => {
                    passwords.insert(*clinic, p);
                }
                Err(e) => tracing::error!(clinic, error = %e, "a backup password does not open"),
            }
        }
        let clinic_policy = |clinic: i64, accounts: Option<&Vec<AccountSpec>>| {
            let mut p = (*self.base).clone();
            if let Some(a) = accounts {
                p.accounts = AccountSpec::merged(&p.accounts, a);
            }
            if let Some(pw) = passwords.get(&clinic) {
                p.backup_passwords = vec![pw.clone()];
            }
            p
        };
        let mut clinics = HashMap::new();
        let with_own: Vec<i64> = o
            .clinic_accounts
            .keys()
            .chain(passwords.keys())
            .copied()
            .collect();
        for clinic in with_own {
            clinics
                .entry(clinic)
                .or_insert_with(|| Arc::new(clinic_policy(clinic, o.clinic_accounts.get(&clinic))));
        }
        let mut terminals = HashMap::new();
        for (terminal, (clinic, own)) in &o.terminal_accounts {
            let mut p = clinic_policy(*clinic, o.clinic_accounts.get(clinic));
            p.accounts = AccountSpec::merged(&p.accounts, own);
            terminals.insert(*terminal, Arc::new(p));
        }
        Book { clinics, terminals }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::staff::SealedSecret;
    use onshi_shared::AccountRole;

    fn spec(role: AccountRole, name: &str) -> AccountSpec {
        AccountSpec {
            role,
            name: name.into(),
        }
    }

    #[test]
    fn terminals_get_their_names_over_their_clinics_over_the_servers() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SecretKey::load_or_create(&dir.path().join("k")).unwrap());
        let base = AgentPolicy {
            accounts: vec![
                spec(AccountRole::Windows, "OqsUser"),
                spec(AccountRole::FaceAuth, "OqsFace"),
            ],
            ..AgentPolicy::default()
        };
        let book = PolicyBook::new(base.clone(), Some(key.clone()));
        let (t1, t2, t3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let sealed: SealedSecret = key.seal("2468", &backup_password_context(7)).unwrap();
        let wrong: SealedSecret = key.seal("1111", &backup_password_context(1)).unwrap();
        let overrides = PolicyOverrides {
            clinic_accounts: HashMap::from([(7, vec![spec(AccountRole::Windows, "受付")])]),
            terminal_accounts: HashMap::from([(
                t1,
                (7, vec![spec(AccountRole::FaceAuth, "kao2")]),
            )]),
            // clinic 8's row was sealed for clinic 1: it does not open
            backup_passwords: vec![(7, sealed), (8, wrong)],
        };
        *book.book.write().unwrap() = book.build(overrides);
        let p1 = book.policy_for(t1, 7);
        assert_eq!(
            p1.accounts,
            vec![
                spec(AccountRole::Windows, "受付"),
                spec(AccountRole::FaceAuth, "kao2")
            ]
        );
        assert_eq!(p1.backup_passwords, vec!["2468".to_string()]);
        let p2 = book.policy_for(t2, 7);
        assert_eq!(p2.accounts[0], spec(AccountRole::Windows, "受付"));
        assert_eq!(p2.accounts[1], spec(AccountRole::FaceAuth, "OqsFace"));
        let p3 = book.policy_for(t3, 8);
        assert_eq!(*p3, base, "an unopened password is left out");
    }
}
