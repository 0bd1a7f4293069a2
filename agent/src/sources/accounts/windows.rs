//! Local users from the SAM (`NetUserEnum`, `NetUserGetInfo`, `LookupAccountNameW`), completed
//! with the Security log (4720–4726, 4738, 4740, 4781, 4732/4733), and whether
//! account-management auditing is on (`AuditQuerySystemPolicy`).
//!
//! `NetUserGetInfo` level 3 is tried first and level 1 when it fails (Wine answers 2140 for
//! levels 2–4); what level 1 lacks is named in a note rather than guessed.

use std::ptr;

use chrono::{DateTime, Duration, DurationRound, Utc};
use windows_sys::Win32::Foundation::{ERROR_MORE_DATA, LocalFree};
use windows_sys::Win32::NetworkManagement::NetManagement::{
    FILTER_NORMAL_ACCOUNT, MAX_PREFERRED_LENGTH, NERR_Success, NetApiBufferFree, NetUserEnum,
    NetUserGetInfo, NetUserModalsGet, UF_ACCOUNTDISABLE, UF_DONT_EXPIRE_PASSWD, UF_LOCKOUT,
    USER_INFO_0, USER_INFO_1, USER_INFO_3, USER_MODALS_INFO_0,
};
use windows_sys::Win32::Security::Authentication::Identity::{
    AUDIT_POLICY_INFORMATION, AuditFree, AuditQuerySystemPolicy, POLICY_AUDIT_EVENT_SUCCESS,
};
use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
use windows_sys::Win32::Security::{LookupAccountNameW, SID_NAME_USE};
use windows_sys::core::{GUID, PWSTR};

use super::events::{SECURITY_QUERY, account_event, history};
use super::{AREA, UserRecord};
use crate::sources::eventlog::parse_event;
use crate::sources::registry::wide;
use crate::sources::{Ctx, Notes, win32};

/// The "User Account Management" audit subcategory.
const USER_ACCOUNT_MANAGEMENT: GUID = GUID::from_u128(0x0cce9235_69ae_11d9_bed3_505054503030);
/// `TIMEQ_FOREVER`: passwords never expire by policy.
const TIMEQ_FOREVER: u32 = u32::MAX;
const MAX_SECURITY_EVENTS: usize = 500;

/// The users, and whether account-management auditing is on.
pub(super) fn users(ctx: &Ctx, notes: &mut Notes) -> (Vec<UserRecord>, Option<bool>) {
    let auditing = auditing(notes);
    if ctx.policy.accounts.is_empty() {
        return (Vec::new(), auditing);
    }
    let names = match user_names() {
        Ok(names) => names,
        Err(rc) => {
            notes.push(AREA, format!("NetUserEnum failed: error {rc}"));
            return (Vec::new(), auditing);
        }
    };
    let max_age = max_password_age(notes);
    let events: Vec<_> = match win32::query_events("Security", SECURITY_QUERY, MAX_SECURITY_EVENTS)
    {
        Ok(xml) => xml
            .iter()
            .filter_map(|x| parse_event(x).ok())
            .filter_map(|e| account_event(&e))
            .collect(),
        Err(e) => {
            notes.push(
                AREA,
                format!("Security log not read ({e}): who changed accounts unknown"),
            );
            Vec::new()
        }
    };
    let mut level1_users = Vec::new();
    let mut out = Vec::new();
    for name in names {
        let sid = match account_sid(&name) {
            Ok(sid) => sid,
            Err(rc) => {
                notes.push(AREA, format!("{name}: SID not read (error {rc})"));
                continue;
            }
        };
        let mut rec = UserRecord {
            name: name.clone(),
            sid: sid.clone(),
            enabled: None,
            locked: None,
            password_last_set: None,
            password_expires: None,
            last_change: None,
        };
        match user_info(&name) {
            Ok(info) => {
                if info.level == 1 {
                    level1_users.push(name.clone());
                }
                rec.enabled = Some(info.flags & UF_ACCOUNTDISABLE == 0);
                rec.locked = Some(info.flags & UF_LOCKOUT != 0);
                // Age 0 is what Wine answers for every account; on Windows it would mean "set
                // this second", which the next collection sees anyway.
                if info.password_age > 0 {
                    let set = (ctx.now - Duration::seconds(i64::from(info.password_age)))
                        .duration_trunc(Duration::seconds(1))
                        .unwrap_or(ctx.now);
                    rec.password_last_set = Some(set);
                    rec.password_expires = expires(set, info.flags, max_age);
                } else {
                    notes.push(AREA, format!("{name}: password age not reported"));
                }
            }
            Err(rc) => notes.push(AREA, format!("{name}: NetUserGetInfo failed: error {rc}")),
        }
        let h = history(&events, &sid);
        if rec.password_last_set.is_none() {
            rec.password_last_set = h.password_set;
        }
        rec.last_change = h.latest.map(|e| e.log_entry());
        out.push(rec);
    }
    if !level1_users.is_empty() {
        notes.push(
            AREA,
            format!(
                "NetUserGetInfo level 3 unavailable, level 1 used for {}: password-expired flag not read",
                level1_users.join(", ")
            ),
        );
    }
    (out, auditing)
}

fn expires(set: DateTime<Utc>, flags: u32, max_age: Option<u32>) -> Option<DateTime<Utc>> {
    if flags & UF_DONT_EXPIRE_PASSWD != 0 {
        return None;
    }
    match max_age {
        Some(age) if age != TIMEQ_FOREVER => Some(set + Duration::seconds(i64::from(age))),
        _ => None,
    }
}

