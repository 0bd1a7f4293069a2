//! Apps from the manifest file; a pending reboot from Debian's `reboot-required` marker.

use std::fs;

use chrono::{DateTime, Utc};
use onshi_shared::{Apps, PendingReboot, RebootMarker, RebootSource};

use super::{AREA, parse, watched};
use crate::sources::{Ctx, Notes, read_text};

pub(super) fn collect(ctx: &Ctx, notes: &mut Notes) -> Apps {
    let path = ctx.path(&ctx.apps_manifest);
    let installed = match fs::read(&path) {
        Ok(bytes) => match parse::manifest(&bytes) {
            Ok(apps) => Some(apps),
            Err(e) => {
                notes.push(AREA, format!("{}: {e}", path.display()));
                None
            }
        },
        Err(e) => {
            notes.push(AREA, format!("cannot read {}: {e}", path.display()));
            None
        }
    };
    let (installed, missing) = watched(&ctx.policy.watched_apps, installed.as_deref());
    Apps {
        installed,
        missing,
        pending_reboot: pending_reboot(ctx, notes),
    }
}

fn pending_reboot(ctx: &Ctx, notes: &mut Notes) -> Option<PendingReboot> {
    // /var/run is a symlink to /run on current systems; look at both so an absolute link does
    // not lead outside a test root.
    for dir in ["run", "var/run"] {
        let marker = ctx.path(dir).join("reboot-required");
        let Ok(meta) = fs::metadata(&marker) else {
            continue;
        };
        let since = meta.modified().ok().map(DateTime::<Utc>::from);
        let mut reasons = vec!["reboot-required".to_string()];
        let mut packages = Vec::new();
        match read_text(&ctx.path(dir).join("reboot-required.pkgs")) {
            Ok(Some(text)) => packages = parse::reboot_packages(&text),
            Ok(None) => {}
            Err(detail) => notes.push(AREA, detail),
        }
        reasons.extend(packages.iter().cloned());
        let marker = RebootMarker {
            source: RebootSource::PackageManager,
            since,
            detail: (!packages.is_empty()).then(|| packages.join(", ")),
        };
        return Some(PendingReboot {
            reasons,
            since,
            markers: vec![marker],
        });
    }
    None
}
