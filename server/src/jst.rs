//! Japan Standard Time, and every way the server writes a time or a duration for people: the
//! desk's pages, the clinics' mails and the command line all format here. Japan has one time
//! zone without daylight saving time (+09:00).

use chrono::{DateTime, Duration, FixedOffset, NaiveDateTime, TimeZone, Utc};

/// Japan Standard Time.
pub fn offset() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

/// A time as the desk and clinics read it: `2026/11/26 00:30` (JST), the one style of every
/// page, mail and form.
pub fn time_ja(t: DateTime<Utc>) -> String {
    t.with_timezone(&offset())
        .format("%Y/%m/%d %H:%M")
        .to_string()
}

/// A date as the pages write it: `2026/12/29`.
pub fn date_ja(d: chrono::NaiveDate) -> String {
    d.format("%Y/%m/%d").to_string()
}

/// Reads a date as people type it: `2026/12/29`, `2026-12-29`, `2026/1/4`, full-width digits.
pub fn parse_date_ja(s: &str) -> Result<chrono::NaiveDate, String> {
    let s = halfwidth(s.trim());
    chrono::NaiveDate::parse_from_str(&s, "%Y/%m/%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d"))
        .map_err(|_| format!("日付は 2026/12/29 の形で入力してください: {s}"))
}

/// Full-width digits and punctuation as ASCII (a Japanese IME types them).
fn halfwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '０'..='９' | '／' | '：' | '－' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '　' => ' ',
            c => c,
        })
        .collect()
}

pub fn opt_time_ja(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".into(), time_ja)
}

/// The value a date-and-time field shows for `t`: the pages' own style (JST), not the browser's
/// locale (the fields are text fields).
pub fn datetime_local(t: DateTime<Utc>) -> String {
    time_ja(t)
}

/// Reads a date and time as typed (JST): `2026/12/03 22:50`, full-width digits, or the ISO
/// forms the command line takes (`2026-12-03 22:50`, `2026-12-03T22:50`); empty means none.
pub fn parse_datetime_local(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    let s = halfwidth(s.trim());
    if s.is_empty() {
        return Ok(None);
    }
    let s = s.as_str();
    let naive = NaiveDateTime::parse_from_str(s, "%Y/%m/%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .map_err(|_| format!("日時は 2026/12/03 22:50 の形で入力してください: {s}"))?;
    offset()
        .from_local_datetime(&naive)
        .single()
        .map(|t| Some(t.with_timezone(&Utc)))
        .ok_or_else(|| format!("日時が正しくありません: {s}"))
}

/// 「7日と23時間」, 「5時間12分」, 「8分」: the two largest units, as people say them.
pub fn duration_ja(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m}分"),
        (0, h, 0) => format!("{h}時間"),
        (0, h, m) => format!("{h}時間{m}分"),
        (d, 0, _) => format!("{d}日"),
        (d, h, _) => format!("{d}日と{h}時間"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ja(Duration::minutes(8)), "8分");
        assert_eq!(duration_ja(Duration::minutes(5 * 60 + 12)), "5時間12分");
        assert_eq!(duration_ja(Duration::hours(5)), "5時間");
        assert_eq!(duration_ja(Duration::hours(76)), "3日と4時間");
        assert_eq!(duration_ja(Duration::hours(191)), "7日と23時間");
        assert_eq!(duration_ja(Duration::days(3)), "3日");
        assert_eq!(duration_ja(Duration::minutes(-5)), "0分");
    }

    #[test]
    fn times_show_and_parse_in_jst() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T15:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time_ja(t), "2026/11/26 00:30");
        assert_eq!(datetime_local(t), "2026/11/26 00:30");
        for typed in [
            "2026/11/26 00:30",
            "２０２６／１１／２６　００：３０",
            "2026-11-26T00:30",
            "2026-11-26 00:30",
        ] {
            assert_eq!(parse_datetime_local(typed).unwrap(), Some(t), "{typed}");
        }
        assert!(parse_datetime_local("11/26 0:30").is_err());
        let d = chrono::NaiveDate::from_ymd_opt(2026, 12, 29).unwrap();
        assert_eq!(date_ja(d), "2026/12/29");
        for typed in ["2026/12/29", "2026-12-29", "２０２６／１２／２９"] {
            assert_eq!(parse_date_ja(typed).unwrap(), d, "{typed}");
        }
        assert_eq!(parse_datetime_local(" ").unwrap(), None);
        assert!(parse_datetime_local("tomorrow").is_err());
    }
}
