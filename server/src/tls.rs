//! HTTPS without a reverse proxy: `[tls] cert` and `key` (PEM files) make the main listener
//! speak TLS itself, through rustls. The files are read again on SIGHUP and when their
//! modification time or size changes (checked every `watch_secs`), so a renewed certificate
//! (certbot, an ACME client, the vendor's CA) is served without a restart; a pair that does not
//! load is logged and the one in use stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// The certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads a certificate chain and its private key and builds the server's TLS settings
/// (HTTP/1.1 by ALPN, as the server speaks).
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, Error> {
    let tls_error = |what: &Path, e: &dyn std::fmt::Display| {
        Error::Config(format!("tls: {}: {e}", what.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls_error(&files.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(&files.cert, &e))?;
    if chain.is_empty() {
        return Err(tls_error(&files.cert, &"no CERTIFICATE in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| tls_error(&files.key, &e))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_error(&files.cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What the two files look like on disk: a change of either means read them again.
fn stamp(files: &TlsFiles) -> Option<[(SystemTime, u64); 2]> {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(&files.cert)?, one(&files.key)?])
}

/// The TLS settings new connections get; replaced when the files change.
#[derive(Clone)]
pub struct Certificates {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish()
    }
}

impl Certificates {
    /// Loads the files once; an error here stops the start-up.
    pub fn load(files: TlsFiles) -> Result<Self, Error> {
        let config = load(&files)?;
        Ok(Certificates {
            files,
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// An acceptor with the settings in force now (one per connection, so a reload applies
    /// to the next handshake).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current())
    }

    /// The settings in force now.
    fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again; on failure the settings in force stay.
    pub fn reload(&self) -> Result<(), Error> {
        let config = load(&self.files)?;
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        tracing::info!(cert = %self.files.cert.display(), "TLS certificate loaded");
        Ok(())
    }

    /// Reloads when the files change (looked at every `every`); SIGHUP is followed by
    /// [`reload_on_hangup`].
    pub fn watch(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = stamp(&self.files);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = stamp(&self.files);
                if now == seen {
                    continue;
                }
                // A renewal may replace the two files one after the other: a pair that does
                // not match is tried again at the next look.
                match self.reload() {
                    Ok(()) => seen = now,
                    Err(e) => {
                        tracing::error!(error = %e, "TLS files not reloaded; the ones in use stay")
                    }
                }
            }
        })
    }
}

/// What SIGHUP (`systemctl reload`) does, with or without `[tls]`: it must never end the
/// process, whose unit declares `ExecReload`. With `[tls]` it loads the files again.
pub fn reload_on_hangup(tls: Option<Certificates>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = match signal(SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGHUP handler; reload by restarting");
                    return;
                }
            };
            while hup.recv().await.is_some() {
                match &tls {
                    Some(certs) => {
                        if let Err(e) = certs.reload() {
                            tracing::error!(error = %e, "TLS files not reloaded; the ones in use stay");
                        }
                    }
                    None => tracing::info!("SIGHUP: nothing to reload ([tls] is not set)"),
                }
            }
        }
        #[cfg(not(unix))]
        drop(tls);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use onshi_testkit::TestPki;

    #[tokio::test]
    async fn changed_files_are_loaded_and_a_broken_pair_is_not() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let a = TestPki::create(dir.path(), "a").unwrap();
        let b = TestPki::create(dir.path(), "b").unwrap();
        a.install(&files.cert, &files.key).unwrap();
        let certs = Certificates::load(files.clone()).unwrap();
        let first = certs.current();
        let watcher = certs.clone().watch(Duration::from_millis(20));

        // Half a renewal: a key that is not a key. The pair in use stays.
        std::fs::write(&files.key, "not a key").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(Arc::ptr_eq(&first, &certs.current()));

        b.install(&files.cert, &files.key).unwrap();
        let changed = async {
            while Arc::ptr_eq(&first, &certs.current()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), changed)
            .await
            .expect("the new pair was loaded");
        watcher.abort();
    }

    #[test]
    fn files_that_do_not_make_a_pair_are_refused_with_their_name() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let a = TestPki::create(dir.path(), "a").unwrap();
        let b = TestPki::create(dir.path(), "b").unwrap();
        assert!(
            load(&TlsFiles {
                cert: a.cert.clone(),
                key: a.key.clone()
            })
            .is_ok()
        );
        let mismatched = load(&TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        });
        assert!(mismatched.is_err(), "a key of another certificate");
        let missing = load(&TlsFiles {
            cert: dir.path().join("none.pem"),
            key: a.key.clone(),
        })
        .unwrap_err()
        .to_string();
        assert!(missing.contains("none.pem"), "{missing}");
        let no_cert = load(&TlsFiles {
            cert: a.key.clone(),
            key: a.key.clone(),
        })
        .unwrap_err()
        .to_string();
        assert!(no_cert.contains("no CERTIFICATE"), "{no_cert}");
    }
}
