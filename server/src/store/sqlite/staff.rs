//! [`StaffStore`] for SQLite: each change and its audit row in one transaction on the writer
//! connection, flushed before it returns.

use async_trait::async_trait;
use sqlx::{Connection, Row, SqliteConnection};
use uuid::Uuid;

use super::alerts::{history, minute_of};
use super::desk::is_unique_violation;
use super::{SqliteStore, uuid_col};
use crate::Error;
use crate::calendar::format_weekdays;
use crate::domain::{AuditRecord, VersionSource};
use crate::store::staff::{Applied, StaffChange, StaffStore};
use crate::store::{StoreResult, millis};

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

/// What the audit row names besides what the desk layer said.
#[derive(Default)]
struct Concerned {
    clinic_id: Option<i64>,
    terminal_id: Option<Uuid>,
    alert_id: Option<i64>,
    created: Option<i64>,
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
            StaffChange::AcknowledgeAlert { id, note, until } => {
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
                c.alert_id = Some(*id);
            }
            StaffChange::ResolveAlert { id, note } => {
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
                if s.terminal_id.is_some() == s.clinic_id.is_some() || s.ends_at <= s.starts_at {
                    return Err(Error::Config(
                        "a silence covers one terminal or one clinic, and ends after it starts"
                            .into(),
                    ));
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO silences (terminal_id, clinic_id, starts_at, ends_at, reason, \
                     created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(s.terminal_id.map(|t| t.to_string()))
                .bind(s.clinic_id)
                .bind(millis(s.starts_at))
                .bind(millis(s.ends_at))
                .bind(&s.reason)
                .bind(&who)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                c.created = Some(id);
                c.terminal_id = s.terminal_id;
                c.clinic_id = s.clinic_id;
            }
            StaffChange::EndSilence { id } => {
                let row = sqlx::query(
                    "SELECT terminal_id, clinic_id, starts_at FROM silences \
                     WHERE id = ? AND ends_at > ?",
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
                    sqlx::query("UPDATE silences SET ends_at = ? WHERE id = ?")
                        .bind(now)
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
                // Both statements take the same parameters; the last is `created_at` or `id`.
                let sql = if s.id == 0 {
                    "INSERT INTO clinics (name, email, open_minute, close_minute, \
                     closed_weekdays, closed_on_holidays, desk_name, desk_phone, code, \
                     prefecture, phone, notes, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
                } else {
                    "UPDATE clinics SET name = ?, email = ?, open_minute = ?, close_minute = ?, \
                     closed_weekdays = ?, closed_on_holidays = ?, desk_name = ?, desk_phone = ?, \
                     code = ?, prefecture = ?, phone = ?, notes = ? WHERE id = ? RETURNING id"
                };
                let saved = sqlx::query_scalar(sql)
                    .bind(&s.name)
                    .bind(&s.email)
                    .bind(minute_of(s.hours.open))
                    .bind(minute_of(s.hours.close))
                    .bind(format_weekdays(&s.hours.closed_weekdays))
                    .bind(s.hours.closed_on_holidays)
                    .bind(&s.desk_name)
                    .bind(&s.desk_phone)
                    .bind(&detail.code)
                    .bind(&s.prefecture)
                    .bind(&detail.phone)
                    .bind(&detail.notes)
                    .bind(if s.id == 0 { now } else { s.id })
                    .fetch_optional(&mut *tx)
                    .await;
                let id: i64 = match saved {
                    Ok(Some(id)) => id,
                    Ok(None) => return Ok(Applied::NotFound),
                    Err(e) if is_unique_violation(&e) => return Ok(Applied::Conflict),
                    Err(e) => return Err(e.into()),
                };
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
                let done =
                    sqlx::query("DELETE FROM clinic_contacts WHERE id = ? AND clinic_id = ?")
                        .bind(id)
                        .bind(clinic_id)
                        .execute(&mut *tx)
                        .await?;
                if done.rows_affected() == 0 {
                    return Ok(Applied::NotFound);
                }
                c.clinic_id = Some(*clinic_id);
            }
            StaffChange::AddEnrollmentCode {
                clinic_id,
                code_hash,
                expires_at,
            } => {
                let done = sqlx::query(
                    "INSERT INTO enrollment_codes (code_hash, clinic_id, created_at, expires_at) \
                     SELECT ?, id, ?, ? FROM clinics WHERE id = ?",
                )
                .bind(code_hash)
                .bind(now)
                .bind(millis(*expires_at))
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
            } => {
                let id = sqlx::query_scalar(
                    "INSERT INTO users (name, role, password_hash, created_at, \
                     password_changed_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(name)
                .bind(role.as_str())
                .bind(password_hash)
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await;
                match id {
                    Ok(id) => c.created = Some(id),
                    Err(e) if is_unique_violation(&e) => return Ok(Applied::Conflict),
                    Err(e) => return Err(e.into()),
                }
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
            "INSERT INTO audit_log (at, actor, user_id, terminal_id, clinic_id, alert_id, what) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(now)
        .bind(&who)
        .bind(audit.actor.user_id())
        .bind(audit.terminal_id.or(c.terminal_id).map(|t| t.to_string()))
        .bind(audit.clinic_id.or(c.clinic_id))
        .bind(audit.alert_id.or(c.alert_id))
        .bind(&audit.what)
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
}
