//! `onshi-agent verify-backup`: checks a `.pfx` backup of the clinic's electronic certificate as
//! Windows' certificate export wizard writes it (vendor notes: password 1357 unless the clinic
//! chose its own four digits), and records the result for the next report (DESIGN §4, backup).
//!
//! [`inspect`] is pure: bytes and a password in, what the file holds out. [`verify_file`] adds the
//! file, the default password, the certificates installed on this machine and the record. The
//! password and the key never leave this module: they are not logged, printed, stored or sent;
//! only the certificate's thumbprint and dates are.

pub mod der;
pub mod removable;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use onshi_shared::{BackupState, CertInfo};
use p12_keystore::Pkcs12Archive;
use p12_keystore::error::Error as P12Error;
use serde::Serialize;
use thiserror::Error;
use x509_parser::public_key::PublicKey;

use crate::atomic_file::{self, Access};
use crate::config::AgentConfig;
use crate::identity::Identity;
use crate::runner::effective_policy;
use crate::sources::certificates::{
    self,
    parse::{self as cert_parse, ParsedCert},
};
use crate::sources::{Ctx, Notes};

/// The password the vendor's backup procedure uses unless the clinic chose another.
pub const DEFAULT_PASSWORD: &str = "1357";

/// A `.pfx` larger than this is not a certificate backup (a real one is a few kilobytes).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A backup's password. Its `Debug` hides it, so it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why a backup does not do its job. Each has its own exit code ([`BackupError::exit_code`]).
#[derive(Debug, Error)]
pub enum BackupError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a PKCS#12 (.pfx) file: {0}")]
    NotPkcs12(String),
    #[error(
        "the file is truncated: {available} of at least {needed} bytes (copy the backup again)"
    )]
    Truncated { needed: usize, available: usize },
    #[error("{}", wrong_password_text(*.tried_default))]
    WrongPassword { tried_default: bool },
    #[error("the file uses an encryption this agent cannot read: {0}")]
    Unsupported(String),
    #[error("the file holds no certificate")]
    NoCertificate,
    #[error(
        "the file holds no private key (certificate {thumbprint}): export again with \"Yes, export the private key\""
    )]
    NoPrivateKey { thumbprint: String },
    #[error("the private key in the file does not belong to its certificate {thumbprint}")]
    KeyMismatch { thumbprint: String },
    #[error("cannot record the result: {0}")]
    Record(String),
}

fn wrong_password_text(tried_default: bool) -> &'static str {
    if tried_default {
        "wrong password: the default password 1357 does not open this file; pass --password"
    } else {
        "wrong password"
    }
}

impl BackupError {
    /// The process exit code for this failure: 3 wrong password, 4 not a usable PKCS#12 file
    /// (not PKCS#12, truncated, unsupported, no certificate), 5 no private key, 6 key and
    /// certificate do not match, 1 anything else (I/O).
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::WrongPassword { .. } => 3,
            BackupError::NotPkcs12(_)
            | BackupError::Truncated { .. }
            | BackupError::Unsupported(_)
            | BackupError::NoCertificate => 4,
            BackupError::NoPrivateKey { .. } => 5,
            BackupError::KeyMismatch { .. } => 6,
            BackupError::Io { .. } | BackupError::Record(_) => 1,
        }
    }

    /// A short stable name for `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            BackupError::Io { .. } => "io",
            BackupError::NotPkcs12(_) => "not_pkcs12",
            BackupError::Truncated { .. } => "truncated",
            BackupError::WrongPassword { .. } => "wrong_password",
            BackupError::Unsupported(_) => "unsupported",
            BackupError::NoCertificate => "no_certificate",
            BackupError::NoPrivateKey { .. } => "no_private_key",
            BackupError::KeyMismatch { .. } => "key_mismatch",
            BackupError::Record(_) => "record",
        }
    }
}

/// What a PKCS#12 file holds, without the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The certificate the key belongs to (or, without a key, the end-entity certificate).
    pub cert: ParsedCert,
    pub has_private_key: bool,
    /// Whether the key's public half is the certificate's public key; `None` when there is no
    /// key or its type does not say (an EC key without its public point, another algorithm).
    pub key_matches: Option<bool>,
    /// How many certificates the file holds (with the chain, as the vendor's procedure asks).
    pub cert_count: usize,
}

