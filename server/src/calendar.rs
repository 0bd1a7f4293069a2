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

/// One open window of a day (JST), e.g. 09:00–12:30.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

impl Window {
    pub fn new(open: NaiveTime, close: NaiveTime) -> Window {
        Window { open, close }
    }
}

/// Dates the clinic is closed on top of its week (臨時休診, a long holiday), inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: String,
}

/// When a clinic is open: windows per weekday (a lunch break makes two; a day without windows
/// is a closed day, 土曜午前のみ is one morning window), public holidays, 年末年始 (12/29–1/3)
/// and お盆 (8/13–8/16) if the clinic closes then, and dated closures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    /// Monday first.
    pub week: [Vec<Window>; 7],
    pub closed_on_holidays: bool,
    pub closed_new_year: bool,
    pub closed_obon: bool,
    pub closures: Vec<Closure>,
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
}

impl Default for BusinessHours {
    /// Monday to Saturday 09:00–18:00; Sundays, public holidays and 年末年始 closed.
    fn default() -> Self {
        let day = vec![Window::new(hm(9, 0), hm(18, 0))];
        BusinessHours {
            week: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                Vec::new(),
            ],
            closed_on_holidays: true,
            closed_new_year: true,
            closed_obon: false,
            closures: Vec::new(),
        }
    }
}

/// 年末年始: 12/29 to 1/3.
pub fn is_new_year(date: NaiveDate) -> bool {
    matches!((date.month(), date.day()), (12, 29..=31) | (1, 1..=3))
}

/// お盆: 8/13 to 8/16.
pub fn is_obon(date: NaiveDate) -> bool {
    date.month() == 8 && (13..=16).contains(&date.day())
}

impl BusinessHours {
    /// The same window every day except the closed weekdays.
    pub fn uniform(open: NaiveTime, close: NaiveTime, closed: &[Weekday]) -> BusinessHours {
        let mut h = BusinessHours::default();
        for (i, day) in h.week.iter_mut().enumerate() {
            *day = if closed
                .iter()
                .any(|d| d.num_days_from_monday() as usize == i)
            {
                Vec::new()
            } else {
                vec![Window::new(open, close)]
            };
        }
        h
    }

    /// Why the clinic is closed all day on `date`, if it is.
    pub fn closed_because(&self, date: NaiveDate) -> Option<String> {
        if let Some(c) = self
            .closures
            .iter()
            .find(|c| c.from <= date && date <= c.to)
        {
            return Some(if c.reason.is_empty() {
                "臨時休診".to_string()
            } else {
                c.reason.clone()
            });
        }
        if self.closed_new_year && is_new_year(date) {
            return Some("年末年始".into());
        }
        if self.closed_obon && is_obon(date) {
            return Some("お盆".into());
        }
        if self.closed_on_holidays
            && let Some(name) = holiday(date)
        {
            return Some(name.into());
        }
        if self.week[date.weekday().num_days_from_monday() as usize].is_empty() {
            return Some("休診日".into());
        }
        None
    }

    /// The open windows of `date` (none on a closed day).
    pub fn windows_on(&self, date: NaiveDate) -> &[Window] {
        if self.closed_because(date).is_some() {
            return &[];
        }
        &self.week[date.weekday().num_days_from_monday() as usize]
    }

    /// Whether the clinic opens at all on `date`.
    pub fn is_open_day(&self, date: NaiveDate) -> bool {
        !self.windows_on(date).is_empty()
    }

    /// Whether the clinic is open at `t`.
    pub fn is_open_at(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&jst());
        let time = local.time();
        self.windows_on(local.date_naive())
            .iter()
            .any(|w| w.open <= time && time < w.close)
    }

    /// How much of `[from, to)` falls inside business hours. Stops counting after `cap`, so a
    /// terminal silent for a year costs a bounded loop.
    pub fn open_time_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cap: Duration,
    ) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let tz = jst();
        let mut total = Duration::zero();
        let mut date = from.with_timezone(&tz).date_naive();
        let last = to.with_timezone(&tz).date_naive();
        // A clinic that never opens would walk every day up to `to`: 400 days are plenty.
        let mut days = 0;
        while date <= last && total < cap && days < 400 {
            for w in self.windows_on(date) {
                let open = tz.from_local_datetime(&date.and_time(w.open)).single();
                let close = tz.from_local_datetime(&date.and_time(w.close)).single();
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
            days += 1;
        }
        total
    }
}

