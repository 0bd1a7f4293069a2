//! The server's key for secrets it must keep and read back: a clinic's own certificate backup
//! password. Sealed with AES-256-GCM (ring) under a 32-byte key kept in a file of its own
//! (`secret_key_file`, by default `secret.key` in the data directory, created with mode 0600 on
//! first use), so a copy of the database alone — a backup, a dump handed to support — does not
//! give the passwords away. Every server sharing a database needs the same key file.

use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::Error;
use crate::store::staff::SealedSecret;

const KEY_LEN: usize = 32;

/// The key, loaded once.
pub struct SecretKey {
    key: LessSafeKey,
    rng: SystemRandom,
    path: PathBuf,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// Reads the key file, or makes one (readable by the owner only) when there is none.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, Error> {
        let rng = SystemRandom::new();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = vec![0u8; KEY_LEN];
                rng.fill(&mut b)
                    .map_err(|_| Error::Config("no random bytes for a new secret key".into()))?;
                write_private(path, &b)?;
                tracing::info!(path = %path.display(), "created the secret key file");
                b
            }
            Err(e) => return Err(Error::Io(format!("reading {}", path.display()), e)),
        };
        Self::from_bytes(&bytes, path)
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<SecretKey, Error> {
        if bytes.len() != KEY_LEN {
            return Err(Error::Config(format!(
                "{} holds {} bytes; a secret key is {KEY_LEN}",
                path.display(),
                bytes.len()
            )));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| Error::Config(format!("{} is not an AES-256 key", path.display())))?;
        Ok(SecretKey {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
            path: path.to_path_buf(),
        })
    }

    /// Seals `plain`; `context` (e.g. `backup_password:12`) is bound to it, so a sealed value
    /// moved to another row does not open there.
    pub fn seal(&self, plain: &str, context: &str) -> Result<SealedSecret, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| Error::Config("no random bytes for a nonce".into()))?;
        let mut sealed = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| Error::Config("sealing a secret failed".into()))?;
        Ok(SealedSecret {
            nonce: nonce.to_vec(),
            sealed,
        })
    }

    /// Opens what [`SecretKey::seal`] sealed with the same context.
    pub fn open(&self, secret: &SealedSecret, context: &str) -> Result<String, Error> {
        let refused = || {
            Error::Corrupt(format!(
                "a sealed secret ({context}) does not open with {}: another server's key?",
                self.path.display()
            ))
        };
        let nonce = Nonce::try_assume_unique_for_key(&secret.nonce).map_err(|_| refused())?;
        let mut buf = secret.sealed.clone();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| refused())?;
        String::from_utf8(plain.to_vec()).map_err(|_| refused())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Error::Io(format!("creating {}", path.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::Io(format!("writing {}", path.display()), e))
}

/// The context a clinic's backup password is sealed under.
pub fn backup_password_context(clinic_id: i64) -> String {
    format!("backup_password:{clinic_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let key = SecretKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = key.seal("2468", "backup_password:1").unwrap();
        assert!(!sealed.sealed.windows(4).any(|w| w == b"2468"));
        assert_eq!(key.open(&sealed, "backup_password:1").unwrap(), "2468");
        assert!(key.open(&sealed, "backup_password:2").is_err(), "other row");
        // The same file again: the same key.
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, "backup_password:1").unwrap(), "2468");
        // Another key does not open it.
        let other = SecretKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.open(&sealed, "backup_password:1").is_err());
        // A damaged key file is refused with its name.
        std::fs::write(dir.path().join("short.key"), b"abc").unwrap();
        let e = SecretKey::load_or_create(&dir.path().join("short.key")).unwrap_err();
        assert!(e.to_string().contains("short.key"), "{e}");
    }
}