/// Opens a PKCS#12 file with `password` and says what it holds. Fails only when the file cannot
/// be opened at all; a missing or wrong key is reported in the [`Inspection`].
pub fn inspect(bytes: &[u8], password: &Password) -> Result<Inspection, BackupError> {
    check_outer(bytes)?;
    let archive = Pkcs12Archive::from_pkcs12(bytes, password.expose()).map_err(open_error)?;
    let certs: Vec<Candidate> = archive
        .certs
        .iter()
        .filter_map(|bag| {
            let der = bag.cert.as_der();
            let parsed = cert_parse::der(der).ok()?;
            Some(Candidate {
                parsed,
                spki: SpkiKey::of_cert(der),
                local_key_id: bag.local_key_id.clone(),
            })
        })
        .collect();
    if certs.is_empty() {
        return Err(BackupError::NoCertificate);
    }
    let keys: Vec<(Option<&[u8]>, KeyPublic)> = archive
        .keys
        .iter()
        .map(|k| {
            (
                k.local_key_id.as_ref().map(|id| id.0.as_slice()),
                KeyPublic::of_pkcs8(k.key.as_der()),
            )
        })
        .collect();

    // The certificate a key belongs to: the one the file links to it by local key id, else one
    // whose public key is the key's.
    let mut best: Option<(&Candidate, Option<bool>)> = None;
    for (id, public) in &keys {
        let linked = id.and_then(|id| certs.iter().find(|c| c.local_key_id.as_deref() == Some(id)));
        let by_key = certs.iter().find(|c| public.matches(&c.spki) == Some(true));
        let chosen = by_key.or(linked);
        if let Some(cert) = chosen {
            let matches = public.matches(&cert.spki);
            if matches == Some(true) || best.is_none() {
                best = Some((cert, matches));
            }
        }
    }
    let (cert, key_matches) = match best {
        Some((cert, matches)) => (cert, matches),
        None => {
            // No link and no match: the end-entity certificate, not the chain's root.
            let cert = certs
                .iter()
                .find(|c| !c.parsed.self_issued)
                .or(certs.first())
                .ok_or(BackupError::NoCertificate)?;
            let matches = keys
                .first()
                .map(|(_, public)| public.matches(&cert.spki).unwrap_or(false));
            (cert, matches)
        }
    };
    Ok(Inspection {
        cert: cert.parsed.clone(),
        has_private_key: !keys.is_empty(),
        key_matches: if keys.is_empty() { None } else { key_matches },
        cert_count: certs.len(),
    })
}

/// The result of `verify-backup`, as printed (`--json`) and as far as it got. Holds no password
/// and no key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub file: String,
    pub ok: bool,
    /// The failure's stable name ([`BackupError::code`]) and text, when not ok.
    pub error: Option<String>,
    pub error_code: Option<&'static str>,
    /// Whether the default password 1357 opened it (false: the one given, or not opened).
    pub default_password: bool,
    pub thumbprint: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    pub has_private_key: Option<bool>,
    pub key_matches_certificate: Option<bool>,
    /// Whether this certificate is installed on this machine.
    pub installed: Option<bool>,
    /// Whether it is the certificate in use now (the installed one that expires last).
    pub matches_current: Option<bool>,
    pub current_thumbprint: Option<String>,
    /// Where the result was recorded for the next report (only when ok).
    pub recorded: Option<String>,
}

impl BackupReport {
    fn new(file: &Path) -> BackupReport {
        BackupReport {
            file: file.display().to_string(),
            ok: false,
            error: None,
            error_code: None,
            default_password: false,
            thumbprint: None,
            subject: None,
            issuer: None,
            serial: None,
            not_before: None,
            not_after: None,
            has_private_key: None,
            key_matches_certificate: None,
            installed: None,
            matches_current: None,
            current_thumbprint: None,
            recorded: None,
        }
    }

