//! Size limits both sides enforce, and the validation that checks them.

use thiserror::Error;

/// Largest request body the server reads (after gzip decoding).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most events one report may carry; the agent sends the rest in the next report.
pub const MAX_EVENTS_PER_REPORT: usize = 200;
/// Longest string anywhere in a report, in bytes.
pub const MAX_STRING_LEN: usize = 512;
/// Longest list anywhere in a snapshot (adapters, addresses, certificates, apps, ...).
pub const MAX_LIST_LEN: usize = 64;

/// Why a protocol message was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("schema {got} is not supported (this server accepts {min}..={max})")]
    Schema { got: u32, min: u32, max: u32 },
    #[error("{field} is {len} bytes long; the limit is {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} has {len} entries; the limit is {max}")]
    TooMany {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} is invalid: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

/// Checks a message against the [limits](self).
pub trait Validate {
    fn validate(&self) -> Result<(), ProtocolError>;
}

pub(crate) fn check_schema(schema: u32) -> Result<(), ProtocolError> {
    if crate::schema_supported(schema) {
        Ok(())
    } else {
        Err(ProtocolError::Schema {
            got: schema,
            min: crate::MIN_SCHEMA_VERSION,
            max: crate::SCHEMA_VERSION,
        })
    }
}

pub(crate) fn check_str(field: &'static str, s: &str) -> Result<(), ProtocolError> {
    if s.len() > MAX_STRING_LEN {
        Err(ProtocolError::TooLong {
            field,
            len: s.len(),
            max: MAX_STRING_LEN,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn check_opt(field: &'static str, s: &Option<String>) -> Result<(), ProtocolError> {
    s.as_deref().map_or(Ok(()), |s| check_str(field, s))
}

pub(crate) fn check_len<T>(field: &'static str, list: &[T]) -> Result<(), ProtocolError> {
    if list.len() > MAX_LIST_LEN {
        Err(ProtocolError::TooMany {
            field,
            len: list.len(),
            max: MAX_LIST_LEN,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn check_strs(field: &'static str, list: &[String]) -> Result<(), ProtocolError> {
    check_len(field, list)?;
    list.iter().try_for_each(|s| check_str(field, s))
}

pub(crate) fn check_all<T: Validate>(field: &'static str, list: &[T]) -> Result<(), ProtocolError> {
    check_len(field, list)?;
    list.iter().try_for_each(Validate::validate)
}
