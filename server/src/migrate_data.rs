//! `onshi-server migrate-data`: copies a desk's SQLite database into an empty PostgreSQL one
//! (clinics, terminals with their tokens, state and history, alerts, users, audit, outbox), so a
//! desk that outgrows one machine moves without re-enrolling any terminal.
//!
//! The source is read in one read transaction (a consistent snapshot, even while a server
//! still writes to it); the target is written in one transaction that commits only after every
//! table's row count matched, so a failed copy leaves the target as empty as it was. Ids are
//! copied as they are and the identity sequences moved past them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::NaiveDate;
use futures_util::TryStreamExt;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Arguments, Connection, Row, SqliteConnection};
use uuid::Uuid;

use crate::Error;
use crate::store::{PgStore, StoreError};

/// Every table, parents before the tables that refer to them. `starts` comes before
/// `latest_report`, whose trigger records a terminal's start (and finds it copied already).
pub const TABLES: [&str; 24] = [
    "clinics",
    "clinic_groups",
    "clinic_group_members",
    "users",
    "api_tokens",
    "sessions",
    "enrollment_codes",
    "terminals",
    "terminal_snapshot",
    "starts",
    "latest_report",
    "events",
    "report_hours",
    "expected_versions",
    "alerts",
    "alert_history",
    "silences",
    "audit_log",
    "outbox",
    "clinic_contacts",
    "clinic_closures",
    "account_names",
    "backup_passwords",
    "overview_line",
];

/// Rows per insert statement.
const BATCH: usize = 2_000;

/// How many rows each table had and got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Text,
    Uuid,
    Date,
    Bytes,
}

impl Kind {
    fn of(pg_type: &str) -> Result<Kind, Error> {
        Ok(match pg_type {
            "bigint" | "integer" => Kind::Int,
            "boolean" => Kind::Bool,
            "text" => Kind::Text,
            "uuid" => Kind::Uuid,
            "date" => Kind::Date,
            "bytea" => Kind::Bytes,
            other => {
                return Err(Error::Config(format!(
                    "migrate-data does not know the PostgreSQL type {other}"
                )));
            }
        })
    }

    fn array(self) -> &'static str {
        match self {
            Kind::Int => "bigint[]",
            Kind::Bool => "boolean[]",
            Kind::Text => "text[]",
            Kind::Uuid => "uuid[]",
            Kind::Date => "date[]",
            Kind::Bytes => "bytea[]",
        }
    }
}

/// One column's values of a batch, typed as the target wants them.
enum Values {
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
    Uuid(Vec<Option<Uuid>>),
    Date(Vec<Option<NaiveDate>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Values {
    fn new(kind: Kind) -> Values {
        match kind {
            Kind::Int => Values::Int(Vec::new()),
            Kind::Bool => Values::Bool(Vec::new()),
            Kind::Text => Values::Text(Vec::new()),
            Kind::Uuid => Values::Uuid(Vec::new()),
            Kind::Date => Values::Date(Vec::new()),
            Kind::Bytes => Values::Bytes(Vec::new()),
        }
    }

    /// Reads column `i` of a SQLite row into the batch.
    fn push(&mut self, row: &SqliteRow, i: usize, what: &dyn Fn() -> String) -> Result<(), Error> {
        let corrupt = |detail: String| Error::Corrupt(format!("{}: {detail}", what()));
        match self {
            Values::Int(v) => v.push(row.try_get(i).map_err(StoreError::from)?),
            Values::Bool(v) => {
                let n: Option<i64> = row.try_get(i).map_err(StoreError::from)?;
                v.push(n.map(|n| n != 0));
            }
            Values::Text(v) => v.push(row.try_get(i).map_err(StoreError::from)?),
            Values::Uuid(v) => {
                let s: Option<String> = row.try_get(i).map_err(StoreError::from)?;
                v.push(
                    s.map(|s| Uuid::parse_str(&s).map_err(|e| corrupt(format!("{s:?}: {e}"))))
                        .transpose()?,
                );
            }
            Values::Date(v) => {
                let s: Option<String> = row.try_get(i).map_err(StoreError::from)?;
                v.push(
                    s.map(|s| {
                        NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                            .map_err(|e| corrupt(format!("{s:?}: {e}")))
                    })
                    .transpose()?,
                );
            }
            Values::Bytes(v) => v.push(row.try_get(i).map_err(StoreError::from)?),
        }
        Ok(())
    }

    fn bind(self, args: &mut PgArguments) -> Result<(), Error> {
        let r = match self {
            Values::Int(v) => args.add(v),
            Values::Bool(v) => args.add(v),
            Values::Text(v) => args.add(v),
            Values::Uuid(v) => args.add(v),
            Values::Date(v) => args.add(v),
            Values::Bytes(v) => args.add(v),
        };
        r.map_err(|e| Error::Store(StoreError::backend("binding a batch", e)))
    }
}

fn db(e: sqlx::Error) -> Error {
    Error::Store(StoreError::from(e))
}

/// Copies the SQLite database at `from` into the PostgreSQL database at `to` (migrated here
/// first; it must hold no rows). Returns each table's row count, equal on both sides.
pub async fn migrate_data(from: &std::path::Path, to: &str) -> Result<Vec<Copied>, Error> {
    if !from.exists() {
        return Err(Error::Config(format!("{} does not exist", from.display())));
    }
    // Opening the SQLite store runs its migrations: the source has this build's schema.
    drop(crate::store::SqliteStore::open(from).await?);
    let target = PgStore::open(to).await?;
    let mut source = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(from)
            .read_only(true)
            .busy_timeout(std::time::Duration::from_secs(10)),
    )
    .await
    .map_err(db)?;
    let mut snapshot = source.begin().await.map_err(db)?;
    let mut tx = target.pool().begin().await.map_err(db)?;

    let tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?
    .into_iter()
    .collect();
    let known: BTreeSet<String> = TABLES.iter().map(|t| t.to_string()).collect();
    if tables != known {
        return Err(Error::Config(format!(
            "the PostgreSQL schema's tables {tables:?} are not the ones migrate-data copies \
             {known:?}"
        )));
    }

    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let rows = copy_table(&mut snapshot, &mut tx, table).await?;
        copied.push(Copied { table, rows });
    }
    // Checked inside the copy's transaction: a mismatch commits nothing.
    for c in &copied {
        let got: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            c.table
        )))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let had: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            c.table
        )))
        .fetch_one(&mut *snapshot)
        .await
        .map_err(db)?;
        if got != had || got != c.rows {
            return Err(Error::Corrupt(format!(
                "{}: {had} rows in SQLite, {} read, {got} in PostgreSQL; nothing was committed",
                c.table, c.rows
            )));
        }
    }
    move_sequences(&mut tx).await?;
    tx.commit().await.map_err(db)?;
    snapshot.rollback().await.map_err(db)?;
    // The planner's statistics for the copied tables, before the first server plans a page
    // (autovacuum would gather them too, later, if it is on).
    sqlx::query("ANALYZE")
        .execute(target.pool())
        .await
        .map_err(db)?;
    Ok(copied)
}

