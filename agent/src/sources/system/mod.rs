//! Host name and operating system name.

#[cfg(unix)]
mod linux;
#[cfg(unix)]
pub mod parse;

use super::{Ctx, Notes};

const AREA: &str = "system";

/// What the snapshot says when the host name cannot be read (it must not be empty).
pub const UNKNOWN_HOSTNAME: &str = "unknown";

/// The machine's host name; never empty.
pub fn hostname(ctx: &Ctx, notes: &mut Notes) -> String {
    #[cfg(unix)]
    let found = linux::hostname(ctx, notes);
    #[cfg(not(unix))]
    let found = {
        let _ = ctx;
        std::env::var("COMPUTERNAME").ok()
    };
    match found {
        Some(name) if !name.trim().is_empty() => name.trim().to_string(),
        _ => {
            notes.push(AREA, "host name not found");
            UNKNOWN_HOSTNAME.to_string()
        }
    }
}

/// A human-readable OS name, e.g. `Debian GNU/Linux 13 (trixie)`.
pub fn os_name(ctx: &Ctx, notes: &mut Notes) -> String {
    #[cfg(unix)]
    {
        linux::os_name(ctx, notes)
    }
    #[cfg(not(unix))]
    {
        let _ = (ctx, notes);
        std::env::consts::OS.to_string()
    }
}
