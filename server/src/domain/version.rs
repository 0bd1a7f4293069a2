//! The version each watched app should have.

use chrono::{DateTime, Utc};

/// Who decided an expected version: staff, or the fleet's most common version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VersionSource {
    /// The most common version among terminals seen in the last days (kept by the evaluator).
    Fleet,
    /// Set by staff; wins over the fleet's.
    Staff,
}

impl VersionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionSource::Fleet => "fleet",
            VersionSource::Staff => "staff",
        }
    }

    pub fn parse(s: &str) -> Option<VersionSource> {
        [VersionSource::Fleet, VersionSource::Staff]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The version a watched app should have, and since when that is so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedVersion {
    pub version: String,
    pub since: DateTime<Utc>,
}

/// A stored expected version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedVersionRow {
    pub app: String,
    pub source: VersionSource,
    pub version: String,
    pub since: DateTime<Utc>,
}

/// What each app is expected at: staff settings win over the fleet's most common version.
pub fn effective_versions(
    rows: &[ExpectedVersionRow],
) -> std::collections::HashMap<String, ExpectedVersion> {
    let mut rows: Vec<&ExpectedVersionRow> = rows.iter().collect();
    rows.sort_by_key(|r| r.source);
    rows.into_iter()
        .map(|r| {
            (
                r.app.clone(),
                ExpectedVersion {
                    version: r.version.clone(),
                    since: r.since,
                },
            )
        })
        .collect()
}

/// Compares dotted versions part by part, numerically where both parts are numbers.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> Vec<String> {
        v.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map_or("0", String::as_str);
        let y = pb.get(i).map_or("0", String::as_str);
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        use std::cmp::Ordering::*;
        for (a, b, want) in [
            ("2.4.1", "2.10.0", Less),
            ("2.4.1", "2.4.1", Equal),
            ("2.4", "2.4.0", Equal),
            ("1.12.0", "1.9.9", Greater),
            ("v3", "v3", Equal),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} {b}");
        }
    }

    #[test]
    fn staff_versions_win_over_the_fleets() {
        let now = Utc::now();
        let row = |app: &str, source, version: &str| ExpectedVersionRow {
            app: app.into(),
            source,
            version: version.into(),
            since: now,
        };
        let rows = [
            row("a", VersionSource::Staff, "2.0"),
            row("a", VersionSource::Fleet, "1.0"),
            row("b", VersionSource::Fleet, "3.0"),
        ];
        let v = effective_versions(&rows);
        assert_eq!(v["a"].version, "2.0");
        assert_eq!(v["b"].version, "3.0");
    }
}
