//! System-log events about starts and shutdowns, and the pure function that turns them into the
//! uptime facts (DESIGN §4): last full boot vs fast-startup start, clean or unclean shutdown,
//! who asked for the restart.

use chrono::{DateTime, Duration, Utc};
use onshi_shared::StartKind;

use crate::sources::eventlog::{EventRecord, parse_time};

/// The System-log query the Windows source runs (XPath over the providers and ids below).
pub const SYSTEM_QUERY: &str = "*[System[(Provider[@Name='Microsoft-Windows-Kernel-Boot'] and EventID=27) \
or (Provider[@Name='Microsoft-Windows-Kernel-General'] and (EventID=12 or EventID=13)) \
or (Provider[@Name='EventLog'] and (EventID=6005 or EventID=6006 or EventID=6008)) \
or (Provider[@Name='User32'] and EventID=1074) \
or (Provider[@Name='Microsoft-Windows-Kernel-Power'] and EventID=41)]]";

/// A start or shutdown event of the System log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEvent {
    /// Kernel-Boot 27: the boot type (0 cold boot, 1 fast startup, 2 resume from hibernation).
    BootType(StartKind),
    /// Kernel-General 12: the operating system started (a full kernel boot).
    OsStarted { start_time: Option<DateTime<Utc>> },
    /// Kernel-General 13: the operating system is shutting down (a full shutdown).
    OsShutdown,
    /// EventLog 6005: the event log service started.
    EventLogStarted,
    /// EventLog 6006: the event log service stopped (a clean shutdown).
    EventLogStopped,
    /// EventLog 6008: the previous shutdown was unexpected.
    UnexpectedShutdown,
    /// User32 1074: a process asked for a restart or power-off on behalf of a user.
    ShutdownRequested {
        process: Option<String>,
        user: Option<String>,
        /// `restart`, `power off` or the localized word Windows wrote.
        action: Option<String>,
        reason: Option<String>,
    },
    /// Kernel-Power 41: the system rebooted without cleanly shutting down first.
    KernelPowerLoss,
}

/// A [`SystemEvent`] and when it was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRecord {
    pub time: DateTime<Utc>,
    pub event: SystemEvent,
}

/// The typed record for a parsed event; `None` for an event the uptime area does not use (or
/// one without a time).
pub fn system_record(e: &EventRecord) -> Option<SystemRecord> {
    let time = e.time?;
    let non_empty = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    let event = match (e.provider.as_str(), e.event_id) {
        ("Microsoft-Windows-Kernel-Boot", 27) => {
            let boot_type = e.data("BootType").map(str::trim).and_then(|v| {
                v.strip_prefix("0x")
                    .map_or_else(|| v.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
            });
            SystemEvent::BootType(match boot_type {
                Some(0) => StartKind::ColdBoot,
                Some(1) => StartKind::FastStartup,
                Some(2) => StartKind::Resume,
                _ => StartKind::Unknown,
            })
        }
        ("Microsoft-Windows-Kernel-General", 12) => SystemEvent::OsStarted {
            start_time: e.data("StartTime").and_then(parse_time),
        },
        ("Microsoft-Windows-Kernel-General", 13) => SystemEvent::OsShutdown,
        ("EventLog", 6005) => SystemEvent::EventLogStarted,
        ("EventLog", 6006) => SystemEvent::EventLogStopped,
        ("EventLog", 6008) => SystemEvent::UnexpectedShutdown,
        ("User32", 1074) => SystemEvent::ShutdownRequested {
            // "C:\Windows\system32\shutdown.exe (PC-NAME)": the process and the machine.
            process: non_empty(e.data("param1")),
            user: non_empty(e.data("param7")),
            action: non_empty(e.data("param5")),
            reason: non_empty(e.data("param3")),
        },
        ("Microsoft-Windows-Kernel-Power", 41) => SystemEvent::KernelPowerLoss,
        _ => return None,
    };
    Some(SystemRecord { time, event })
}

/// What the System log says about the last start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptimeFacts {
    /// The last full kernel boot.
    pub last_boot: Option<DateTime<Utc>>,
    /// The last start of any kind (a fast-startup power-on or a resume keeps `last_boot`).
    pub last_start: Option<DateTime<Utc>>,
    pub last_start_kind: StartKind,
    pub last_shutdown_clean: Option<bool>,
    pub restart_requested_by: Option<String>,
}

/// How far before a start its boot-time events may be stamped (the clock is set during boot)
/// and how long after it the "previous shutdown was unexpected" events may come.
const BEFORE_START: Duration = Duration::minutes(2);
const AFTER_START: Duration = Duration::minutes(30);

