//! What a store reports when it fails, whatever the engine.

/// A store's failure, in the few kinds callers act on differently; the driver's own error is
/// kept as the source of [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row the caller named is not there.
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique value is taken, or a change does not fit what is stored.
    #[error("conflict: {0}")]
    Conflict(String),
    /// What is stored cannot be read back as what was written.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The engine failed: connection, I/O, a full disk, a migration.
    #[error("database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A backend failure with what was being done.
    pub fn backend(doing: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        StoreError::Backend(format!("{doing}: {e}").into())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound("no such row".into()),
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(d.message().to_string())
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
            e => StoreError::Backend(Box::new(e)),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(e.to_string())
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
            e => StoreError::Backend(Box::new(e)),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_errors_fall_into_their_kind() {
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::NotFound(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Backend(_)
        ));
        let bad: Result<i64, _> = serde_json::from_str("{");
        assert!(matches!(
            StoreError::from(bad.unwrap_err()),
            StoreError::Corrupt(_)
        ));
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT UNIQUE); INSERT INTO t VALUES ('a');")
            .unwrap();
        let dup = conn.execute("INSERT INTO t VALUES ('a')", []).unwrap_err();
        assert!(matches!(StoreError::from(dup), StoreError::Conflict(_)));
        let text: rusqlite::Error = conn
            .query_row("SELECT k FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert!(matches!(StoreError::from(text), StoreError::Corrupt(_)));
    }
}
