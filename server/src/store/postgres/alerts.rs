//! [`AlertStore`] on PostgreSQL.

#![allow(unused_imports, unused_variables)]

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::PgStore;
use crate::domain::{Alert, ClinicSettings, ExpectedVersionRow, HistoryEntry, Silence};
use crate::rules::{AccountRecord, AuditEntry, BaselineWrite};
use crate::store::StoreResult;
use crate::store::alerts::*;

#[async_trait]
impl AlertStore for PgStore {
    async fn clinic_settings(&self, closures_from: NaiveDate) -> StoreResult<Vec<ClinicSettings>> {
        todo!("postgres clinic_settings")
    }
    async fn terminal_heads(
        &self,
        selection: InputSelection<'_>,
    ) -> StoreResult<Vec<TerminalHead>> {
        todo!("postgres terminal_heads")
    }
    async fn account_records(&self, ids: &[Uuid]) -> StoreResult<Vec<(Uuid, AccountRecord)>> {
        todo!("postgres account_records")
    }
    async fn snapshot_bodies(&self, ids: &[Uuid]) -> StoreResult<Vec<(Uuid, i64, String)>> {
        todo!("postgres snapshot_bodies")
    }
    async fn rule_extras(
        &self,
        span: TerminalSpan<'_>,
        events_since: DateTime<Utc>,
    ) -> StoreResult<RuleExtras> {
        todo!("postgres rule_extras")
    }
    async fn clinics_version(&self) -> StoreResult<(i64, i64)> {
        todo!("postgres clinics_version")
    }
    async fn expected_versions(&self) -> StoreResult<Vec<ExpectedVersionRow>> {
        todo!("postgres expected_versions")
    }
    async fn set_fleet_version(
        &self,
        app: &str,
        version: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<()> {
        todo!("postgres set_fleet_version")
    }
    async fn active_alerts(&self, terminals: Option<&[Uuid]>) -> StoreResult<Vec<Alert>> {
        todo!("postgres active_alerts")
    }
    async fn history_mark(&self) -> StoreResult<i64> {
        todo!("postgres history_mark")
    }
    async fn history_heads(&self, ranges: &[(i64, i64)]) -> StoreResult<Vec<HistoryHead>> {
        todo!("postgres history_heads")
    }
    async fn alerts_by_id(&self, ids: &[i64]) -> StoreResult<Vec<Alert>> {
        todo!("postgres alerts_by_id")
    }
    async fn alert(&self, id: i64) -> StoreResult<Option<Alert>> {
        todo!("postgres alert")
    }
    async fn apply_alert_changes(
        &self,
        changes: &[AlertChange],
        audit: &[AuditEntry],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        todo!("postgres apply_alert_changes")
    }
    async fn alert_history(&self, id: i64) -> StoreResult<Vec<HistoryEntry>> {
        todo!("postgres alert_history")
    }
    async fn silences_in_force(&self, now: DateTime<Utc>) -> StoreResult<Vec<Silence>> {
        todo!("postgres silences_in_force")
    }
    async fn record_baselines(
        &self,
        baselines: &[BaselineWrite],
    ) -> StoreResult<Vec<(Uuid, AccountRecord)>> {
        todo!("postgres record_baselines")
    }
    async fn alert_counts(&self) -> StoreResult<AlertCounts> {
        todo!("postgres alert_counts")
    }
}
