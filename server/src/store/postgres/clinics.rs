//! Clinic rows on PostgreSQL, as the rules, the mails and the clinic page read them (the same
//! reads and writes as `sqlite::clinics`): settings, calendar, closures and account names.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use onshi_shared::{AccountRole, AccountSpec};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::calendar::{BusinessHours, Closure, Window, format_week, parse_week};
use crate::domain::{ClinicRules, ClinicSettings};
use crate::store::StoreError;
use crate::store::{StoreResult, millis};

/// The columns [`settings_from`] reads.
pub(super) const SETTINGS_COLUMNS: &str = "id, name, email, week_hours, closed_on_holidays, \
     closed_new_year, closed_obon, desk_name, desk_phone, prefecture, restart_warning_hours, \
     restart_critical_hours, offline_after_intervals, offline_critical_days, file_rename_counts";

fn opt_u32(r: &PgRow, col: &str) -> Result<Option<u32>, sqlx::Error> {
    Ok(r.try_get::<Option<i64>, _>(col)?
        .and_then(|v| u32::try_from(v).ok()))
}

/// Weeks already read, by their stored text (most clinics keep one of a few weeks).
#[derive(Default)]
pub(super) struct Weeks(HashMap<String, [Vec<Window>; 7]>);

impl Weeks {
    fn get(&mut self, id: i64, text: &str) -> Result<[Vec<Window>; 7], StoreError> {
        if let Some(w) = self.0.get(text) {
            return Ok(w.clone());
        }
        let week = parse_week(text)
            .map_err(|e| StoreError::Corrupt(format!("clinic {id} week_hours: {e}")))?;
        self.0.insert(text.to_string(), week.clone());
        Ok(week)
    }
}

/// A clinic row's settings, without its closures and account names (see [`complete`]).
pub(super) fn settings_from(r: &PgRow, weeks: &mut Weeks) -> Result<ClinicSettings, StoreError> {
    let week: &str = r.try_get("week_hours")?;
    let id: i64 = r.try_get("id")?;
    Ok(ClinicSettings {
        id,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        hours: BusinessHours {
            week: weeks.get(id, week)?,
            closed_on_holidays: r.try_get("closed_on_holidays")?,
            closed_new_year: r.try_get("closed_new_year")?,
            closed_obon: r.try_get("closed_obon")?,
            closures: Vec::new(),
        },
        desk_name: r.try_get("desk_name")?,
        desk_phone: r.try_get("desk_phone")?,
        prefecture: r.try_get("prefecture")?,
        accounts: Vec::new(),
        rules: ClinicRules {
            restart_warning_hours: opt_u32(r, "restart_warning_hours")?,
            restart_critical_hours: opt_u32(r, "restart_critical_hours")?,
            offline_after_intervals: opt_u32(r, "offline_after_intervals")?,
            offline_critical_days: opt_u32(r, "offline_critical_days")?,
            file_rename_counts: r.try_get("file_rename_counts")?,
        },
    })
}

/// Closures ending on or after `from` (all with `None`), per clinic (one clinic with `clinic`).
pub(super) async fn closures(
    pool: &PgPool,
    clinic: Option<i64>,
    from: Option<NaiveDate>,
) -> StoreResult<HashMap<i64, Vec<Closure>>> {
    let rows = sqlx::query(
        "SELECT id, clinic_id, from_date, to_date, reason FROM clinic_closures \
         WHERE ($1::bigint IS NULL OR clinic_id = $1) AND ($2::date IS NULL OR to_date >= $2)",
    )
    .bind(clinic)
    .bind(from)
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<i64, Vec<Closure>> = HashMap::new();
    for r in &rows {
        out.entry(r.try_get("clinic_id")?)
            .or_default()
            .push(Closure {
                id: r.try_get("id")?,
                from: r.try_get("from_date")?,
                to: r.try_get("to_date")?,
                reason: r.try_get("reason")?,
            });
    }
    Ok(out)
}

fn spec_from(r: &PgRow) -> Result<AccountSpec, StoreError> {
    let role: String = r.try_get("role")?;
    Ok(AccountSpec {
        role: AccountRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("account role {role:?}")))?,
        name: r.try_get("name")?,
    })
}

