//! What Onshi Watch's tests share across crates: a real SMTP receiver on loopback, a staff
//! member signed in to the dashboard, a fake terminal for the agent's `--root`, sample reports
//! at a given time, and waiting for something to become true. Test code: it panics with a clear
//! message where a test cannot go on.
#![allow(clippy::unwrap_used)]

pub mod desk;
pub mod http;
pub mod machine;
pub mod pg;
pub mod process;
pub mod reports;
pub mod smtp;
pub mod tls;
pub mod wait;

pub use desk::DeskClient;
pub use machine::FakeMachine;
pub use process::Proc;
pub use smtp::{Mode, Received, SmtpReceiver};
pub use tls::TestPki;
pub use wait::{TimedOut, wait_for};

/// A free loopback port (bound, then released for a child process to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
