//! Uptime from `GetTickCount64` and the start/shutdown facts from the System log.

use chrono::{Duration, DurationRound};
use onshi_shared::Uptime;
use windows_sys::Win32::System::SystemInformation::GetTickCount64;

use super::AREA;
use super::events::{SYSTEM_QUERY, system_record, uptime_facts};
use crate::sources::eventlog::parse_event;
use crate::sources::{Ctx, Notes, win32};

/// How many of the newest matching System-log events to read: weeks of daily restarts.
const MAX_EVENTS: usize = 300;

pub(super) fn collect(ctx: &Ctx, notes: &mut Notes) -> Uptime {
    // SAFETY: no arguments, no failure.
    let ticks_ms = unsafe { GetTickCount64() };
    let uptime_secs = ticks_ms / 1000;
    // Whole seconds, so the boot time read twice is the same.
    let tick_boot = (ctx.now - Duration::milliseconds(i64::try_from(ticks_ms).unwrap_or(0)))
        .duration_trunc(Duration::seconds(1))
        .unwrap_or(ctx.now);
    let records: Vec<_> = match win32::query_events("System", SYSTEM_QUERY, MAX_EVENTS) {
        Ok(xml) => xml
            .iter()
            .filter_map(|x| parse_event(x).ok())
            .filter_map(|e| system_record(&e))
            .collect(),
        Err(e) => {
            notes.push(
                AREA,
                format!("System log not read ({e}): fast startup, clean shutdown and restart requester unknown"),
            );
            Vec::new()
        }
    };
    let facts = uptime_facts(&records, Some(tick_boot));
    let last_boot = facts.last_boot.unwrap_or(tick_boot);
    Uptime {
        uptime_secs,
        last_boot,
        last_start: facts.last_start.unwrap_or(last_boot),
        last_start_kind: facts.last_start_kind,
        last_shutdown_clean: facts.last_shutdown_clean,
        restart_requested_by: facts.restart_requested_by,
    }
}
