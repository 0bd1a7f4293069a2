//! Staff actions on terminals.

use chrono::{DateTime, Utc};
use onshi_shared::AccountSpec;
use uuid::Uuid;

use super::Desk;
use crate::Error;
use crate::domain::{Actor, AuditRecord};
use crate::store::StaffChange;

/// The names of `given` that differ from what the terminal would get from its clinic
/// (`inherited`): what the terminal keeps as its own.
pub fn own_names(given: &[AccountSpec], inherited: &[AccountSpec]) -> Vec<AccountSpec> {
    given
        .iter()
        .filter(|g| {
            !inherited
                .iter()
                .any(|i| i.role == g.role && i.name == g.name)
        })
        .cloned()
        .collect()
}

impl Desk {
    /// Revokes a terminal's agent token: it must enroll again. Running servers refuse the
    /// token within `revocation_check_secs`.
    pub async fn revoke_terminal(
        &self,
        actor: &Actor,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.apply(
            StaffChange::RevokeTerminal { id },
            AuditRecord::new(actor, now, format!("端末 {id} の登録を取り消し")),
            "この端末は見つからないか、取り消し済みです",
            "",
        )
        .await?;
        Ok(())
    }

    /// Staff checked the terminal's protected account names (`given`, one per role): those
    /// that differ from its clinic's become the terminal's own, the agent is told, and the
    /// baseline is taken again from its next report with them. From then on a protected
    /// account missing is a real change: it alerts and mails the clinic.
    pub async fn confirm_accounts(
        &self,
        actor: &Actor,
        terminal_id: Uuid,
        given: &[AccountSpec],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let detail = self
            .store
            .fleet()
            .terminal_detail(terminal_id)
            .await?
            .ok_or_else(|| Error::NotFound("この端末は見つかりません".into()))?;
        let clinic = self.clinic(detail.clinic_id).await?;
        let mut given = given.to_vec();
        for g in &mut given {
            g.name = g.name.trim().to_string();
        }
        if let Some(g) = given.iter().find(|g| !g.role.is_protected()) {
            return Err(Error::Invalid(format!(
                "{}は確認の対象ではありません",
                g.role.label_ja()
            )));
        }
        let mut check = given.clone();
        let mut probe = clinic.clone();
        probe.settings.accounts = std::mem::take(&mut check);
        let tidy = super::clinics_check(&probe)?;
        let inherited = AccountSpec::merged(&self.server_accounts, &clinic.settings.accounts);
        let own = own_names(&tidy.settings.accounts, &inherited);
        let names: Vec<String> = tidy
            .settings
            .accounts
            .iter()
            .map(|a| format!("{}「{}」", a.role.label_ja(), a.name))
            .collect();
        let what = format!(
            "端末 {} の保護アカウント名を確認: {}",
            detail.hostname,
            if names.is_empty() {
                "医療機関の設定どおり".to_string()
            } else {
                names.join("、")
            }
        );
        self.apply(
            StaffChange::ConfirmAccounts { terminal_id, own },
            AuditRecord::new(actor, now, what),
            "この端末は見つからないか、取り消し済みです",
            "",
        )
        .await?;
        self.refresh_policies().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onshi_shared::AccountRole;

    #[test]
    fn only_names_that_differ_from_the_clinics_are_the_terminals_own() {
        let spec = |role, name: &str| AccountSpec {
            role,
            name: name.into(),
        };
        let inherited = [
            spec(AccountRole::Windows, "OqsUser"),
            spec(AccountRole::FaceAuth, "OqsFace"),
        ];
        let given = [
            spec(AccountRole::Windows, "OqsUser"),
            spec(AccountRole::FaceAuth, "kao"),
            spec(AccountRole::Linkage, "renkei"),
        ];
        assert_eq!(
            own_names(&given, &inherited),
            vec![
                spec(AccountRole::FaceAuth, "kao"),
                spec(AccountRole::Linkage, "renkei")
            ]
        );
    }
}
