//! The terminal timeline: the last N days (normally 30) of one terminal drawn as an
//! inline SVG string by our own code (no chart crate, no script).
//!
//! Three lanes share one time axis in JST (UTC+09:00, no daylight saving time):
//! "起動" (every start, shaped and coloured by kind), "受信" (hours in which a report
//! arrived, consecutive hours merged into one bar) and "イベント" (change events).
//! Night hours (00:00–06:00 JST) get a light band, and every complete JST calendar day on
//! which the terminal reported but had no restart-type start (a cold boot or a fast-startup
//! power-on) gets a faint red band in the start lane: the support desk's daily-restart rule.
//! A day without reports (switched off, or not yet enrolled) is not judged.
//!
//! The page's Content-Security-Policy forbids inline styles, so the markup uses class
//! names plus presentation attributes only (no `style=""`, no `<style>`): the page's
//! CSS can restyle the classes, and the drawing still reads correctly without CSS.
//! Every text that may come from a terminal goes through [`escape_xml`].

use std::collections::{BTreeSet, HashSet};
use std::fmt::{self, Write as _};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use onshi_shared::StartKind;

use crate::jst::{offset as jst, time_ja};

/// A start of the terminal and its kind.
pub struct TimelineStart {
    pub at: DateTime<Utc>,
    pub kind: StartKind,
}

/// A change event reported by the agent ("agent_started", "rebooted", "account_changed",
/// "network_changed", "app_updated", "cert_changed", "backup_verified"). `label` is free
/// text from the terminal and is always escaped.
pub struct TimelineEvent<'a> {
    pub at: DateTime<Utc>,
    pub kind: &'a str,
    pub label: &'a str,
}

/// Everything the timeline draws.
pub struct Timeline<'a> {
    pub now: DateTime<Utc>,
    /// Normally 30; clamped to 1..=366.
    pub days: i64,
    pub starts: &'a [TimelineStart],
    /// The start (UTC, truncated to the hour) of every hour in which at least one report arrived.
    pub report_hours: &'a [DateTime<Utc>],
    pub events: &'a [TimelineEvent<'a>],
}

// ---- geometry (viewBox units) ----

const VIEW_W: f64 = 1000.0;
const PLOT_X: f64 = 80.0;
const PLOT_W: f64 = 900.0;
const START_TOP: f64 = 8.0;
const START_H: f64 = 30.0;
const REPORT_TOP: f64 = 42.0;
const REPORT_H: f64 = 16.0;
const EVENT_TOP: f64 = 62.0;
const EVENT_H: f64 = 26.0;
const AXIS_Y: f64 = 92.0;
const TICK_LABEL_Y: f64 = 106.0;
const LEGEND_Y1: f64 = 126.0;
const LEGEND_Y2: f64 = 144.0;
const VIEW_H: f64 = 154.0;
const FONT_SIZE: f64 = 11.0;
/// Minimum distance between two date labels on the axis.
const MIN_LABEL_GAP: f64 = 44.0;
/// Terminal-supplied labels longer than this (in characters) are cut, to bound the output.
const MAX_LABEL_CHARS: usize = 120;

const GREY: &str = "#9e9e9e";

/// The JST calendar day of an instant.
fn jst_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&jst()).date_naive()
}

/// 00:00 JST of `d`, as UTC. `None` only at the very ends of chrono's range.
fn jst_midnight(d: NaiveDate) -> Option<DateTime<Utc>> {
    jst()
        .from_local_datetime(&d.and_time(NaiveTime::MIN))
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// A coordinate rounded to one decimal, written without a trailing ".0".
#[derive(Clone, Copy)]
struct N(f64);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = (self.0 * 10.0).round() as i64;
        let sign = if tenths < 0 { "-" } else { "" };
        let (whole, frac) = (tenths.abs() / 10, tenths.abs() % 10);
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            write!(f, "{sign}{whole}.{frac}")
        }
    }
}

/// XML-escapes text for element content and attribute values (& < > " ').
///
/// Characters that XML 1.0 does not allow at all (C0 controls other than tab, LF and CR,
/// and U+FFFE / U+FFFF) become U+FFFD, so terminal-supplied text can never break the markup.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The class of a start's marker.
fn start_class(kind: StartKind) -> &'static str {
    match kind {
        StartKind::ColdBoot => "start-cold",
        StartKind::FastStartup => "start-fast",
        StartKind::Resume => "start-resume",
        StartKind::Unknown => "start-unknown",
    }
}

/// The marker, centred on (x, y), with `title` (already escaped) as its tooltip.
fn marker(kind: StartKind, out: &mut String, x: f64, y: f64, title: &str) -> fmt::Result {
    let class = start_class(kind);
    match kind {
        StartKind::ColdBoot => write!(
            out,
            r##"<circle class="{class}" cx="{}" cy="{}" r="4.5" fill="#2e7d32">"##,
            N(x),
            N(y)
        )?,
        StartKind::FastStartup => write!(
            out,
            r##"<circle class="{class}" cx="{}" cy="{}" r="3.5" fill="#fff" stroke="#1565c0" stroke-width="2">"##,
            N(x),
            N(y)
        )?,
        StartKind::Resume => write!(
            out,
            r##"<path class="{class}" d="M{} {}l5 5-5 5-5-5z" fill="#f9a825">"##,
            N(x),
            N(y - 5.0)
        )?,
        StartKind::Unknown => write!(
            out,
            r#"<rect class="{class}" x="{}" y="{}" width="7" height="7" fill="{GREY}">"#,
            N(x - 3.5),
            N(y - 3.5)
        )?,
    }
    let tag = match kind {
        StartKind::ColdBoot | StartKind::FastStartup => "circle",
        StartKind::Resume => "path",
        StartKind::Unknown => "rect",
    };
    write!(out, "<title>{title}</title></{tag}>")
}

