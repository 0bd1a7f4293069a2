//! Certificates from the LocalMachine `My` store (CryptoAPI) and from every user profile's
//! file-backed `My` store (`%APPDATA%\Microsoft\SystemCertificates\My\Certificates\<SHA1>`),
//! read with the pure [`serialized`](super::serialized) parser so the agent, running as
//! LocalSystem, sees the certificate a clinic user installed.

use std::path::{Path, PathBuf};
use std::ptr;

use windows_sys::Win32::Security::Cryptography::{
    CERT_CONTEXT, CERT_KEY_PROV_INFO_PROP_ID, CERT_STORE_OPEN_EXISTING_FLAG,
    CERT_STORE_PROV_SYSTEM_W, CERT_STORE_READONLY_FLAG, CERT_SYSTEM_STORE_LOCAL_MACHINE,
    CertCloseStore, CertEnumCertificatesInStore, CertGetCertificateContextProperty, CertOpenStore,
};
use windows_sys::Win32::System::Registry::{HKEY_LOCAL_MACHINE, KEY_WOW64_64KEY};

use super::{AREA, Found, parse, serialized};
use crate::sources::registry::{RegValue, expand_env, wide};
use crate::sources::win32::RegKey;
use crate::sources::{Ctx, Notes};

const PROFILE_LIST: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList";
const USER_MY_STORE: &str = r"AppData\Roaming\Microsoft\SystemCertificates\My\Certificates";
/// A store file larger than this is not one certificate.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

pub(super) fn scan(_ctx: &Ctx, notes: &mut Notes) -> Vec<Found> {
    let mut found = machine_store(notes);
    for (user, profile) in profiles(notes) {
        found.extend(user_store(&user, &profile.join(USER_MY_STORE), notes));
    }
    found
}

fn machine_store(notes: &mut Notes) -> Vec<Found> {
    let name = wide("MY");
    // SAFETY: the system-store provider takes the store name as a NUL-terminated UTF-16 string.
    let store = unsafe {
        CertOpenStore(
            CERT_STORE_PROV_SYSTEM_W,
            0,
            0,
            CERT_SYSTEM_STORE_LOCAL_MACHINE
                | CERT_STORE_READONLY_FLAG
                | CERT_STORE_OPEN_EXISTING_FLAG,
            name.as_ptr().cast(),
        )
    };
    if store.is_null() {
        // SAFETY: reads the calling thread's last error.
        let rc = unsafe { windows_sys::Win32::Foundation::GetLastError() };
        let detail = if rc == windows_sys::Win32::Foundation::ERROR_FILE_NOT_FOUND {
            "LocalMachine\\My does not exist".to_string()
        } else {
            format!("LocalMachine\\My not opened: error {rc}")
        };
        notes.push(AREA, detail);
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut ctx: *const CERT_CONTEXT = ptr::null();
    loop {
        // SAFETY: `ctx` is null or the previous context, which this call frees.
        ctx = unsafe { CertEnumCertificatesInStore(store, ctx) };
        if ctx.is_null() {
            break;
        }
        // SAFETY: a context from the store stays valid until the next enumeration call.
        let (der, has_key) = unsafe {
            let c = &*ctx;
            let der =
                std::slice::from_raw_parts(c.pbCertEncoded, c.cbCertEncoded as usize).to_vec();
            let mut size = 0u32;
            let has_key = CertGetCertificateContextProperty(
                ctx,
                CERT_KEY_PROV_INFO_PROP_ID,
                ptr::null_mut(),
                &mut size,
            ) != 0;
            (der, has_key)
        };
        match parse::der(&der) {
            Ok(cert) => found.push(Found {
                cert,
                has_private_key: has_key,
                store: "LocalMachine\\My".to_string(),
            }),
            Err(e) => notes.push(AREA, format!("LocalMachine\\My: {e}")),
        }
        if found.len() > 1000 {
            // SAFETY: frees the context the loop stops at.
            unsafe {
                windows_sys::Win32::Security::Cryptography::CertFreeCertificateContext(ctx);
            }
            break;
        }
    }
    // SAFETY: the store was opened above and is closed once.
    unsafe {
        CertCloseStore(store, 0);
    }
    found
}

/// Local user profiles (`S-1-5-21-…`): the user's folder name and profile path.
fn profiles(notes: &mut Notes) -> Vec<(String, PathBuf)> {
    let list = match RegKey::open(HKEY_LOCAL_MACHINE, PROFILE_LIST, KEY_WOW64_64KEY) {
        Ok(Some(list)) => list,
        Ok(None) => {
            notes.push(AREA, "no ProfileList: user certificate stores not read");
            return Vec::new();
        }
        Err(e) => {
            notes.push(AREA, e);
            return Vec::new();
        }
    };
    list.subkeys()
        .into_iter()
        .filter(|sid| sid.starts_with("S-1-5-21-"))
        .filter_map(|sid| {
            let key = list.sub(&sid, KEY_WOW64_64KEY).ok().flatten()?;
            let Ok(Some(RegValue::Text(path))) = key.value("ProfileImagePath") else {
                return None;
            };
            let path = PathBuf::from(expand_env(&path, |n| std::env::var(n).ok()));
            let user = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(sid);
            Some((user, path))
        })
        .collect()
}

fn user_store(user: &str, dir: &Path, notes: &mut Notes) -> Vec<Found> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A user who never had a personal certificate has no store folder.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            notes.push(
                AREA,
                format!("{user}\\My: cannot list {}: {e}", dir.display()),
            );
            return Vec::new();
        }
    };
    let store = format!("{user}\\My");
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if !entry
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_FILE_BYTES)
        {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                notes.push(
                    AREA,
                    format!("{store}: cannot read {}: {e}", path.display()),
                );
                continue;
            }
        };
        let Ok(certs) = serialized::parse(&bytes) else {
            tracing::debug!(path = %path.display(), "not a serialized certificate");
            continue;
        };
        for c in certs {
            match parse::der(&c.der) {
                Ok(cert) => found.push(Found {
                    cert,
                    has_private_key: c.has_private_key,
                    store: store.clone(),
                }),
                Err(e) => notes.push(AREA, format!("{store}: {}: {e}", path.display())),
            }
        }
    }
    found
}
