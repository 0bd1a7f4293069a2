//! Apps from the Uninstall keys of both registry views; a pending reboot from the servicing,
//! Windows Update and file-rename markers, with the time the marker key was last written.

use chrono::{DateTime, Utc};
use onshi_shared::{AppInfo, Apps, PendingReboot, RebootMarker, RebootSource};
use windows_sys::Win32::System::Registry::{HKEY_LOCAL_MACHINE, KEY_WOW64_32KEY, KEY_WOW64_64KEY};

use super::{AREA, watched};
use crate::sources::registry::{RegValue, uninstall_entry};
use crate::sources::win32::RegKey;
use crate::sources::{Ctx, Notes};

const UNINSTALL: &str = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";
const CBS_REBOOT_PENDING: &str =
    r"SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending";
const WU_REBOOT_REQUIRED: &str =
    r"SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired";
const SESSION_MANAGER: &str = r"SYSTEM\CurrentControlSet\Control\Session Manager";

pub(super) fn collect(ctx: &Ctx, notes: &mut Notes) -> Apps {
    let installed = installed(notes);
    let (installed, missing) = watched(&ctx.policy.watched_apps, installed.as_deref());
    Apps {
        installed,
        missing,
        pending_reboot: pending_reboot(notes),
    }
}

/// Every app of both views (64-bit first), once per name; `None` when neither view could be
/// read, so nothing is reported missing on a guess.
fn installed(notes: &mut Notes) -> Option<Vec<AppInfo>> {
    let mut apps: Vec<AppInfo> = Vec::new();
    let mut any_view = false;
    for (view, label) in [(KEY_WOW64_64KEY, "64-bit"), (KEY_WOW64_32KEY, "32-bit")] {
        let key = match RegKey::open(HKEY_LOCAL_MACHINE, UNINSTALL, view) {
            Ok(Some(key)) => key,
            Ok(None) => continue,
            Err(e) => {
                notes.push(AREA, format!("{label} view: {e}"));
                continue;
            }
        };
        any_view = true;
        for name in key.subkeys() {
            let Ok(Some(sub)) = key.sub(&name, view) else {
                continue;
            };
            let Some(entry) = uninstall_entry(|v| sub.value(v).ok().flatten()) else {
                continue;
            };
            if apps.iter().any(|a| a.name == entry.display_name) {
                continue;
            }
            apps.push(AppInfo {
                name: entry.display_name,
                version: entry.display_version,
                installed_on: entry.install_date,
            });
        }
    }
    any_view.then_some(apps)
}

fn pending_reboot(notes: &mut Notes) -> Option<PendingReboot> {
    let mut reasons = Vec::new();
    let mut markers = Vec::new();
    let mut since: Option<DateTime<Utc>> = None;
    let mut mark = |source: RebootSource, reason: &str, at: Option<DateTime<Utc>>| {
        reasons.push(reason.to_string());
        markers.push(RebootMarker {
            source,
            since: at,
            detail: None,
        });
        if let Some(at) = at {
            since = Some(since.map_or(at, |s| s.min(at)));
        }
    };
    for (path, source, reason) in [
        (
            CBS_REBOOT_PENDING,
            RebootSource::ComponentServicing,
            "CBS RebootPending",
        ),
        (
            WU_REBOOT_REQUIRED,
            RebootSource::WindowsUpdate,
            "WindowsUpdate RebootRequired",
        ),
    ] {
        match RegKey::open(HKEY_LOCAL_MACHINE, path, KEY_WOW64_64KEY) {
            Ok(Some(key)) => mark(source, reason, key.last_write()),
            Ok(None) => {}
            Err(e) => notes.push(AREA, e),
        }
    }
    match RegKey::open(HKEY_LOCAL_MACHINE, SESSION_MANAGER, KEY_WOW64_64KEY) {
        Ok(Some(key)) => match key.value("PendingFileRenameOperations") {
            Ok(Some(RegValue::MultiText(ops))) if !ops.is_empty() => {
                // The value has no time of its own; the key's last write is the nearest.
                mark(
                    RebootSource::FileRename,
                    "PendingFileRenameOperations",
                    key.last_write(),
                );
            }
            Ok(_) => {}
            Err(e) => notes.push(AREA, e),
        },
        Ok(None) => {}
        Err(e) => notes.push(AREA, e),
    }
    (!reasons.is_empty()).then_some(PendingReboot {
        reasons,
        since,
        markers,
    })
}
