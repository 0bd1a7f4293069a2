//! [`StaffStore`] for SQLite: each change and its audit row in one transaction on the writer
//! connection, flushed before it returns.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::alerts::{history, minute_of};
use super::clinics::{self, AccountOwner};
use super::desk::is_unique_violation;
use super::{ROWS_PER_STATEMENT, SqliteStore, pages, uuid_col};
use crate::domain::{
    ApiToken, AuditRecord, AuditRow, ClinicGroup, Reach, Role, Scope, SessionUser, SilenceScope,
    User, VersionSource,
};
use crate::store::StoreError;
use crate::store::desk::{AuditQuery, NewSession};
use crate::store::staff::{Applied, BulkAction, BulkOutcome, StaffChange, StaffStore};
use crate::store::{StoreResult, from_millis, millis};

/// The clinic and terminal an alert belongs to, if it exists.
async fn alert_owner(
    tx: &mut SqliteConnection,
    id: i64,
) -> StoreResult<Option<(i64, Option<Uuid>)>> {
    let row = sqlx::query("SELECT clinic_id, terminal_id FROM alerts WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    row.map(|r| Ok((r.try_get("clinic_id")?, Some(uuid_col(&r, "terminal_id")?))))
        .transpose()
}

/// Deletes a row of one of a clinic's lists (only of that clinic); whether there was one.
async fn delete_clinic_row(
    tx: &mut SqliteConnection,
    table: &'static str,
    clinic_id: i64,
    id: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE id = ? AND clinic_id = ?"
    )))
    .bind(id)
    .bind(clinic_id)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A clinic's calendar or names changed: the evaluator rebuilds its clinics.
