//! Sources: read the OS and nothing else (DESIGN §4).
//!
//! One module per area. Each area has pure parsers (`parse.rs`, tested with fixtures) apart from
//! the code that reads the OS: `linux.rs` behind `cfg(unix)`, `windows.rs` (Win32 through
//! `windows-sys`) behind `cfg(windows)`. The Windows formats have pure parsers of their own, used
//! by the Windows code and tested on Linux: [`eventlog`] (rendered event XML), [`registry`]
//! (registry values, Uninstall entries), `certificates::serialized` (certificate store files),
//! and the uptime and account facts drawn from events (`uptime::events`, `accounts::events`).
//!
//! Every Linux read is relative to [`Ctx::root`] so tests can build a fake machine in a
//! temporary directory. A source that cannot read a field leaves it empty and adds a
//! [`SourceNote`] instead of failing the whole snapshot.

pub mod accounts;
pub mod apps;
pub mod certificates;
pub mod eventlog;
pub(crate) mod fit;
pub mod network;
pub mod registry;
pub mod system;
pub mod uptime;
#[cfg(windows)]
pub(crate) mod win32;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use onshi_shared::{AccountRole, AgentPolicy, Snapshot, SourceNote, Validate};

use crate::config::{AgentConfig, under_root};

pub use fit::fit_to_limits;

/// This build's version, as reported in snapshots and events.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a probe's TCP connect may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a collection needs to know besides the OS itself.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The directory every OS path is read under (`/` on a real machine).
    pub root: PathBuf,
    /// Certificate directory, relative to `root`.
    pub certs_dir: PathBuf,
    /// Installed-apps manifest, relative to `root`.
    pub apps_manifest: PathBuf,
    /// The verified-backup record (`<data-dir>/backup.json`); not under `root`.
    pub backup_file: PathBuf,
    pub policy: AgentPolicy,
    /// The account identity (`sid`) last seen for each role, to see renames.
    pub known_sids: BTreeMap<AccountRole, String>,
    /// The collection time; every source uses this one clock reading.
    pub now: DateTime<Utc>,
    pub probe_timeout: Duration,
}

impl Ctx {
    /// A context from the settings, the policy in force and what the last snapshot knew.
    pub fn new(
        cfg: &AgentConfig,
        policy: AgentPolicy,
        known_sids: BTreeMap<AccountRole, String>,
        now: DateTime<Utc>,
    ) -> Ctx {
        Ctx {
            root: cfg.root.clone(),
            certs_dir: cfg.certs_dir.clone(),
            apps_manifest: cfg.apps_manifest.clone(),
            backup_file: cfg.backup_path(),
            policy,
            known_sids,
            now,
            probe_timeout: PROBE_TIMEOUT,
        }
    }

    /// `rel` under the root; absolute paths and `..` stay inside it.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        under_root(&self.root, rel.as_ref())
    }
}

/// What a source could not read, collected while a snapshot is built.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes(Vec<SourceNote>);

impl Notes {
    pub fn push(&mut self, area: &str, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::debug!(area, %detail, "source note");
        self.0.push(SourceNote {
            area: area.to_string(),
            detail,
        });
    }

    pub fn into_vec(self) -> Vec<SourceNote> {
        self.0
    }

    pub fn as_slice(&self) -> &[SourceNote] {
        &self.0
    }
}

/// Reads every area and assembles a snapshot that passes [`Validate`].
pub async fn collect(ctx: &Ctx) -> Snapshot {
    let mut notes = Notes::default();
    let hostname = system::hostname(ctx, &mut notes);
    let os = system::os_name(ctx, &mut notes);
    let uptime = uptime::collect(ctx, &mut notes);
    let apps = apps::collect(ctx, &mut notes);
    let certificates = certificates::collect(ctx, &mut notes);
    let accounts = accounts::collect(ctx, &mut notes);
    let network = network::collect(ctx, &mut notes).await;

    let mut snapshot = Snapshot {
        collected_at: ctx.now,
        hostname,
        os,
        agent_version: AGENT_VERSION.to_string(),
        uptime,
        apps,
        certificates,
        accounts,
        network,
        notes: notes.into_vec(),
        // The run loop fills it in from its spool before sending.
        spool: Default::default(),
    };
    fit_to_limits(&mut snapshot);
    if let Err(e) = snapshot.validate() {
        // fit_to_limits covers every limit; this is a bug, but the snapshot still goes out so
        // the server can say what it refuses.
        tracing::error!(error = %e, "collected snapshot does not validate");
    }
    snapshot
}

/// Reads a small text file under the root; a missing file is `Ok(None)`.
#[cfg(unix)]
pub(crate) fn read_text(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// [`read_text`] that records a note when the file is missing or unreadable.
#[cfg(unix)]
pub(crate) fn read_text_noted(path: &Path, area: &str, notes: &mut Notes) -> Option<String> {
    match read_text(path) {
        Ok(Some(text)) => Some(text),
        Ok(None) => {
            notes.push(area, format!("{} not found", path.display()));
            None
        }
        Err(detail) => {
            notes.push(area, detail);
            None
        }
    }
}
