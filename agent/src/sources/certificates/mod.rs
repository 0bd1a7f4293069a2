//! Certificates issued under the configured root CA, and the state of their backup.

#[cfg(unix)]
mod files;
pub mod parse;
pub mod serialized;
#[cfg(windows)]
mod windows;

use std::path::Path;

use onshi_shared::{BackupState, CertInfo, Certificates};

use super::{Ctx, Notes};
use crate::atomic_file;
use parse::ParsedCert;

const AREA: &str = "certificates";

/// Reads the certificates area.
pub fn collect(ctx: &Ctx, notes: &mut Notes) -> Certificates {
    let certs = installed(ctx, notes);
    let backup = read_backup(&ctx.backup_file, notes).map(|b| with_current(b, &certs));
    Certificates { certs, backup }
}

/// The certificates installed on this machine under the configured issuer (what `verify-backup`
/// compares a backup with).
pub fn installed(ctx: &Ctx, notes: &mut Notes) -> Vec<CertInfo> {
    #[cfg(unix)]
    let found = files::scan(ctx, notes);
    #[cfg(windows)]
    let found = windows::scan(ctx, notes);
    #[cfg(not(any(unix, windows)))]
    let found: Vec<Found> = {
        notes.push(AREA, "not implemented on this platform");
        Vec::new()
    };
    select(found, &ctx.policy.cert_issuer)
}

/// A certificate as a platform source found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub cert: ParsedCert,
    pub has_private_key: bool,
    /// Where it was found (a file path relative to the root, a store name).
    pub store: String,
}

/// The certificates issued under `issuer` (a substring of the issuer name), without the root
/// itself and without duplicates of one thumbprint.
pub fn select(found: Vec<Found>, issuer: &str) -> Vec<CertInfo> {
    let mut out: Vec<CertInfo> = Vec::new();
    for f in found {
        if f.cert.self_issued || !f.cert.issuer.contains(issuer) {
            continue;
        }
        if let Some(seen) = out.iter_mut().find(|c| c.thumbprint == f.cert.thumbprint) {
            // The same certificate in two places: it has a key if either copy has one.
            seen.has_private_key |= f.has_private_key;
            continue;
        }
        out.push(CertInfo {
            subject: f.cert.subject,
            issuer: f.cert.issuer,
            serial: f.cert.serial,
            thumbprint: f.cert.thumbprint,
            not_before: f.cert.not_before,
            not_after: f.cert.not_after,
            has_private_key: f.has_private_key,
            store: f.store,
        });
    }
    out
}

/// The last verified backup record (`backup.json`, a [`BackupState`] in JSON), if any.
pub fn read_backup(path: &Path, notes: &mut Notes) -> Option<BackupState> {
    match atomic_file::read_json::<BackupState>(path) {
        Ok(state) => state,
        Err(e) => {
            notes.push(AREA, e.to_string());
            None
        }
    }
}

/// `backup` with `matches_current` recomputed against the certificate installed now.
pub fn with_current(mut backup: BackupState, certs: &[CertInfo]) -> BackupState {
    let current = Certificates {
        certs: certs.to_vec(),
        backup: None,
    };
    backup.matches_current = current
        .current()
        .is_some_and(|c| c.thumbprint.eq_ignore_ascii_case(&backup.thumbprint));
    backup
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::*;

    fn found(thumb: &str, issuer: &str, days_left: i64, key: bool) -> Found {
        let now = Utc::now();
        Found {
            cert: ParsedCert {
                subject: "CN=1312345678".into(),
                issuer: issuer.into(),
                serial: "01".into(),
                thumbprint: thumb.into(),
                not_before: now - Duration::days(10),
                not_after: now + Duration::days(days_left),
                self_issued: false,
            },
            has_private_key: key,
            store: format!("etc/onshi/certs/{thumb}.pem"),
        }
    }

    const ROOT: &str = "CN=Online Billing NW Common Root CA,C=JP";

    #[test]
    fn keeps_only_certificates_under_the_issuer() {
        let mut root = found("R", ROOT, 5000, false);
        root.cert.self_issued = true;
        let certs = select(
            vec![
                found("A", ROOT, 100, true),
                found("B", "CN=Other CA", 100, true),
                root,
                found("A", ROOT, 100, false),
            ],
            "Online Billing NW Common Root CA",
        );
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].thumbprint, "A");
        assert!(certs[0].has_private_key);
    }

    #[test]
    fn backup_matches_only_the_current_certificate() {
        let certs = select(
            vec![found("OLD", ROOT, 10, true), found("NEW", ROOT, 1000, true)],
            "Online Billing",
        );
        let backup = BackupState {
            thumbprint: "old".into(),
            verified_at: Utc::now(),
            not_after: None,
            matches_current: true,
        };
        assert!(!with_current(backup.clone(), &certs).matches_current);
        let backup = BackupState {
            thumbprint: "new".into(),
            ..backup
        };
        assert!(with_current(backup.clone(), &certs).matches_current);
        assert!(!with_current(backup, &[]).matches_current);
    }

    #[test]
    fn unreadable_backup_record_is_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.json");
        let mut notes = Notes::default();
        assert_eq!(read_backup(&path, &mut notes), None);
        assert!(
            notes.as_slice().is_empty(),
            "a missing record is no problem"
        );
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(read_backup(&path, &mut notes), None);
        assert_eq!(notes.as_slice().len(), 1);
    }
}
