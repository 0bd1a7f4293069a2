//! [`FleetView`] on PostgreSQL: the support desk's pages.

#![allow(unused_imports, unused_variables)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use uuid::Uuid;

use super::PgStore;
use crate::domain::{ClinicDetail, Contact, FleetTally, OverviewLine, Silence};
use crate::store::StoreResult;
use crate::store::desk::*;

#[async_trait]
impl FleetView for PgStore {
    async fn overview_lines(&self) -> StoreResult<Vec<OverviewLine>> {
        todo!("postgres overview_lines")
    }
    async fn write_overview_lines(
        &self,
        rows: &[OverviewLine],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        todo!("postgres write_overview_lines")
    }
    async fn overview_counts(&self) -> StoreResult<FleetTally> {
        todo!("postgres overview_counts")
    }
    async fn fleet_count(&self, q: &FleetQuery) -> StoreResult<i64> {
        todo!("postgres fleet_count")
    }
    async fn fleet_rows(&self, q: &FleetQuery) -> StoreResult<Vec<FleetRow>> {
        todo!("postgres fleet_rows")
    }
    async fn prefectures(&self) -> StoreResult<Vec<String>> {
        todo!("postgres prefectures")
    }
    async fn terminal_detail(&self, id: Uuid) -> StoreResult<Option<TerminalDetail>> {
        todo!("postgres terminal_detail")
    }
    async fn report_hours(
        &self,
        id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        todo!("postgres report_hours")
    }
    async fn recent_events(
        &self,
        id: Uuid,
        since: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<crate::store::StoredEvent>> {
        todo!("postgres recent_events")
    }
    async fn alert_views(&self, q: &AlertQuery) -> StoreResult<(i64, Vec<AlertView>)> {
        todo!("postgres alert_views")
    }
    async fn alert_ids(&self, q: &AlertQuery, limit: i64) -> StoreResult<Vec<i64>> {
        todo!("postgres alert_ids")
    }
    async fn response_times(
        &self,
        group: AlertGroup,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<ResponseTimes>> {
        todo!("postgres response_times")
    }
    async fn clinic_list(
        &self,
        search: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(i64, Vec<ClinicListRow>)> {
        todo!("postgres clinic_list")
    }
    async fn clinic_detail(&self, id: i64) -> StoreResult<Option<ClinicDetail>> {
        todo!("postgres clinic_detail")
    }
    async fn contacts(&self, clinic_id: i64) -> StoreResult<Vec<Contact>> {
        todo!("postgres contacts")
    }
    async fn enrollment_codes(&self, clinic_id: i64) -> StoreResult<Vec<CodeRow>> {
        todo!("postgres enrollment_codes")
    }
    fn export_fleet(&self, q: FleetQuery) -> BoxStream<'static, StoreResult<FleetRow>> {
        todo!("postgres export_fleet")
    }
    fn export_alerts(&self, q: AlertQuery) -> BoxStream<'static, StoreResult<AlertView>> {
        todo!("postgres export_alerts")
    }
    async fn silences(
        &self,
        now: DateTime<Utc>,
        ended_since: DateTime<Utc>,
    ) -> StoreResult<Vec<Silence>> {
        todo!("postgres silences")
    }
    async fn terminal_accounts(&self, id: Uuid) -> StoreResult<Vec<onshi_shared::AccountSpec>> {
        todo!("postgres terminal_accounts")
    }
    async fn backup_password_set(
        &self,
        clinic_id: i64,
    ) -> StoreResult<Option<(String, DateTime<Utc>)>> {
        todo!("postgres backup_password_set")
    }
    async fn terminal_baseline(&self, id: Uuid) -> StoreResult<Option<TerminalBaseline>> {
        todo!("postgres terminal_baseline")
    }
}
