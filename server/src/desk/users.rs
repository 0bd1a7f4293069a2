//! Staff accounts: create, disable and enable, passwords.

use chrono::{DateTime, Utc};

use super::{Desk, created_id};
use crate::Error;
use crate::auth::{check_new_password, generate_password, hash_password, verify_password};
use crate::domain::{Actor, AuditRecord, PREFECTURES, Role, Scope, User};
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
        scope: Option<Scope>,
        password: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, Error> {
        let name = name.trim();
        let scope_label = self.check_scope(scope.as_ref()).await?;
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
                    scope,
                },
                AuditRecord::new(
                    actor,
                    now,
                    format!(
                        "ユーザー {name} ({}、{scope_label}) を作成",
                        role.label_ja()
                    ),
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

    /// Checks a scope (known prefectures, existing groups, not empty) and says it in words for
    /// the audit log and the pages.
    pub async fn check_scope(&self, scope: Option<&Scope>) -> Result<String, Error> {
        let Some(scope) = scope else {
            return Ok("全体".into());
        };
        if scope.prefectures.is_empty() && scope.groups.is_empty() {
            return Err(Error::Invalid(
                "担当範囲には都道府県か医療機関グループを一つ以上選んでください（全体なら「全体」を選びます）"
                    .into(),
            ));
        }
        if let Some(p) = scope
            .prefectures
            .iter()
            .find(|p| !PREFECTURES.contains(&p.as_str()))
        {
            return Err(Error::Invalid(format!("都道府県 {p} はありません")));
        }
        let groups = self.store.staff().clinic_groups().await?;
        let mut names = Vec::with_capacity(scope.groups.len());
        for id in &scope.groups {
            match groups.iter().find(|g| g.id == *id) {
                Some(g) => names.push(g.name.as_str()),
                None => {
                    return Err(Error::Invalid(format!(
                        "医療機関グループ #{id} はありません"
                    )));
                }
            }
        }
        Ok(scope_words(&scope.prefectures, &names))
    }

    /// Sets a user's role and scope.
    pub async fn set_user_access(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        scope: Option<Scope>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let user = self.user(name).await?;
        let label = self.check_scope(scope.as_ref()).await?;
        self.apply(
            StaffChange::SetUserAccess {
                user_id: user.id,
                role,
                scope,
            },
            AuditRecord::new(
                actor,
                now,
                format!(
                    "ユーザー {} を {}、担当範囲 {label} に変更",
                    user.name,
                    role.label_ja()
                ),
            ),
            "このユーザーは見つかりません",
            "",
        )
        .await?;
        Ok(())
    }

    /// Creates a clinic group; returns its id.
    pub async fn create_group(
        &self,
        actor: &Actor,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, Error> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "グループ名は制御文字を含まない 1〜100 文字にしてください".into(),
            ));
        }
        let applied = self
            .apply(
                StaffChange::CreateGroup { name: name.into() },
                AuditRecord::new(actor, now, format!("医療機関グループ {name} を作成")),
                "",
                &format!("医療機関グループ {name} はすでにあります"),
            )
            .await?;
        created_id(applied)
    }

    /// Deletes a clinic group.
    pub async fn delete_group(
        &self,
        actor: &Actor,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let name = self.group_name(id).await?;
        self.apply(
            StaffChange::DeleteGroup { id },
            AuditRecord::new(actor, now, format!("医療機関グループ {name} を削除")),
            "このグループは見つかりません",
            "",
        )
        .await?;
        Ok(())
    }

    /// Adds a clinic to a group, or takes it out.
    pub async fn set_group_member(
        &self,
        actor: &Actor,
        group_id: i64,
        clinic_id: i64,
        member: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let name = self.group_name(group_id).await?;
        let what = if member {
            format!("医療機関グループ {name} に追加")
        } else {
            format!("医療機関グループ {name} から外す")
        };
        self.apply(
            StaffChange::SetGroupMember {
                group_id,
                clinic_id,
                member,
            },
            AuditRecord::new(actor, now, what).clinic(clinic_id),
            "このグループか医療機関は見つかりません",
            "",
        )
        .await?;
        Ok(())
    }

    /// A new API token for another system, scoped like a user. The token is returned to be
    /// shown once; only its SHA-256 is stored.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        scope: Option<Scope>,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > 64
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::Invalid(
                "トークン名は英数字と - _ . の 1〜64 文字にしてください".into(),
            ));
        }
        let words = self.check_scope(scope.as_ref()).await?;
        let token = format!("{TOKEN_PREFIX}{}", crate::auth::new_secret());
        let applied = self
            .apply(
                StaffChange::CreateToken {
                    name: name.into(),
                    token_hash: crate::auth::hash_session(&token),
                    role,
                    scope,
                },
                AuditRecord::new(
                    actor,
                    now,
                    format!("APIトークン {name} ({}、{words}) を発行", role.label_ja()),
                ),
                "",
                &format!("APIトークン {name} はすでにあります"),
            )
            .await?;
        created_id(applied)?;
        Ok(token)
    }

    /// Revokes an API token by name: it stops working at once.
    pub async fn revoke_token(
        &self,
        actor: &Actor,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let token = self
            .store
            .staff()
            .api_tokens()
            .await?
            .into_iter()
            .find(|t| t.name == name && t.revoked_at.is_none())
            .ok_or_else(|| Error::NotFound(format!("有効な APIトークン {name} はありません")))?;
        self.apply(
            StaffChange::RevokeToken { id: token.id },
            AuditRecord::new(actor, now, format!("APIトークン {name} を失効")),
            &format!("有効な APIトークン {name} はありません"),
            "",
        )
        .await?;
        Ok(())
    }

    async fn group_name(&self, id: i64) -> Result<String, Error> {
        self.store
            .staff()
            .clinic_groups()
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .map(|g| g.name)
            .ok_or_else(|| Error::NotFound("このグループは見つかりません".into()))
    }
}

/// How every API token starts (so a leaked one is recognisable, e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "onshi_api_";

/// A scope in words: 「北海道・青森県、グループ 札幌販売店」.
pub fn scope_words(prefectures: &[String], groups: &[&str]) -> String {
    let mut parts = Vec::new();
    if !prefectures.is_empty() {
        parts.push(prefectures.join("・"));
    }
    if !groups.is_empty() {
        parts.push(format!("グループ {}", groups.join("・")));
    }
    if parts.is_empty() {
        "なし".into()
    } else {
        parts.join("、")
    }
}
