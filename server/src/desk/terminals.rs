//! Staff actions on terminals.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Desk;
use crate::Error;
use crate::domain::{Actor, AuditRecord};
use crate::store::StaffChange;

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
}