/// The uptime facts from the System-log records (any order) and the boot time derived from the
/// tick count (`now - GetTickCount64`), which fast startup and hibernation do not reset, so it
/// is the last *full* boot whatever the log says.
///
/// - The last start is the latest Kernel-Boot 27, its kind the boot type; without one, the
///   full boot (from the ticks or Kernel-General 12) is the last start, a cold boot.
/// - The shutdown before it was unclean when Kernel-Power 41 or EventLog 6008 was logged during
///   that start, clean when Kernel-General 13, EventLog 6006 or User32 1074 was logged between
///   the previous start and it; otherwise unknown (a fast-startup shutdown logs none of them).
/// - Who asked for it: the last User32 1074 between the previous start and it.
pub fn uptime_facts(records: &[SystemRecord], tick_boot: Option<DateTime<Utc>>) -> UptimeFacts {
    let mut records: Vec<&SystemRecord> = records.iter().collect();
    records.sort_by_key(|r| r.time);

    // Kernel-General 12 carries the kernel's own start time; a cold Kernel-Boot 27 only when
    // it was logged.
    let logged_full_boot = records
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            SystemEvent::OsStarted { start_time } => Some(start_time.unwrap_or(r.time)),
            _ => None,
        })
        .or_else(|| {
            records.iter().rev().find_map(|r| {
                (r.event == SystemEvent::BootType(StartKind::ColdBoot)).then_some(r.time)
            })
        });
    let last_boot = tick_boot.or(logged_full_boot);

    let starts: Vec<(DateTime<Utc>, StartKind)> = records
        .iter()
        .filter_map(|r| match r.event {
            SystemEvent::BootType(kind) => Some((r.time, kind)),
            _ => None,
        })
        .collect();
    // A Kernel-Boot 27 older than the full boot (minus clock slack) belongs to an earlier boot.
    let latest_logged = starts
        .last()
        .copied()
        .filter(|(t, _)| last_boot.is_none_or(|b| *t >= b - BEFORE_START));
    let (last_start, kind) = match (latest_logged, last_boot) {
        (Some((t, kind)), _) => (Some(t), kind),
        (None, Some(b)) => (Some(b), StartKind::ColdBoot),
        (None, None) => (None, StartKind::Unknown),
    };
    let Some(start) = last_start else {
        return UptimeFacts {
            last_boot,
            last_start: None,
            last_start_kind: StartKind::Unknown,
            last_shutdown_clean: None,
            restart_requested_by: None,
        };
    };
    let previous_start = starts
        .iter()
        .rev()
        .map(|(t, _)| *t)
        .find(|t| *t < start - BEFORE_START);

    let window_start = start - BEFORE_START;
    let unclean = records.iter().any(|r| {
        matches!(
            r.event,
            SystemEvent::KernelPowerLoss | SystemEvent::UnexpectedShutdown
        ) && r.time >= window_start
            && r.time <= start + AFTER_START
    });
    let before: Vec<&&SystemRecord> = records
        .iter()
        .filter(|r| r.time < start && previous_start.is_none_or(|p| r.time > p))
        .collect();
    let clean = before.iter().any(|r| {
        matches!(
            r.event,
            SystemEvent::OsShutdown
                | SystemEvent::EventLogStopped
                | SystemEvent::ShutdownRequested { .. }
        )
    });
    let requested_by = before.iter().rev().find_map(|r| match &r.event {
        SystemEvent::ShutdownRequested {
            process,
            user,
            action,
            ..
        } => Some(requester(
            user.as_deref(),
            process.as_deref(),
            action.as_deref(),
        )),
        _ => None,
    });
    UptimeFacts {
        last_boot,
        last_start: Some(start),
        last_start_kind: kind,
        last_shutdown_clean: if unclean {
            Some(false)
        } else if clean {
            Some(true)
        } else {
            None
        },
        restart_requested_by: requested_by,
    }
}

