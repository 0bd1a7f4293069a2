//! The agent's integration tests: one binary. The fake terminal they read is the test kit's
//! [`onshi_testkit::FakeMachine::lab`].
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod collect;
mod run_loop;
mod spool_model;
mod verify_backup;
