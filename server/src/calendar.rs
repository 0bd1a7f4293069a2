//! Japanese public holidays and clinic business hours, as pure functions of a date or a time.
//!
//! Terminals are switched off at night and on closed days, so "offline" only counts the time a
//! clinic is open. Japan has one time zone without daylight saving time (+09:00).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

use crate::jst::offset as jst;

/// The n-th `weekday` of a month (n from 1).
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// Day of March of the vernal equinox (the usual formula, valid 1980–2099).
fn vernal_equinox_day(year: i32) -> u32 {
    let y = f64::from(year - 1980);
    (20.8431 + 0.242194 * y - (y / 4.0).floor()).floor() as u32
}

/// Day of September of the autumnal equinox (valid 1980–2099).
fn autumnal_equinox_day(year: i32) -> u32 {
    let y = f64::from(year - 1980);
    (23.2488 + 0.242194 * y - (y / 4.0).floor()).floor() as u32
}

/// The national holiday that falls on `date` by the holiday law itself (no substitute or
/// citizens' holidays), with its name. Covers the law as it stands since 2020.
fn statutory_holiday(date: NaiveDate) -> Option<&'static str> {
    let (y, m, d) = (date.year(), date.month(), date.day());
    let is = |month: u32, weekday: Weekday, n: u8| {
        nth_weekday(y, month, weekday, n) == Some(date) && m == month
    };
    // The Olympic years moved three holidays by special law.
    let olympic = match y {
        2020 => Some(((7, 23), (7, 24), (8, 10))),
        2021 => Some(((7, 22), (7, 23), (8, 8))),
        _ => None,
    };
    if let Some((umi, sports, yama)) = olympic {
        if (m, d) == umi {
            return Some("海の日");
        }
        if (m, d) == sports {
            return Some("スポーツの日");
        }
        if (m, d) == yama {
            return Some("山の日");
        }
    }
    match (m, d) {
        (1, 1) => return Some("元日"),
        (2, 11) => return Some("建国記念の日"),
        (2, 23) if y >= 2020 => return Some("天皇誕生日"),
        (4, 29) => return Some("昭和の日"),
        (5, 3) => return Some("憲法記念日"),
        (5, 4) => return Some("みどりの日"),
        (5, 5) => return Some("こどもの日"),
        (8, 11) if olympic.is_none() => return Some("山の日"),
        (11, 3) => return Some("文化の日"),
        (11, 23) => return Some("勤労感謝の日"),
        _ => {}
    }
    if m == 3 && d == vernal_equinox_day(y) {
        return Some("春分の日");
    }
    if m == 9 && d == autumnal_equinox_day(y) {
        return Some("秋分の日");
    }
    if is(1, Weekday::Mon, 2) {
        return Some("成人の日");
    }
    if olympic.is_none() && is(7, Weekday::Mon, 3) {
        return Some("海の日");
    }
    if is(9, Weekday::Mon, 3) {
        return Some("敬老の日");
    }
    if olympic.is_none() && is(10, Weekday::Mon, 2) {
        return Some("スポーツの日");
    }
    None
}

/// The Japanese public holiday on `date`, if any, including substitute holidays (振替休日: the
/// first non-holiday after a holiday on a Sunday) and citizens' holidays (国民の休日: a day
/// between two holidays).
pub fn holiday(date: NaiveDate) -> Option<&'static str> {
    if let Some(name) = statutory_holiday(date) {
        return Some(name);
    }
    // Substitute: walk back over consecutive holidays; if the run started on a Sunday, today is
    // the first day after it.
    let mut day = date.pred_opt()?;
    while statutory_holiday(day).is_some() {
        if day.weekday() == Weekday::Sun {
            return Some("振替休日");
        }
        day = day.pred_opt()?;
    }
    if date.weekday() != Weekday::Sun
        && statutory_holiday(date.pred_opt()?).is_some()
        && statutory_holiday(date.succ_opt()?).is_some()
    {
        return Some("国民の休日");
    }
    None
}

/// When a clinic is open: one daily window (JST) on every day that is not a closed weekday and
/// (when `closed_on_holidays`) not a public holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    pub open: NaiveTime,
    pub close: NaiveTime,
    pub closed_weekdays: Vec<Weekday>,
    pub closed_on_holidays: bool,
}

impl Default for BusinessHours {
    fn default() -> Self {
        BusinessHours {
            open: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            close: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default(),
            closed_weekdays: vec![Weekday::Sun],
            closed_on_holidays: true,
        }
    }
}

impl BusinessHours {
    /// Whether the clinic opens at all on `date`.
    pub fn is_open_day(&self, date: NaiveDate) -> bool {
        let closed_weekday = self.closed_weekdays.contains(&date.weekday());
        let closed_holiday = self.closed_on_holidays && holiday(date).is_some();
        !closed_weekday && !closed_holiday
    }