async fn bump_clinic(tx: &mut SqliteConnection, id: i64) -> StoreResult<()> {
    sqlx::query("UPDATE clinics SET settings_version = settings_version + 1 WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn clinic_exists(tx: &mut SqliteConnection, id: i64) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM clinics WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(found.is_some())
}

/// What the audit row names besides what the desk layer said.
#[derive(Default)]
struct Concerned {
    clinic_id: Option<i64>,
    terminal_id: Option<Uuid>,
    alert_id: Option<i64>,
    created: Option<i64>,
}

impl Concerned {
    /// Records the id of the row a change made; `Some(Conflict)` when a unique value (a name,
    /// a code) was taken.
    fn new_row(&mut self, id: Result<i64, sqlx::Error>) -> StoreResult<Option<Applied>> {
        match id {
            Ok(id) => {
                self.created = Some(id);
                Ok(None)
            }
            Err(e) if is_unique_violation(&e) => Ok(Some(Applied::Conflict)),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl StaffStore for SqliteStore {
    async fn apply(&self, change: &StaffChange, audit: &AuditRecord) -> StoreResult<Applied> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        let now = millis(audit.at);
        let who = audit.actor.stored_name();
        let mut c = Concerned::default();
        match change {
            StaffChange::AcknowledgeAlert {
                id,
                note,
                until,
                tell,
            } => {
                let done = sqlx::query(
                    "UPDATE alerts SET status = 'acknowledged', ack_by = ?, ack_note = ?, \
                     ack_until = ?, updated_at = ? WHERE id = ? AND status <> 'resolved'",
                )
                .bind(&who)
                .bind(note)
                .bind(until.map(millis))
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                history(&mut tx, *id, audit.at, &who, "acknowledged", note).await?;
                let rows: Vec<_> = tell.iter().map(|m| (Some(*id), m)).collect();
                super::alerts::insert_mails(&mut tx, &rows, audit.at).await?;
                c.alert_id = Some(*id);
            }
            StaffChange::ResolveAlert { id, note, tell } => {
                let done = sqlx::query(
                    "UPDATE alerts SET status = 'resolved', resolved_at = ?, resolved_by = ?, \
                     updated_at = ?, clear_since = NULL WHERE id = ? AND status <> 'resolved'",
                )
                .bind(now)
                .bind(&who)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                history(&mut tx, *id, audit.at, &who, "resolved", note).await?;
                let rows: Vec<_> = tell.iter().map(|m| (Some(*id), m)).collect();
                super::alerts::insert_mails(&mut tx, &rows, audit.at).await?;
                c.alert_id = Some(*id);
            }
            StaffChange::NoteAlert { id, note } => {
                if alert_owner(&mut tx, *id).await?.is_none() {
                    return Ok(Applied::NotFound);
                }
                history(&mut tx, *id, audit.at, &who, "note", note).await?;
                c.alert_id = Some(*id);
            }
            StaffChange::AddSilence(s) => {
                if s.ends_at <= s.starts_at {
                    return Err(StoreError::Conflict(
                        "a silence ends after it starts".into(),
                    ));
                }
                let exists: Option<i64> = match &s.scope {
                    SilenceScope::Terminal(t) => {
                        sqlx::query_scalar(
                            "SELECT 1 FROM terminals WHERE id = ? AND revoked_at IS NULL",
                        )
                        .bind(t.to_string())
                        .fetch_optional(&mut *tx)
                        .await?
                    }
                    SilenceScope::Clinic(id) => clinic_exists(&mut tx, *id).await?.then_some(1),
                    SilenceScope::Prefecture(_) | SilenceScope::Fleet => Some(1),
                };
                if exists.is_none() {
                    return Ok(Applied::NotFound);
                }
                let (terminal, clinic, prefecture, fleet) = match &s.scope {
                    SilenceScope::Terminal(t) => (Some(t.to_string()), None, None, false),
                    SilenceScope::Clinic(id) => (None, Some(*id), None, false),
                    SilenceScope::Prefecture(p) => (None, None, Some(p.clone()), false),
                    SilenceScope::Fleet => (None, None, None, true),
                };
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO silences (terminal_id, clinic_id, prefecture, fleet, rule, \
                     starts_at, ends_at, daily_from, daily_to, weekdays, reason, created_by, \
                     created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(terminal)
                .bind(clinic)
                .bind(prefecture)
                .bind(fleet)
                .bind(s.rule.map(|r| r.as_str()))
                .bind(millis(s.starts_at))
                .bind(millis(s.ends_at))
                .bind(s.daily.map(|d| minute_of(d.from)))
                .bind(s.daily.map(|d| minute_of(d.to)))
                .bind(s.daily.map(|d| i64::from(d.weekdays)))
                .bind(&s.reason)
                .bind(&who)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                c.created = Some(id);
                if let SilenceScope::Terminal(t) = s.scope {
                    c.terminal_id = Some(t);
                }
                if let SilenceScope::Clinic(id) = s.scope {
                    c.clinic_id = Some(id);
                }
            }
            StaffChange::EndSilence { id } => {
                let row = sqlx::query(
                    "SELECT terminal_id, clinic_id, starts_at FROM silences \
                     WHERE id = ? AND ends_at > ? AND ended_by IS NULL",
                )
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(Applied::NotFound);
                };
                let starts: i64 = row.try_get("starts_at")?;
                // A window that has not begun yet is dropped; one in force ends now.
                if starts < now {
                    sqlx::query("UPDATE silences SET ends_at = ?, ended_by = ? WHERE id = ?")
                        .bind(now)
                        .bind(&who)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    sqlx::query("DELETE FROM silences WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                let terminal: Option<String> = row.try_get("terminal_id")?;
                c.terminal_id = terminal.and_then(|t| Uuid::parse_str(&t).ok());
                c.clinic_id = row.try_get("clinic_id")?;
            }
            StaffChange::SaveClinic(detail) => {
                let s = &detail.settings;
                let saved = if s.id == 0 {
                    sqlx::query_scalar(
                        "INSERT INTO clinics (name, email, code, phone, notes, created_at) \
                         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    )
                    .bind(&s.name)
                    .bind(&s.email)
                    .bind(&detail.code)
                    .bind(&detail.phone)
                    .bind(&detail.notes)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                } else {
                    sqlx::query_scalar(
                        "UPDATE clinics SET code = ?, phone = ?, notes = ? WHERE id = ? \
                         RETURNING id",
                    )
                    .bind(&detail.code)
                    .bind(&detail.phone)
                    .bind(&detail.notes)
                    .bind(s.id)
                    .fetch_optional(&mut *tx)
                    .await
                };
                let id: i64 = match saved {
                    Ok(Some(id)) => id,
                    Ok(None) => return Ok(Applied::NotFound),
                    Err(e) if is_unique_violation(&e) => return Ok(Applied::Conflict),
                    Err(e) => return Err(e.into()),
                };
                clinics::write_settings(&mut tx, id, s).await?;
                clinics::replace_accounts(&mut tx, AccountOwner::Clinic(id), &s.accounts, audit.at)
                    .await?;
                // The overview shows (and sorts by) the clinic's name and prefecture.
                sqlx::query(
                    "UPDATE overview_line SET clinic_name = ?, prefecture = ? WHERE clinic_id = ?",
                )
                .bind(&s.name)
                .bind(&s.prefecture)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if s.id == 0 {
                    c.created = Some(id);
                }
                c.clinic_id = Some(id);
            }
            StaffChange::AddClosures {
                clinic_id,
                closures,
            } => {
                if !clinic_exists(&mut tx, *clinic_id).await? {
                    return Ok(Applied::NotFound);
                }
                let mut last = None;
                for closure in closures {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO clinic_closures (clinic_id, from_date, to_date, reason, \
                         created_by, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    )
                    .bind(clinic_id)
                    .bind(closure.from.format("%Y-%m-%d").to_string())
                    .bind(closure.to.format("%Y-%m-%d").to_string())
                    .bind(&closure.reason)
                    .bind(&who)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    last = Some(id);
                }
                bump_clinic(&mut tx, *clinic_id).await?;
                if closures.len() == 1 {
                    c.created = last;
                }
                c.clinic_id = Some(*clinic_id);
            }
            StaffChange::DeleteClosure { clinic_id, id } => {
                if !delete_clinic_row(&mut tx, "clinic_closures", *clinic_id, *id).await? {
                    return Ok(Applied::NotFound);
                }
                bump_clinic(&mut tx, *clinic_id).await?;
                c.clinic_id = Some(*clinic_id);
            }
            StaffChange::ConfirmAccounts { terminal_id, own } => {
                let id = terminal_id.to_string();
                // The baseline is taken again (from the next report made with these names),
                // and counts as confirmed for them.
                let owner: Option<i64> = sqlx::query_scalar(
                    "UPDATE terminals SET accounts_confirmed_at = ?, accounts_confirmed_by = ?, \
                     accounts_confirmed_key = NULL, baseline_key = NULL, baseline_at = NULL, \
                     baseline_missing = '', accounts_version = accounts_version + 1 \
                     WHERE id = ? AND revoked_at IS NULL RETURNING clinic_id",
                )
                .bind(now)
                .bind(&who)
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(owner) = owner else {
                    return Ok(Applied::NotFound);
                };
                clinics::replace_accounts(&mut tx, AccountOwner::Terminal(&id), own, audit.at)
                    .await?;
                c.clinic_id = Some(owner);
                c.terminal_id = Some(*terminal_id);
            }
            StaffChange::SetBackupPassword { clinic_id, sealed } => {
                if !clinic_exists(&mut tx, *clinic_id).await? {
                    return Ok(Applied::NotFound);
                }
                match sealed {
                    Some(secret) => {
                        sqlx::query(
                            "INSERT INTO backup_passwords (clinic_id, nonce, sealed, set_by, \
                             set_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (clinic_id) DO UPDATE \
                             SET nonce = excluded.nonce, sealed = excluded.sealed, \
                             set_by = excluded.set_by, set_at = excluded.set_at",
                        )
                        .bind(clinic_id)
                        .bind(&secret.nonce)
                        .bind(&secret.sealed)
                        .bind(&who)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM backup_passwords WHERE clinic_id = ?")
                            .bind(clinic_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                c.clinic_id = Some(*clinic_id);
            }
            StaffChange::AddContact(contact) => {
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO clinic_contacts (clinic_id, name, role, email, phone) \
                     SELECT id, ?, ?, ?, ? FROM clinics WHERE id = ? RETURNING id",
                )
                .bind(&contact.name)
                .bind(&contact.role)
                .bind(&contact.email)
                .bind(&contact.phone)
                .bind(contact.clinic_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(id) = id else {
                    return Ok(Applied::NotFound);
                };
                c.created = Some(id);
                c.clinic_id = Some(contact.clinic_id);
            }
            StaffChange::DeleteContact { clinic_id, id } => {
                if !delete_clinic_row(&mut tx, "clinic_contacts", *clinic_id, *id).await? {
                    return Ok(Applied::NotFound);
                }
                c.clinic_id = Some(*clinic_id);
            }
            StaffChange::AddEnrollmentCode {
                clinic_id,
                code_hash,
                expires_at,
                label,
                last_chars,
            } => {
                let done = sqlx::query(
                    "INSERT INTO enrollment_codes (code_hash, clinic_id, created_at, expires_at, \
                     label, last_chars) SELECT ?, id, ?, ?, ?, ? FROM clinics WHERE id = ?",
                )
                .bind(code_hash)
                .bind(now)
                .bind(millis(*expires_at))
                .bind(label)
                .bind(last_chars)
                .bind(clinic_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                c.clinic_id = Some(*clinic_id);
            }
            StaffChange::RevokeEnrollmentCode {
                clinic_id,
                code_hash,
            } => {
                let owner: Option<i64> = sqlx::query_scalar(
                    "UPDATE enrollment_codes SET revoked_at = ? WHERE code_hash = ? \
                     AND revoked_at IS NULL AND (? IS NULL OR clinic_id = ?) RETURNING clinic_id",
                )
                .bind(now)
                .bind(code_hash)
                .bind(clinic_id)
                .bind(clinic_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(owner) = owner else {
                    return Ok(Applied::NotFound);
                };
                c.clinic_id = Some(owner);
            }
            StaffChange::RevokeTerminal { id } => {
                let owner: Option<i64> = sqlx::query_scalar(
                    "UPDATE terminals SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL \
                     RETURNING clinic_id",
                )
                .bind(now)
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(owner) = owner else {
                    return Ok(Applied::NotFound);
                };
                // Gone from the overview; its history stays.
                sqlx::query("DELETE FROM overview_line WHERE terminal_id = ?")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                c.clinic_id = Some(owner);
                c.terminal_id = Some(*id);
            }
            StaffChange::SetExpectedVersion {
                app,
                version,
                since,
            } => match version {
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO expected_versions (app, source, version, since, set_by) \
                             VALUES (?, ?, ?, ?, ?) ON CONFLICT (app, source) DO UPDATE SET \
                             version = excluded.version, since = excluded.since, \
                             set_by = excluded.set_by \
                             WHERE expected_versions.version <> excluded.version",
                    )
                    .bind(app)
                    .bind(VersionSource::Staff.as_str())
                    .bind(v)
                    .bind(millis(*since))
                    .bind(&who)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM expected_versions WHERE app = ? AND source = ?")
                        .bind(app)
                        .bind(VersionSource::Staff.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            },
            StaffChange::CreateUser {
                name,
                role,
                password_hash,
                scope,
            } => {
                let id = sqlx::query_scalar(
                    "INSERT INTO users (name, role, password_hash, created_at, \
                     password_changed_at, scope) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(name)
                .bind(role.as_str())
                .bind(password_hash)
                .bind(now)
                .bind(now)
                .bind(Scope::stored(scope.as_ref()))
                .fetch_one(&mut *tx)
                .await;
                if let Some(taken) = c.new_row(id)? {
                    return Ok(taken);
                }
            }
            StaffChange::SetUserAccess {
                user_id,
                role,
                scope,
            } => {
                let done = sqlx::query("UPDATE users SET role = ?, scope = ? WHERE id = ?")
                    .bind(role.as_str())
                    .bind(Scope::stored(scope.as_ref()))
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
            }
            StaffChange::CreateToken {
                name,
                token_hash,
                role,
                scope,
            } => {
                let id = sqlx::query_scalar(
                    "INSERT INTO api_tokens (name, token_hash, role, scope, created_at, created_by) \
                     VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(name)
                .bind(token_hash)
                .bind(role.as_str())
                .bind(Scope::stored(scope.as_ref()))
                .bind(now)
                .bind(&who)
                .fetch_one(&mut *tx)
                .await;
                if let Some(taken) = c.new_row(id)? {
                    return Ok(taken);
                }
            }
            StaffChange::RevokeToken { id } => {
                let done = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
            }
            StaffChange::CreateGroup { name } => {
                let id = sqlx::query_scalar(
                    "INSERT INTO clinic_groups (name, created_at) VALUES (?, ?) RETURNING id",
                )
                .bind(name)
                .bind(now)
                .fetch_one(&mut *tx)
                .await;
                if let Some(taken) = c.new_row(id)? {
                    return Ok(taken);
                }
            }
            StaffChange::DeleteGroup { id } => {
                sqlx::query("DELETE FROM clinic_group_members WHERE group_id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM clinic_groups WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
            }
            StaffChange::SetGroupMember {
                group_id,
                clinic_id,
                member,
            } => {
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT g.id FROM clinic_groups g, clinics c WHERE g.id = ? AND c.id = ?",
                )
                .bind(group_id)
                .bind(clinic_id)
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    return Ok(Applied::NotFound);
                }
                let sql = if *member {
                    "INSERT OR IGNORE INTO clinic_group_members (group_id, clinic_id) VALUES (?, ?)"
                } else {
                    "DELETE FROM clinic_group_members WHERE group_id = ? AND clinic_id = ?"
                };
                sqlx::query(sql)
                    .bind(group_id)
                    .bind(clinic_id)
                    .execute(&mut *tx)
                    .await?;
                c.clinic_id = Some(*clinic_id);
            }
            StaffChange::SetPassword {
                user_id,
                password_hash,
            } => {
                let done = sqlx::query(
                    "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                )
                .bind(password_hash)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                sqlx::query("DELETE FROM sessions WHERE user_id = ?")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            StaffChange::SetUserDisabled { user_id, disabled } => {
                let done = sqlx::query("UPDATE users SET disabled_at = ? WHERE id = ?")
                    .bind(disabled.then_some(now))
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                if *disabled {
                    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        if let Some(id) = c.alert_id
            && let Some((clinic, terminal)) = alert_owner(&mut tx, id).await?
        {
            c.clinic_id = Some(clinic);
            c.terminal_id = terminal;
        }
        // A line about a terminal names its clinic too: the clinic's page lists it.
        if let (Some(t), None) = (audit.terminal_id.or(c.terminal_id), c.clinic_id) {
            c.clinic_id = sqlx::query_scalar("SELECT clinic_id FROM terminals WHERE id = ?")
                .bind(t.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO audit_log (at, actor, user_id, terminal_id, clinic_id, alert_id, what, \
             action) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(now)
        .bind(&who)
        .bind(audit.actor.user_id())
        .bind(audit.terminal_id.or(c.terminal_id).map(|t| t.to_string()))
        .bind(audit.clinic_id.or(c.clinic_id))
        .bind(audit.alert_id.or(c.alert_id))
        .bind(&audit.what)
        .bind(change.action())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        drop(conn);
        self.flush_wal().await?;
        Ok(Applied::Done {
            id: c.created,
            terminal_id: audit.terminal_id.or(c.terminal_id),
        })
    }

    async fn bulk_alerts(
        &self,
        ids: &[i64],
        action: &BulkAction,
        audit: &AuditRecord,
        tell: &[crate::domain::NewMail],
    ) -> StoreResult<BulkOutcome> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        let now = millis(audit.at);
        let who = audit.actor.stored_name();
        let mut done: Vec<(i64, Uuid, String)> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT * 5) {
            let mut q: QueryBuilder<Sqlite> = match action {
                BulkAction::Acknowledge { note, until } => {
                    let mut q =
                        QueryBuilder::new("UPDATE alerts SET status = 'acknowledged', ack_by = ");
                    q.push_bind(who.clone())
                        .push(", ack_note = ")
                        .push_bind(note.clone())
                        .push(", ack_until = ")
                        .push_bind(until.map(millis))
                        .push(", updated_at = ")
                        .push_bind(now)
                        .push(" WHERE status <> 'resolved' AND id IN (");
                    q
                }
                BulkAction::Resolve { .. } => {
                    let mut q =
                        QueryBuilder::new("UPDATE alerts SET status = 'resolved', resolved_at = ");
                    q.push_bind(now)
                        .push(", resolved_by = ")
                        .push_bind(who.clone())
                        .push(", updated_at = ")
                        .push_bind(now)
                        .push(", clear_since = NULL WHERE status <> 'resolved' AND id IN (");
                    q
                }
                BulkAction::Note { .. } | BulkAction::Silence { .. } => {
                    QueryBuilder::new("SELECT id, terminal_id, rule FROM alerts WHERE id IN (")
                }
            };
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            if matches!(
                action,
                BulkAction::Acknowledge { .. } | BulkAction::Resolve { .. }
            ) {
                q.push(" RETURNING id, terminal_id, rule");
            }
            for r in q.build().fetch_all(&mut *tx).await? {
                done.push((r.try_get(0)?, uuid_col(&r, "terminal_id")?, r.try_get(2)?));
            }
        }
        let applied_to: std::collections::HashSet<i64> =
            done.iter().map(|(id, _, _)| *id).collect();
        let rows: Vec<_> = tell
            .iter()
            .filter(|m| m.alert_id.is_some_and(|id| applied_to.contains(&id)))
            .map(|m| (m.alert_id, m))
            .collect();
        if !rows.is_empty() {
            super::alerts::insert_mails(&mut tx, &rows, audit.at).await?;
        }
        let (history_action, note) = match action {
            BulkAction::Acknowledge { note, .. } => ("acknowledged", note.clone()),
            BulkAction::Resolve { note } => ("resolved", note.clone()),
            BulkAction::Note { note } => ("note", note.clone()),
            BulkAction::Silence { reason, .. } => ("note", format!("通知を停止: {reason}")),
        };
        for chunk in done.chunks(ROWS_PER_STATEMENT * 5) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO alert_history (alert_id, at, actor, action, severity, note) \
                 SELECT id, ",
            );
            q.push_bind(now)
                .push(", ")
                .push_bind(who.clone())
                .push(", ")
                .push_bind(history_action)
                .push(", severity, ")
                .push_bind((!note.is_empty()).then(|| note.clone()))
                .push(" FROM alerts WHERE id IN (");
            let mut list = q.separated(", ");
            for (id, _, _) in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        if let BulkAction::Silence { until, reason } = action {
            let mut pairs: Vec<(Uuid, &str)> =
                done.iter().map(|(_, t, r)| (*t, r.as_str())).collect();
            pairs.sort();
            pairs.dedup();
            for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT INTO silences (terminal_id, clinic_id, prefecture, fleet, rule, \
                     starts_at, ends_at, daily_from, daily_to, weekdays, reason, created_by, \
                     created_at) ",
                );
                q.push_values(chunk, |mut row, (terminal, rule)| {
                    row.push_bind(terminal.to_string())
                        .push_bind(None::<i64>)
                        .push_bind(None::<String>)
                        .push_bind(false)
                        .push_bind(*rule)
                        .push_bind(now)
                        .push_bind(millis(*until))
                        .push_bind(None::<i64>)
                        .push_bind(None::<i64>)
                        .push_bind(0x7f_i64)
                        .push_bind(reason.clone())
                        .push_bind(who.clone())
                        .push_bind(now);
                });
                q.build().execute(&mut *tx).await?;
            }
        }
        let mut applied: Vec<i64> = done.iter().map(|(id, _, _)| *id).collect();
        applied.sort_unstable();
        if !applied.is_empty() {
            let listed: Vec<String> = applied.iter().map(|id| format!("#{id}")).collect();
            let what = format!(
                "{} ({} 件): {}",
                audit.what,
                applied.len(),
                listed.join(" ")
            );
            sqlx::query(
                "INSERT INTO audit_log (at, actor, user_id, what, action) VALUES (?, ?, ?, ?, 'bulk')",
            )
            .bind(now)
            .bind(&who)
            .bind(audit.actor.user_id())
            .bind(what)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        drop(conn);
        self.flush_wal().await?;
        let mut terminals: Vec<Uuid> = done.iter().map(|(_, t, _)| *t).collect();
        terminals.sort();
        terminals.dedup();
        Ok(BulkOutcome {
            alerts: applied,
            terminals,
        })
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT id, name, role, password_hash, disabled_at, scope FROM users WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(
            "SELECT id, name, role, password_hash, disabled_at, scope FROM users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from).collect()
    }

    async fn create_session(&self, session: &NewSession, audit: &AuditRecord) -> StoreResult<()> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(millis(session.created_at))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at, address) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&session.id_hash)
        .bind(session.user_id)
        .bind(&session.csrf)
        .bind(millis(session.created_at))
        .bind(millis(session.expires_at))
        .bind(&session.address)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO audit_log (at, actor, user_id, what, action) VALUES (?, ?, ?, ?, 'login')",
        )
        .bind(millis(audit.at))
        .bind(audit.actor.stored_name())
        .bind(audit.actor.user_id())
        .bind(&audit.what)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        drop(conn);
        self.flush_wal().await
    }

    async fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<SessionUser>> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.scope, s.csrf, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
        )
        .bind(id_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let role: String = r.try_get("role")?;
            Ok(SessionUser {
                user_id: r.try_get("id")?,
                name: r.try_get("name")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("user role {role:?}")))?,
                csrf: r.try_get("csrf")?,
                expires_at: from_millis(r.try_get("expires_at")?),
                scope: Scope::from_stored(r.try_get::<Option<String>, _>("scope")?.as_deref()),
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&mut *self.writer.lock().await)
            .await?;
        self.flush_wal().await
    }

    async fn audit_rows(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        let mut conn = self.pool.acquire().await?;
        pages::audit_page(&mut conn, q).await
    }

    async fn audit_actors(&self, reach: &Reach) -> StoreResult<Vec<String>> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT DISTINCT actor FROM audit_log WHERE 1 = 1");
        super::push_reach(&mut q, "clinic_id", reach);
        q.push(" ORDER BY actor LIMIT 500");
        Ok(q.build_query_scalar().fetch_all(&self.pool).await?)
    }

    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from).collect()
    }

    async fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from).transpose()
    }

    async fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(millis(at))
            .bind(id)
            .execute(&mut *self.writer.lock().await)
            .await?;
        self.flush_wal().await
    }

    async fn scope_clinics(&self, scope: &Scope) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM clinics WHERE prefecture IN (SELECT value FROM json_each(?)) \
             UNION SELECT clinic_id FROM clinic_group_members \
             WHERE group_id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(&scope.prefectures).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&scope.groups).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn clinic_groups(&self) -> StoreResult<Vec<ClinicGroup>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, (SELECT COUNT(*) FROM clinic_group_members m \
             WHERE m.group_id = g.id) AS clinics FROM clinic_groups g ORDER BY g.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClinicGroup {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    clinics: r.try_get("clinics")?,
                })
            })
            .collect()
    }

    async fn group_clinics(&self, group_id: i64) -> StoreResult<Vec<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT c.id, c.name FROM clinic_group_members m JOIN clinics c ON c.id = m.clinic_id \
             WHERE m.group_id = ? ORDER BY c.name, c.id",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?)
    }

    fn export_audit(&self, q: AuditQuery) -> BoxStream<'static, StoreResult<AuditRow>> {
        pages::audit_export(self.pool.clone(), AuditQuery { before: None, ..q })
    }
}

fn user_from(r: &SqliteRow) -> Result<User, StoreError> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("user role {role:?}")))?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        scope: Scope::from_stored(r.try_get::<Option<String>, _>("scope")?.as_deref()),
    })
}

const TOKEN_COLUMNS: &str =
    "id, name, role, scope, created_at, created_by, last_used_at, revoked_at";

fn token_from(r: &SqliteRow) -> Result<ApiToken, StoreError> {
    let role: String = r.try_get("role")?;
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("token role {role:?}")))?,
        scope: Scope::from_stored(r.try_get::<Option<String>, _>("scope")?.as_deref()),
        created_at: from_millis(r.try_get("created_at")?),
        created_by: r.try_get("created_by")?,
        last_used_at: r
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(from_millis),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(from_millis),
    })
}
