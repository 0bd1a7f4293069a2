//! Certificates stored as files (PEM or DER) in one directory, with `<stem>.key` beside a
//! certificate meaning its private key is there.

use std::fs;
use std::path::Path;

use super::{AREA, Found, parse};
use crate::sources::{Ctx, Notes};

/// Files larger than this are not certificates; skip them rather than read them.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

pub(super) fn scan(ctx: &Ctx, notes: &mut Notes) -> Vec<Found> {
    let dir = ctx.path(&ctx.certs_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            notes.push(AREA, format!("{} not found", dir.display()));
            return Vec::new();
        }
        Err(e) => {
            notes.push(AREA, format!("cannot list {}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();

    let mut found = Vec::new();
    for path in paths {
        if path.extension().is_some_and(|ext| ext == "key") {
            continue;
        }
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= MAX_FILE_BYTES => {}
            Ok(_) => continue,
            Err(e) => {
                notes.push(AREA, format!("cannot stat {}: {e}", path.display()));
                continue;
            }
        }
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                notes.push(AREA, format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        // Files that are not certificates (notes, keys under other names) are not an error.
        let Ok(certs) = parse::certificates(&bytes) else {
            tracing::debug!(path = %path.display(), "not a certificate file");
            continue;
        };
        let has_private_key = path.with_extension("key").is_file();
        let store = relative(&ctx.root, &path);
        found.extend(certs.into_iter().map(|cert| Found {
            cert,
            has_private_key,
            store: store.clone(),
        }));
    }
    found
}

/// `path` relative to `root`, with `/` separators.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
