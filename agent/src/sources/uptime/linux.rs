//! Uptime from `/proc/uptime` and the boot time from the `btime` line of `/proc/stat`.

use chrono::DateTime;
use onshi_shared::{StartKind, Uptime};

use super::{AREA, from_readings, parse};
use crate::sources::{Ctx, Notes, read_text_noted};

pub(super) fn collect(ctx: &Ctx, notes: &mut Notes) -> Uptime {
    let uptime = read_text_noted(&ctx.path("proc/uptime"), AREA, notes).and_then(|text| {
        parse::uptime_secs(&text)
            .map_err(|e| notes.push(AREA, e.to_string()))
            .ok()
    });
    let boot = read_text_noted(&ctx.path("proc/stat"), AREA, notes).and_then(|text| {
        parse::boot_time(&text)
            .map_err(|e| notes.push(AREA, e.to_string()))
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
    });
    // Linux has no fast startup: every start is a full boot. Whether the previous shutdown
    // was clean is not known from /proc.
    from_readings(uptime, boot, ctx.now, StartKind::ColdBoot)
}
