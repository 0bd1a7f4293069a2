//! Parsers for `/proc/uptime` and `/proc/stat`.

use crate::error::AgentError;

/// The first field of `/proc/uptime`: seconds since boot.
pub fn uptime_secs(text: &str) -> Result<f64, AgentError> {
    let first = text
        .split_whitespace()
        .next()
        .ok_or_else(|| AgentError::parse("/proc/uptime", "empty"))?;
    let secs: f64 = first
        .parse()
        .map_err(|_| AgentError::parse("/proc/uptime", format!("not a number: {first:?}")))?;
    if secs.is_finite() && secs >= 0.0 {
        Ok(secs)
    } else {
        Err(AgentError::parse(
            "/proc/uptime",
            format!("out of range: {first:?}"),
        ))
    }
}

/// The `btime` line of `/proc/stat`: boot time in seconds since the Unix epoch.
pub fn boot_time(text: &str) -> Result<i64, AgentError> {
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .ok_or_else(|| AgentError::parse("/proc/stat", "no btime line"))?;
    value
        .trim()
        .parse()
        .map_err(|_| AgentError::parse("/proc/stat", format!("bad btime {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  2255 34 2290 22625563 6290 127 456 0 0 0
cpu0 1132 34 1441 11311718 3675 127 438 0 0 0
intr 114930548 113199788 3 0 5 263 0 4 [... 149 more numbers]
ctxt 1990473
btime 1764057600
processes 2915
procs_running 1
procs_blocked 0
softirq 183433 0 21755 12 39 0 0 21 1 0 161605
";

    #[test]
    fn reads_first_float_of_uptime() {
        assert_eq!(uptime_secs("350735.47 234388.90\n").unwrap(), 350735.47);
        assert!(uptime_secs("").is_err());
        assert!(uptime_secs("abc 1").is_err());
        assert!(uptime_secs("-5 1").is_err());
    }

    #[test]
    fn reads_btime() {
        assert_eq!(boot_time(STAT).unwrap(), 1_764_057_600);
        assert!(boot_time("cpu 1 2 3\n").is_err());
    }
}