    /// A human-readable summary, one fact a line.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let yes_no = |v: Option<bool>| match v {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "unknown",
        };
        let _ = writeln!(out, "file          {}", self.file);
        if let Some(t) = &self.thumbprint {
            let _ = writeln!(
                out,
                "certificate   {}",
                self.subject.as_deref().unwrap_or("-")
            );
            let _ = writeln!(
                out,
                "issuer        {}",
                self.issuer.as_deref().unwrap_or("-")
            );
            let _ = writeln!(out, "thumbprint    {t}");
            if let Some(na) = self.not_after {
                let _ = writeln!(out, "expires       {}", na.format("%Y-%m-%d %H:%M UTC"));
            }
            let _ = writeln!(out, "private key   {}", yes_no(self.has_private_key));
            let _ = writeln!(
                out,
                "key matches   {}",
                yes_no(self.key_matches_certificate)
            );
            let _ = writeln!(out, "installed     {}", yes_no(self.installed));
            let _ = writeln!(
                out,
                "current cert  {}{}",
                yes_no(self.matches_current),
                self.current_thumbprint
                    .as_deref()
                    .map(|c| format!(" (installed now: {c})"))
                    .unwrap_or_default()
            );
        }
        match (&self.error, &self.recorded) {
            (Some(e), _) => {
                let _ = writeln!(out, "result        FAILED: {e}");
            }
            (None, Some(r)) => {
                let _ = writeln!(out, "result        OK (recorded in {r})");
            }
            (None, None) => {
                let _ = writeln!(out, "result        OK");
            }
        }
        out
    }
}

/// Checks the backup at `path`: opens it with `password`, or when none is given with
/// [`DEFAULT_PASSWORD`] and then each of `known` (the passwords the clinic chose, from the
/// server's policy), and compares its certificate with `installed` (the machine's certificates
/// under the configured issuer). On success the result is recorded at `record_to` as a
/// [`BackupState`] so the next snapshot carries it.
///
/// Returns the report either way; `Err` carries the failure for the exit code, with the report
/// filled as far as the file could be read.
pub fn verify_file(
    path: &Path,
    password: Option<&Password>,
    known: &[Password],
    installed: &[CertInfo],
    record_to: Option<&Path>,
    now: DateTime<Utc>,
) -> (BackupReport, Result<BackupState, BackupError>) {
    let mut report = BackupReport::new(path);
    let result = verify_into(
        &mut report,
        path,
        password,
        known,
        installed,
        record_to,
        now,
    );
    if let Err(e) = &result {
        report.ok = false;
        report.error = Some(e.to_string());
        report.error_code = Some(e.code());
    }
    (report, result)
}

fn verify_into(
    report: &mut BackupReport,
    path: &Path,
    password: Option<&Password>,
    known: &[Password],
    installed: &[CertInfo],
    record_to: Option<&Path>,
    now: DateTime<Utc>,
) -> Result<BackupState, BackupError> {
    let bytes = read_limited(path)?;
    let default = Password::new(DEFAULT_PASSWORD);
    let inspection = match password {
        Some(p) => inspect(&bytes, p)?,
        None => match inspect(&bytes, &default) {
            Err(BackupError::WrongPassword { .. }) => {
                let mut opened = None;
                for p in known {
                    match inspect(&bytes, p) {
                        Err(BackupError::WrongPassword { .. }) => continue,
                        other => {
                            opened = Some(other?);
                            break;
                        }
                    }
                }
                opened.ok_or(BackupError::WrongPassword {
                    tried_default: true,
                })?
            }
            other => {
                report.default_password = true;
                other?
            }
        },
    };
    let cert = &inspection.cert;
    report.thumbprint = Some(cert.thumbprint.clone());
    report.subject = Some(cert.subject.clone());
    report.issuer = Some(cert.issuer.clone());
    report.serial = Some(cert.serial.clone());
    report.not_before = Some(cert.not_before);
    report.not_after = Some(cert.not_after);
    report.has_private_key = Some(inspection.has_private_key);
    report.key_matches_certificate = inspection.key_matches;

    let current = onshi_shared::Certificates {
        certs: installed.to_vec(),
        backup: None,
    };
    let current = current.current();
    report.installed = Some(
        installed
            .iter()
            .any(|c| c.thumbprint.eq_ignore_ascii_case(&cert.thumbprint)),
    );
    report.current_thumbprint = current.map(|c| c.thumbprint.clone());
    let matches_current =
        current.is_some_and(|c| c.thumbprint.eq_ignore_ascii_case(&cert.thumbprint));
    report.matches_current = Some(matches_current);

    if !inspection.has_private_key {
        return Err(BackupError::NoPrivateKey {
            thumbprint: cert.thumbprint.clone(),
        });
    }
    if inspection.key_matches == Some(false) {
        return Err(BackupError::KeyMismatch {
            thumbprint: cert.thumbprint.clone(),
        });
    }
    let state = BackupState {
        thumbprint: cert.thumbprint.clone(),
        verified_at: now,
        not_after: Some(cert.not_after),
        matches_current,
    };
    if let Some(to) = record_to {
        record(to, &state)?;
        report.recorded = Some(to.display().to_string());
    }
    report.ok = true;
    Ok(state)
}

