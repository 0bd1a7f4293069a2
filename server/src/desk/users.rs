//! Staff accounts: create, disable and enable, passwords.

use chrono::{DateTime, Utc};

use super::{Desk, created_id};
use crate::Error;
use crate::auth::{check_new_password, generate_password, hash_password, verify_password};
use crate::domain::{Actor, AuditRecord, Role, User};
use crate::store::StaffChange;

/// Hashes on the blocking pool (argon2id takes tens of milliseconds and 19 MiB).
async fn hash(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Error::Password(e.to_string()))?
}

/// The password given, checked against the policy, or a generated one (`true`).
fn chosen(password: Option<String>) -> Result<(String, bool), Error> {
    match password {
        Some(p) => {
            check_new_password(&p).map_err(Error::Invalid)?;
            Ok((p, false))
        }
        None => Ok((generate_password(), true)),
    }
}

impl Desk {
    async fn user(&self, name: &str) -> Result<User, Error> {
        self.store
            .staff()
            .user_by_name(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("ユーザー {name} は見つかりません")))
    }

    /// Creates a staff account. Without a password one is generated and returned, to be shown
    /// once.
    pub async fn add_user(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        password: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, Error> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "ユーザー名は制御文字を含まない 1〜64 文字にしてください".into(),
            ));
        }
        let (password, generated) = chosen(password)?;
        let password_hash = hash(password.clone()).await?;
        let applied = self
            .apply(
                StaffChange::CreateUser {
                    name: name.to_string(),
                    role,
                    password_hash,
                },
                AuditRecord::new(
                    actor,
                    now,
                    format!("ユーザー {name} ({}) を作成", role.label_ja()),
                ),
                "",
                &format!("ユーザー {name} はすでにあります"),
            )
            .await?;
        created_id(applied)?;
        Ok(generated.then_some(password))
    }

    /// Sets a user's password (ending every session of the user). Without one, a password is
    /// generated and returned.
    pub async fn set_password(
        &self,
        actor: &Actor,
        name: &str,
        password: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, Error> {
        let user = self.user(name).await?;
        let (password, generated) = chosen(password)?;
        let password_hash = hash(password.clone()).await?;
        self.apply(
            StaffChange::SetPassword {
                user_id: user.id,
                password_hash,
            },
            AuditRecord::new(
                actor,
                now,
                format!("ユーザー {} のパスワードを変更", user.name),
            ),
            "このユーザーは見つかりません",
            "",
        )
        .await?;
        Ok(generated.then_some(password))
    }

    /// A staff member changes their own password: the current one must match, the new one is
    /// typed twice. Every session of the user ends.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current: &str,
        new: &str,
        confirm: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let Actor::Staff { name, .. } = actor else {
            return Err(Error::Invalid(
                "コマンドラインからは user passwd を使ってください".into(),
            ));
        };
        let user = self.user(name).await?;
        let stored = user.password_hash.clone();
        let typed = current.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&typed, &stored))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(Error::Invalid("現在のパスワードが違います".into()));
        }
        if new != confirm {
            return Err(Error::Invalid(
                "新しいパスワードが確認用と一致しません".into(),
            ));
        }
        check_new_password(new).map_err(Error::Invalid)?;
        let password_hash = hash(new.to_string()).await?;
        self.apply(
            StaffChange::SetPassword {
                user_id: user.id,
                password_hash,
            },
            AuditRecord::new(actor, now, "自分のパスワードを変更"),
            "このユーザーは見つかりません",
            "",
        )
        .await?;
        Ok(())
    }

    /// Disables an account (ending its sessions) or enables it again.
    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        name: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let user = self.user(name).await?;
        let what = if disabled { "無効化" } else { "有効化" };
        self.apply(
            StaffChange::SetUserDisabled {
                user_id: user.id,
                disabled,
            },
            AuditRecord::new(actor, now, format!("ユーザー {} を{what}", user.name)),
            "このユーザーは見つかりません",
            "",
        )
        .await?;
        Ok(())
    }
}
