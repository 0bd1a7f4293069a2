//! Parser for the installed-apps manifest: a JSON array of
//! `{"name": ..., "version": ..., "installed_on": ...}` (version and date optional).

use onshi_shared::AppInfo;
use serde::Deserialize;

use crate::error::AgentError;

#[derive(Deserialize)]
struct Entry {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    installed_on: Option<String>,
}

/// Parses the manifest.
pub fn manifest(bytes: &[u8]) -> Result<Vec<AppInfo>, AgentError> {
    let entries: Vec<Entry> = serde_json::from_slice(bytes)
        .map_err(|e| AgentError::parse("apps manifest", e.to_string()))?;
    Ok(entries
        .into_iter()
        .map(|e| AppInfo {
            name: e.name,
            version: e.version,
            installed_on: e.installed_on,
        })
        .collect())
}

/// Package names in `reboot-required.pkgs`, one a line, without duplicates.
pub fn reboot_packages(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.iter().any(|p| p == line) {
            out.push(line.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_manifest() {
        let apps = manifest(
            r#"[{"name":"配信アプリ","version":"2.4.1","installed_on":"20260901"},
                {"name":"顔認証ライブラリ"}]"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[0].version.as_deref(), Some("2.4.1"));
        assert_eq!(apps[1].version, None);
        assert!(manifest(b"{}").is_err());
    }

    #[test]
    fn lists_reboot_packages_once() {
        assert_eq!(
            reboot_packages("linux-image-6.12.0-1-amd64\nlibc6\nlibc6\n\n"),
            ["linux-image-6.12.0-1-amd64", "libc6"]
        );
    }
}