/// `verify-backup` with the settings: compares with the certificates the snapshot would report
/// (policy issuer from the enrollment, if any) and records at `<data-dir>/backup.json`.
pub fn verify_with_config(
    cfg: &AgentConfig,
    path: &Path,
    password: Option<&Password>,
    now: DateTime<Utc>,
) -> (BackupReport, Result<BackupState, BackupError>) {
    let identity = Identity::load(&cfg.identity_path()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "identity unreadable; using the default policy");
        None
    });
    let policy = effective_policy(identity.as_ref().map(|i| &i.policy), cfg);
    let ctx = Ctx::new(cfg, policy, BTreeMap::new(), now);
    let mut notes = Notes::default();
    let installed = certificates::installed(&ctx, &mut notes);
    for note in notes.as_slice() {
        tracing::warn!(area = %note.area, detail = %note.detail, "installed certificates");
    }
    let known = known_passwords(&ctx.policy);
    verify_file(
        path,
        password,
        &known,
        &installed,
        Some(&cfg.backup_path()),
        now,
    )
}

/// The passwords the server says the clinic chose for its backups.
pub fn known_passwords(policy: &onshi_shared::AgentPolicy) -> Vec<Password> {
    policy.backup_passwords.iter().map(Password::new).collect()
}

/// Writes the record atomically, creating its directory.
pub fn record(path: &Path, state: &BackupState) -> Result<(), BackupError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| BackupError::Record(format!("cannot create {}: {e}", dir.display())))?;
    }
    atomic_file::write_json(path, state, Access::Default)
        .map_err(|e| BackupError::Record(e.to_string()))
}

fn read_limited(path: &Path) -> Result<Vec<u8>, BackupError> {
    let io = |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(BackupError::NotPkcs12("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(BackupError::NotPkcs12(format!(
            "{} bytes is too large for a certificate backup",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(io)
}

/// PFX ::= SEQUENCE { version INTEGER (v3), authSafe ContentInfo, macData MacData OPTIONAL }.
/// Checked before the library so a short file reads as truncated and a text file as not
/// PKCS#12, rather than as a DER error from somewhere inside.
fn check_outer(bytes: &[u8]) -> Result<(), BackupError> {
    if bytes.is_empty() {
        return Err(BackupError::NotPkcs12("the file is empty".into()));
    }
    if bytes[0] != der::TAG_SEQUENCE {
        return Err(BackupError::NotPkcs12(
            "it does not start with a DER SEQUENCE".into(),
        ));
    }
    let (pfx, _) = der::expect(bytes, der::TAG_SEQUENCE, "PFX").map_err(outer_error)?;
    let (version, _) = der::expect(pfx, der::TAG_INTEGER, "PFX version").map_err(outer_error)?;
    if version != [3] {
        return Err(BackupError::NotPkcs12(format!(
            "PFX version {} (expected 3)",
            hex::encode(version)
        )));
    }
    Ok(())
}

fn outer_error(e: der::DerError) -> BackupError {
    match e {
        der::DerError::Truncated { needed, available } => {
            BackupError::Truncated { needed, available }
        }
        der::DerError::Invalid(what) => BackupError::NotPkcs12(format!("invalid DER ({what})")),
    }
}

fn open_error(e: P12Error) -> BackupError {
    match e {
        // The MAC is keyed by the password; a wrong one fails it. Without a MAC a wrong password
        // shows as bad padding or a PBES2 failure after decryption.
        P12Error::MacError(_) | P12Error::UnpadError | P12Error::Pkcs5Error(_) => {
            BackupError::WrongPassword {
                tried_default: false,
            }
        }
        P12Error::UnsupportedEncryptionScheme
        | P12Error::UnsupportedMacAlgorithm
        | P12Error::UnsupportedContentType
        | P12Error::UnsupportedCertificateType => BackupError::Unsupported(e.to_string()),
        other => BackupError::NotPkcs12(format!("damaged PKCS#12 structure: {other}")),
    }
}

struct Candidate {
    parsed: ParsedCert,
    spki: SpkiKey,
    local_key_id: Option<Vec<u8>>,
}

/// A certificate's public key, as far as matching needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SpkiKey {
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    Ec { point: Vec<u8> },
    Other,
}

impl SpkiKey {
    fn of_cert(der: &[u8]) -> SpkiKey {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return SpkiKey::Other;
        };
        match cert.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) => SpkiKey::Rsa {
                modulus: der::unsigned(rsa.modulus).to_vec(),
                exponent: der::unsigned(rsa.exponent).to_vec(),
            },
            Ok(PublicKey::EC(point)) => SpkiKey::Ec {
                point: point.data().to_vec(),
            },
            _ => SpkiKey::Other,
        }
    }
}

