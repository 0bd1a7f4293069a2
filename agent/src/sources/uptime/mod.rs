//! When the machine last started, and how.

pub mod events;
#[cfg(unix)]
mod linux;
#[cfg(unix)]
pub mod parse;
#[cfg(windows)]
mod windows;

use chrono::{DateTime, Duration, Utc};
use onshi_shared::{StartKind, Uptime};

use super::{Ctx, Notes};

const AREA: &str = "uptime";

/// Reads the uptime area.
pub fn collect(ctx: &Ctx, notes: &mut Notes) -> Uptime {
    #[cfg(unix)]
    {
        linux::collect(ctx, notes)
    }
    #[cfg(windows)]
    {
        windows::collect(ctx, notes)
    }
    #[cfg(not(any(unix, windows)))]
    {
        notes.push(AREA, "not implemented on this platform");
        from_readings(None, None, ctx.now, StartKind::Unknown)
    }
}

/// Builds the uptime area from seconds since boot and/or the boot time.
///
/// The boot time is stable between collections, so it is preferred for `last_boot`; the
/// uptime alone gives `now - uptime`, which jitters by a second. When neither is known the
/// start is the Unix epoch with [`StartKind::Unknown`], which `detect` never reads as a
/// restart.
pub fn from_readings(
    uptime_secs: Option<f64>,
    boot: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    kind: StartKind,
) -> Uptime {
    let (uptime_secs, last_boot, kind) = match (uptime_secs, boot) {
        (Some(up), Some(boot)) => (up as u64, boot, kind),
        (Some(up), None) => (up as u64, now - Duration::seconds(up as i64), kind),
        (None, Some(boot)) => ((now - boot).num_seconds().max(0) as u64, boot, kind),
        (None, None) => (0, DateTime::UNIX_EPOCH, StartKind::Unknown),
    };
    Uptime {
        uptime_secs,
        last_boot,
        last_start: last_boot,
        last_start_kind: kind,
        last_shutdown_clean: None,
        restart_requested_by: None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn boot_time_wins_over_uptime_arithmetic() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let boot = now - Duration::seconds(3601);
        let up = from_readings(Some(3600.4), Some(boot), now, StartKind::ColdBoot);
        assert_eq!(up.uptime_secs, 3600);
        assert_eq!(up.last_boot, boot);
        assert_eq!(up.last_start, boot);
        assert_eq!(up.last_start_kind, StartKind::ColdBoot);
        assert_eq!(up.last_shutdown_clean, None);
    }

    #[test]
    fn falls_back_per_field() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let up = from_readings(Some(60.0), None, now, StartKind::ColdBoot);
        assert_eq!(up.last_boot, now - Duration::seconds(60));
        let up = from_readings(
            None,
            Some(now - Duration::seconds(90)),
            now,
            StartKind::ColdBoot,
        );
        assert_eq!(up.uptime_secs, 90);
        let up = from_readings(None, None, now, StartKind::ColdBoot);
        assert_eq!(up.last_start_kind, StartKind::Unknown);
        assert_eq!(up.last_start, DateTime::UNIX_EPOCH);
    }
}
