//! The Windows edition and release from `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`.

use windows_sys::Win32::System::Registry::{HKEY_LOCAL_MACHINE, KEY_WOW64_64KEY};

use super::AREA;
use crate::sources::Notes;
use crate::sources::registry::RegValue;
use crate::sources::win32::RegKey;

const CURRENT_VERSION: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";

pub(super) fn os_name(notes: &mut Notes) -> String {
    let key = match RegKey::open(HKEY_LOCAL_MACHINE, CURRENT_VERSION, KEY_WOW64_64KEY) {
        Ok(Some(key)) => key,
        Ok(None) => {
            notes.push(AREA, "no CurrentVersion key: OS name unknown");
            return "Windows".to_string();
        }
        Err(e) => {
            notes.push(AREA, e);
            return "Windows".to_string();
        }
    };
    let text = |name: &str| {
        key.value(name)
            .ok()
            .flatten()
            .and_then(|v: RegValue| v.as_text())
    };
    super::windows_name(
        text("ProductName").as_deref(),
        text("DisplayVersion")
            .or_else(|| text("ReleaseId"))
            .as_deref(),
        text("CurrentBuild")
            .or_else(|| text("CurrentBuildNumber"))
            .as_deref(),
    )
}
