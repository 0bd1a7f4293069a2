//! Checks `.pfx` backups on a removable drive when it is inserted: the vendor's procedure ends
//! with the clinic copying the exported certificate to a USB stick, so the moment it is plugged
//! into the terminal is the moment to confirm the backup is good.
//!
//! The drive list comes from the OS (Windows: `GetLogicalDrives` + `GetDriveTypeW`); finding and
//! choosing backups is plain file-system code, tested on every platform.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use onshi_shared::{BackupState, CertInfo};

use super::{BackupError, verify_file};

/// Most backup files looked at on one drive; a stick full of certificates is not a backup.
const MAX_FILES_PER_DRIVE: usize = 32;

/// Whether a file name looks like a PKCS#12 export.
fn is_backup_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("pfx") || e.eq_ignore_ascii_case("p12"))
}

/// `.pfx` / `.p12` files at the top of `root` and one folder down (where people save them),
/// sorted, at most [`MAX_FILES_PER_DRIVE`].
pub fn find_backups(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return found;
    };
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_file() && is_backup_name(&path) => found.push(path),
            Ok(t) if t.is_dir() => dirs.push(path),
            _ => {}
        }
    }
    for dir in dirs {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            found.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
                    .filter(|p| is_backup_name(p)),
            );
        }
    }
    found.sort();
    found.truncate(MAX_FILES_PER_DRIVE);
    found
}

/// The best of several good backups: one of the installed current certificate first, then the
/// one that expires last.
pub fn best(states: Vec<BackupState>) -> Option<BackupState> {
    states
        .into_iter()
        .max_by_key(|s| (s.matches_current, s.not_after))
}

/// Remembers which removable drives were present, so each is checked once per insertion, and
/// with which of the clinic's passwords.
#[derive(Debug, Default)]
pub struct RemovableWatch {
    present: BTreeSet<PathBuf>,
    /// A hash of the passwords (never the passwords: this struct is `Debug`).
    passwords: u64,
}

impl RemovableWatch {
    /// The drives to check now: those in `now` that were not present at the previous call,
    /// or all of them when the clinic's passwords changed since (a stick left in the slot
    /// whose backup the new password opens). The first call only learns what is plugged in
    /// at start and the passwords (a stick left in the slot was checked when it went in).
    pub fn to_check(
        &mut self,
        now: BTreeSet<PathBuf>,
        passwords: &[String],
        first: bool,
    ) -> Vec<PathBuf> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        passwords.hash(&mut h);
        let key = h.finish();
        let new = if first {
            Vec::new()
        } else if key != self.passwords {
            now.iter().cloned().collect()
        } else {
            now.difference(&self.present).cloned().collect()
        };
        self.present = now;
        self.passwords = key;
        new
    }
}

/// Verifies every backup on `drive` with the default password, then the clinic's own
/// (`known`), then `ONSHI_AGENT_BACKUP_PASSWORD` if set, against `installed`, and returns the
/// best good one. Failures are logged by file name only.
pub fn check_drive(
    drive: &Path,
    known: &[super::Password],
    installed: &[CertInfo],
    now: DateTime<Utc>,
) -> Option<BackupState> {
    let mut known = known.to_vec();
    if let Ok(p) = std::env::var("ONSHI_AGENT_BACKUP_PASSWORD") {
        known.push(super::Password::new(p));
    }
    let mut good = Vec::new();
    for file in find_backups(drive) {
        let (_, result) = verify_file(&file, None, &known, installed, None, now);
        match result {
            Ok(state) => {
                tracing::info!(file = %file.display(), thumbprint = %state.thumbprint,
                    matches_current = state.matches_current, "backup on removable drive verified");
                good.push(state);
            }
            Err(e) => log_refusal(&file, &e),
        }
    }
    best(good)
}

fn log_refusal(file: &Path, e: &BackupError) {
    tracing::warn!(file = %file.display(), error = %e, "backup on removable drive not usable");
}

