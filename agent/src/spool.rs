//! The spool: an append-only on-disk queue of events waiting for the server's acknowledgement,
//! so that a week without the server loses nothing (DESIGN §4).
//!
//! Layout of `<data-dir>/spool/`:
//! - `events-<generation>.log`: records `[u32 len LE][u32 crc32 LE][JSON event]`, appended and
//!   fsynced one batch at a time.
//! - `ack`: JSON `{generation, offset, dropped, corrupt}`, replaced atomically: which log is
//!   current, the byte offset of its first unacknowledged record, how many events were ever
//!   dropped, and how many of those were lost to disk corruption.
//!   It is the commit point of every change that is not a plain append.
//! - `lock`: held while a process has the spool open.
//!
//! A crash during an append leaves a torn record at the end of the log; opening the spool
//! truncates it. Compaction and dropping write the surviving records to the next generation's
//! log, then commit by replacing `ack`; a crash before that commit leaves the old log in force.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use onshi_shared::{Event, Validate};
use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, Access};
use crate::error::AgentError;

const HEADER_LEN: u64 = 8;
/// No event comes near this (the largest has 64 strings of 512 bytes); a longer length field is
/// garbage from a torn write.
const MAX_RECORD_LEN: u32 = 1024 * 1024;
/// Compact once the acknowledged prefix is this large, even if it is less than half the log.
const COMPACT_BYTES: u64 = 1024 * 1024;

/// How much the spool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Bytes of unacknowledged records.
    pub max_bytes: u64,
    /// Events older than this (by their `at`) are dropped.
    pub max_age: Duration,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_bytes: 16 * 1024 * 1024,
            max_age: Duration::from_secs(30 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct AckRecord {
    generation: u64,
    offset: u64,
    dropped: u64,
    /// Of `dropped`: records that failed their checksum (older ack files have none).
    #[serde(default)]
    corrupt: u64,
}

/// One unacknowledged record of the current log.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    len: u32,
    at: DateTime<Utc>,
    informational: bool,
}

impl Entry {
    fn size(&self) -> u64 {
        HEADER_LEN + u64::from(self.len)
    }

    fn end(&self) -> u64 {
        self.offset + self.size()
    }
}