/// The public half of a PKCS#8 private key, where the key's encoding carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPublic {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    /// `None`: the ECPrivateKey has no `publicKey` field.
    Ec {
        point: Option<Vec<u8>>,
    },
    Unknown,
}

/// 1.2.840.113549.1.1.1 and 1.2.840.10045.2.1, as DER OID contents.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];

impl KeyPublic {
    /// PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING, ... }
    /// RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }       (RFC 8017)
    /// ECPrivateKey ::= SEQUENCE { version, privateKey, [0] params?, [1] publicKey? } (RFC 5915)
    fn of_pkcs8(der: &[u8]) -> KeyPublic {
        Self::parse(der).unwrap_or(KeyPublic::Unknown)
    }

    fn parse(bytes: &[u8]) -> Result<KeyPublic, der::DerError> {
        use der::{
            TAG_BIT_STRING, TAG_CONTEXT_1, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE,
        };
        let (info, _) = der::expect(bytes, TAG_SEQUENCE, "PrivateKeyInfo")?;
        let (_, rest) = der::expect(info, TAG_INTEGER, "version")?;
        let (alg, rest) = der::expect(rest, TAG_SEQUENCE, "AlgorithmIdentifier")?;
        let (oid, _) = der::expect(alg, TAG_OID, "algorithm")?;
        let (key, _) = der::expect(rest, TAG_OCTET_STRING, "privateKey")?;
        let (key, _) = der::expect(key, TAG_SEQUENCE, "key")?;
        if oid == OID_RSA_ENCRYPTION {
            let (_, rest) = der::expect(key, TAG_INTEGER, "version")?;
            let (modulus, rest) = der::expect(rest, TAG_INTEGER, "modulus")?;
            let (exponent, _) = der::expect(rest, TAG_INTEGER, "publicExponent")?;
            return Ok(KeyPublic::Rsa {
                modulus: der::unsigned(modulus).to_vec(),
                exponent: der::unsigned(exponent).to_vec(),
            });
        }
        if oid == OID_EC_PUBLIC_KEY {
            let (_, rest) = der::expect(key, TAG_INTEGER, "version")?;
            let (_, mut rest) = der::expect(rest, TAG_OCTET_STRING, "privateKey")?;
            while !rest.is_empty() {
                let (tag, value, next) = der::element(rest)?;
                if tag == TAG_CONTEXT_1 {
                    let (bits, _) = der::expect(value, TAG_BIT_STRING, "publicKey")?;
                    // The first content byte of a BIT STRING counts the unused bits (0 here).
                    let point = bits.get(1..).map(<[u8]>::to_vec);
                    return Ok(KeyPublic::Ec { point });
                }
                rest = next;
            }
            return Ok(KeyPublic::Ec { point: None });
        }
        Ok(KeyPublic::Unknown)
    }

