//! Host name and operating system name.

#[cfg(unix)]
mod linux;
#[cfg(unix)]
pub mod parse;
#[cfg(windows)]
mod windows;

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

/// A human-readable OS name, e.g. `Debian GNU/Linux 13 (trixie)`, `Windows 11 Pro 23H2`.
pub fn os_name(ctx: &Ctx, notes: &mut Notes) -> String {
    #[cfg(unix)]
    {
        linux::os_name(ctx, notes)
    }
    #[cfg(windows)]
    {
        let _ = ctx;
        windows::os_name(notes)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (ctx, notes);
        std::env::consts::OS.to_string()
    }
}

/// The name Windows is known by: `ProductName` and `DisplayVersion` from the registry, with the
/// build. Windows 11 still calls itself "Windows 10" in `ProductName`; build 22000 and later is
/// Windows 11.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn windows_name(
    product: Option<&str>,
    display_version: Option<&str>,
    build: Option<&str>,
) -> String {
    let build_no: Option<u32> = build.and_then(|b| b.trim().parse().ok());
    let mut name = product
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("Windows")
        .to_string();
    if build_no.is_some_and(|b| b >= 22_000) && name.starts_with("Windows 10") {
        name = name.replacen("Windows 10", "Windows 11", 1);
    }
    if let Some(v) = display_version.map(str::trim).filter(|v| !v.is_empty()) {
        name.push(' ');
        name.push_str(v);
    }
    if let Some(b) = build_no {
        name.push_str(&format!(" (build {b})"));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_windows_like_its_settings_page() {
        assert_eq!(
            windows_name(Some("Windows 10 Pro"), Some("23H2"), Some("22631")),
            "Windows 11 Pro 23H2 (build 22631)"
        );
        assert_eq!(
            windows_name(Some("Windows 10 Pro"), Some("22H2"), Some("19045")),
            "Windows 10 Pro 22H2 (build 19045)"
        );
        assert_eq!(windows_name(None, None, None), "Windows");
        assert_eq!(
            windows_name(Some("Microsoft Windows 10"), None, Some("x")),
            "Microsoft Windows 10"
        );
    }
}