/// The removable drives attached now (their root directories).
#[cfg(windows)]
pub fn removable_drives() -> BTreeSet<PathBuf> {
    use windows_sys::Win32::Storage::FileSystem::{GetDriveTypeW, GetLogicalDrives};
    // DRIVE_REMOVABLE from WinBase.h: USB sticks and card readers.
    const DRIVE_REMOVABLE: u32 = 2;
    // SAFETY: no arguments; returns a bit mask of drive letters.
    let mask = unsafe { GetLogicalDrives() };
    (0..26u8)
        .filter(|i| mask & (1 << i) != 0)
        .filter_map(|i| {
            let letter = char::from(b'A' + i);
            let root: Vec<u16> = format!("{letter}:\\")
                .encode_utf16()
                .chain(std::iter::once(0))
                .collect();
            // SAFETY: `root` is a NUL-terminated UTF-16 string that outlives the call.
            let kind = unsafe { GetDriveTypeW(root.as_ptr()) };
            (kind == DRIVE_REMOVABLE).then(|| PathBuf::from(format!("{letter}:\\")))
        })
        .collect()
}

/// Linux development builds have no drive letters; removable media are not watched there.
#[cfg(not(windows))]
pub fn removable_drives() -> BTreeSet<PathBuf> {
    BTreeSet::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn state(thumb: &str, current: bool, year: i32) -> BackupState {
        BackupState {
            thumbprint: thumb.into(),
            verified_at: Utc::now(),
            not_after: Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single(),
            matches_current: current,
        }
    }

    #[test]
    fn finds_exports_at_the_top_and_one_folder_down() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("オン資PC_更新後の電子証明書_受付01.pfx"), b"x").unwrap();
        std::fs::write(root.join("notes.txt"), b"x").unwrap();
        std::fs::create_dir_all(root.join("backup/deeper")).unwrap();
        std::fs::write(root.join("backup/old.P12"), b"x").unwrap();
        std::fs::write(root.join("backup/deeper/too-deep.pfx"), b"x").unwrap();
        let names: Vec<String> = find_backups(root)
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            vec!["backup/old.P12", "オン資PC_更新後の電子証明書_受付01.pfx"]
        );
        assert!(find_backups(&root.join("missing")).is_empty());
    }

    #[test]
    fn the_backup_of_the_current_certificate_wins() {
        let chosen = best(vec![
            state("OLD", false, 2030),
            state("CUR", true, 2028),
            state("OTHER", false, 2029),
        ]);
        assert_eq!(chosen.map(|s| s.thumbprint), Some("CUR".to_string()));
        assert_eq!(best(vec![]), None);
    }

    #[test]
    fn each_insertion_is_seen_once_and_drives_present_at_start_are_not() {
        let set = |v: &[&str]| v.iter().map(PathBuf::from).collect::<BTreeSet<_>>();
        let mut watch = RemovableWatch::default();
        let none: &[String] = &[];
        assert!(watch.to_check(set(&["E:\\"]), none, true).is_empty());
        assert!(watch.to_check(set(&["E:\\"]), none, false).is_empty());
        assert_eq!(
            watch.to_check(set(&["E:\\", "F:\\"]), none, false),
            vec![PathBuf::from("F:\\")]
        );
        assert!(watch.to_check(set(&["E:\\"]), none, false).is_empty());
        assert_eq!(
            watch.to_check(set(&["E:\\", "F:\\"]), none, false),
            vec![PathBuf::from("F:\\")]
        );
        // Staff told the agent the clinic's own password: every stick in the slot again.
        let own = ["2468".to_string()];
        assert_eq!(
            watch.to_check(set(&["E:\\", "F:\\"]), &own, false),
            vec![PathBuf::from("E:\\"), PathBuf::from("F:\\")]
        );
        assert!(
            watch
                .to_check(set(&["E:\\", "F:\\"]), &own, false)
                .is_empty()
        );
    }

    #[test]
    fn a_drive_with_a_good_backup_yields_its_state() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pkcs12");
        let dir = tempfile::tempdir().unwrap();
        // Exported with the default password 1357.
        std::fs::copy(
            fixtures.join("aes256-sha256.pfx"),
            dir.path().join("backup.pfx"),
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.pfx"), b"not pkcs12").unwrap();
        let state =
            check_drive(dir.path(), &[], &[], Utc::now()).expect("the good backup is found");
        assert_eq!(state.thumbprint.len(), 40);
        assert!(!state.matches_current, "nothing installed here");
    }
}