    /// Whether this key's public half is `cert`'s public key; `None` when it cannot be told.
    fn matches(&self, cert: &SpkiKey) -> Option<bool> {
        match (self, cert) {
            (
                KeyPublic::Rsa { modulus, exponent },
                SpkiKey::Rsa {
                    modulus: m,
                    exponent: e,
                },
            ) => Some(modulus == m && exponent == e),
            (KeyPublic::Ec { point: Some(p) }, SpkiKey::Ec { point }) => Some(p == point),
            (KeyPublic::Ec { point: None }, SpkiKey::Ec { .. }) => None,
            (KeyPublic::Unknown, _) | (_, SpkiKey::Other) => None,
            // An RSA key and an EC certificate, or the other way round.
            _ => Some(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pkcs12")
            .join(name);
        std::fs::read(path).unwrap()
    }

    fn default() -> Password {
        Password::new(DEFAULT_PASSWORD)
    }

    const RSA_THUMB: &str = "CB049BE28AD7CECD0581CB0FA15BF4938783BC14";
    const EC_THUMB: &str = "215F9F4E4FBF50E395EABC730A59EF6C91E1371D";

    #[test]
    fn opens_every_windows_export_format() {
        for name in ["aes256-sha256.pfx", "tripledes-sha1.pfx", "rc2-40.pfx"] {
            let got = inspect(&fixture(name), &default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.cert.thumbprint, RSA_THUMB, "{name}");
            assert_eq!(got.cert.subject, "CN=1312345678,O=Sample Clinic,C=JP");
            assert!(got.cert.issuer.contains("Online Billing NW Common Root CA"));
            assert_eq!(
                got.cert.not_after,
                Utc.with_ymd_and_hms(2029, 5, 31, 0, 0, 0).unwrap()
            );
            assert!(got.has_private_key, "{name}");
            assert_eq!(got.key_matches, Some(true), "{name}");
            assert_eq!(got.cert_count, 2, "{name}: leaf and root");
        }
    }

    #[test]
    fn matches_an_ec_key_by_its_public_point() {
        let got = inspect(&fixture("ec-password-2468.pfx"), &Password::new("2468")).unwrap();
        assert_eq!(got.cert.thumbprint, EC_THUMB);
        assert_eq!(got.key_matches, Some(true));
    }

    #[test]
    fn wrong_password_is_told_apart() {
        let err = inspect(&fixture("ec-password-2468.pfx"), &default()).unwrap_err();
        assert!(matches!(err, BackupError::WrongPassword { .. }), "{err}");
        assert_eq!(err.exit_code(), 3);
        let err = inspect(&fixture("rc2-40.pfx"), &Password::new("0000")).unwrap_err();
        assert!(matches!(err, BackupError::WrongPassword { .. }), "{err}");
    }

    #[test]
    fn a_file_without_key_is_inspected_but_flagged() {
        let got = inspect(&fixture("no-key.pfx"), &default()).unwrap();
        assert!(!got.has_private_key);
        assert_eq!(got.key_matches, None);
        assert_eq!(got.cert.thumbprint, RSA_THUMB, "the leaf, not the root");
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let got = inspect(&fixture("mismatched-key.pfx"), &default()).unwrap();
        assert!(got.has_private_key);
        assert_eq!(got.key_matches, Some(false));
        assert_eq!(got.cert.thumbprint, RSA_THUMB);
    }

    #[test]
    fn truncated_and_foreign_files_are_told_apart() {
        let err = inspect(&fixture("truncated.pfx"), &default()).unwrap_err();
        assert!(matches!(err, BackupError::Truncated { .. }), "{err}");
        assert_eq!(err.exit_code(), 4);
        let err = inspect(&fixture("clinic.pem"), &default()).unwrap_err();
        assert!(matches!(err, BackupError::NotPkcs12(_)), "{err}");
        let err = inspect(b"", &default()).unwrap_err();
        assert!(matches!(err, BackupError::NotPkcs12(_)), "{err}");
        // A DER certificate is a SEQUENCE too, but does not start with version 3.
        let pem = fixture("clinic.pem");
        let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
        let err = inspect(&der, &default()).unwrap_err();
        assert!(matches!(err, BackupError::NotPkcs12(_)), "{err}");
        // Every cut of a good file fails cleanly, never panics.
        let good = fixture("tripledes-sha1.pfx");
        for len in (0..good.len()).step_by(97) {
            assert!(inspect(&good[..len], &default()).is_err(), "cut at {len}");
        }
    }

    fn installed(thumb: &str, days_left: i64) -> CertInfo {
        let now = Utc::now();
        CertInfo {
            subject: "CN=1312345678".into(),
            issuer: "CN=Online Billing NW Common Root CA".into(),
            serial: "01".into(),
            thumbprint: thumb.into(),
            not_before: now,
            not_after: now + chrono::Duration::days(days_left),
            has_private_key: true,
            store: "test".into(),
        }
    }

    fn path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pkcs12")
            .join(name)
    }

    #[test]
    fn verify_records_a_good_backup_of_the_current_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let record_to = dir.path().join("data").join("backup.json");
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let certs = vec![installed("OLD", 10), installed(RSA_THUMB, 900)];
        let (report, result) = verify_file(
            &path("aes256-sha256.pfx"),
            None,
            &[],
            &certs,
            Some(&record_to),
            now,
        );
        let state = result.unwrap();
        assert!(report.ok);
        assert!(report.default_password);
        assert_eq!(report.installed, Some(true));
        assert_eq!(report.matches_current, Some(true));
        assert_eq!(state.thumbprint, RSA_THUMB);
        assert_eq!(state.verified_at, now);
        assert!(state.matches_current);
        let stored: BackupState =
            serde_json::from_slice(&std::fs::read(&record_to).unwrap()).unwrap();
        assert_eq!(stored, state);
    }

