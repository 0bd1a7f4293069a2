//! The server's integration tests: one binary, one [`support::TestApp`].
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod alerts;
mod api;
mod desk;
mod desk_day;
mod engines;
mod limits;
mod pg_alerts;
mod pg_desk;
mod pg_staff;
mod postgres;
mod read_api;
mod retention;
mod router;
mod scopes;
mod staff;
mod support;
mod trusted;
