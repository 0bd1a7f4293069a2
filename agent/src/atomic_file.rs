//! Files that are replaced whole or not at all: write a temporary file beside the target, fsync
//! it, rename it over the target, fsync the directory. A crash leaves the old or the new
//! content, never a mix.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AgentError;

/// Who may read the file once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Readable by the owner only (0600 on unix): files holding the agent token.
    Private,
    /// The platform default.
    Default,
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write(path: &Path, bytes: &[u8], access: Access) -> Result<(), AgentError> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let tmp = dir.join(format!(".{name}.tmp"));

    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if access == Access::Private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = access;
    let mut file = options
        .open(&tmp)
        .map_err(|e| AgentError::io("create", &tmp, e))?;
    // A leftover temporary file may have been created with wider permissions.
    #[cfg(unix)]
    if access == Access::Private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| AgentError::io("set permissions on", &tmp, e))?;
    }
    file.write_all(bytes)
        .map_err(|e| AgentError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| AgentError::io("fsync", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| AgentError::io("rename into place", path, e))?;
    sync_dir(dir).map_err(|e| AgentError::io("fsync directory", dir, e))
}

/// Serializes `value` as pretty JSON and [`write`]s it.
pub fn write_json<T: Serialize>(path: &Path, value: &T, access: Access) -> Result<(), AgentError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| AgentError::json(path, e))?;
    write(path, &bytes, access)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, AgentError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AgentError::json(path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io("read", path, e)),
    }
}

/// Makes a rename or a new file in `dir` durable. A no-op where directories cannot be opened
/// (Windows), whose file systems order the rename with the data already.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write(&path, b"first, longer content", Access::Default).unwrap();
        write(&path, b"second", Access::Default).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.json");
        write(&path, b"{}", Access::Private).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn missing_json_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let got: Option<u32> = read_json(&dir.path().join("nope.json")).unwrap();
        assert_eq!(got, None);
        write_json(&dir.path().join("n.json"), &7u32, Access::Default).unwrap();
        let got: Option<u32> = read_json(&dir.path().join("n.json")).unwrap();
        assert_eq!(got, Some(7));
    }
}
