//! Clinic and desk e-mail: [`compose`] writes the Japanese notices (with the [`steps`] a clinic
//! can take), [`transport`] delivers a message, [`sender`] works the outbox.
//!
//! Delivery is at least once with a stable Message-ID: a row is marked sent (and flushed) right
//! after the server accepted it, so only a crash inside that instant can send it again, and the
//! receiver sees the same Message-ID both times. Everything else never sends a row twice.

pub mod channels;
pub mod compose;
pub mod sender;
pub mod steps;
pub mod transport;

pub use compose::Composer;
pub use sender::{Sender, backoff};
pub use transport::{SendFailure, Transport, build_message};

/// The national call centre for online qualification confirmation.
pub const NATIONAL_CALL_CENTRE: &str = "0800-080-4583";
