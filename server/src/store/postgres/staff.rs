//! [`StaffStore`] on PostgreSQL: each change and its audit row in one transaction.

#![allow(unused_imports, unused_variables)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

use super::PgStore;
use crate::domain::{AuditRecord, AuditRow, SessionUser, User};
use crate::store::StoreResult;
use crate::store::desk::{AuditQuery, NewSession};
use crate::store::staff::*;

#[async_trait]
impl StaffStore for PgStore {
    async fn apply(&self, change: &StaffChange, audit: &AuditRecord) -> StoreResult<Applied> {
        todo!("postgres apply")
    }
    async fn bulk_alerts(
        &self,
        ids: &[i64],
        action: &BulkAction,
        audit: &AuditRecord,
    ) -> StoreResult<BulkOutcome> {
        todo!("postgres bulk_alerts")
    }
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        todo!("postgres user_by_name")
    }
    async fn users(&self) -> StoreResult<Vec<User>> {
        todo!("postgres users")
    }
    async fn create_session(&self, session: &NewSession, audit: &AuditRecord) -> StoreResult<()> {
        todo!("postgres create_session")
    }
    async fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<SessionUser>> {
        todo!("postgres session")
    }
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        todo!("postgres delete_session")
    }
    async fn audit_rows(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        todo!("postgres audit_rows")
    }
    async fn audit_actors(&self) -> StoreResult<Vec<String>> {
        todo!("postgres audit_actors")
    }
    fn export_audit(&self, q: AuditQuery) -> BoxStream<'static, StoreResult<AuditRow>> {
        todo!("postgres export_audit")
    }
}
