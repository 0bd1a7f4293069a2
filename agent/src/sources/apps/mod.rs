//! The watched apps (installed or missing, with versions) and whether a reboot is pending.

#[cfg(unix)]
mod linux;
#[cfg(unix)]
pub mod parse;
#[cfg(windows)]
mod windows;

use onshi_shared::{AppInfo, Apps};

use super::{Ctx, Notes};

const AREA: &str = "apps";

/// Reads the apps area.
pub fn collect(ctx: &Ctx, notes: &mut Notes) -> Apps {
    #[cfg(unix)]
    {
        linux::collect(ctx, notes)
    }
    #[cfg(windows)]
    {
        windows::collect(ctx, notes)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = ctx;
        notes.push(AREA, "not implemented on this platform");
        Apps {
            installed: Vec::new(),
            missing: Vec::new(),
            pending_reboot: None,
        }
    }
}

/// Splits the watched apps into those installed (with their details, in watch-list order) and
/// those missing. When the installed list could not be read (`None`), nothing is reported as
/// missing: unknown is not absent.
pub fn watched(watch: &[String], installed: Option<&[AppInfo]>) -> (Vec<AppInfo>, Vec<String>) {
    let Some(installed) = installed else {
        return (Vec::new(), Vec::new());
    };
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in watch {
        match installed.iter().find(|a| &a.name == name) {
            Some(app) => found.push(app.clone()),
            None => missing.push(name.clone()),
        }
    }
    (found, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_watched_apps() {
        let installed = vec![
            AppInfo {
                name: "連携アプリ".into(),
                version: Some("1.12.0".into()),
                installed_on: None,
            },
            AppInfo {
                name: "something else".into(),
                version: None,
                installed_on: None,
            },
        ];
        let watch = vec!["配信アプリ".to_string(), "連携アプリ".to_string()];
        let (found, missing) = watched(&watch, Some(&installed));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "連携アプリ");
        assert_eq!(missing, ["配信アプリ"]);
        assert_eq!(watched(&watch, None), (vec![], vec![]));
    }
}