    /// Whether the clinic is open at `t`.
    pub fn is_open_at(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&jst());
        self.is_open_day(local.date_naive())
            && local.time() >= self.open
            && local.time() < self.close
    }

    /// How much of `[from, to)` falls inside business hours. Stops counting after `cap`, so a
    /// terminal silent for a year costs a bounded loop.
    pub fn open_time_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cap: Duration,
    ) -> Duration {
        if to <= from || self.close <= self.open {
            return Duration::zero();
        }
        let tz = jst();
        let mut total = Duration::zero();
        let mut date = from.with_timezone(&tz).date_naive();
        let last = to.with_timezone(&tz).date_naive();
        while date <= last && total < cap {
            if self.is_open_day(date) {
                let open = tz.from_local_datetime(&date.and_time(self.open)).single();
                let close = tz.from_local_datetime(&date.and_time(self.close)).single();
                if let (Some(open), Some(close)) = (open, close) {
                    let start = open.with_timezone(&Utc).max(from);
                    let end = close.with_timezone(&Utc).min(to);
                    if end > start {
                        total += end - start;
                    }
                }
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        total
    }
}

/// Parses `sun,sat` style weekday lists as stored on the clinic row.
pub fn parse_weekdays(s: &str) -> Vec<Weekday> {
    s.split(',')
        .filter_map(|w| w.trim().parse::<Weekday>().ok())
        .collect()
}

/// The stored form of a weekday list (`sun,sat`).
pub fn format_weekdays(days: &[Weekday]) -> String {
    days.iter()
        .map(|d| d.to_string().to_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn holidays_of(year: i32) -> Vec<(u32, u32, &'static str)> {
        let mut out = Vec::new();
        let mut d = date(year, 1, 1);
        while d.year() == year {
            if let Some(name) = holiday(d) {
                out.push((d.month(), d.day(), name));
            }
            d = d.succ_opt().unwrap();
        }
        out
    }

    #[test]
    fn holidays_2025() {
        assert_eq!(
            holidays_of(2025),
            vec![
                (1, 1, "元日"),
                (1, 13, "成人の日"),
                (2, 11, "建国記念の日"),
                (2, 23, "天皇誕生日"),
                (2, 24, "振替休日"),
                (3, 20, "春分の日"),
                (4, 29, "昭和の日"),
                (5, 3, "憲法記念日"),
                (5, 4, "みどりの日"),
                (5, 5, "こどもの日"),
                (5, 6, "振替休日"),
                (7, 21, "海の日"),
                (8, 11, "山の日"),
                (9, 15, "敬老の日"),
                (9, 23, "秋分の日"),
                (10, 13, "スポーツの日"),
                (11, 3, "文化の日"),
                (11, 23, "勤労感謝の日"),
                (11, 24, "振替休日"),
            ]
        );
    }

    #[test]
    fn holidays_2026() {
        assert_eq!(
            holidays_of(2026),
            vec![
                (1, 1, "元日"),
                (1, 12, "成人の日"),
                (2, 11, "建国記念の日"),
                (2, 23, "天皇誕生日"),
                (3, 20, "春分の日"),
                (4, 29, "昭和の日"),
                (5, 3, "憲法記念日"),
                (5, 4, "みどりの日"),
                (5, 5, "こどもの日"),
                (5, 6, "振替休日"),
                (7, 20, "海の日"),
                (8, 11, "山の日"),
                (9, 21, "敬老の日"),
                (9, 22, "国民の休日"),
                (9, 23, "秋分の日"),
                (10, 12, "スポーツの日"),
                (11, 3, "文化の日"),
                (11, 23, "勤労感謝の日"),
            ]
        );
    }

    #[test]
    fn holidays_2027() {
        assert_eq!(
            holidays_of(2027),
            vec![
                (1, 1, "元日"),
                (1, 11, "成人の日"),
                (2, 11, "建国記念の日"),
                (2, 23, "天皇誕生日"),
                (3, 21, "春分の日"),
                (3, 22, "振替休日"),
                (4, 29, "昭和の日"),
                (5, 3, "憲法記念日"),
                (5, 4, "みどりの日"),
                (5, 5, "こどもの日"),
                (7, 19, "海の日"),
                (8, 11, "山の日"),
                (9, 20, "敬老の日"),
                (9, 23, "秋分の日"),
                (10, 11, "スポーツの日"),
                (11, 3, "文化の日"),
                (11, 23, "勤労感謝の日"),
            ]
        );
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn business_hours_skip_nights_sundays_and_holidays() {
        let h = BusinessHours::default();
        let cap = Duration::days(30);
        let table = [
            // Wed 2026-11-25 18:00 JST -> Thu 08:59 JST: closed all night.
            ("2026-11-25T09:00:00Z", "2026-11-25T23:59:00Z", 0),
            // -> Thu 09:10 JST: ten minutes open.
            ("2026-11-25T09:00:00Z", "2026-11-26T00:10:00Z", 10),
            // Sat 2026-11-28 17:00 JST -> Mon 09:05 JST: Sunday closed.
            ("2026-11-28T08:00:00Z", "2026-11-30T00:05:00Z", 60 + 5),
            // Fri 2026-11-20 18:00 -> Tue 2026-11-24 09:30: Sat open, Sun closed, Mon 11/23 holiday.
            ("2026-11-20T09:00:00Z", "2026-11-24T00:30:00Z", 9 * 60 + 30),
        ];
        for (from, to, minutes) in table {
            assert_eq!(
                h.open_time_between(utc(from), utc(to), cap),
                Duration::minutes(minutes),
                "{from} -> {to}"
            );
        }
        assert!(h.is_open_at(utc("2026-11-25T01:00:00Z")));
        assert!(!h.is_open_at(utc("2026-11-23T01:00:00Z")), "勤労感謝の日");
        assert!(!h.is_open_at(utc("2026-11-29T01:00:00Z")), "Sunday");
    }

    #[test]
    fn weekday_lists_round_trip() {
        let days = parse_weekdays("sun, sat,bogus");
        assert_eq!(days, vec![Weekday::Sun, Weekday::Sat]);
        assert_eq!(format_weekdays(&days), "sun,sat");
    }
}