/// How far back the calendar looks when it counts open days: a terminal silent for longer is
/// past every threshold whatever the calendar (the evaluator loads closures this far back).
pub const LOOKBACK_DAYS: i64 = 60;

impl BusinessHours {
    /// How many whole open days lie inside `(from, to]`: days on which the clinic opened after
    /// `from` and had closed for the day by `to` (JST). Counts up to `cap`; a span longer than
    /// [`LOOKBACK_DAYS`] counts as `cap`.
    pub fn open_days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>, cap: u32) -> u32 {
        if to <= from {
            return 0;
        }
        if to - from > Duration::days(LOOKBACK_DAYS) {
            return cap;
        }
        let tz = jst();
        let at = |date: NaiveDate, time: NaiveTime| {
            tz.from_local_datetime(&date.and_time(time))
                .single()
                .map(|t| t.with_timezone(&Utc))
        };
        let mut count = 0;
        let mut date = from.with_timezone(&tz).date_naive();
        let last = to.with_timezone(&tz).date_naive();
        while date <= last && count < cap {
            let windows = self.windows_on(date);
            let first_open = windows.iter().map(|w| w.open).min();
            let last_close = windows.iter().map(|w| w.close).max();
            if let (Some(open), Some(close)) = (first_open, last_close)
                && let (Some(open), Some(close)) = (at(date, open), at(date, close))
                && open > from
                && close <= to
            {
                count += 1;
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        count
    }
}

/// Parses `sun,sat` style weekday lists (the command line's `--closed`).
pub fn parse_weekdays(s: &str) -> Vec<Weekday> {
    s.split(',')
        .filter_map(|w| w.trim().parse::<Weekday>().ok())
        .collect()
}

/// Weekday keys as stored and typed: `mon` … `sun`.
pub const WEEKDAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One day's windows as people write them: `09:00-12:30, 14:00-18:00` (also `〜`, `~`, `、`);
/// empty means closed. Windows must not overlap and must each end after they start.
pub fn parse_day(s: &str) -> Result<Vec<Window>, String> {
    let normalized: String = s
        .chars()
        .map(|c| match c {
            '〜' | '～' | '~' | '－' | '‐' => '-',
            '、' | '，' | ';' => ',',
            '：' => ':',
            c if ('０'..='９').contains(&c) => {
                char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c)
            }
            c => c,
        })
        .collect();
    let mut windows = Vec::new();
    for part in normalized
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let bad = || format!("「{part}」は 09:00-12:30 の形式で書いてください");
        let (a, b) = part.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let w = Window::new(time(a)?, time(b)?);
        if w.close <= w.open {
            return Err(format!(
                "「{part}」は終わりが始まりより後になるようにしてください"
            ));
        }
        windows.push(w);
    }
    windows.sort_by_key(|w| w.open);
    if windows.windows(2).any(|p| p[1].open < p[0].close) {
        return Err(format!("「{s}」の時間帯が重なっています"));
    }
    Ok(windows)
}

