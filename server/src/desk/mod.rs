//! Every staff action, in one place: the dashboard's handlers and the command line both call
//! these functions and nothing else writes. Each one takes who acts ([`Actor`]: a signed-in
//! staff member, or the command line with the OS user name), validates with the same rules
//! whichever door it came through, writes the change and its audit entry in one transaction
//! ([`crate::store::StaffStore`]) and wakes the evaluator where the change matters to it.
//!
//! Refusals are [`Error::Invalid`] (the message is for the person, in Japanese),
//! [`Error::NotFound`] and [`Error::Conflict`].

mod alerts;
mod clinics;
mod terminals;
pub mod users;
pub mod validate;

use std::sync::Arc;

use onshi_shared::AccountSpec;

use crate::Error;
use crate::domain::AuditRecord;
use crate::evaluator::ChangeSignal;
use crate::notify::channels::Announcer;
use crate::policy::PolicyBook;
use crate::secrets::SecretKey;
use crate::store::{Applied, StaffChange, Store};

pub use alerts::{MAX_BULK, SilenceRequest};
pub use clinics::{check_clinic as clinics_check, new_clinic};
pub use terminals::own_names;

/// The staff actions of one server (or one command-line run).
#[derive(Clone)]
pub struct Desk {
    store: Arc<dyn Store>,
    /// Wakes the evaluator for terminals whose alerts staff changed (absent on the command
    /// line and where no evaluator runs).
    changes: Option<Arc<ChangeSignal>>,
    /// How long a new enrollment code stays valid.
    code_days: u32,
    /// The account names of the server's `[policy]`, under every clinic's.
    server_accounts: Arc<Vec<AccountSpec>>,
    /// Seals the clinics' backup passwords (absent: they cannot be set here).
    secrets: Option<Arc<SecretKey>>,
    /// The agents' policies, read again after staff change names or passwords.
    policies: Option<Arc<PolicyBook>>,
    /// The desk's channels, told when staff take or resolve a critical alert.
    announcer: Arc<Announcer>,
}

impl Desk {
    pub fn new(
        store: Arc<dyn Store>,
        changes: Option<Arc<ChangeSignal>>,
        config: &crate::Config,
    ) -> Desk {
        Desk {
            store,
            changes,
            code_days: config.enrollment_code_days,
            server_accounts: Arc::new(config.policy.accounts.clone()),
            secrets: None,
            policies: None,
            announcer: Arc::new(Announcer::from_config(config)),
        }
    }

    /// A desk on `store` with the default settings and no evaluator to wake.
    pub fn for_store(store: Arc<dyn Store>) -> Desk {
        Desk::new(store, None, &crate::Config::default())
    }

    /// With the key that seals backup passwords.
    pub fn with_secrets(mut self, key: Arc<SecretKey>) -> Desk {
        self.secrets = Some(key);
        self
    }

    /// With the agents' policies to refresh.
    pub fn with_policies(mut self, book: Arc<PolicyBook>) -> Desk {
        self.policies = Some(book);
        self
    }

    /// The desk's channels (what the pages say of reminders and escalation).
    /// The channels and their reminder schedule, their groups' clinics read anew (a replica
    /// that runs no evaluator reads them here).
    pub async fn announcer(&self) -> Result<&Announcer, Error> {
        crate::notify::channels::refresh_groups(&self.announcer.channels, self.store.as_ref())
            .await?;
        Ok(&self.announcer)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The names the server gives every terminal (a clinic's are over them).
    pub fn server_accounts(&self) -> &[AccountSpec] {
        &self.server_accounts
    }

    /// Agents learn of changed names and passwords with their next report.
    async fn refresh_policies(&self) {
        if let Some(book) = &self.policies
            && let Err(e) = book.reload(self.store.as_ref()).await
        {
            tracing::error!(error = %e, "reloading the agents' policies failed");
        }
    }

    /// Applies a change with its audit entry; `NotFound` and `Conflict` become errors that say
    /// what was not found or is taken.
    async fn apply(
        &self,
        change: StaffChange,
        audit: AuditRecord,
        missing: &str,
        taken: &str,
    ) -> Result<Applied, Error> {
        match self.store.staff().apply(&change, &audit).await? {
            Applied::NotFound => Err(Error::NotFound(missing.to_string())),
            Applied::Conflict => Err(Error::Conflict(taken.to_string())),
            done => {
                if let (
                    Some(changes),
                    Applied::Done {
                        terminal_id: Some(t),
                        ..
                    },
                ) = (&self.changes, done)
                {
                    changes.mark([t]);
                }
                Ok(done)
            }
        }
    }
}

fn created_id(applied: Applied) -> Result<i64, Error> {
    match applied {
        Applied::Done { id: Some(id), .. } => Ok(id),
        other => Err(Error::Corrupt(format!("a create returned {other:?}"))),
    }
}
