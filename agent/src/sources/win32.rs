//! Small safe wrappers over the Win32 calls the Windows sources share: registry keys and the
//! event log. Each returns what it read or a short error text for a [`SourceNote`]; none panics.
//!
//! [`SourceNote`]: onshi_shared::SourceNote

use std::ptr;

use chrono::{DateTime, Utc};
use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_INSUFFICIENT_BUFFER, ERROR_MORE_DATA, ERROR_NO_MORE_ITEMS,
    ERROR_SUCCESS, FILETIME, GetLastError,
};
use windows_sys::Win32::System::EventLog::{
    EVT_HANDLE, EvtClose, EvtNext, EvtQuery, EvtQueryChannelPath, EvtQueryReverseDirection,
    EvtRender, EvtRenderEventXml,
};
use windows_sys::Win32::System::Registry::{
    HKEY, KEY_READ, RegCloseKey, RegEnumKeyExW, RegOpenKeyExW, RegQueryInfoKeyW, RegQueryValueExW,
};

use super::registry::{self, RegValue, wide};

/// An open registry key, closed on drop.
#[derive(Debug)]
pub struct RegKey(HKEY);

impl RegKey {
    /// Opens `path` under `root` for reading in the registry view `view` (`KEY_WOW64_64KEY`,
    /// `KEY_WOW64_32KEY` or 0). `Ok(None)` when the key does not exist.
    pub fn open(root: HKEY, path: &str, view: u32) -> Result<Option<RegKey>, String> {
        let path_w = wide(path);
        let mut key: HKEY = ptr::null_mut();
        // SAFETY: `path_w` is NUL-terminated and outlives the call; `key` is a valid out pointer.
        let rc = unsafe { RegOpenKeyExW(root, path_w.as_ptr(), 0, KEY_READ | view, &mut key) };
        match rc {
            ERROR_SUCCESS => Ok(Some(RegKey(key))),
            ERROR_FILE_NOT_FOUND => Ok(None),
            rc => Err(format!("cannot open registry key {path}: error {rc}")),
        }
    }

    /// A subkey of this key, in the same view.
    pub fn sub(&self, name: &str, view: u32) -> Result<Option<RegKey>, String> {
        RegKey::open(self.0, name, view)
    }