/// One day's windows as [`parse_day`] reads them.
pub fn format_day(windows: &[Window]) -> String {
    windows
        .iter()
        .map(|w| format!("{}-{}", w.open.format("%H:%M"), w.close.format("%H:%M")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stored form of a week: `mon=09:00-12:30,14:00-18:00;tue=…` (closed days left out).
pub fn format_week(week: &[Vec<Window>; 7]) -> String {
    WEEKDAY_KEYS
        .iter()
        .zip(week)
        .filter(|(_, w)| !w.is_empty())
        .map(|(k, w)| format!("{k}={}", format_day(w).replace(", ", ",")))
        .collect::<Vec<_>>()
        .join(";")
}

/// Reads [`format_week`]'s form; a day it does not name is closed.
pub fn parse_week(s: &str) -> Result<[Vec<Window>; 7], String> {
    let mut week: [Vec<Window>; 7] = Default::default();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, day) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: write mon=09:00-18:00"))?;
        let i = WEEKDAY_KEYS
            .iter()
            .position(|k| *k == key.trim().to_lowercase())
            .ok_or_else(|| format!("{key:?} is not mon, tue, … or sun"))?;
        week[i] = parse_day(day)?;
    }
    Ok(week)
}

/// Reads 臨時休診 and other closures, one per line: `2026-12-24,2026-12-25,院長不在` (the end
/// date may be left empty for one day; `/` works too; a first line that is not a date is taken
/// for a header).
pub fn parse_closures_csv(text: &str) -> Result<Vec<Closure>, String> {
    let date = |s: &str| {
        let s = s.trim().replace('/', "-");
        NaiveDate::parse_from_str(&s, "%Y-%m-%d")
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() {
            continue;
        }
        let mut cols = line.splitn(3, ',');
        let first = cols.next().unwrap_or("");
        let Ok(from) = date(first) else {
            if n == 0 {
                continue;
            }
            return Err(format!(
                "{} 行目: 「{first}」は 2026-12-24 の形式の日付ではありません",
                n + 1
            ));
        };
        let to = match cols.next().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => {
                date(t).map_err(|_| format!("{} 行目: 「{t}」は日付ではありません", n + 1))?
            }
            None => from,
        };
        if to < from {
            return Err(format!("{} 行目: 終わりの日が始まりの日より前です", n + 1));
        }
        let reason = cols
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string();
        out.push(Closure {
            id: 0,
            from,
            to,
            reason,
        });
    }
    Ok(out)
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

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    /// 月火水金 09:00–12:30 and 15:00–18:30, 木土 09:00–12:30 (closed Thursday and Saturday
    /// afternoons), Sunday closed.
    fn lunch_break_clinic() -> BusinessHours {
        let full = parse_day("09:00-12:30, 15:00-18:30").unwrap();
        let morning = parse_day("09:00〜12:30").unwrap();
        BusinessHours {
            week: [
                full.clone(),
                full.clone(),
                full.clone(),
                morning.clone(),
                full,
                morning,
                Vec::new(),
            ],
            ..BusinessHours::default()
        }
    }

    #[test]
    fn lunch_breaks_and_half_days_are_closed_time() {
        let h = lunch_break_clinic();
        let cap = Duration::days(30);
        // (from, to, open minutes) — JST in the comments; Wed 2026-11-25, Thu 11-26, Sat 11-28.
        let table = [
            // Wed 12:29 -> 12:30: the last minute before the lunch break counts.
            ("2026-11-25T03:29:00Z", "2026-11-25T03:30:00Z", 1),
            // Wed 12:30 -> 15:00: the lunch break does not.
            ("2026-11-25T03:30:00Z", "2026-11-25T06:00:00Z", 0),
            // Wed 14:59 -> 15:01: the afternoon starts at 15:00.
            ("2026-11-25T05:59:00Z", "2026-11-25T06:01:00Z", 1),
            // Wed 18:29 -> 18:31: the last minute before closing counts, the next does not.
            ("2026-11-25T09:29:00Z", "2026-11-25T09:31:00Z", 1),
            // Thu 12:00 -> Fri 09:05: Thursday afternoon closed.
            ("2026-11-26T03:00:00Z", "2026-11-27T00:05:00Z", 30 + 5),
            // Sat 11:00 -> Mon 09:10: Saturday morning only, Sunday closed.
            ("2026-11-28T02:00:00Z", "2026-11-30T00:10:00Z", 90 + 10),
        ];
        for (from, to, minutes) in table {
            assert_eq!(
                h.open_time_between(utc(from), utc(to), cap),
                Duration::minutes(minutes),
                "{from} -> {to}"
            );
        }
        assert!(h.is_open_at(utc("2026-11-25T03:29:59Z")), "Wed 12:29:59");
        assert!(
            !h.is_open_at(utc("2026-11-25T03:30:00Z")),
            "Wed 12:30 lunch"
        );
        assert!(h.is_open_at(utc("2026-11-25T06:00:00Z")), "Wed 15:00");
        assert!(!h.is_open_at(utc("2026-11-26T06:00:00Z")), "Thu 15:00");
    }

    #[test]
    fn new_year_obon_holidays_and_closures() {
        let mut h = BusinessHours::default();
        let cap = Duration::days(30);
        // Mon 2026-12-28 18:00 JST -> Mon 2027-01-04 09:30 JST: 12/29–1/3 closed (1/3 is a
        // Sunday anyway), 1/4 opens at 09:00.
        let from = utc("2026-12-28T09:00:00Z");
        let to = utc("2027-01-04T00:30:00Z");
        assert_eq!(h.open_time_between(from, to, cap), Duration::minutes(30));
        assert_eq!(
            h.closed_because(date(2026, 12, 29)).as_deref(),
            Some("年末年始")
        );
        assert!(h.is_open_day(date(2026, 12, 28)));
        h.closed_new_year = false;
        assert!(
            h.is_open_day(date(2026, 12, 29)),
            "a clinic open over the new year"
        );
        // お盆 only when the clinic closes then.
        assert!(h.is_open_day(date(2026, 8, 14)));
        h.closed_obon = true;
        assert_eq!(h.closed_because(date(2026, 8, 14)).as_deref(), Some("お盆"));
        // A substitute holiday (振替休日): Wed 2026-05-06 (憲法記念日 5/3 fell on a Sunday)
        // closed, Thu 05-07 open.
        assert_eq!(
            h.closed_because(date(2026, 5, 6)).as_deref(),
            Some("振替休日")
        );
        assert!(h.is_open_day(date(2026, 5, 7)));
        // 臨時休診 from a CSV line.
        h.closures = parse_closures_csv(
            "開始,終了,理由\n2026-12-24,2026-12-25,院長不在\n2026/12/26,,研修\n",
        )
        .unwrap();
        assert_eq!(h.closures.len(), 2);
        assert_eq!(
            h.closed_because(date(2026, 12, 25)).as_deref(),
            Some("院長不在")
        );
        assert_eq!(
            h.closed_because(date(2026, 12, 26)).as_deref(),
            Some("研修")
        );
        assert!(h.is_open_day(date(2026, 12, 23)));
        assert!(parse_closures_csv("2026-12-24,2026-12-20,x").is_err());
        assert!(parse_closures_csv("2026-12-24\nあした,,x").is_err());
    }

    #[test]
    fn days_and_weeks_read_as_people_write_them() {
        assert_eq!(
            parse_day("９：００〜１２：３０、14:00-18:00").unwrap(),
            vec![
                Window::new(t(9, 0), t(12, 30)),
                Window::new(t(14, 0), t(18, 0))
            ]
        );
        assert_eq!(parse_day("  ").unwrap(), vec![]);
        assert!(
            parse_day("09:00-12:30, 12:00-18:00")
                .unwrap_err()
                .contains("重なって")
        );
        assert!(parse_day("18:00-09:00").is_err());
        assert!(parse_day("朝").is_err());
        let h = lunch_break_clinic();
        let stored = format_week(&h.week);
        assert_eq!(
            stored,
            "mon=09:00-12:30,15:00-18:30;tue=09:00-12:30,15:00-18:30;wed=09:00-12:30,15:00-18:30;\
             thu=09:00-12:30;fri=09:00-12:30,15:00-18:30;sat=09:00-12:30"
        );
        assert_eq!(parse_week(&stored).unwrap(), h.week);
        assert!(parse_week("xyz=09:00-10:00").is_err());
        assert_eq!(
            BusinessHours::uniform(t(9, 0), t(18, 0), &parse_weekdays("sun, sat,bogus")).week[5],
            vec![]
        );
    }
}
