//! [`StaffStore`] on PostgreSQL: each change and its audit row in one transaction.
//!
//! Staff on two replicas may act on the same alert, silence or user at once: what a change
//! reads and then writes is locked first (`FOR UPDATE`, several rows in id order), or written
//! by one conditional statement whose row count says whether it applied.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::PgStore;
use super::alerts::{history, minute_of};
use super::clinics::{self, AccountOwner};
use crate::domain::{
    ApiToken, AuditRecord, AuditRow, ClinicGroup, Reach, Role, Scope, SessionUser, SilenceScope,
    User, VersionSource,
};
use crate::store::desk::{AuditQuery, NewSession};
use crate::store::staff::{Applied, BulkAction, BulkOutcome, StaffChange, StaffStore};
use crate::store::{StoreError, StoreResult, from_millis, millis};

/// Rows per page of an export.
const EXPORT_PAGE: i64 = 1_000;

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The clinic and terminal an alert belongs to, if it exists; with `lock`, the alert is kept
/// (from changes and from retention) until the transaction ends.
async fn alert_owner(
    tx: &mut PgConnection,
    id: i64,
    lock: bool,
) -> StoreResult<Option<(i64, Option<Uuid>)>> {
    let sql = if lock {
        "SELECT clinic_id, terminal_id FROM alerts WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT clinic_id, terminal_id FROM alerts WHERE id = $1"
    };
    let row = sqlx::query(sql).bind(id).fetch_optional(&mut *tx).await?;
    row.map(|r| {
        Ok((
            r.try_get("clinic_id")?,
            Some(r.try_get::<Uuid, _>("terminal_id")?),
        ))
    })
    .transpose()
}

/// Deletes a row of one of a clinic's lists (only of that clinic); whether there was one.
async fn delete_clinic_row(
    tx: &mut PgConnection,
    table: &'static str,
    clinic_id: i64,
    id: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE id = $1 AND clinic_id = $2"
    )))
    .bind(id)
    .bind(clinic_id)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A clinic's calendar or names changed: the evaluator rebuilds its clinics.