/// The account names clinics give their terminals (one clinic with `clinic`).
pub(super) async fn clinic_accounts(
    pool: &PgPool,
    clinic: Option<i64>,
) -> StoreResult<HashMap<i64, Vec<AccountSpec>>> {
    let rows = sqlx::query(
        "SELECT clinic_id, role, name FROM account_names WHERE clinic_id IS NOT NULL \
         AND ($1::bigint IS NULL OR clinic_id = $1) ORDER BY clinic_id, role",
    )
    .bind(clinic)
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<i64, Vec<AccountSpec>> = HashMap::new();
    for r in &rows {
        out.entry(r.try_get("clinic_id")?)
            .or_default()
            .push(spec_from(r)?);
    }
    for specs in out.values_mut() {
        specs.sort_by_key(|s| s.role);
    }
    Ok(out)
}

/// The account names single terminals are given over their clinic's (one terminal with
/// `terminal`).
pub(super) async fn terminal_accounts(
    pool: &PgPool,
    terminal: Option<Uuid>,
) -> StoreResult<HashMap<Uuid, Vec<AccountSpec>>> {
    let rows = sqlx::query(
        "SELECT terminal_id, role, name FROM account_names WHERE terminal_id IS NOT NULL \
         AND ($1::uuid IS NULL OR terminal_id = $1)",
    )
    .bind(terminal)
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<Uuid, Vec<AccountSpec>> = HashMap::new();
    for r in &rows {
        out.entry(r.try_get("terminal_id")?)
            .or_default()
            .push(spec_from(r)?);
    }
    for specs in out.values_mut() {
        specs.sort_by_key(|s| s.role);
    }
    Ok(out)
}

/// Fills in the closures and account names [`settings_from`] leaves out.
pub(super) fn complete(
    mut c: ClinicSettings,
    closures: &mut HashMap<i64, Vec<Closure>>,
    accounts: &mut HashMap<i64, Vec<AccountSpec>>,
) -> ClinicSettings {
    c.hours.closures = closures.remove(&c.id).unwrap_or_default();
    c.accounts = accounts.remove(&c.id).unwrap_or_default();
    c
}

/// Writes a clinic's settings columns (the row exists).
pub(super) async fn write_settings(
    tx: &mut PgConnection,
    id: i64,
    s: &ClinicSettings,
) -> StoreResult<()> {
    let h = &s.hours;
    let r = &s.rules;
    sqlx::query(
        "UPDATE clinics SET name = $1, email = $2, week_hours = $3, closed_on_holidays = $4, \
         closed_new_year = $5, closed_obon = $6, desk_name = $7, desk_phone = $8, \
         prefecture = $9, restart_warning_hours = $10, restart_critical_hours = $11, \
         offline_after_intervals = $12, offline_critical_days = $13, file_rename_counts = $14, \
         settings_version = settings_version + 1 WHERE id = $15",
    )
    .bind(&s.name)
    .bind(&s.email)
    .bind(format_week(&h.week))
    .bind(h.closed_on_holidays)
    .bind(h.closed_new_year)
    .bind(h.closed_obon)
    .bind(&s.desk_name)
    .bind(&s.desk_phone)
    .bind(&s.prefecture)
    .bind(r.restart_warning_hours.map(i64::from))
    .bind(r.restart_critical_hours.map(i64::from))
    .bind(r.offline_after_intervals.map(i64::from))
    .bind(r.offline_critical_days.map(i64::from))
    .bind(r.file_rename_counts)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Replaces the account names of a clinic or a terminal; an empty list removes them.
pub(super) async fn replace_accounts(
    tx: &mut PgConnection,
    owner: AccountOwner,
    specs: &[AccountSpec],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let (clinic, terminal) = match owner {
        AccountOwner::Clinic(id) => (Some(id), None),
        AccountOwner::Terminal(id) => (None, Some(id)),
    };
    sqlx::query(
        "DELETE FROM account_names WHERE ($1::bigint IS NOT NULL AND clinic_id = $1) \
         OR ($2::uuid IS NOT NULL AND terminal_id = $2)",
    )
    .bind(clinic)
    .bind(terminal)
    .execute(&mut *tx)
    .await?;
    if specs.is_empty() {
        return Ok(());
    }
    let roles: Vec<&str> = specs.iter().map(|s| s.role.as_str()).collect();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    sqlx::query(
        "INSERT INTO account_names (clinic_id, terminal_id, role, name, updated_at) \
         SELECT $1, $2, role, name, $5 FROM UNNEST($3::text[], $4::text[]) AS u(role, name)",
    )
    .bind(clinic)
    .bind(terminal)
    .bind(&roles)
    .bind(&names)
    .bind(millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub(super) enum AccountOwner {
    Clinic(i64),
    Terminal(Uuid),
}
