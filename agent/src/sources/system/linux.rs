//! Host and OS name from `/etc/hostname`, `/proc/sys/kernel/hostname` and `/etc/os-release`.

use super::{AREA, parse};
use crate::sources::{Ctx, Notes, read_text};

pub(super) fn hostname(ctx: &Ctx, notes: &mut Notes) -> Option<String> {
    for rel in ["etc/hostname", "proc/sys/kernel/hostname"] {
        match read_text(&ctx.path(rel)) {
            Ok(Some(text)) => {
                if let Some(name) = parse::hostname(&text) {
                    return Some(name);
                }
            }
            Ok(None) => {}
            Err(detail) => notes.push(AREA, detail),
        }
    }
    None
}

pub(super) fn os_name(ctx: &Ctx, notes: &mut Notes) -> String {
    // /etc/os-release is often a symlink to ../usr/lib/os-release; read the target directly
    // too in case the link is absolute and so points outside a test root.
    for rel in ["etc/os-release", "usr/lib/os-release"] {
        match read_text(&ctx.path(rel)) {
            Ok(Some(text)) => {
                if let Some(name) = parse::os_release_name(&text) {
                    return name;
                }
                notes.push(AREA, format!("{rel} has no PRETTY_NAME or NAME"));
            }
            Ok(None) => {}
            Err(detail) => notes.push(AREA, detail),
        }
    }
    notes.push(AREA, "os-release not found");
    "Linux".to_string()
}