async fn bump_clinic(tx: &mut PgConnection, id: i64) -> StoreResult<()> {
    sqlx::query("UPDATE clinics SET settings_version = settings_version + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Whether the clinic exists; it is kept (`FOR KEY SHARE`: its columns may still change) until
/// the transaction ends, for the rows about to refer to it.
async fn clinic_exists(tx: &mut PgConnection, id: i64) -> StoreResult<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM clinics WHERE id = $1 FOR KEY SHARE")
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
impl StaffStore for PgStore {
    async fn apply(&self, change: &StaffChange, audit: &AuditRecord) -> StoreResult<Applied> {
        // Returning before the commit (NotFound, Conflict) rolls the transaction back.
        let mut tx = self.pool.begin().await?;
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
                    "UPDATE alerts SET status = 'acknowledged', ack_by = $1, ack_note = $2, \
                     ack_until = $3, updated_at = $4 WHERE id = $5 AND status <> 'resolved'",
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
                super::outbox::insert_mails(&mut *tx, &rows, audit.at).await?;
                c.alert_id = Some(*id);
            }
            StaffChange::ResolveAlert { id, note, tell } => {
                let done = sqlx::query(
                    "UPDATE alerts SET status = 'resolved', resolved_at = $1, resolved_by = $2, \
                     updated_at = $1, clear_since = NULL WHERE id = $3 AND status <> 'resolved'",
                )
                .bind(now)
                .bind(&who)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                history(&mut tx, *id, audit.at, &who, "resolved", note).await?;
                let rows: Vec<_> = tell.iter().map(|m| (Some(*id), m)).collect();
                super::outbox::insert_mails(&mut *tx, &rows, audit.at).await?;
                c.alert_id = Some(*id);
            }
            StaffChange::NoteAlert { id, note } => {
                if alert_owner(&mut tx, *id, true).await?.is_none() {
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
                let exists = match &s.scope {
                    // FOR SHARE: a revocation of the terminal waits for this silence.
                    SilenceScope::Terminal(t) => sqlx::query_scalar::<_, i32>(
                        "SELECT 1 FROM terminals WHERE id = $1 AND revoked_at IS NULL FOR SHARE",
                    )
                    .bind(t)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some(),
                    SilenceScope::Clinic(id) => clinic_exists(&mut tx, *id).await?,
                    SilenceScope::Prefecture(_) | SilenceScope::Fleet => true,
                };
                if !exists {
                    return Ok(Applied::NotFound);
                }
                let (terminal, clinic, prefecture, fleet) = match &s.scope {
                    SilenceScope::Terminal(t) => (Some(*t), None, None, false),
                    SilenceScope::Clinic(id) => (None, Some(*id), None, false),
                    SilenceScope::Prefecture(p) => (None, None, Some(p.clone()), false),
                    SilenceScope::Fleet => (None, None, None, true),
                };
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO silences (terminal_id, clinic_id, prefecture, fleet, rule, \
                     starts_at, ends_at, daily_from, daily_to, weekdays, reason, created_by, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     RETURNING id",
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
                // Locked: of two staff ending it at once, the second finds it ended (by
                // `ended_by`: its own `now` may be a moment before the first one's).
                let row = sqlx::query(
                    "SELECT terminal_id, clinic_id, starts_at FROM silences \
                     WHERE id = $1 AND ends_at > $2 AND ended_by IS NULL FOR UPDATE",
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
                    sqlx::query("UPDATE silences SET ends_at = $1, ended_by = $2 WHERE id = $3")
                        .bind(now)
                        .bind(&who)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    sqlx::query("DELETE FROM silences WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                c.terminal_id = row.try_get("terminal_id")?;
                c.clinic_id = row.try_get("clinic_id")?;
            }
            StaffChange::SaveClinic(detail) => {
                let s = &detail.settings;
                let saved = if s.id == 0 {
                    sqlx::query_scalar(
                        "INSERT INTO clinics (name, email, code, phone, notes, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
                        "UPDATE clinics SET code = $1, phone = $2, notes = $3 WHERE id = $4 \
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
                // The overview shows (and sorts by) the clinic's name and prefecture. Its lines
                // are locked in terminal order, as the evaluator writes them.
                sqlx::query(
                    "UPDATE overview_line SET clinic_name = $1, prefecture = $2 \
                     WHERE terminal_id IN (SELECT terminal_id FROM overview_line \
                     WHERE clinic_id = $3 ORDER BY terminal_id FOR UPDATE)",
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
                let from: Vec<NaiveDate> = closures.iter().map(|c| c.from).collect();
                let to: Vec<NaiveDate> = closures.iter().map(|c| c.to).collect();
                let reasons: Vec<&str> = closures.iter().map(|c| c.reason.as_str()).collect();
                let ids: Vec<i64> = sqlx::query_scalar(
                    "INSERT INTO clinic_closures (clinic_id, from_date, to_date, reason, \
                     created_by, created_at) SELECT $1, f, t, r, $5, $6 FROM \
                     UNNEST($2::date[], $3::date[], $4::text[]) WITH ORDINALITY AS u(f, t, r, n) \
                     ORDER BY n RETURNING id",
                )
                .bind(clinic_id)
                .bind(&from)
                .bind(&to)
                .bind(&reasons)
                .bind(&who)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                bump_clinic(&mut tx, *clinic_id).await?;
                if closures.len() == 1 {
                    c.created = ids.last().copied();
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
                // The baseline is taken again (from the next report made with these names),
                // and counts as confirmed for them. The terminal's row stays locked until the
                // names are replaced.
                let owner: Option<i64> = sqlx::query_scalar(
                    "UPDATE terminals SET accounts_confirmed_at = $1, accounts_confirmed_by = $2, \
                     accounts_confirmed_key = NULL, baseline_key = NULL, baseline_at = NULL, \
                     baseline_missing = '', accounts_version = accounts_version + 1 \
                     WHERE id = $3 AND revoked_at IS NULL RETURNING clinic_id",
                )
                .bind(now)
                .bind(&who)
                .bind(terminal_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(owner) = owner else {
                    return Ok(Applied::NotFound);
                };
                clinics::replace_accounts(
                    &mut tx,
                    AccountOwner::Terminal(*terminal_id),
                    own,
                    audit.at,
                )
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
                             set_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (clinic_id) DO \
                             UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed, \
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
                        sqlx::query("DELETE FROM backup_passwords WHERE clinic_id = $1")
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
                     SELECT id, $1, $2, $3, $4 FROM clinics WHERE id = $5 RETURNING id",
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
                     label, last_chars) SELECT $1, id, $2, $3, $4, $5 FROM clinics WHERE id = $6",
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
                    "UPDATE enrollment_codes SET revoked_at = $1 WHERE code_hash = $2 \
                     AND revoked_at IS NULL AND ($3::bigint IS NULL OR clinic_id = $3) \
                     RETURNING clinic_id",
                )
                .bind(now)
                .bind(code_hash)
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
                    "UPDATE terminals SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                     RETURNING clinic_id",
                )
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(owner) = owner else {
                    return Ok(Applied::NotFound);
                };
                // Gone from the overview; its history stays.
                sqlx::query("DELETE FROM overview_line WHERE terminal_id = $1")
                    .bind(id)
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
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, source) DO UPDATE SET \
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
                    sqlx::query("DELETE FROM expected_versions WHERE app = $1 AND source = $2")
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
                     password_changed_at, scope) VALUES ($1, $2, $3, $4, $4, $5) RETURNING id",
                )
                .bind(name)
                .bind(role.as_str())
                .bind(password_hash)
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
                let done = sqlx::query("UPDATE users SET role = $1, scope = $2 WHERE id = $3")
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
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
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
                    "INSERT INTO clinic_groups (name, created_at) VALUES ($1, $2) RETURNING id",
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
                sqlx::query("DELETE FROM clinic_group_members WHERE group_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM clinic_groups WHERE id = $1")
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
                // The group row locked: a membership never lands in a group being deleted.
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT g.id FROM clinic_groups g, clinics c WHERE g.id = $1 AND c.id = $2 \
                     FOR UPDATE OF g",
                )
                .bind(group_id)
                .bind(clinic_id)
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    return Ok(Applied::NotFound);
                }
                let sql = if *member {
                    "INSERT INTO clinic_group_members (group_id, clinic_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING"
                } else {
                    "DELETE FROM clinic_group_members WHERE group_id = $1 AND clinic_id = $2"
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
                    "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
                )
                .bind(password_hash)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            StaffChange::SetUserDisabled { user_id, disabled } => {
                let done = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
                    .bind(disabled.then_some(now))
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                if *disabled {
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        // The alert changes above hold its row locked already.
        if let Some(id) = c.alert_id
            && let Some((clinic, terminal)) = alert_owner(&mut tx, id, false).await?
        {
            c.clinic_id = Some(clinic);
            c.terminal_id = terminal;
        }
        // A line about a terminal names its clinic too: the clinic's page lists it.
        if let (Some(t), None) = (audit.terminal_id.or(c.terminal_id), c.clinic_id) {
            c.clinic_id = sqlx::query_scalar("SELECT clinic_id FROM terminals WHERE id = $1")
                .bind(t)
                .fetch_optional(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO audit_log (at, actor, user_id, terminal_id, clinic_id, alert_id, what, \
             action) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now)
        .bind(&who)
        .bind(audit.actor.user_id())
        .bind(audit.terminal_id.or(c.terminal_id))
        .bind(audit.clinic_id.or(c.clinic_id))
        .bind(audit.alert_id.or(c.alert_id))
        .bind(&audit.what)
        .bind(change.action())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        let mut tx = self.pool.begin().await?;
        let now = millis(audit.at);
        let who = audit.actor.stored_name();
        // Every alert named is locked first, in id order (so two bulk actions, or a bulk action
        // and retention, wait for each other instead of deadlocking); those that still exist
        // (and for acknowledge and resolve, are not resolved) are the ones it applies to.
        let unresolved_only = matches!(
            action,
            BulkAction::Acknowledge { .. } | BulkAction::Resolve { .. }
        );
        let rows = sqlx::query(
            "SELECT id, terminal_id, rule, status FROM alerts WHERE id = ANY($1) \
             ORDER BY id FOR UPDATE",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut done: Vec<(i64, Uuid, String)> = Vec::with_capacity(rows.len());
        for r in &rows {
            let status: &str = r.try_get("status")?;
            if unresolved_only && status == "resolved" {
                continue;
            }
            done.push((
                r.try_get("id")?,
                r.try_get("terminal_id")?,
                r.try_get("rule")?,
            ));
        }
        let applied: Vec<i64> = done.iter().map(|(id, _, _)| *id).collect();
        match action {
            BulkAction::Acknowledge { note, until } => {
                sqlx::query(
                    "UPDATE alerts SET status = 'acknowledged', ack_by = $1, ack_note = $2, \
                     ack_until = $3, updated_at = $4 WHERE id = ANY($5)",
                )
                .bind(&who)
                .bind(note)
                .bind(until.map(millis))
                .bind(now)
                .bind(&applied)
                .execute(&mut *tx)
                .await?;
            }
            BulkAction::Resolve { .. } => {
                sqlx::query(
                    "UPDATE alerts SET status = 'resolved', resolved_at = $1, resolved_by = $2, \
                     updated_at = $1, clear_since = NULL WHERE id = ANY($3)",
                )
                .bind(now)
                .bind(&who)
                .bind(&applied)
                .execute(&mut *tx)
                .await?;
            }
            BulkAction::Note { .. } | BulkAction::Silence { .. } => {}
        }
        let applied_to: std::collections::HashSet<i64> =
            done.iter().map(|(id, _, _)| *id).collect();
        let rows: Vec<_> = tell
            .iter()
            .filter(|m| m.alert_id.is_some_and(|id| applied_to.contains(&id)))
            .map(|m| (m.alert_id, m))
            .collect();
        if !rows.is_empty() {
            super::outbox::insert_mails(&mut *tx, &rows, audit.at).await?;
        }
        let (history_action, note) = match action {
            BulkAction::Acknowledge { note, .. } => ("acknowledged", note.clone()),
            BulkAction::Resolve { note } => ("resolved", note.clone()),
            BulkAction::Note { note } => ("note", note.clone()),
            BulkAction::Silence { reason, .. } => ("note", format!("通知を停止: {reason}")),
        };
        if !applied.is_empty() {
            sqlx::query(
                "INSERT INTO alert_history (alert_id, at, actor, action, severity, note) \
                 SELECT id, $1, $2, $3, severity, $4 FROM alerts WHERE id = ANY($5) ORDER BY id",
            )
            .bind(now)
            .bind(&who)
            .bind(history_action)
            .bind((!note.is_empty()).then_some(note.as_str()))
            .bind(&applied)
            .execute(&mut *tx)
            .await?;
        }
        if let BulkAction::Silence { until, reason } = action {
            let mut pairs: Vec<(Uuid, &str)> =
                done.iter().map(|(_, t, r)| (*t, r.as_str())).collect();
            pairs.sort();
            pairs.dedup();
            let terminals: Vec<Uuid> = pairs.iter().map(|(t, _)| *t).collect();
            let rules: Vec<&str> = pairs.iter().map(|(_, r)| *r).collect();
            if !pairs.is_empty() {
                sqlx::query(
                    "INSERT INTO silences (terminal_id, fleet, rule, starts_at, ends_at, \
                     weekdays, reason, created_by, created_at) \
                     SELECT t, FALSE, r, $3, $4, 127, $5, $6, $3 \
                     FROM UNNEST($1::uuid[], $2::text[]) WITH ORDINALITY AS u(t, r, n) \
                     ORDER BY n",
                )
                .bind(&terminals)
                .bind(&rules)
                .bind(now)
                .bind(millis(*until))
                .bind(reason)
                .bind(&who)
                .execute(&mut *tx)
                .await?;
            }
        }
        if !applied.is_empty() {
            let listed: Vec<String> = applied.iter().map(|id| format!("#{id}")).collect();
            let what = format!(
                "{} ({} 件): {}",
                audit.what,
                applied.len(),
                listed.join(" ")
            );
            sqlx::query(
                "INSERT INTO audit_log (at, actor, user_id, what, action) \
                 VALUES ($1, $2, $3, $4, 'bulk')",
            )
            .bind(now)
            .bind(&who)
            .bind(audit.actor.user_id())
            .bind(what)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
            "SELECT id, name, role, password_hash, disabled_at, scope FROM users WHERE name = $1",
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(millis(session.created_at))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at, address) \
             VALUES ($1, $2, $3, $4, $5, $6)",
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
            "INSERT INTO audit_log (at, actor, user_id, what, action) \
             VALUES ($1, $2, $3, $4, 'login')",
        )
        .bind(millis(audit.at))
        .bind(audit.actor.stored_name())
        .bind(audit.actor.user_id())
        .bind(&audit.what)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<SessionUser>> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.scope, s.csrf, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(id_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionUser {
                user_id: r.try_get("id")?,
                name: r.try_get("name")?,
                role: role_of(&r)?,
                csrf: r.try_get("csrf")?,
                expires_at: from_millis(r.try_get("expires_at")?),
                scope: Scope::from_stored(r.try_get::<Option<String>, _>("scope")?.as_deref()),
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn audit_rows(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        audit_page(&self.pool, q).await
    }

    async fn audit_actors(&self, reach: &Reach) -> StoreResult<Vec<String>> {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT DISTINCT actor FROM audit_log WHERE TRUE");
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
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from).transpose()
    }

    async fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(millis(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn scope_clinics(&self, scope: &Scope) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM clinics WHERE prefecture = ANY($1) \
             UNION SELECT clinic_id FROM clinic_group_members WHERE group_id = ANY($2)",
        )
        .bind(&scope.prefectures)
        .bind(&scope.groups)
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
             WHERE m.group_id = $1 ORDER BY c.name, c.id",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?)
    }

    fn export_audit(&self, q: AuditQuery) -> BoxStream<'static, StoreResult<AuditRow>> {
        audit_export(self.pool.clone(), q)
    }
}

fn role_of(r: &PgRow) -> Result<Role, StoreError> {
    let role: String = r.try_get("role")?;
    Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("user role {role:?}")))
}

fn user_from(r: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: role_of(r)?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        scope: Scope::from_stored(r.try_get::<Option<String>, _>("scope")?.as_deref()),
    })
}

fn audit_from(r: &PgRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: r.try_get("id")?,
        at: from_millis(r.try_get("at")?),
        actor: r.try_get("actor")?,
        terminal_id: r.try_get("terminal_id")?,
        clinic_id: r.try_get("clinic_id")?,
        alert_id: r.try_get("alert_id")?,
        what: r.try_get("what")?,
        action: r.try_get("action")?,
        hostname: r.try_get("hostname")?,
        clinic_name: r.try_get("clinic_name")?,
    })
}

/// One page of the audit log, newest first, before `f.before`: the page's ids off an index,
/// then the names of what those lines touched.
async fn audit_page(pool: &PgPool, f: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT l.id, l.at, l.actor, l.terminal_id, l.clinic_id, l.alert_id, \
         l.what, l.action, COALESCE(s.hostname, t.hostname) AS hostname, c.name AS clinic_name \
         FROM (SELECT id FROM audit_log a WHERE TRUE",
    );
    // A line about a terminal names its clinic, except the agent's own lines: those are found
    // through the terminal.
    if let Some(ids) = f.reach.ids() {
        q.push(" AND (a.clinic_id IN (SELECT unnest(")
            .push_bind(ids.to_vec())
            .push(
                "::int8[])) OR a.terminal_id IN (SELECT id FROM terminals WHERE clinic_id IN \
                 (SELECT unnest(",
            )
            .push_bind(ids.to_vec())
            .push("::int8[]))))");
    }
    if let Some(actor) = &f.actor {
        q.push(" AND a.actor = ").push_bind(actor.clone());
    }
    if let Some(c) = f.clinic_id {
        q.push(" AND a.clinic_id = ").push_bind(c);
    }
    if let Some(t) = f.terminal_id {
        q.push(" AND a.terminal_id = ").push_bind(t);
    }
    if let Some(id) = f.alert_id {
        q.push(" AND a.alert_id = ").push_bind(id);
    }
    if let Some(action) = &f.action {
        q.push(" AND a.action = ").push_bind(action.clone());
    }
    if let Some(before) = f.before {
        q.push(" AND a.id < ").push_bind(before);
    }
    q.push(" ORDER BY a.id DESC LIMIT ").push_bind(f.limit);
    q.push(
        ") page JOIN audit_log l ON l.id = page.id \
         LEFT JOIN terminals t ON t.id = l.terminal_id \
         LEFT JOIN latest_report s ON s.terminal_id = l.terminal_id \
         LEFT JOIN clinics c ON c.id = l.clinic_id ORDER BY l.id DESC",
    );
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(audit_from).collect()
}

/// Every audit line the filters match, newest first: page after page by id (lines written
/// meanwhile are newer than the first page and are left out), so neither the rows nor a
/// transaction are held while the client reads.
fn audit_export(pool: PgPool, f: AuditQuery) -> BoxStream<'static, StoreResult<AuditRow>> {
    let first = AuditQuery {
        before: None,
        limit: EXPORT_PAGE,
        ..f
    };
    stream::try_unfold(Some(first), move |next| {
        let pool = pool.clone();
        async move {
            let Some(mut q) = next else {
                return Ok::<_, StoreError>(None);
            };
            let page = audit_page(&pool, &q).await?;
            let more = page.len() as i64 == q.limit;
            q.before = page.last().map(|r| r.id);
            let next = more.then_some(q);
            Ok(Some((
                stream::iter(page.into_iter().map(Ok::<_, StoreError>)),
                next,
            )))
        }
    })
    .try_flatten()
    .boxed()
}

const TOKEN_COLUMNS: &str =
    "id, name, role, scope, created_at, created_by, last_used_at, revoked_at";

fn token_from(r: &PgRow) -> Result<ApiToken, StoreError> {
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