/// Local account names (`NetUserEnum` level 0, normal accounts).
fn user_names() -> Result<Vec<String>, u32> {
    let mut names = Vec::new();
    let mut resume = 0u32;
    loop {
        let mut buf: *mut u8 = ptr::null_mut();
        let mut read = 0u32;
        let mut total = 0u32;
        // SAFETY: out pointers are valid; the buffer is freed below.
        let rc = unsafe {
            NetUserEnum(
                ptr::null(),
                0,
                FILTER_NORMAL_ACCOUNT,
                &mut buf,
                MAX_PREFERRED_LENGTH,
                &mut read,
                &mut total,
                &mut resume,
            )
        };
        if rc != NERR_Success && rc != ERROR_MORE_DATA {
            return Err(rc);
        }
        if !buf.is_null() {
            // SAFETY: level 0 returns `read` USER_INFO_0 entries in `buf`.
            unsafe {
                let entries = std::slice::from_raw_parts(buf.cast::<USER_INFO_0>(), read as usize);
                names.extend(entries.iter().map(|e| win32::pwstr(e.usri0_name)));
                NetApiBufferFree(buf.cast());
            }
        }
        if rc != ERROR_MORE_DATA || names.len() > 10_000 {
            return Ok(names);
        }
    }
}

struct Info {
    level: u32,
    flags: u32,
    password_age: u32,
}

fn user_info(name: &str) -> Result<Info, u32> {
    let name_w = wide(name);
    let mut first_error = 0;
    for level in [3u32, 1] {
        let mut buf: *mut u8 = ptr::null_mut();
        // SAFETY: `name_w` is NUL-terminated; the buffer is freed below.
        let rc = unsafe { NetUserGetInfo(ptr::null(), name_w.as_ptr(), level, &mut buf) };
        if rc != NERR_Success || buf.is_null() {
            if first_error == 0 {
                first_error = rc;
            }
            continue;
        }
        // SAFETY: the buffer holds one USER_INFO_<level>.
        let info = unsafe {
            let info = if level == 3 {
                let u = &*buf.cast::<USER_INFO_3>();
                Info {
                    level,
                    flags: u.usri3_flags,
                    password_age: u.usri3_password_age,
                }
            } else {
                let u = &*buf.cast::<USER_INFO_1>();
                Info {
                    level,
                    flags: u.usri1_flags,
                    password_age: u.usri1_password_age,
                }
            };
            NetApiBufferFree(buf.cast());
            info
        };
        return Ok(info);
    }
    Err(first_error)
}

fn max_password_age(notes: &mut Notes) -> Option<u32> {
    let mut buf: *mut u8 = ptr::null_mut();
    // SAFETY: level 0 fills one USER_MODALS_INFO_0, freed below.
    let rc = unsafe { NetUserModalsGet(ptr::null(), 0, &mut buf) };
    if rc != NERR_Success || buf.is_null() {
        notes.push(
            AREA,
            format!("password policy not read (error {rc}): expiry dates unknown"),
        );
        return None;
    }
    // SAFETY: see above.
    unsafe {
        let age = (*buf.cast::<USER_MODALS_INFO_0>()).usrmod0_max_passwd_age;
        NetApiBufferFree(buf.cast());
        Some(age)
    }
}

/// The account's SID as `S-1-5-21-…`.
fn account_sid(name: &str) -> Result<String, u32> {
    let name_w = wide(name);
    let mut sid = vec![0u8; 68];
    let mut sid_len = sid.len() as u32;
    let mut domain = vec![0u16; 256];
    let mut domain_len = domain.len() as u32;
    let mut kind: SID_NAME_USE = 0;
    for _ in 0..2 {
        // SAFETY: the buffers have the sizes passed; on ERROR_INSUFFICIENT_BUFFER they grow.
        let ok = unsafe {
            LookupAccountNameW(
                ptr::null(),
                name_w.as_ptr(),
                sid.as_mut_ptr().cast(),
                &mut sid_len,
                domain.as_mut_ptr(),
                &mut domain_len,
                &mut kind,
            )
        };
        if ok != 0 {
            let mut text: PWSTR = ptr::null_mut();
            // SAFETY: `sid` holds a valid SID; the string is freed with LocalFree.
            return unsafe {
                if ConvertSidToStringSidW(sid.as_mut_ptr().cast(), &mut text) == 0 {
                    return Err(windows_sys::Win32::Foundation::GetLastError());
                }
                let s = win32::pwstr(text);
                LocalFree(text.cast());
                Ok(s)
            };
        }
        sid.resize(sid_len.max(68) as usize, 0);
        domain.resize(domain_len.max(256) as usize, 0);
    }
    // SAFETY: reads the calling thread's last error.
    Err(unsafe { windows_sys::Win32::Foundation::GetLastError() })
}

/// Whether successful account-management events are audited. Reading the audit policy needs
/// the security privilege LocalSystem holds; without it the answer is unknown (a note).
fn auditing(notes: &mut Notes) -> Option<bool> {
    let mut info: *mut AUDIT_POLICY_INFORMATION = ptr::null_mut();
    // SAFETY: one GUID in, one structure out, freed with AuditFree.
    let ok = unsafe { AuditQuerySystemPolicy(&USER_ACCOUNT_MANAGEMENT, 1, &mut info) };
    if !ok || info.is_null() {
        // SAFETY: reads the calling thread's last error.
        let rc = unsafe { windows_sys::Win32::Foundation::GetLastError() };
        notes.push(
            AREA,
            format!("audit policy not read (error {rc}): auditing unknown"),
        );
        return None;
    }
    // SAFETY: see above.
    unsafe {
        let on = (*info).AuditingInformation & POLICY_AUDIT_EVENT_SUCCESS as u32 != 0;
        AuditFree(info.cast());
        Some(on)
    }
}