/// The target's columns of `table` with their kinds, in order.
async fn columns(tx: &mut sqlx::PgConnection, table: &str) -> Result<Vec<(String, Kind)>, Error> {
    let rows = sqlx::query(
        "SELECT column_name::text AS name, data_type::text AS ty FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let name: String = r.try_get("name").map_err(db)?;
            let ty: String = r.try_get("ty").map_err(db)?;
            Ok((name, Kind::of(&ty)?))
        })
        .collect()
}

async fn copy_table(
    source: &mut SqliteConnection,
    tx: &mut sqlx::PgConnection,
    table: &'static str,
) -> Result<i64, Error> {
    let existing: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
    if existing > 0 {
        return Err(Error::Config(format!(
            "the PostgreSQL table {table} already has {existing} rows: migrate-data copies into \
             an empty database only"
        )));
    }
    let source_columns: BTreeSet<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(table)
            .fetch_all(&mut *source)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
    // `events.n` keeps the order events were stored in: made here from SQLite's rowid order.
    let columns: Vec<(String, Kind)> = columns(tx, table)
        .await?
        .into_iter()
        .filter(|(name, _)| source_columns.contains(name))
        .collect();
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let order = if table == "events" {
        " ORDER BY rowid"
    } else {
        ""
    };
    let select = format!("SELECT {} FROM {table}{order}", names.join(", "));
    let mut insert = format!(
        "INSERT INTO {table} ({}) SELECT * FROM UNNEST(",
        names.join(", ")
    );
    for (i, (_, kind)) in columns.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(insert, "{sep}${}::{}", i + 1, kind.array());
    }
    insert.push(')');

    let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(&mut *source);
    let mut batch: Vec<Values> = columns.iter().map(|(_, k)| Values::new(*k)).collect();
    let mut in_batch = 0usize;
    let mut total = 0i64;
    while let Some(row) = rows.try_next().await.map_err(db)? {
        for (i, values) in batch.iter_mut().enumerate() {
            let what = || format!("{table}.{} of row {}", columns[i].0, total + 1);
            values.push(&row, i, &what)?;
        }
        in_batch += 1;
        total += 1;
        if in_batch == BATCH {
            let full = std::mem::replace(
                &mut batch,
                columns.iter().map(|(_, k)| Values::new(*k)).collect(),
            );
            insert_batch(tx, &insert, full).await?;
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        insert_batch(tx, &insert, batch).await?;
    }
    Ok(total)
}

async fn insert_batch(
    tx: &mut sqlx::PgConnection,
    insert: &str,
    batch: Vec<Values>,
) -> Result<(), Error> {
    let mut args = PgArguments::default();
    for values in batch {
        values.bind(&mut args)?;
    }
    sqlx::query_with(sqlx::AssertSqlSafe(insert.to_string()), args)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// Moves every identity sequence past the ids copied into its column.
async fn move_sequences(tx: &mut sqlx::PgConnection) -> Result<(), Error> {
    let identities = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    for r in &identities {
        let t: String = r.try_get("t").map_err(db)?;
        let c: String = r.try_get("c").map_err(db)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('{t}', '{c}'), \
             COALESCE((SELECT MAX({c}) FROM {t}), 0) + 1, false)"
        )))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}
