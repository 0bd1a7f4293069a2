//! Decoding Windows registry values from their raw bytes (what `RegQueryValueExW` returns), and
//! the facts the apps area reads from Uninstall keys. Pure; tested on Linux.

use chrono::{DateTime, NaiveDate, Utc};

/// Registry value types (`winnt.h`).
pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;
pub const REG_MULTI_SZ: u32 = 7;
pub const REG_QWORD: u32 = 11;

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegValue {
    Text(String),
    MultiText(Vec<String>),
    Dword(u32),
    Qword(u64),
    Binary(Vec<u8>),
}

impl RegValue {
    /// Decodes `bytes` of registry type `kind`. Strings may lack their terminator or have an
    /// odd byte count (both happen with values written by hand); a DWORD or QWORD of the wrong
    /// size is `None`.
    pub fn decode(kind: u32, bytes: &[u8]) -> Option<RegValue> {
        match kind {
            REG_SZ | REG_EXPAND_SZ => Some(RegValue::Text(utf16z(bytes))),
            REG_MULTI_SZ => Some(RegValue::MultiText(multi_sz(bytes))),
            REG_DWORD => Some(RegValue::Dword(u32::from_le_bytes(bytes.try_into().ok()?))),
            REG_QWORD => Some(RegValue::Qword(u64::from_le_bytes(bytes.try_into().ok()?))),
            _ => Some(RegValue::Binary(bytes.to_vec())),
        }
    }

    /// The value as text: strings as they are, numbers in decimal.
    pub fn as_text(&self) -> Option<String> {
        match self {
            RegValue::Text(s) => Some(s.clone()),
            RegValue::Dword(n) => Some(n.to_string()),
            RegValue::Qword(n) => Some(n.to_string()),
            RegValue::MultiText(_) | RegValue::Binary(_) => None,
        }
    }
}

