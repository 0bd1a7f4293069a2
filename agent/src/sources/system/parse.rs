//! Parsers for `/etc/hostname` and `/etc/os-release`.

/// The first non-empty, non-comment line of a hostname file.
pub fn hostname(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

/// `PRETTY_NAME` from os-release, else `NAME VERSION`.
pub fn os_release_name(text: &str) -> Option<String> {
    let get = |key: &str| {
        text.lines().find_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            (k == key).then(|| unquote(v)).filter(|v| !v.is_empty())
        })
    };
    if let Some(pretty) = get("PRETTY_NAME") {
        return Some(pretty);
    }
    let name = get("NAME")?;
    Some(match get("VERSION") {
        Some(version) => format!("{name} {version}"),
        None => name,
    })
}

/// Removes shell-style quotes and backslash escapes (os-release(5)).
fn unquote(value: &str) -> String {
    let value = value.trim();
    let inner = if value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')))
    {
        &value[1..value.len() - 1]
    } else {
        value
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
ID=debian
HOME_URL="https://www.debian.org/"
"#;

    #[test]
    fn os_release_prefers_pretty_name() {
        assert_eq!(
            os_release_name(DEBIAN).as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
    }

    #[test]
    fn os_release_falls_back_to_name_and_version() {
        let text = "NAME=Alpine\nVERSION='3.20 \\\"edge\\\"'\n";
        assert_eq!(
            os_release_name(text).as_deref(),
            Some("Alpine 3.20 \"edge\"")
        );
        assert_eq!(os_release_name("ID=x\n"), None);
    }

    #[test]
    fn hostname_takes_first_real_line() {
        assert_eq!(
            hostname("# set by installer\n\nonshi-pc-01\n").as_deref(),
            Some("onshi-pc-01")
        );
        assert_eq!(hostname("\n  \n"), None);
    }
}