    /// The names of the direct subkeys (unreadable ones are skipped).
    pub fn subkeys(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut index = 0u32;
        loop {
            // Key names are at most 255 characters.
            let mut name = [0u16; 256];
            let mut len = name.len() as u32;
            // SAFETY: `name` has room for `len` characters; the optional pointers are null.
            let rc = unsafe {
                RegEnumKeyExW(
                    self.0,
                    index,
                    name.as_mut_ptr(),
                    &mut len,
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            };
            match rc {
                ERROR_SUCCESS => {
                    let len = (len as usize).min(name.len());
                    out.push(String::from_utf16_lossy(&name[..len]));
                }
                ERROR_NO_MORE_ITEMS => break,
                _ => {}
            }
            index += 1;
            if index > 100_000 {
                break;
            }
        }
        out
    }

    /// A value, decoded; `Ok(None)` when it does not exist.
    pub fn value(&self, name: &str) -> Result<Option<RegValue>, String> {
        let name_w = wide(name);
        let mut size = 0u32;
        let mut kind = 0u32;
        // SAFETY: a size query: null data pointer, valid out pointers.
        let rc = unsafe {
            RegQueryValueExW(
                self.0,
                name_w.as_ptr(),
                ptr::null(),
                &mut kind,
                ptr::null_mut(),
                &mut size,
            )
        };
        match rc {
            ERROR_SUCCESS => {}
            ERROR_FILE_NOT_FOUND => return Ok(None),
            rc => return Err(format!("cannot read registry value {name}: error {rc}")),
        }
        // The value may grow between the two calls; try a few times.
        for _ in 0..4 {
            let mut buf = vec![0u8; size as usize + 2];
            let mut len = buf.len() as u32;
            // SAFETY: `buf` has `len` writable bytes.
            let rc = unsafe {
                RegQueryValueExW(
                    self.0,
                    name_w.as_ptr(),
                    ptr::null(),
                    &mut kind,
                    buf.as_mut_ptr(),
                    &mut len,
                )
            };
            match rc {
                ERROR_SUCCESS => {
                    buf.truncate((len as usize).min(buf.len()));
                    return Ok(RegValue::decode(kind, &buf));
                }
                ERROR_MORE_DATA => size = len.max(size.saturating_mul(2)),
                ERROR_FILE_NOT_FOUND => return Ok(None),
                rc => return Err(format!("cannot read registry value {name}: error {rc}")),
            }
        }
        Err(format!("registry value {name} keeps growing"))
    }

    /// When the key was last written.
    pub fn last_write(&self) -> Option<DateTime<Utc>> {
        let mut ft = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        // SAFETY: every optional out pointer is null but the FILETIME one.
        let rc = unsafe {
            RegQueryInfoKeyW(
                self.0,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                &mut ft,
            )
        };
        if rc != ERROR_SUCCESS {
            return None;
        }
        registry::filetime((u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime))
    }
}

impl Drop for RegKey {
    fn drop(&mut self) {
        // SAFETY: the key was opened by RegOpenKeyExW and is closed once.
        unsafe {
            RegCloseKey(self.0);
        }
    }
}

/// An event log handle, closed on drop.
struct EvtHandle(EVT_HANDLE);

impl Drop for EvtHandle {
    fn drop(&mut self) {
        if self.0 != 0 {
            // SAFETY: a handle from EvtQuery/EvtNext, closed once.
            unsafe {
                EvtClose(self.0);
            }
        }
    }
}

/// The newest `max` events of `channel` matching the XPath `query`, rendered as XML, newest
/// first. Events that fail to render are skipped.
pub fn query_events(channel: &str, query: &str, max: usize) -> Result<Vec<String>, String> {
    let channel_w = wide(channel);
    let query_w = wide(query);
    // SAFETY: both strings are NUL-terminated and outlive the call; session 0 is the local one.
    let results = unsafe {
        EvtQuery(
            0,
            channel_w.as_ptr(),
            query_w.as_ptr(),
            EvtQueryChannelPath | EvtQueryReverseDirection,
        )
    };
    if results == 0 {
        // SAFETY: reads the calling thread's last error.
        let rc = unsafe { GetLastError() };
        return Err(format!("EvtQuery({channel}) failed: error {rc}"));
    }
    let results = EvtHandle(results);
    let mut out = Vec::new();
    while out.len() < max {
        let mut batch = [0 as EVT_HANDLE; 32];
        let mut returned = 0u32;
        // SAFETY: `batch` has room for 32 handles; the results handle is open.
        let ok = unsafe {
            EvtNext(
                results.0,
                batch.len() as u32,
                batch.as_mut_ptr(),
                5_000,
                0,
                &mut returned,
            )
        };
        if ok == 0 {
            // SAFETY: reads the calling thread's last error.
            let rc = unsafe { GetLastError() };
            if rc == ERROR_NO_MORE_ITEMS || !out.is_empty() {
                break;
            }
            return Err(format!("EvtNext({channel}) failed: error {rc}"));
        }
        let returned = (returned as usize).min(batch.len());
        let handles: Vec<EvtHandle> = batch[..returned].iter().map(|h| EvtHandle(*h)).collect();
        for h in &handles {
            if out.len() >= max {
                break;
            }
            if let Some(xml) = render(h.0) {
                out.push(xml);
            }
        }
        if returned == 0 {
            break;
        }
    }
    Ok(out)
}

fn render(event: EVT_HANDLE) -> Option<String> {
    let mut used = 0u32;
    let mut count = 0u32;
    // SAFETY: a size query with an empty buffer.
    let ok = unsafe {
        EvtRender(
            0,
            event,
            EvtRenderEventXml,
            0,
            ptr::null_mut(),
            &mut used,
            &mut count,
        )
    };
    // SAFETY: reads the calling thread's last error.
    if ok != 0 || unsafe { GetLastError() } != ERROR_INSUFFICIENT_BUFFER {
        return None;
    }
    let mut buf = vec![0u16; (used as usize).div_ceil(2) + 1];
    let size = u32::try_from(buf.len() * 2).ok()?;
    // SAFETY: `buf` has `size` writable bytes.
    let ok = unsafe {
        EvtRender(
            0,
            event,
            EvtRenderEventXml,
            size,
            buf.as_mut_ptr().cast(),
            &mut used,
            &mut count,
        )
    };
    if ok == 0 {
        return None;
    }
    let len = buf.iter().position(|u| *u == 0).unwrap_or(buf.len());
    Some(String::from_utf16_lossy(&buf[..len]))
}

/// A NUL-terminated UTF-16 string from a Win32 structure; empty for a null pointer.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated UTF-16 string.
pub unsafe fn pwstr(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0usize;
    // SAFETY: the caller guarantees a terminator; stop at 64 Ki units whatever happens.
    unsafe {
        while *p.add(len) != 0 && len < 65_536 {
            len += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
    }
}