/// UTF-16LE up to the first NUL (or the end); an odd last byte is dropped, bad surrogates
/// become U+FFFD.
pub fn utf16z(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// REG_MULTI_SZ: NUL-separated UTF-16LE strings ending with an empty one.
pub fn multi_sz(bytes: &[u8]) -> Vec<String> {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    units
        .split(|u| *u == 0)
        .map(String::from_utf16_lossy)
        .take_while(|s| !s.is_empty())
        .collect()
}

/// UTF-16 with a terminating NUL, for passing names to `*W` functions.
pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Expands `%NAME%` references with `lookup` (REG_EXPAND_SZ); unknown names stay as written.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) if end > 0 => {
                let name = &after[..end];
                match lookup(name) {
                    Some(value) => out.push_str(&value),
                    None => {
                        out.push('%');
                        out.push_str(name);
                        out.push('%');
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// An Uninstall key's `InstallDate` (`yyyymmdd`) when it is one; other spellings
/// (`2026/09/01`, `9/1/2026`) are normalized to `yyyymmdd` too, junk is `None`.
pub fn install_date(text: &str) -> Option<String> {
    let text = text.trim();
    let date = NaiveDate::parse_from_str(text, "%Y%m%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y/%m/%d"))
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d"))
        .or_else(|_| NaiveDate::parse_from_str(text, "%m/%d/%Y"))
        .ok()?;
    (text.len() >= 8).then(|| date.format("%Y%m%d").to_string())
}

/// A FILETIME (100 ns since 1601-01-01 UTC), e.g. a key's last-write time.
pub fn filetime(ticks: u64) -> Option<DateTime<Utc>> {
    const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
    if ticks == 0 {
        return None;
    }
    let secs = i64::try_from(ticks / 10_000_000).ok()? - EPOCH_DIFF_SECS;
    let nanos = u32::try_from((ticks % 10_000_000) * 100).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

/// One app as an Uninstall key describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallEntry {
    pub display_name: String,
    pub display_version: Option<String>,
    pub install_date: Option<String>,
    /// `SystemComponent = 1`: hidden from "Apps & features" (still installed).
    pub system_component: bool,
}

/// An Uninstall entry from its values (by name); `None` without a `DisplayName`. The version is
/// `DisplayVersion`, else `VersionMajor.VersionMinor`.
pub fn uninstall_entry(get: impl Fn(&str) -> Option<RegValue>) -> Option<UninstallEntry> {
    let text = |name: &str| {
        get(name)
            .and_then(|v| v.as_text())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let display_name = text("DisplayName")?;
    let display_version =
        text("DisplayVersion").or_else(|| match (get("VersionMajor"), get("VersionMinor")) {
            (Some(RegValue::Dword(major)), Some(RegValue::Dword(minor))) => {
                Some(format!("{major}.{minor}"))
            }
            (Some(RegValue::Dword(major)), None) => Some(major.to_string()),
            _ => None,
        });
    Some(UninstallEntry {
        display_name,
        display_version,
        install_date: text("InstallDate").and_then(|d| install_date(&d)),
        system_component: matches!(get("SystemComponent"), Some(RegValue::Dword(1))),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn decodes_strings_with_and_without_terminators() {
        let mut bytes = utf16("配信アプリ");
        assert_eq!(
            RegValue::decode(REG_SZ, &bytes),
            Some(RegValue::Text("配信アプリ".into()))
        );
        bytes.extend([0, 0, 0x41, 0]);
        assert_eq!(utf16z(&bytes), "配信アプリ", "stops at the NUL");
        bytes.truncate(3);
        assert_eq!(utf16z(&bytes), "配", "odd byte dropped");
        assert_eq!(utf16z(&[]), "");
        assert_eq!(
            RegValue::decode(REG_EXPAND_SZ, &utf16("%SystemDrive%\\Users\\onshi\0")),
            Some(RegValue::Text("%SystemDrive%\\Users\\onshi".into()))
        );
    }

    #[test]
    fn decodes_multi_strings() {
        let bytes = utf16("\\??\\C:\\a.dll\0\0\\??\\C:\\b.dll\0!\\??\\C:\\c.dll\0\0");
        assert_eq!(
            multi_sz(&bytes),
            ["\\??\\C:\\a.dll"],
            "an empty string ends the list"
        );
        let bytes = utf16("one\0two\0\0");
        assert_eq!(multi_sz(&bytes), ["one", "two"]);
        assert!(multi_sz(&utf16("\0")).is_empty());
        assert_eq!(multi_sz(&utf16("unterminated")), ["unterminated"]);
    }

    #[test]
    fn decodes_numbers_of_the_right_size_only() {
        assert_eq!(
            RegValue::decode(REG_DWORD, &1u32.to_le_bytes()),
            Some(RegValue::Dword(1))
        );
        assert_eq!(RegValue::decode(REG_DWORD, &[1, 0]), None);
        assert_eq!(
            RegValue::decode(REG_QWORD, &7u64.to_le_bytes()),
            Some(RegValue::Qword(7))
        );
        assert_eq!(
            RegValue::decode(REG_BINARY, &[1, 2]),
            Some(RegValue::Binary(vec![1, 2]))
        );
        assert_eq!(
            RegValue::Dword(20260901).as_text().as_deref(),
            Some("20260901")
        );
    }

    #[test]
    fn expands_environment_references() {
        let env = |name: &str| (name.eq_ignore_ascii_case("SystemDrive")).then(|| "C:".to_string());
        assert_eq!(
            expand_env("%SystemDrive%\\Users\\onshi", env),
            "C:\\Users\\onshi"
        );
        assert_eq!(expand_env("%NOPE%\\x", env), "%NOPE%\\x");
        assert_eq!(expand_env("100% sure", env), "100% sure");
        assert_eq!(expand_env("a%%b", env), "a%%b");
    }

    #[test]
    fn normalizes_install_dates() {
        assert_eq!(install_date("20260901").as_deref(), Some("20260901"));
        assert_eq!(install_date("2026/09/01").as_deref(), Some("20260901"));
        assert_eq!(install_date("9/1/2026").as_deref(), Some("20260901"));
        assert_eq!(install_date("20261301"), None);
        assert_eq!(install_date("yesterday"), None);
        assert_eq!(install_date(""), None);
    }

    #[test]
    fn converts_filetimes() {
        // 2026-11-25T09:00:00Z
        let ticks = (1_795_597_200u64 + 11_644_473_600) * 10_000_000 + 5_000_000;
        assert_eq!(
            filetime(ticks),
            Some(
                Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
                    + chrono::Duration::milliseconds(500)
            )
        );
        assert_eq!(filetime(0), None);
    }

    #[test]
    fn reads_uninstall_entries() {
        let values: BTreeMap<&str, RegValue> = BTreeMap::from([
            ("DisplayName", RegValue::Text("顔認証ライブラリ ".into())),
            ("VersionMajor", RegValue::Dword(3)),
            ("VersionMinor", RegValue::Dword(14)),
            ("InstallDate", RegValue::Text("20260901".into())),
            ("SystemComponent", RegValue::Dword(1)),
        ]);
        let e = uninstall_entry(|n| values.get(n).cloned()).unwrap();
        assert_eq!(e.display_name, "顔認証ライブラリ");
        assert_eq!(e.display_version.as_deref(), Some("3.14"));
        assert_eq!(e.install_date.as_deref(), Some("20260901"));
        assert!(e.system_component);

        let values: BTreeMap<&str, RegValue> = BTreeMap::from([
            ("DisplayName", RegValue::Text("連携アプリ".into())),
            ("DisplayVersion", RegValue::Text("1.12.0".into())),
            ("VersionMajor", RegValue::Dword(1)),
            ("InstallDate", RegValue::Text("garbage".into())),
        ]);
        let e = uninstall_entry(|n| values.get(n).cloned()).unwrap();
        assert_eq!(e.display_version.as_deref(), Some("1.12.0"));
        assert_eq!(e.install_date, None);
        assert!(
            uninstall_entry(|_| None).is_none(),
            "no DisplayName, no app"
        );
    }
}