/// `ONSHI-PC\onshi via C:\Windows\system32\shutdown.exe (restart)`.
fn requester(user: Option<&str>, process: Option<&str>, action: Option<&str>) -> String {
    let mut out = user.unwrap_or("unknown user").to_string();
    if let Some(p) = process {
        // The machine name Windows appends in parentheses adds nothing here.
        let p = match p.rfind(" (") {
            Some(i) if p.ends_with(')') => &p[..i],
            _ => p,
        };
        out.push_str(" via ");
        out.push_str(p);
    }
    if let Some(a) = action {
        out.push_str(&format!(" ({a})"));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::sources::eventlog::parse_event;
    use crate::sources::eventlog::tests::fixture;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
    }

    fn rec(time: DateTime<Utc>, event: SystemEvent) -> SystemRecord {
        SystemRecord { time, event }
    }

    fn requested(user: &str) -> SystemEvent {
        SystemEvent::ShutdownRequested {
            process: Some("C:\\Windows\\system32\\shutdown.exe (PC)".into()),
            user: Some(user.into()),
            action: Some("restart".into()),
            reason: None,
        }
    }

    #[test]
    fn reads_each_fixture_into_its_type() {
        let cases: [(&str, SystemEvent); 9] = [
            (
                "system-kernel-boot-27-cold.xml",
                SystemEvent::BootType(StartKind::ColdBoot),
            ),
            (
                "system-kernel-boot-27-fast.xml",
                SystemEvent::BootType(StartKind::FastStartup),
            ),
            (
                "system-kernel-boot-27-resume.xml",
                SystemEvent::BootType(StartKind::Resume),
            ),
            (
                "system-kernel-general-12.xml",
                SystemEvent::OsStarted {
                    start_time: Some(
                        Utc.with_ymd_and_hms(2026, 11, 24, 19, 0, 3).unwrap()
                            + Duration::milliseconds(500),
                    ),
                },
            ),
            ("system-kernel-general-13.xml", SystemEvent::OsShutdown),
            ("system-eventlog-6005.xml", SystemEvent::EventLogStarted),
            ("system-eventlog-6006.xml", SystemEvent::EventLogStopped),
            ("system-eventlog-6008.xml", SystemEvent::UnexpectedShutdown),
            ("system-kernel-power-41.xml", SystemEvent::KernelPowerLoss),
        ];
        for (name, want) in cases {
            let e = parse_event(&fixture(name)).unwrap();
            assert_eq!(system_record(&e).map(|r| r.event), Some(want), "{name}");
        }
        let e = parse_event(&fixture("system-user32-1074.xml")).unwrap();
        let r = system_record(&e).unwrap();
        let SystemEvent::ShutdownRequested { user, action, .. } = &r.event else {
            panic!("{r:?}");
        };
        assert_eq!(user.as_deref(), Some("ONSHI-PC-01\\onshi"));
        assert_eq!(action.as_deref(), Some("再起動"));
        let security = parse_event(&fixture("security-4720.xml")).unwrap();
        assert_eq!(system_record(&security), None);
    }

    #[test]
    fn fixtures_of_a_restart_at_four_tell_the_whole_story() {
        let records: Vec<SystemRecord> = [
            "system-user32-1074.xml",
            "system-eventlog-6006.xml",
            "system-kernel-general-13.xml",
            "system-kernel-general-12.xml",
            "system-kernel-boot-27-cold.xml",
            "system-eventlog-6005.xml",
        ]
        .iter()
        .filter_map(|n| system_record(&parse_event(&fixture(n)).unwrap()))
        .collect();
        let boot = Utc.with_ymd_and_hms(2026, 11, 24, 19, 0, 3).unwrap();
        let f = uptime_facts(&records, Some(boot));
        assert_eq!(f.last_boot, Some(boot));
        assert_eq!(
            f.last_start,
            Some(Utc.with_ymd_and_hms(2026, 11, 24, 19, 0, 5).unwrap())
        );
        assert_eq!(f.last_start_kind, StartKind::ColdBoot);
        assert_eq!(f.last_shutdown_clean, Some(true));
        assert_eq!(
            f.restart_requested_by.as_deref(),
            Some("ONSHI-PC-01\\onshi via C:\\Windows\\system32\\shutdown.exe (再起動)")
        );
    }

    struct Case {
        name: &'static str,
        records: Vec<SystemRecord>,
        tick_boot: Option<DateTime<Utc>>,
        last_boot: Option<DateTime<Utc>>,
        last_start: Option<DateTime<Utc>>,
        kind: StartKind,
        clean: Option<bool>,
        by: Option<&'static str>,
    }

    #[test]
    fn decides_the_uptime_facts() {
        use SystemEvent::*;
        let cases = vec![
            Case {
                name: "nothing known",
                records: vec![],
                tick_boot: None,
                last_boot: None,
                last_start: None,
                kind: StartKind::Unknown,
                clean: None,
                by: None,
            },
            Case {
                name: "ticks only (log unreadable): a cold boot at the tick boot time",
                records: vec![],
                tick_boot: Some(t(4, 0)),
                last_boot: Some(t(4, 0)),
                last_start: Some(t(4, 0)),
                kind: StartKind::ColdBoot,
                clean: None,
                by: None,
            },
            Case {
                name: "restart requested by a user, clean",
                records: vec![
                    rec(t(3, 58), requested("PC\\onshi")),
                    rec(t(3, 59), EventLogStopped),
                    rec(t(3, 59), OsShutdown),
                    rec(t(4, 0), OsStarted { start_time: None }),
                    rec(t(4, 0), BootType(StartKind::ColdBoot)),
                    rec(t(4, 1), EventLogStarted),
                ],
                tick_boot: Some(t(4, 0)),
                last_boot: Some(t(4, 0)),
                last_start: Some(t(4, 0)),
                kind: StartKind::ColdBoot,
                clean: Some(true),
                by: Some("PC\\onshi via C:\\Windows\\system32\\shutdown.exe (restart)"),
            },
            Case {
                name: "fast startup keeps the full boot, moves the start",
                records: vec![
                    rec(t(1, 0), BootType(StartKind::ColdBoot)),
                    rec(t(8, 30), BootType(StartKind::FastStartup)),
                ],
                tick_boot: Some(t(1, 0)),
                last_boot: Some(t(1, 0)),
                last_start: Some(t(8, 30)),
                kind: StartKind::FastStartup,
                clean: None,
                by: None,
            },
            Case {
                name: "power cut: Kernel-Power 41 and 6008 after the start",
                records: vec![
                    rec(t(1, 0), BootType(StartKind::ColdBoot)),
                    rec(t(9, 0), BootType(StartKind::ColdBoot)),
                    rec(t(9, 0), KernelPowerLoss),
                    rec(t(9, 1), UnexpectedShutdown),
                ],
                tick_boot: Some(t(9, 0)),
                last_boot: Some(t(9, 0)),
                last_start: Some(t(9, 0)),
                kind: StartKind::ColdBoot,
                clean: Some(false),
                by: None,
            },
            Case {
                name: "unclean wins over an earlier request",
                records: vec![
                    rec(t(1, 0), BootType(StartKind::ColdBoot)),
                    rec(t(8, 0), requested("PC\\kanri")),
                    rec(t(9, 0), BootType(StartKind::ColdBoot)),
                    rec(t(9, 0), KernelPowerLoss),
                ],
                tick_boot: Some(t(9, 0)),
                last_boot: Some(t(9, 0)),
                last_start: Some(t(9, 0)),
                kind: StartKind::ColdBoot,
                clean: Some(false),
                by: Some("PC\\kanri via C:\\Windows\\system32\\shutdown.exe (restart)"),
            },
            Case {
                name: "events of an earlier boot do not count for this one",
                records: vec![
                    rec(t(0, 30), requested("PC\\old")),
                    rec(t(1, 0), BootType(StartKind::ColdBoot)),
                    rec(t(1, 0), KernelPowerLoss),
                    rec(t(9, 0), BootType(StartKind::Resume)),
                ],
                tick_boot: Some(t(1, 0)),
                last_boot: Some(t(1, 0)),
                last_start: Some(t(9, 0)),
                kind: StartKind::Resume,
                clean: None,
                by: None,
            },
            Case {
                name: "a Kernel-Boot 27 from before the tick boot is stale",
                records: vec![rec(t(1, 0), BootType(StartKind::FastStartup))],
                tick_boot: Some(t(5, 0)),
                last_boot: Some(t(5, 0)),
                last_start: Some(t(5, 0)),
                kind: StartKind::ColdBoot,
                clean: None,
                by: None,
            },
            Case {
                name: "no ticks: the log's full boot (Kernel-General 12 start time)",
                records: vec![
                    rec(
                        t(2, 1),
                        OsStarted {
                            start_time: Some(t(2, 0)),
                        },
                    ),
                    rec(t(2, 1), BootType(StartKind::ColdBoot)),
                ],
                tick_boot: None,
                last_boot: Some(t(2, 0)),
                last_start: Some(t(2, 1)),
                kind: StartKind::ColdBoot,
                clean: None,
                by: None,
            },
        ];
        for c in cases {
            // Order of the input must not matter.
            let mut reversed = c.records.clone();
            reversed.reverse();
            for records in [&c.records, &reversed] {
                let f = uptime_facts(records, c.tick_boot);
                assert_eq!(f.last_boot, c.last_boot, "{}", c.name);
                assert_eq!(f.last_start, c.last_start, "{}", c.name);
                assert_eq!(f.last_start_kind, c.kind, "{}", c.name);
                assert_eq!(f.last_shutdown_clean, c.clean, "{}", c.name);
                assert_eq!(f.restart_requested_by.as_deref(), c.by, "{}", c.name);
            }
        }
    }
}