/// An open spool. One process at a time (a lock file says so).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    generation: u64,
    log: File,
    /// End of the last complete record: where the next append goes.
    end: u64,
    /// Offset of the first unacknowledged record (everything before it is acknowledged).
    acked: u64,
    entries: VecDeque<Entry>,
    dropped: u64,
    corrupt: u64,
    _lock: File,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`: checks every unacknowledged record, truncates a
    /// torn tail, and applies the limits.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, AgentError> {
        fs::create_dir_all(dir).map_err(|e| AgentError::io("create", dir, e))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(|e| AgentError::io("create", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(AgentError::Locked { path: lock_path }),
            Err(TryLockError::Error(e)) => return Err(AgentError::io("lock", &lock_path, e)),
        }

        // The ack file is written when the spool is created and replaced atomically after, so
        // it is missing only on first use and unreadable only after disk damage.
        let logs = list_logs(dir)?;
        let (ack, damaged) = match atomic_file::read_json::<AckRecord>(&dir.join("ack")) {
            Ok(ack) => (ack, false),
            Err(e) => {
                tracing::error!(error = %e, "spool ack file unreadable; resending from the start");
                (None, true)
            }
        };
        let (generation, offset, dropped, corrupt) = match ack {
            Some(a) => (a.generation, a.offset, a.dropped, a.corrupt),
            // Damaged: the newest log holds the newest events. Acknowledged ones may be sent
            // again, which the server stores once.
            None if damaged => (logs.iter().copied().max().unwrap_or(0), 0, 0, 0),
            // Never committed: a rewrite only becomes current by writing the ack file.
            None => (logs.iter().copied().min().unwrap_or(0), 0, 0, 0),
        };
        for g in logs.into_iter().filter(|g| *g != generation) {
            let path = log_path(dir, g);
            if g > generation {
                tracing::info!(path = %path.display(), "removing an unfinished spool rewrite");
            }
            fs::remove_file(&path).map_err(|e| AgentError::io("remove", &path, e))?;
        }

        let path = log_path(dir, generation);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| AgentError::io("open", &path, e))?;
        let file_len = log
            .metadata()
            .map_err(|e| AgentError::io("stat", &path, e))?
            .len();
        let acked = if offset > file_len {
            tracing::warn!(offset, file_len, "spool ack points past the log's end");
            file_len
        } else {
            offset
        };

        let mut spool = Spool {
            dir: dir.to_path_buf(),
            limits,
            generation,
            log,
            end: acked,
            acked,
            entries: VecDeque::new(),
            dropped,
            corrupt,
            _lock: lock,
        };
        let (undecodable, corrupt) = spool.scan(file_len)?;
        if ack.is_none() || undecodable > 0 || corrupt > 0 {
            spool.dropped += undecodable + corrupt;
            spool.corrupt += corrupt;
            spool.write_ack()?;
        }
        spool.enforce_limits(Utc::now())?;
        Ok(spool)
    }

    /// Reads the log from the acknowledged offset and indexes every intact record. A record
    /// that fails its checksum (a flipped bit on disk) is skipped and counted, and reading goes
    /// on at the next intact record; a partial record at the end (a write cut short by a crash)
    /// is cut off. Returns how many records were lost: undecodable, and corrupt.
    fn scan(&mut self, file_len: u64) -> Result<(u64, u64), AgentError> {
        let path = self.log_path();
        let mut bytes = Vec::with_capacity(usize::try_from(file_len - self.acked).unwrap_or(0));
        let mut file = &self.log;
        file.seek(SeekFrom::Start(self.acked))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| AgentError::io("read", &path, e))?;
        let base = self.acked;
        let mut at = 0usize;
        let (mut undecodable, mut corrupt) = (0, 0);
        let mut torn = None;
        while at < bytes.len() {
            let payload = match record_at(&bytes, at) {
                Record::Intact(payload) => payload,
                Record::Partial if next_intact(&bytes, at + 1).is_none() => {
                    torn = Some("a partial record");
                    break;
                }
                Record::Partial | Record::BadChecksum => match next_intact(&bytes, at + 1) {
                    Some(next) => {
                        tracing::error!(
                            offset = base + at as u64,
                            skipped_bytes = next - at,
                            "spooled record fails its checksum (disk corruption); skipping it"
                        );
                        corrupt += 1;
                        at = next;
                        continue;
                    }
                    None => {
                        // The last record is complete but damaged: lost, not torn.
                        tracing::error!(
                            offset = base + at as u64,
                            "the last spooled record fails its checksum; dropping it"
                        );
                        corrupt += 1;
                        torn = Some("a damaged record");
                        break;
                    }
                },
            };
            let len = payload.len() as u32;
            match serde_json::from_slice::<Event>(payload) {
                Ok(event) => self.entries.push_back(Entry {
                    offset: base + at as u64,
                    len,
                    at: event.at,
                    informational: event.kind.is_informational(),
                }),
                Err(e) => {
                    tracing::error!(offset = base + at as u64, error = %e, "spooled record is not an event; dropping it");
                    undecodable += 1;
                }
            }
            at += HEADER_LEN as usize + payload.len();
        }
        let end = base + at as u64;
        self.end = end;
        if let Some(what) = torn {
            tracing::warn!(
                path = %path.display(),
                offset = end,
                discarded_bytes = file_len - end,
                "spool ends in {what}; truncating it"
            );
            self.log
                .set_len(end)
                .map_err(|e| AgentError::io("truncate", &path, e))?;
            self.log
                .sync_all()
                .map_err(|e| AgentError::io("fsync", &path, e))?;
        }
        Ok((undecodable, corrupt))
    }

    /// Appends a batch with one fsync. Events that do not validate are dropped (and counted):
    /// the server would refuse them and block every event behind them.
    pub fn append(&mut self, events: &[Event]) -> Result<(), AgentError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        let mut added = Vec::with_capacity(events.len());
        let mut invalid = 0;
        for event in events {
            if let Err(e) = event.validate() {
                tracing::error!(kind = event.kind.name(), error = %e, "dropping an invalid event");
                invalid += 1;
                continue;
            }
            let json = serde_json::to_vec(event).map_err(|e| self.error(e.to_string()))?;
            let len = u32::try_from(json.len())
                .ok()
                .filter(|l| *l <= MAX_RECORD_LEN)
                .ok_or_else(|| self.error(format!("event of {} bytes", json.len())))?;
            added.push(Entry {
                offset: self.end + buf.len() as u64,
                len,
                at: event.at,
                informational: event.kind.is_informational(),
            });
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc32(&json).to_le_bytes());
            buf.extend_from_slice(&json);
        }
        if !buf.is_empty() {
            let path = self.log_path();
            let written = self
                .log
                .seek(SeekFrom::Start(self.end))
                .and_then(|_| self.log.write_all(&buf))
                .and_then(|()| self.log.sync_data());
            if let Err(e) = written {
                // Leave no partial record for the next append to land behind.
                let _ = self.log.set_len(self.end);
                return Err(AgentError::io("append to", &path, e));
            }
            self.end += buf.len() as u64;
            self.entries.extend(added);
        }
        if invalid > 0 {
            self.dropped += invalid;
            self.write_ack()?;
        }
        self.enforce_limits(Utc::now())
    }

    /// Up to `max` of the oldest unacknowledged events, in order.
    pub fn peek(&self, max: usize) -> Result<Vec<Event>, AgentError> {
        let n = max.min(self.entries.len());
        let (Some(first), Some(last)) = (self.entries.front(), self.entries.get(n.wrapping_sub(1)))
        else {
            return Ok(Vec::new());
        };
        let path = self.log_path();
        let mut span = vec![0u8; (last.end() - first.offset) as usize];
        let mut file = &self.log;
        file.seek(SeekFrom::Start(first.offset))
            .and_then(|_| file.read_exact(&mut span))
            .map_err(|e| AgentError::io("read", &path, e))?;
        self.entries
            .iter()
            .take(n)
            .map(|e| {
                let start = (e.offset - first.offset + HEADER_LEN) as usize;
                let payload = &span[start..start + e.len as usize];
                serde_json::from_slice(payload).map_err(|err| AgentError::json(&path, err))
            })
            .collect()
    }

    /// Marks the `n` oldest events as delivered. Call only after the server's 2xx.
    pub fn ack(&mut self, n: usize) -> Result<(), AgentError> {
        let n = n.min(self.entries.len());
        if n == 0 {
            return Ok(());
        }
        let offset = self.entries.get(n).map_or(self.end, |e| e.offset);
        let previous = self.acked;
        self.acked = offset;
        if let Err(e) = self.write_ack() {
            self.acked = previous;
            return Err(e);
        }
        self.entries.drain(..n);
        if self.acked > COMPACT_BYTES || self.acked > self.end / 2 {
            self.rewrite(|_| true)?;
        }
        Ok(())
    }

    /// Removes the `n` oldest events without delivering them (an event the server refuses),
    /// counting them as dropped.
    pub fn discard(&mut self, n: usize) -> Result<(), AgentError> {
        let n = n.min(self.entries.len());
        if n == 0 {
            return Ok(());
        }
        self.dropped += n as u64;
        if let Err(e) = self.ack(n) {
            self.dropped -= n as u64;
            return Err(e);
        }
        Ok(())
    }

    /// Unacknowledged events.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Events dropped over the spool's life (limits, invalid, refused or corrupt events).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Of [`Spool::dropped`]: records lost to disk corruption (they failed their checksum).
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// Bytes of unacknowledged records.
    pub fn pending_bytes(&self) -> u64 {
        self.entries.iter().map(Entry::size).sum()
    }

    /// Drops events past the limits: all older than `max_age`, then, while over `max_bytes`,
    /// the oldest informational events, then the oldest others.
    pub fn enforce_limits(&mut self, now: DateTime<Utc>) -> Result<(), AgentError> {
        let max_age =
            chrono::Duration::from_std(self.limits.max_age).unwrap_or(chrono::Duration::MAX);
        let cutoff = now.checked_sub_signed(max_age);
        let mut doomed: Vec<bool> = self
            .entries
            .iter()
            .map(|e| cutoff.is_some_and(|c| e.at < c))
            .collect();
        let mut size: u64 = self
            .entries
            .iter()
            .zip(&doomed)
            .filter(|(_, d)| !**d)
            .map(|(e, _)| e.size())
            .sum();
        let too_old = doomed.iter().filter(|d| **d).count();
        for informational_pass in [true, false] {
            for (e, d) in self.entries.iter().zip(doomed.iter_mut()) {
                if size <= self.limits.max_bytes {
                    break;
                }
                if !*d && e.informational == informational_pass {
                    *d = true;
                    size -= e.size();
                }
            }
        }
        let count = doomed.iter().filter(|d| **d).count();
        if count == 0 {
            return Ok(());
        }
        tracing::warn!(
            dropped = count,
            too_old,
            over_size = count - too_old,
            max_bytes = self.limits.max_bytes,
            max_age_days = self.limits.max_age.as_secs() / 86_400,
            "spool over its limits; dropping the oldest events"
        );
        self.dropped += count as u64;
        self.rewrite(|i| !doomed[i])
    }

    /// Writes the unacknowledged records that `keep` selects (by index) to the next
    /// generation's log, commits it in the ack file, and removes the old log.
    fn rewrite(&mut self, keep: impl Fn(usize) -> bool) -> Result<(), AgentError> {
        let old_path = self.log_path();
        let generation = self.generation + 1;
        let new_path = log_path(&self.dir, generation);
        let mut new_log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&new_path)
            .map_err(|e| AgentError::io("create", &new_path, e))?;

        let mut kept = VecDeque::new();
        let mut writer = io::BufWriter::new(&mut new_log);
        let mut offset = 0;
        let mut record = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !keep(i) {
                continue;
            }
            record.resize(e.size() as usize, 0);
            let mut file = &self.log;
            file.seek(SeekFrom::Start(e.offset))
                .and_then(|_| file.read_exact(&mut record))
                .map_err(|err| AgentError::io("read", &old_path, err))?;
            writer
                .write_all(&record)
                .map_err(|err| AgentError::io("write", &new_path, err))?;
            kept.push_back(Entry { offset, ..*e });
            offset += e.size();
        }
        writer
            .flush()
            .map_err(|e| AgentError::io("write", &new_path, e))?;
        drop(writer);
        new_log
            .sync_all()
            .map_err(|e| AgentError::io("fsync", &new_path, e))?;
        atomic_file::sync_dir(&self.dir).map_err(|e| AgentError::io("fsync", &self.dir, e))?;

        let ack = AckRecord {
            generation,
            offset: 0,
            dropped: self.dropped,
            corrupt: self.corrupt,
        };
        atomic_file::write_json(&self.dir.join("ack"), &ack, Access::Default)?;

        self.generation = generation;
        self.log = new_log;
        self.end = offset;
        self.acked = 0;
        self.entries = kept;
        if let Err(e) = fs::remove_file(&old_path) {
            // Harmless: the next open removes logs of other generations.
            tracing::warn!(path = %old_path.display(), error = %e, "cannot remove old spool log");
        }
        Ok(())
    }

    fn write_ack(&self) -> Result<(), AgentError> {
        let ack = AckRecord {
            generation: self.generation,
            offset: self.acked,
            dropped: self.dropped,
            corrupt: self.corrupt,
        };
        atomic_file::write_json(&self.dir.join("ack"), &ack, Access::Default)
    }

    fn log_path(&self) -> PathBuf {
        log_path(&self.dir, self.generation)
    }

    fn error(&self, detail: String) -> AgentError {
        AgentError::Spool {
            path: self.dir.clone(),
            detail,
        }
    }
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("events-{generation}.log"))
}

/// Generations of the `events-<n>.log` files in `dir`.
fn list_logs(dir: &Path) -> Result<Vec<u64>, AgentError> {
    let entries = fs::read_dir(dir).map_err(|e| AgentError::io("list", dir, e))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_prefix("events-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect())
}

/// What the log holds at an offset.
enum Record<'a> {
    Intact(&'a [u8]),
    /// The header or the payload runs past the end of the log (or the length is garbage).
    Partial,
    BadChecksum,
}

fn record_at(bytes: &[u8], at: usize) -> Record<'_> {
    let Some(header) = bytes
        .get(at..at + HEADER_LEN as usize)
        .and_then(|h| <&[u8; 8]>::try_from(h).ok())
    else {
        return Record::Partial;
    };
    let (len, crc) = split_header(header);
    let start = at + HEADER_LEN as usize;
    match bytes.get(start..start + len as usize) {
        Some(payload) if len <= MAX_RECORD_LEN => {
            if crc32(payload) == crc {
                Record::Intact(payload)
            } else {
                Record::BadChecksum
            }
        }
        _ => Record::Partial,
    }
}

/// The offset of the first intact record at or after `from` (every record holds a JSON
/// object, so only offsets whose payload starts with `{` are checksummed).
fn next_intact(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find(|&at| {
        bytes.get(at + HEADER_LEN as usize) == Some(&b'{')
            && matches!(record_at(bytes, at), Record::Intact(_))
    })
}

fn split_header(header: &[u8; 8]) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = *header;
    (
        u32::from_le_bytes([a, b, c, d]),
        u32::from_le_bytes([e, f, g, h]),
    )
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

#[cfg(test)]
mod tests {
    use chrono::Duration as Days;
    use onshi_shared::{AccountChange, AccountRole, EventKind};

    use super::*;

    fn important(i: usize) -> Event {
        Event::new(
            Utc::now(),
            EventKind::AccountChanged {
                role: AccountRole::Windows,
                name: format!("user{i}"),
                change: AccountChange::PasswordChanged,
            },
        )
    }

    fn started(at: DateTime<Utc>) -> Event {
        Event::new(
            at,
            EventKind::AgentStarted {
                version: "0.1.0".into(),
            },
        )
    }

    fn open(dir: &Path) -> Spool {
        Spool::open(dir, SpoolLimits::default()).unwrap()
    }

    fn names(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.kind {
                EventKind::AccountChanged { name, .. } => name.clone(),
                other => other.name().to_string(),
            })
            .collect()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(dir.path());
        assert!(spool.is_empty());
        let events: Vec<Event> = (0..5).map(important).collect();
        spool.append(&events[..2]).unwrap();
        spool.append(&events[2..]).unwrap();
        assert_eq!(spool.len(), 5);
        assert_eq!(spool.peek(100).unwrap(), events);
        assert_eq!(spool.peek(2).unwrap(), events[..2]);
        assert_eq!(spool.peek(0).unwrap(), vec![]);
    }

    #[test]
    fn survives_reopen_and_remembers_acks() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..6).map(important).collect();
        {
            let mut spool = open(dir.path());
            spool.append(&events).unwrap();
            spool.ack(2).unwrap();
        }
        let mut spool = open(dir.path());
        assert_eq!(spool.peek(10).unwrap(), events[2..]);
        spool.ack(1).unwrap();
        drop(spool);
        let spool = open(dir.path());
        assert_eq!(spool.peek(10).unwrap(), events[3..]);
    }

    #[test]
    fn only_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path());
        assert!(matches!(
            Spool::open(dir.path(), SpoolLimits::default()),
            Err(AgentError::Locked { .. })
        ));
    }

    #[test]
    fn compaction_keeps_order_and_shrinks_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..10).map(important).collect();
        let mut spool = open(dir.path());
        spool.append(&events).unwrap();
        let generation = spool.generation;
        spool.ack(6).unwrap();
        assert_eq!(
            spool.generation,
            generation + 1,
            "more than half acked: compacted"
        );
        assert_eq!(spool.acked, 0);
        assert_eq!(spool.peek(10).unwrap(), events[6..]);
        let files = list_logs(dir.path()).unwrap();
        assert_eq!(files, vec![generation + 1]);
        spool.append(&[important(10)]).unwrap();
        drop(spool);
        let spool = open(dir.path());
        assert_eq!(
            names(&spool.peek(10).unwrap()),
            ["user6", "user7", "user8", "user9", "user10"]
        );
    }

    #[test]
    fn acking_less_than_half_does_not_compact() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(dir.path());
        spool
            .append(&(0..10).map(important).collect::<Vec<_>>())
            .unwrap();
        let generation = spool.generation;
        spool.ack(3).unwrap();
        assert_eq!(spool.generation, generation);
        assert!(spool.acked > 0);
    }

    #[test]
    fn an_unfinished_rewrite_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..3).map(important).collect();
        {
            let mut spool = open(dir.path());
            spool.append(&events).unwrap();
        }
        // A crash after writing the next generation's log but before committing it.
        fs::write(log_path(dir.path(), 1), b"partial garbage").unwrap();
        let spool = open(dir.path());
        assert_eq!(spool.peek(10).unwrap(), events);
        assert!(!log_path(dir.path(), 1).exists());
    }

    #[test]
    fn a_torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..3).map(important).collect();
        {
            let mut spool = open(dir.path());
            spool.append(&events).unwrap();
        }
        let path = log_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
        fs::write(&path, &bytes).unwrap();
        let mut spool = open(dir.path());
        assert_eq!(spool.peek(10).unwrap(), events);
        spool.append(&[important(3)]).unwrap();
        drop(spool);
        assert_eq!(open(dir.path()).len(), 4);
    }

    #[test]
    fn a_crash_at_any_byte_of_the_last_append_loses_nothing_complete() {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<Event> = (0..3).map(important).collect();
        let last = important(99);
        let (before, after) = {
            let mut spool = open(dir.path());
            spool.append(&first).unwrap();
            spool.ack(1).unwrap();
            let before = spool.end;
            spool.append(std::slice::from_ref(&last)).unwrap();
            (before, spool.end)
        };
        assert_eq!(
            list_logs(dir.path()).unwrap(),
            vec![0],
            "no compaction in this setup"
        );
        let original = fs::read(log_path(dir.path(), 0)).unwrap();
        let ack = fs::read(dir.path().join("ack")).unwrap();
        for cut in before..=after {
            let trial = tempfile::tempdir().unwrap();
            fs::write(log_path(trial.path(), 0), &original[..cut as usize]).unwrap();
            fs::write(trial.path().join("ack"), &ack).unwrap();
            let mut spool = open(trial.path());
            let mut expect = first[1..].to_vec();
            if cut == after {
                expect.push(last.clone());
            }
            assert_eq!(spool.peek(10).unwrap(), expect, "cut at {cut}");
            // The spool stays usable after the repair.
            spool.append(&[important(100)]).unwrap();
            drop(spool);
            assert_eq!(open(trial.path()).len(), expect.len() + 1, "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_last_record_is_counted_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..2).map(important).collect();
        let second_at = {
            let mut spool = open(dir.path());
            spool.append(&events).unwrap();
            spool.entries[1].offset
        };
        let path = log_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        fs::write(&path, &bytes).unwrap();
        let spool = open(dir.path());
        assert_eq!(spool.peek(10).unwrap(), events[..1]);
        assert_eq!((spool.dropped(), spool.corrupt()), (1, 1));
        assert_eq!(fs::metadata(&path).unwrap().len(), second_at);
    }

    /// One flipped byte in any record loses that record only: it is skipped and counted, and
    /// every record after it is kept and sent, whichever byte (header or payload) flipped.
    #[test]
    fn a_corrupt_record_is_skipped_counted_and_the_rest_kept() {
        let events: Vec<Event> = (0..5).map(important).collect();
        let original = tempfile::tempdir().unwrap();
        let offsets: Vec<(u64, u64)> = {
            let mut spool = open(original.path());
            spool.append(&events).unwrap();
            spool.entries.iter().map(|e| (e.offset, e.end())).collect()
        };
        let log = fs::read(log_path(original.path(), 0)).unwrap();
        let ack = fs::read(original.path().join("ack")).unwrap();
        for (i, &(start, end)) in offsets.iter().enumerate() {
            // A byte of the length, of the checksum, and the first, middle and last of the
            // payload.
            let mid = start + HEADER_LEN + (end - start - HEADER_LEN) / 2;
            for at in [start + 1, start + 5, start + HEADER_LEN, mid, end - 1] {
                let trial = tempfile::tempdir().unwrap();
                let mut bytes = log.clone();
                bytes[at as usize] ^= 0x5A;
                fs::write(log_path(trial.path(), 0), &bytes).unwrap();
                fs::write(trial.path().join("ack"), &ack).unwrap();
                let mut spool = open(trial.path());
                let mut rest = events.clone();
                rest.remove(i);
                assert_eq!(spool.peek(10).unwrap(), rest, "record {i}, byte {at}");
                // The last record's length may now point past the end: that reads as a torn
                // write, not as corruption.
                let counted = (spool.dropped(), spool.corrupt());
                if i + 1 < events.len() || at >= start + 4 {
                    assert_eq!(counted, (1, 1), "record {i}, byte {at}");
                } else {
                    assert!(counted.0 <= 1, "record {i}, byte {at}");
                }
                // Delivering the rest works across the gap, and the count is kept.
                spool.ack(rest.len()).unwrap();
                assert!(spool.is_empty());
                let extra = important(9);
                spool.append(std::slice::from_ref(&extra)).unwrap();
                let corrupt = spool.corrupt();
                drop(spool);
                let reopened = open(trial.path());
                assert_eq!(reopened.peek(10).unwrap(), vec![extra]);
                assert_eq!(reopened.corrupt(), corrupt);
            }
        }
    }

    #[test]
    fn over_size_drops_informational_events_first_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let size = |e: &Event| HEADER_LEN + serde_json::to_vec(e).unwrap().len() as u64;
        let (started_size, important_size) = (size(&started(now)), size(&important(0)));
        // Room for the four important events and one started event, not more.
        let max_bytes = 4 * important_size + started_size + started_size / 2;
        let mut spool = Spool::open(
            dir.path(),
            SpoolLimits {
                max_bytes,
                max_age: Duration::from_secs(86_400),
            },
        )
        .unwrap();
        let mut batch = Vec::new();
        for i in 0..4 {
            batch.push(started(now));
            batch.push(important(i));
        }
        spool.append(&batch).unwrap();
        let kept = spool.peek(100).unwrap();
        assert!(spool.pending_bytes() <= max_bytes);
        assert_eq!(kept.len(), 5, "{:?}", names(&kept));
        assert_eq!(
            names(&kept)
                .iter()
                .filter(|n| n.starts_with("user"))
                .count(),
            4,
            "every important event kept: {:?}",
            names(&kept)
        );
        assert_eq!(spool.dropped() as usize, 8 - kept.len());
        assert!(spool.dropped() > 0);

        // More important events than fit: the oldest go.
        let more: Vec<Event> = (10..20).map(important).collect();
        spool.append(&more).unwrap();
        let kept = names(&spool.peek(100).unwrap());
        assert_eq!(kept.last().map(String::as_str), Some("user19"));
        assert!(!kept.contains(&"user0".to_string()));
        assert!(!kept.contains(&"agent_started".to_string()));
        let dropped = spool.dropped();
        drop(spool);
        let spool = open(dir.path());
        assert_eq!(spool.dropped(), dropped, "the drop count is persisted");
        assert_eq!(names(&spool.peek(100).unwrap()), kept);
    }

    #[test]
    fn old_events_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(dir.path());
        let old = Event::new(
            Utc::now() - Days::days(31),
            EventKind::AccountChanged {
                role: AccountRole::Linkage,
                name: "old".into(),
                change: AccountChange::Locked,
            },
        );
        spool.append(&[old, important(1)]).unwrap();
        assert_eq!(names(&spool.peek(10).unwrap()), ["user1"]);
        assert_eq!(spool.dropped(), 1);
    }

    #[test]
    fn discard_counts_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(dir.path());
        spool.append(&[important(0), important(1)]).unwrap();
        spool.discard(1).unwrap();
        assert_eq!(names(&spool.peek(10).unwrap()), ["user1"]);
        drop(spool);
        assert_eq!(open(dir.path()).dropped(), 1);
    }
}