/// Known event kinds: (database string, Japanese name, colour).
const EVENT_KINDS: [(&str, &str, &str); 7] = [
    ("agent_started", "エージェント起動", "#757575"),
    ("rebooted", "再起動", "#2e7d32"),
    ("account_changed", "アカウント変更", "#c62828"),
    ("network_changed", "ネットワーク変更", "#6a1b9a"),
    ("app_updated", "アプリ更新", "#1565c0"),
    ("cert_changed", "証明書変更", "#ef6c00"),
    ("backup_verified", "バックアップ確認", "#00838f"),
];

/// (class suffix, Japanese name, colour) of an event kind. Unknown kinds never reach a
/// class attribute: they become "unknown".
fn event_style(kind: &str) -> (&'static str, &'static str, &'static str) {
    EVENT_KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .copied()
        .unwrap_or(("unknown", "不明なイベント", GREY))
}

/// Maps instants to x coordinates.
struct Axis {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    span_secs: f64,
}

impl Axis {
    fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t <= self.to
    }

    fn x(&self, t: DateTime<Utc>) -> f64 {
        let t = t.clamp(self.from, self.to);
        PLOT_X + (t - self.from).num_seconds() as f64 / self.span_secs * PLOT_W
    }
}

/// One JST calendar day touching the window: [start, end) in UTC.
struct Day {
    date: NaiveDate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Every JST calendar day that overlaps [from, to], in order.
fn days_in(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Day> {
    let mut days = Vec::new();
    let last = jst_date(to);
    let mut date = jst_date(from);
    while date <= last {
        let Some(next) = date.succ_opt() else { break };
        if let (Some(start), Some(end)) = (jst_midnight(date), jst_midnight(next)) {
            days.push(Day { date, start, end });
        }
        date = next;
    }
    days
}

/// Report hours inside the window as merged [from, to) intervals, clipped to the window.
fn report_spans(hours: &[DateTime<Utc>], axis: &Axis) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = hours
        .iter()
        .filter_map(|&h| {
            let end = h.checked_add_signed(Duration::hours(1))?;
            (end > axis.from && h <= axis.to).then(|| (h.max(axis.from), end.min(axis.to)))
        })
        .collect();
    spans.sort();
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(spans.len());
    for (from, to) in spans {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// Cuts a label to [`MAX_LABEL_CHARS`] characters.
fn short_label(label: &str) -> String {
    let label = label.trim();
    match label.char_indices().nth(MAX_LABEL_CHARS) {
        Some((cut, _)) => format!("{}…", &label[..cut]),
        None => label.to_owned(),
    }
}

/// A rough text width (viewBox units) for laying out the legend.
fn text_width(s: &str, size: f64) -> f64 {
    s.chars()
        .map(|c| if c.is_ascii() { 0.6 * size } else { size })
        .sum()
}

/// The SVG markup (a complete `<svg ...>...</svg>` element with id="timeline", viewBox set,
/// width="100%", role="img", aria-label in Japanese). Everything outside [now - days, now]
/// is ignored.
pub fn timeline_svg(t: &Timeline<'_>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    render(t, &mut out).expect("writing to a String cannot fail");
    out
}

fn render(t: &Timeline<'_>, out: &mut String) -> fmt::Result {
    let days = t.days.clamp(1, 366);
    let from = t
        .now
        .checked_sub_signed(Duration::days(days))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let axis = Axis {
        from,
        to: t.now,
        span_secs: ((t.now - from).num_seconds() as f64).max(1.0),
    };
    let calendar = days_in(axis.from, axis.to);

    let restart_days: BTreeSet<NaiveDate> = t
        .starts
        .iter()
        .filter(|s| axis.contains(s.at) && s.kind.counts_as_restart())
        .map(|s| jst_date(s.at))
        .collect();
    // A day counts only if the terminal was on (it reported that day): a PC switched off over
    // a closed Sunday, or days before it was enrolled, need no restart.
    let reported_days: HashSet<NaiveDate> = t
        .report_hours
        .iter()
        .filter(|h| axis.contains(**h))
        .map(|h| jst_date(*h))
        .collect();
    // Only complete days are judged: the first day is cut by the window (an earlier
    // restart that day is not in view) and today is not over yet.
    let missing: Vec<&Day> = calendar
        .iter()
        .filter(|d| {
            d.start >= axis.from
                && d.end <= axis.to
                && reported_days.contains(&d.date)
                && !restart_days.contains(&d.date)
        })
        .collect();

    let lanes_top = START_TOP;
    let lanes_bottom = EVENT_TOP + EVENT_H;

    write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="timeline" viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}" font-family="sans-serif" font-size="{}">"#,
        N(VIEW_W),
        N(VIEW_H),
        escape_xml(&format!(
            "端末の直近{days}日間のタイムライン（起動・受信・イベント、日本時間）。再起動のない日: {}日",
            missing.len()
        )),
        N(FONT_SIZE)
    )?;

    // Lane backgrounds and labels.
    for (class, label, top, h) in [
        ("lane-starts", "起動", START_TOP, START_H),
        ("lane-reports", "受信", REPORT_TOP, REPORT_H),
        ("lane-events", "イベント", EVENT_TOP, EVENT_H),
    ] {
        write!(
            out,
            r##"<rect class="lane {class}" x="{}" y="{}" width="{}" height="{}" fill="#fafafa" stroke="#ddd"/><text class="lane-label" x="{}" y="{}" text-anchor="end" fill="#333">{label}</text>"##,
            N(PLOT_X),
            N(top),
            N(PLOT_W),
            N(h),
            N(PLOT_X - 8.0),
            N(top + h / 2.0 + 4.0)
        )?;
    }

    // Night bands, 00:00–06:00 JST, across all lanes.
    out.push_str(r##"<g class="nights" fill="#1a237e" fill-opacity="0.06">"##);
    for d in &calendar {
        let Some(six) = d.start.checked_add_signed(Duration::hours(6)) else {
            continue;
        };
        let (a, b) = (d.start.max(axis.from), six.min(axis.to));
        if a < b {
            write!(
                out,
                r#"<rect class="night" x="{}" y="{}" width="{}" height="{}"/>"#,
                N(axis.x(a)),
                N(lanes_top),
                N(axis.x(b) - axis.x(a)),
                N(lanes_bottom - lanes_top)
            )?;
        }
    }
    out.push_str("</g>");

    // Days without a restart-type start: a red band, and a solid bar along its top so the day
    // stands out even where the band is faint on a screen.
    out.push_str(r##"<g class="no-restart-days" fill="#e53935" fill-opacity="0.32">"##);
    for d in &missing {
        let (x, w) = (axis.x(d.start), axis.x(d.end) - axis.x(d.start));
        write!(
            out,
            r#"<rect class="no-restart" x="{}" y="{}" width="{}" height="{}"><title>{} 再起動なし</title></rect><rect class="no-restart-bar" x="{}" y="{}" width="{}" height="3" fill-opacity="1"/>"#,
            N(x),
            N(START_TOP),
            N(w),
            N(START_H),
            crate::jst::date_ja(d.date),
            N(x),
            N(START_TOP),
            N(w)
        )?;
    }
    out.push_str("</g>");

    // Day ticks (with a light grid line through the lanes) and date labels.
    let midnights: Vec<&Day> = calendar.iter().filter(|d| axis.contains(d.start)).collect();
    let px_per_day = PLOT_W / days as f64;
    let label_every = ((MIN_LABEL_GAP / px_per_day).ceil() as usize).max(1);
    write!(
        out,
        r##"<g class="axis"><line class="axis-line" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>"##,
        N(PLOT_X),
        N(AXIS_Y),
        N(PLOT_X + PLOT_W),
        N(AXIS_Y)
    )?;
    out.push_str(r##"<g class="ticks" stroke="#ccc">"##);
    for d in &midnights {
        let x = N(axis.x(d.start));
        write!(
            out,
            r#"<line class="tick" x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
            N(lanes_top),
            N(AXIS_Y + 4.0)
        )?;
    }
    out.push_str(r##"</g><g class="tick-labels" text-anchor="middle" fill="#555">"##);
    // Counted back from the latest midnight, so the most recent date is always labelled.
    for (i, d) in midnights.iter().rev().enumerate() {
        if i % label_every == 0 {
            write!(
                out,
                r#"<text class="tick-label" x="{}" y="{}">{}</text>"#,
                N(axis.x(d.start)),
                N(TICK_LABEL_Y),
                d.date.format("%m/%d")
            )?;
        }
    }
    out.push_str("</g></g>");

    // Reports: one bar per run of consecutive hours.
    out.push_str(r##"<g class="lane-reports-data" fill="#64b5f6">"##);
    for (a, b) in report_spans(t.report_hours, &axis) {
        let x = axis.x(a);
        write!(
            out,
            r#"<rect class="reports" x="{}" y="{}" width="{}" height="{}"><title>受信 {}〜{}</title></rect>"#,
            N(x),
            N(REPORT_TOP + 3.0),
            N((axis.x(b) - x).max(1.0)),
            N(REPORT_H - 6.0),
            time_ja(a),
            time_ja(b)
        )?;
    }
    out.push_str("</g>");

    // Starts.
    out.push_str(r#"<g class="lane-starts-data">"#);
    let start_y = START_TOP + START_H / 2.0;
    for s in t.starts.iter().filter(|s| axis.contains(s.at)) {
        let title = format!("{} {}", time_ja(s.at), s.kind.label_ja());
        marker(s.kind, out, axis.x(s.at), start_y, &escape_xml(&title))?;
    }
    out.push_str("</g>");

    // Events.
    out.push_str(r#"<g class="lane-events-data">"#);
    for e in t.events.iter().filter(|e| axis.contains(e.at)) {
        let (class, ja, colour) = event_style(e.kind);
        let mut title = format!("{} {ja}", time_ja(e.at));
        if class == "unknown" && !e.kind.is_empty() {
            write!(title, "（{}）", short_label(e.kind))?;
        }
        let label = short_label(e.label);
        if !label.is_empty() {
            write!(title, " — {label}")?;
        }
        write!(
            out,
            r#"<rect class="event-{class}" x="{}" y="{}" width="4" height="{}" rx="1" fill="{colour}"><title>{}</title></rect>"#,
            N(axis.x(e.at) - 2.0),
            N(EVENT_TOP + 4.0),
            N(EVENT_H - 8.0),
            escape_xml(&title)
        )?;
    }
    out.push_str("</g>");

    legend(out)?;
    out.push_str("</svg>");
    Ok(())
}

/// Two legend rows under the axis: start kinds and lane backgrounds, then event kinds.
fn legend(out: &mut String) -> fmt::Result {
    const SIZE: f64 = 10.0;
    const GAP: f64 = 16.0;
    out.push_str(r#"<g class="legend" font-size="10">"#);

    // Row 1: start kinds, reports, no-restart and night bands.
    let y = LEGEND_Y1;
    let mut x = PLOT_X;
    write!(
        out,
        r##"<text x="{}" y="{}" text-anchor="end" fill="#333">起動</text>"##,
        N(PLOT_X - 8.0),
        N(y + 4.0)
    )?;
    for kind in StartKind::ALL {
        marker(kind, out, x + 5.0, y, kind.label_ja())?;
        write!(
            out,
            r##"<text x="{}" y="{}" fill="#333">{}</text>"##,
            N(x + 14.0),
            N(y + 4.0),
            kind.label_ja()
        )?;
        x += 14.0 + text_width(kind.label_ja(), SIZE) + GAP;
    }
    for (class, text, fill, opacity) in [
        ("reports", "受信あり", "#64b5f6", ""),
        (
            "no-restart",
            "再起動なしの日 (更新が適用されない)",
            "#e53935",
            r#" fill-opacity="0.32""#,
        ),
        ("night", "夜間 0〜6時", "#1a237e", r#" fill-opacity="0.06""#),
    ] {
        write!(
            out,
            r##"<rect class="{class}" x="{}" y="{}" width="10" height="10" fill="{fill}"{opacity}/><text x="{}" y="{}" fill="#333">{text}</text>"##,
            N(x),
            N(y - 5.0),
            N(x + 14.0),
            N(y + 4.0)
        )?;
        x += 14.0 + text_width(text, SIZE) + GAP;
    }

    // Row 2: event kinds.
    let y = LEGEND_Y2;
    let mut x = PLOT_X;
    write!(
        out,
        r##"<text x="{}" y="{}" text-anchor="end" fill="#333">イベント</text>"##,
        N(PLOT_X - 8.0),
        N(y + 4.0)
    )?;
    for (kind, ja, colour) in EVENT_KINDS {
        write!(
            out,
            r##"<rect class="event-{kind}" x="{}" y="{}" width="4" height="10" rx="1" fill="{colour}"/><text x="{}" y="{}" fill="#333">{ja}</text>"##,
            N(x + 3.0),
            N(y - 5.0),
            N(x + 12.0),
            N(y + 4.0)
        )?;
        x += 12.0 + text_width(ja, SIZE) + GAP;
    }
    out.push_str("</g>");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    /// 2026-12-01 00:00 JST: the 30-day window is exactly the JST days 11/01..11/30.
    const NOW_MIDNIGHT: &str = "2026-11-30T15:00:00Z";
    /// 2026-11-30 12:00 JST: the window starts at 10/31 12:00 JST.
    const NOW_NOON: &str = "2026-11-30T03:00:00Z";

    fn draw(
        now: &str,
        starts: &[TimelineStart],
        report_hours: &[DateTime<Utc>],
        events: &[TimelineEvent<'_>],
    ) -> String {
        let svg = timeline_svg(&Timeline {
            now: utc(now),
            days: 30,
            starts,
            report_hours,
            events,
        });
        assert_well_formed(&svg);
        svg
    }

    /// The drawing without the legend (the legend reuses the marker classes).
    fn plot(svg: &str) -> &str {
        let end = svg
            .find(r#"<g class="legend""#)
            .expect("the svg has a legend");
        &svg[..end]
    }

    /// How many elements of the plot carry exactly this class.
    fn count(svg: &str, class: &str) -> usize {
        plot(svg).matches(&format!(r#"class="{class}""#)).count()
    }

    fn assert_entities_ok(s: &str) {
        for (i, _) in s.match_indices('&') {
            let rest = &s[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "bare & in {s:?}"
            );
        }
    }

    /// A small well-formedness check: one root <svg>, tags balanced, quotes balanced,
    /// no raw < or > or bare & in text, no inline styles, no script.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        assert!(
            !svg.contains("style"),
            "inline style is forbidden by the CSP"
        );
        assert!(!svg.to_ascii_lowercase().contains("<script"));
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "raw > in text {text:?}");
            assert_entities_ok(text);
            let close = open + rest[open..].find('>').expect("tag is closed");
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "raw < in tag {tag:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes {tag:?}");
            assert_entities_ok(tag);
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().expect("tag name"));
            }
            rest = &rest[close + 1..];
            if stack.is_empty() {
                assert!(rest.is_empty(), "content after the root element: {rest:?}");
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
    }

    fn start(at: &str, kind: &'static str) -> TimelineStart {
        TimelineStart {
            at: utc(at),
            kind: StartKind::parse(kind),
        }
    }

    fn event(at: &str, kind: &'static str, label: &'static str) -> TimelineEvent<'static> {
        TimelineEvent {
            at: utc(at),
            kind,
            label,
        }
    }

    /// A start at 12:00 JST on the given day of November 2026.
    fn nov_noon(day: u32, kind: &'static str) -> TimelineStart {
        let at = Utc
            .with_ymd_and_hms(2026, 11, day, 3, 0, 0)
            .single()
            .expect("valid test date");
        TimelineStart {
            at,
            kind: StartKind::parse(kind),
        }
    }

    #[test]
    fn coordinates_have_at_most_one_decimal() {
        for (v, want) in [
            (0.0, "0"),
            (-0.04, "0"),
            (12.0, "12"),
            (1.25, "1.3"),
            (800.625, "800.6"),
            (-3.5, "-3.5"),
            (-0.05, "-0.1"),
            (979.96, "980"),
        ] {
            assert_eq!(N(v).to_string(), want, "{v}");
        }
    }

    #[test]
    fn escape_xml_escapes_markup_characters() {
        for (input, want) in [
            ("", ""),
            ("plain 日本語", "plain 日本語"),
            ("a & b", "a &amp; b"),
            ("<script>", "&lt;script&gt;"),
            (r#"say "hi""#, "say &quot;hi&quot;"),
            ("it's", "it&#39;s"),
            ("&amp;", "&amp;amp;"),
            ("tab\tnl\n", "tab\tnl\n"),
            ("nul\u{0}bell\u{7}", "nul\u{FFFD}bell\u{FFFD}"),
        ] {
            assert_eq!(escape_xml(input), want, "{input:?}");
        }
    }

    #[test]
    fn a_quiet_month_gives_a_valid_svg_with_the_axis() {
        // (now, day ticks, night bands, days flagged without restart, labelled dates, unlabelled dates)
        let cases = [
            (
                NOW_MIDNIGHT,
                31,
                30,
                30,
                ["12/01", "11/29", "11/01"],
                "11/30",
            ),
            (NOW_NOON, 30, 30, 29, ["11/30", "11/28", "11/02"], "11/29"),
        ];
        for (now, ticks, nights, flagged, labelled, unlabelled) in cases {
            let svg = draw(now, &[], &every_hour(now), &[]);
            for needle in [
                r#"id="timeline""#,
                r#"viewBox="0 0 1000 154""#,
                r#"width="100%""#,
                r#"role="img""#,
                "aria-label=\"端末の直近30日間のタイムライン",
                ">起動</text>",
                ">受信</text>",
                ">イベント</text>",
                r#"class="axis-line""#,
            ] {
                assert!(svg.contains(needle), "{now}: missing {needle}");
            }
            assert_eq!(count(&svg, "tick"), ticks, "{now}: ticks");
            assert_eq!(count(&svg, "night"), nights, "{now}: nights");
            assert_eq!(count(&svg, "no-restart"), flagged, "{now}: no-restart");
            assert!(
                svg.contains(&format!("再起動のない日: {flagged}日")),
                "{now}"
            );
            for date in labelled {
                assert!(
                    svg.contains(&format!(">{date}</text>")),
                    "{now}: label {date}"
                );
            }
            assert!(!svg.contains(&format!(">{unlabelled}</text>")), "{now}");
            // A terminal on all the time: one merged bar of reports.
            assert_eq!(count(&svg, "reports"), 1);
            for class in ["start-cold", "start-fast", "start-resume", "start-unknown"] {
                assert_eq!(count(&svg, class), 0, "{class}");
            }
            assert!(!plot(&svg).contains("class=\"event-"));
        }
    }

    #[test]
    fn the_window_maps_onto_the_plot_width() {
        // Window: 2026-10-31T15:00Z (x=80) .. 2026-11-30T15:00Z (x=980), 30 px a day.
        let cases = [
            ("2026-10-31T15:00:00Z", r#"cx="80""#),
            ("2026-11-30T15:00:00Z", r#"cx="980""#),
            ("2026-11-15T15:00:00Z", r#"cx="530""#),
            ("2026-11-24T15:30:00Z", r#"cx="800.6""#),
        ];
        for (at, want) in cases {
            let svg = draw(
                NOW_MIDNIGHT,
                &[start(at, "cold_boot")],
                &every_hour(NOW_MIDNIGHT),
                &[],
            );
            assert!(plot(&svg).contains(want), "{at}: want {want}");
        }
        let svg = draw(NOW_MIDNIGHT, &[], &[], &[]);
        // The tick of 11/25 00:00 JST (= 11/24 15:00 UTC) sits 24 days after the start.
        assert!(svg.contains(r#"<line class="tick" x1="800" "#));
    }

    #[test]
    fn out_of_window_items_are_dropped() {
        // Window: [2026-10-31T15:00Z, 2026-11-30T15:00Z].
        let cases = [
            ("long before", "2026-09-01T00:00:00Z", 0),
            ("one second before", "2026-10-31T14:59:59Z", 0),
            ("window start", "2026-10-31T15:00:00Z", 1),
            ("middle", "2026-11-15T04:00:00Z", 1),
            ("now", "2026-11-30T15:00:00Z", 1),
            ("one second after now", "2026-11-30T15:00:01Z", 0),
            ("next year", "2027-11-30T15:00:00Z", 0),
        ];
        for (name, at, want) in cases {
            let starts = [start(at, "cold_boot")];
            let events = [event(at, "app_updated", "v2")];
            let svg = draw(NOW_MIDNIGHT, &starts, &[], &events);
            assert_eq!(count(&svg, "start-cold"), want, "start {name}");
            assert_eq!(count(&svg, "event-app_updated"), want, "event {name}");
            assert_eq!(svg.contains("v2</title>"), want == 1, "label {name}");
        }

        // A report hour is kept when any part of it lies in the window, and clipped.
        let hour_cases = [
            ("ends at the window start", "2026-10-31T14:00:00Z", None),
            (
                "overlaps the window start",
                "2026-10-31T14:30:00Z",
                Some(r#"x="80""#),
            ),
            (
                "the current hour",
                "2026-11-30T15:00:00Z",
                Some(r#"x="980""#),
            ),
            ("after now", "2026-11-30T16:00:00Z", None),
            ("long ago", "2025-01-01T00:00:00Z", None),
        ];
        for (name, at, want) in hour_cases {
            let svg = draw(NOW_MIDNIGHT, &[], &[utc(at)], &[]);
            assert_eq!(
                count(&svg, "reports"),
                usize::from(want.is_some()),
                "{name}"
            );
            if let Some(x) = want {
                assert!(
                    plot(&svg).contains(&format!(r#"class="reports" {x}"#)),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn consecutive_report_hours_merge_into_one_rect() {
        let h0 = utc("2026-11-20T00:00:00Z");
        let hour = |n: i64| h0 + Duration::hours(n);
        let window_start = utc("2026-10-31T15:00:00Z");
        let all: Vec<DateTime<Utc>> = (0..720)
            .map(|n| window_start + Duration::hours(n))
            .collect();
        let cases: Vec<(&str, Vec<DateTime<Utc>>, usize)> = vec![
            ("none", vec![], 0),
            ("one", vec![hour(0)], 1),
            ("three in a row", vec![hour(0), hour(1), hour(2)], 1),
            ("a one-hour gap", vec![hour(0), hour(2)], 2),
            (
                "unsorted with duplicates",
                vec![hour(2), hour(0), hour(1), hour(1)],
                1,
            ),
            (
                "every other hour",
                (0..10).map(|n| hour(2 * n)).collect(),
                10,
            ),
            (
                "two runs",
                vec![hour(0), hour(1), hour(5), hour(6), hour(7)],
                2,
            ),
            ("all 720 hours", all, 1),
        ];
        for (name, hours, want) in cases {
            let svg = draw(NOW_MIDNIGHT, &[], &hours, &[]);
            assert_eq!(count(&svg, "reports"), want, "{name}");
            if name == "all 720 hours" {
                assert!(
                    plot(&svg).contains(r#"class="reports" x="80" y="45" width="900""#),
                    "{name}: one bar across the whole plot"
                );
            }
            if name == "three in a row" {
                // 3 hours at 1.25 px an hour, titled with the JST span.
                assert!(plot(&svg).contains(r#"width="3.8""#), "{name}");
                assert!(
                    svg.contains("受信 2026/11/20 09:00〜2026/11/20 12:00"),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn terminal_text_is_escaped() {
        let starts = [start("2026-11-20T00:00:00Z", "<script>alert(2)</script>")];
        let events = [
            event(
                "2026-11-20T01:00:00Z",
                "app_updated",
                "<script>alert(1)</script>",
            ),
            event(
                "2026-11-20T02:00:00Z",
                r#"x" onload="alert(3)"#,
                "Tom & Jerry's \"PC\"",
            ),
        ];
        let svg = draw(NOW_MIDNIGHT, &starts, &[], &events);
        assert!(!svg.to_ascii_lowercase().contains("<script"));
        assert!(svg.contains("アプリ更新 — &lt;script&gt;alert(1)&lt;/script&gt;</title>"));
        // An unknown kind never reaches a class attribute.
        assert!(!svg.contains(r#"onload=""#));
        assert_eq!(count(&svg, "event-unknown"), 1);
        assert!(svg.contains("不明なイベント（x&quot; onload=&quot;alert(3)）"));
        assert!(svg.contains("Tom &amp; Jerry&#39;s &quot;PC&quot;</title>"));
        assert_eq!(count(&svg, "start-unknown"), 1);
    }

    #[test]
    fn long_labels_are_cut() {
        let long_ascii = "a".repeat(1000);
        let long_ja = "あ".repeat(200);
        for (label, unit) in [(long_ascii.as_str(), "a"), (long_ja.as_str(), "あ")] {
            let events = [TimelineEvent {
                at: utc("2026-11-20T00:00:00Z"),
                kind: "app_updated",
                label,
            }];
            let svg = draw(NOW_MIDNIGHT, &[], &[], &events);
            assert!(svg.contains(&format!("— {}…</title>", unit.repeat(MAX_LABEL_CHARS))));
            assert!(!svg.contains(&unit.repeat(MAX_LABEL_CHARS + 1)));
        }
    }

    #[test]
    fn start_kinds_have_their_own_marker_and_name() {
        // 2026-11-24T19:00Z = 2026-11-25 04:00 JST.
        let cases = [
            ("cold_boot", "start-cold", "<circle", "再起動"),
            (
                "fast_startup",
                "start-fast",
                "<circle",
                "高速スタートアップ",
            ),
            ("resume", "start-resume", "<path", "休止状態から復帰"),
            ("", "start-unknown", "<rect", "不明"),
            ("warm_boot", "start-unknown", "<rect", "不明"),
        ];
        for (kind, class, element, ja) in cases {
            let svg = draw(
                NOW_MIDNIGHT,
                &[start("2026-11-24T19:00:00Z", kind)],
                &[],
                &[],
            );
            assert_eq!(count(&svg, class), 1, "{kind:?}");
            assert!(
                plot(&svg).contains(&format!(r#"{element} class="{class}""#)),
                "{kind:?}"
            );
            assert!(
                svg.contains(&format!("<title>2026/11/25 04:00 {ja}</title>")),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn event_kinds_have_their_own_class_and_name() {
        let cases = [
            ("agent_started", "event-agent_started", "エージェント起動"),
            ("rebooted", "event-rebooted", "再起動"),
            ("account_changed", "event-account_changed", "アカウント変更"),
            (
                "network_changed",
                "event-network_changed",
                "ネットワーク変更",
            ),
            ("app_updated", "event-app_updated", "アプリ更新"),
            ("cert_changed", "event-cert_changed", "証明書変更"),
            (
                "backup_verified",
                "event-backup_verified",
                "バックアップ確認",
            ),
            ("disk_full", "event-unknown", "不明なイベント（disk_full）"),
        ];
        for (kind, class, ja) in cases {
            let events = [event("2026-11-24T19:00:00Z", kind, "詳細")];
            let svg = draw(NOW_MIDNIGHT, &[], &[], &events);
            assert_eq!(count(&svg, class), 1, "{kind}");
            assert!(
                svg.contains(&format!("<title>2026/11/25 04:00 {ja} — 詳細</title>")),
                "{kind}"
            );
        }
    }

    #[test]
    fn days_without_a_restart_are_marked() {
        let cases: Vec<(&str, Vec<TimelineStart>, usize)> = vec![
            ("no starts", vec![], 30),
            (
                "cold boots on 4 days",
                vec![
                    nov_noon(1, "cold_boot"),
                    nov_noon(2, "cold_boot"),
                    nov_noon(2, "cold_boot"),
                    nov_noon(5, "cold_boot"),
                    nov_noon(30, "cold_boot"),
                ],
                26,
            ),
            (
                "every day",
                (1..=30).map(|d| nov_noon(d, "cold_boot")).collect(),
                0,
            ),
            (
                "fast startup counts",
                (1..=30).map(|d| nov_noon(d, "fast_startup")).collect(),
                0,
            ),
            (
                "cold and fast alternate",
                (1..=30)
                    .map(|d| {
                        nov_noon(
                            d,
                            if d % 2 == 0 {
                                "cold_boot"
                            } else {
                                "fast_startup"
                            },
                        )
                    })
                    .collect(),
                0,
            ),
            (
                "resume does not count",
                (1..=30).map(|d| nov_noon(d, "resume")).collect(),
                30,
            ),
            (
                "unknown does not count",
                (1..=30).map(|d| nov_noon(d, "mystery")).collect(),
                30,
            ),
            (
                "resume on 11/10, fast on 11/11",
                vec![nov_noon(10, "resume"), nov_noon(11, "fast_startup")],
                29,
            ),
        ];
        for (name, starts, want) in cases {
            let svg = draw(NOW_MIDNIGHT, &starts, &every_hour(NOW_MIDNIGHT), &[]);
            assert_eq!(count(&svg, "no-restart"), want, "{name}");
            assert!(svg.contains(&format!("再起動のない日: {want}日")), "{name}");
        }

        // Which days: the 4-day case flags 11/03 but not 11/01, 11/02, 11/05 or 11/30.
        let starts = [
            nov_noon(1, "cold_boot"),
            nov_noon(2, "fast_startup"),
            nov_noon(3, "resume"),
            nov_noon(5, "cold_boot"),
            nov_noon(30, "cold_boot"),
        ];
        let svg = draw(NOW_MIDNIGHT, &starts, &every_hour(NOW_MIDNIGHT), &[]);
        for (day, flagged) in [
            ("2026/11/01", false),
            ("2026/11/02", false),
            ("2026/11/03", true),
            ("2026/11/04", true),
            ("2026/11/05", false),
            ("2026/11/29", true),
            ("2026/11/30", false),
        ] {
            assert_eq!(
                svg.contains(&format!("<title>{day} 再起動なし</title>")),
                flagged,
                "{day}"
            );
        }
        // The first flagged band (11/03) starts two days (60 px) into the plot.
        assert!(plot(&svg).contains(r#"<rect class="no-restart" x="140" y="8" width="30" "#));
    }

    #[test]
    fn only_complete_days_are_judged() {
        // Now is 11/30 12:00 JST: 10/31 (cut by the window) and 11/30 (not over) are never
        // flagged, even without a start; 11/01..11/29 are.
        let svg = draw(NOW_NOON, &[], &every_hour(NOW_NOON), &[]);
        assert_eq!(count(&svg, "no-restart"), 29);
        assert!(!svg.contains("2026/10/31 再起動なし"));
        assert!(svg.contains("2026/11/01 再起動なし"));
        assert!(svg.contains("2026/11/29 再起動なし"));
        assert!(!svg.contains("2026/11/30 再起動なし"));
    }

    #[test]
    fn restart_days_follow_the_jst_calendar() {
        // (start UTC, JST text, JST day it counts for, the neighbouring day left flagged)
        let cases = [
            (
                "2026-11-24T15:30:00Z",
                "2026/11/25 00:30",
                "2026/11/25",
                "2026/11/24",
            ),
            (
                "2026-11-24T14:59:00Z",
                "2026/11/24 23:59",
                "2026/11/24",
                "2026/11/25",
            ),
            (
                "2026-11-24T15:00:00Z",
                "2026/11/25 00:00",
                "2026/11/25",
                "2026/11/24",
            ),
            (
                "2026-11-01T14:59:00Z",
                "2026/11/01 23:59",
                "2026/11/01",
                "2026/11/02",
            ),
        ];
        for (at, jst_text, counted, flagged) in cases {
            let svg = draw(
                NOW_MIDNIGHT,
                &[start(at, "cold_boot")],
                &every_hour(NOW_MIDNIGHT),
                &[],
            );
            assert!(
                svg.contains(&format!("<title>{jst_text} 再起動</title>")),
                "{at}"
            );
            assert!(!svg.contains(&format!("{counted} 再起動なし")), "{at}");
            assert!(svg.contains(&format!("{flagged} 再起動なし")), "{at}");
            assert_eq!(count(&svg, "no-restart"), 29, "{at}");
        }
    }

    /// Every hour of the 30 days before `now`: a terminal that was on all the time.
    fn every_hour(now: &str) -> Vec<DateTime<Utc>> {
        let from = utc(now) - Duration::days(30);
        (0..720).map(|n| from + Duration::hours(n)).collect()
    }

    #[test]
    fn days_without_reports_are_not_judged() {
        // On only on 11/10 and 11/11 (no restart either day), off the rest of the month.
        let hours: Vec<DateTime<Utc>> = ["2026-11-10T01:00:00Z", "2026-11-11T01:00:00Z"]
            .iter()
            .map(|h| utc(h))
            .collect();
        let svg = draw(NOW_MIDNIGHT, &[], &hours, &[]);
        assert_eq!(count(&svg, "no-restart"), 2);
        assert!(svg.contains("2026/11/10 再起動なし"));
        assert!(svg.contains("2026/11/11 再起動なし"));
        // Nothing reported at all: nothing to judge.
        assert_eq!(count(&draw(NOW_MIDNIGHT, &[], &[], &[]), "no-restart"), 0);
    }

    #[test]
    fn odd_day_counts_are_clamped() {
        for (days, want) in [
            (0, "直近1日間"),
            (-5, "直近1日間"),
            (7, "直近7日間"),
            (100_000, "直近366日間"),
        ] {
            let svg = timeline_svg(&Timeline {
                now: utc(NOW_MIDNIGHT),
                days,
                starts: &[],
                report_hours: &[],
                events: &[],
            });
            assert_well_formed(&svg);
            assert!(svg.contains(want), "{days}");
        }
    }

    #[test]
    fn busy_terminal_stays_small() {
        let now = utc(NOW_MIDNIGHT);
        let from = now - Duration::days(30);
        let hours: Vec<DateTime<Utc>> = (0..720).map(|n| from + Duration::hours(n)).collect();
        // One start a day at 04:00 JST, alternating cold boot and fast startup.
        let starts: Vec<TimelineStart> = (0..30)
            .map(|d| TimelineStart {
                at: from + Duration::days(d) + Duration::hours(4),
                kind: if d % 2 == 0 {
                    StartKind::ColdBoot
                } else {
                    StartKind::FastStartup
                },
            })
            .collect();
        let events: Vec<TimelineEvent<'static>> = (0..50)
            .map(|n| TimelineEvent {
                at: from + Duration::minutes(n * 863),
                kind: EVENT_KINDS[n as usize % EVENT_KINDS.len()].0,
                label: "受付用PC: Microsoft Edge 131.0.2903.86 に更新",
            })
            .collect();
        let svg = draw(NOW_MIDNIGHT, &starts, &hours, &events);
        assert_eq!(count(&svg, "reports"), 1);
        assert_eq!(count(&svg, "start-cold") + count(&svg, "start-fast"), 30);
        assert_eq!(plot(&svg).matches("class=\"event-").count(), 50);
        assert_eq!(count(&svg, "no-restart"), 0);
        println!("busy 30-day timeline: {} bytes", svg.len());
        assert!(svg.len() < 40_000, "{} bytes", svg.len());
    }
}