    #[test]
    fn verify_fails_without_recording() {
        let dir = tempfile::tempdir().unwrap();
        let record_to = dir.path().join("backup.json");
        let now = Utc::now();
        let cases: [(&str, Option<Password>, &str, u8); 5] = [
            ("ec-password-2468.pfx", None, "wrong_password", 3),
            ("no-key.pfx", None, "no_private_key", 5),
            ("mismatched-key.pfx", None, "key_mismatch", 6),
            ("truncated.pfx", None, "truncated", 4),
            ("clinic.pem", Some(Password::new("x")), "not_pkcs12", 4),
        ];
        for (name, password, code, exit) in cases {
            let (report, result) = verify_file(
                &path(name),
                password.as_ref(),
                &[],
                &[],
                Some(&record_to),
                now,
            );
            let err = result.unwrap_err();
            assert_eq!(err.code(), code, "{name}: {err}");
            assert_eq!(err.exit_code(), exit, "{name}");
            assert!(!report.ok);
            assert_eq!(report.error_code, Some(code));
            assert!(!record_to.exists(), "{name}: nothing recorded");
        }
        let (_, result) = verify_file(&path("missing.pfx"), None, &[], &[], None, now);
        assert_eq!(result.unwrap_err().exit_code(), 1);
    }

    #[test]
    fn the_clinics_own_password_from_the_server_opens_what_1357_does_not() {
        let known = [Password::new("0000"), Password::new("2468")];
        let (report, result) = verify_file(
            &path("ec-password-2468.pfx"),
            None,
            &known,
            &[],
            None,
            Utc::now(),
        );
        result.unwrap();
        assert!(!report.default_password);
        let (_, refused) = verify_file(
            &path("ec-password-2468.pfx"),
            None,
            &known[..1],
            &[],
            None,
            Utc::now(),
        );
        assert!(matches!(
            refused,
            Err(BackupError::WrongPassword {
                tried_default: true
            })
        ));
    }

    #[test]
    fn the_given_password_is_used_and_never_shown() {
        let pw = Password::new("2468");
        assert!(!format!("{pw:?}").contains("2468"));
        let (report, result) = verify_file(
            &path("ec-password-2468.pfx"),
            Some(&pw),
            &[],
            &[installed(RSA_THUMB, 900)],
            None,
            Utc::now(),
        );
        result.unwrap();
        assert!(!report.default_password);
        assert_eq!(report.installed, Some(false));
        assert_eq!(report.matches_current, Some(false));
        // The file name has the password in it here; nothing else may.
        let json = serde_json::to_string(&report)
            .unwrap()
            .replace(&report.file, "");
        assert!(!json.contains("2468"), "{json}");
        assert!(report.summary().contains(EC_THUMB));
    }
}
