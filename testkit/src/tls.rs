//! A test certificate authority: a CA of its own and a server certificate for `127.0.0.1` and
//! `localhost` signed by it, written as PEM files, so the server can speak HTTPS and a client
//! (the agent with `--ca-cert`) can trust it and nothing else.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The PEM files of one test CA and the server certificate it signed.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    /// Makes a new CA named `name` and its server certificate, in `dir` (`<name>-ca.pem`,
    /// `<name>-cert.pem`, `<name>-key.pem`).
    pub fn create(dir: &Path, name: &str) -> std::io::Result<TestPki> {
        let fail = |e: rcgen::Error| std::io::Error::other(format!("test certificate: {e}"));
        let ca_key = KeyPair::generate().map_err(fail)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("Onshi test CA {name}"));
        let ca_cert = ca_params.self_signed(&ca_key).map_err(fail)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().map_err(fail)?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .map_err(fail)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "onshi-server test");
        let cert = params.signed_by(&key, &issuer).map_err(fail)?;
        let pki = TestPki {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&pki.ca, ca_cert.pem())?;
        std::fs::write(&pki.cert, cert.pem())?;
        std::fs::write(&pki.key, key.serialize_pem())?;
        Ok(pki)
    }

    /// Puts this pair where a server reads its files (as a renewal would).
    pub fn install(&self, cert: &Path, key: &Path) -> std::io::Result<()> {
        std::fs::copy(&self.cert, cert)?;
        std::fs::copy(&self.key, key)?;
        Ok(())
    }

    /// A client that trusts this CA only (not the system's roots).
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca).unwrap_or_default();
        let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default();
        reqwest::Client::builder()
            .tls_certs_only(certs)
            .build()
            .unwrap_or_else(|e| panic!("a client trusting {}: {e}", self.ca.display()))
    }
}
