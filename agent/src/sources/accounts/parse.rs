//! Parsers for `/etc/passwd` and `/etc/shadow` (passwd(5), shadow(5)).

use chrono::{DateTime, Duration, Utc};

use super::UserRecord;

/// A `max` of this many days or more means "never expires".
const NO_MAX_DAYS: i64 = 99_999;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    pub name: String,
    /// The hashed password field, with `!` in front when locked.
    pub password: String,
    /// Days since the epoch of the last password change; 0 means "must change".
    pub last_change_days: Option<i64>,
    pub max_days: Option<i64>,
    /// Days since the epoch when the account expires.
    pub expire_days: Option<i64>,
}

/// Entries of `/etc/passwd`; comments, NIS `+`/`-` lines and malformed lines are skipped.
pub fn passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 7 || is_skipped(fields[0]) {
                return None;
            }
            Some(PasswdEntry {
                name: fields[0].to_string(),
                uid: fields[2].parse().ok()?,
                shell: fields[6].trim().to_string(),
            })
        })
        .collect()
}

/// Entries of `/etc/shadow`; empty numeric fields are `None`.
pub fn shadow(text: &str) -> Vec<ShadowEntry> {
    let days = |s: &str| s.trim().parse::<i64>().ok();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 8 || is_skipped(fields[0]) {
                return None;
            }
            Some(ShadowEntry {
                name: fields[0].to_string(),
                password: fields[1].to_string(),
                last_change_days: days(fields[2]),
                max_days: days(fields[4]),
                expire_days: days(fields[7]),
            })
        })
        .collect()
}

fn is_skipped(name: &str) -> bool {
    name.is_empty() || name.starts_with('#') || name.starts_with('+') || name.starts_with('-')
}

/// One user as the accounts area reports it.
///
/// `shadow_readable` tells a user missing from a readable shadow file (no password data) from
/// a shadow file that could not be read (unknown).
pub fn user_record(
    p: &PasswdEntry,
    s: Option<&ShadowEntry>,
    shadow_readable: bool,
    now: DateTime<Utc>,
) -> UserRecord {
    let login_shell = !(p.shell.ends_with("/nologin") || p.shell.ends_with("/false"));
    let expired = s
        .and_then(|s| s.expire_days)
        .and_then(day)
        .map(|expires| expires <= now);
    let enabled = match (login_shell, expired) {
        (false, _) => Some(false),
        (true, Some(expired)) => Some(!expired),
        (true, None) if shadow_readable => Some(true),
        (true, None) => None,
    };
    let last_set = s
        .and_then(|s| s.last_change_days)
        .filter(|d| *d > 0)
        .and_then(day);
    let expires = match (last_set, s.and_then(|s| s.max_days)) {
        (Some(set), Some(max)) if (0..NO_MAX_DAYS).contains(&max) => {
            Some(set + Duration::days(max))
        }
        _ => None,
    };
    UserRecord {
        name: p.name.clone(),
        sid: format!("uid:{}", p.uid),
        enabled,
        locked: s.map(|s| s.password.starts_with('!')),
        password_last_set: last_set,
        password_expires: expires,
        last_change: None,
    }
}

fn day(days: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(days.checked_mul(86_400)?, 0)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
onshi:x:1001:1001:Onshi Terminal,,,:/home/onshi:/bin/bash
kao:x:1002:1002::/home/kao:/bin/bash
renkei:x:1003:1003::/home/renkei:/usr/sbin/nologin
broken:x:notanumber:1004::/home/broken:/bin/bash
+nisuser::::::
short:x:1005
";

    const SHADOW: &str = "root:*:20000:0:99999:7:::
daemon:*:20000:0:99999:7:::
onshi:$y$j9T$abc$def:20400:0:90:7:::
kao:!$y$j9T$abc$def:20300:0:99999:7::20410:
renkei:$6$salt$hash:0:0:::::
";

    fn now() -> DateTime<Utc> {
        // Day 20417 since the epoch.
        Utc.with_ymd_and_hms(2025, 11, 25, 9, 0, 0).unwrap()
    }

    #[test]
    fn parses_passwd_and_skips_junk() {
        let entries = passwd(PASSWD);
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "daemon", "onshi", "kao", "renkei"]);
        assert_eq!(entries[2].uid, 1001);
        assert_eq!(entries[4].shell, "/usr/sbin/nologin");
    }

    #[test]
    fn parses_shadow_fields() {
        let entries = shadow(SHADOW);
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[2].last_change_days, Some(20400));
        assert_eq!(entries[2].max_days, Some(90));
        assert_eq!(entries[2].expire_days, None);
        assert_eq!(entries[3].expire_days, Some(20410));
        assert_eq!(entries[4].max_days, None);
    }

    #[test]
    fn builds_user_records() {
        let p = passwd(PASSWD);
        let s = shadow(SHADOW);
        let rec = |name: &str| {
            let pe = p.iter().find(|e| e.name == name).unwrap();
            user_record(pe, s.iter().find(|e| e.name == name), true, now())
        };

        let onshi = rec("onshi");
        assert_eq!(onshi.sid, "uid:1001");
        assert_eq!(onshi.enabled, Some(true));
        assert_eq!(onshi.locked, Some(false));
        assert_eq!(onshi.password_last_set, day(20400));
        assert_eq!(onshi.password_expires, day(20490));

        // Locked, and its account expired on day 20410.
        let kao = rec("kao");
        assert_eq!(kao.locked, Some(true));
        assert_eq!(kao.enabled, Some(false));
        assert_eq!(kao.password_expires, None, "max 99999 means never");

        // nologin shell; "must change" (0) is not a date.
        let renkei = rec("renkei");
        assert_eq!(renkei.enabled, Some(false));
        assert_eq!(renkei.password_last_set, None);
    }

    #[test]
    fn unreadable_shadow_leaves_fields_unknown() {
        let p = passwd(PASSWD);
        let rec = user_record(&p[2], None, false, now());
        assert_eq!(rec.enabled, None);
        assert_eq!(rec.locked, None);
        assert_eq!(rec.password_last_set, None);
        let rec = user_record(&p[4], None, false, now());
        assert_eq!(
            rec.enabled,
            Some(false),
            "a nologin shell is known without shadow"
        );
    }
}
