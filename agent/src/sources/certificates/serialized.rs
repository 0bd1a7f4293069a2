//! The serialized-certificate format of Windows certificate stores: what a file-backed user store
//! keeps in `%APPDATA%\Microsoft\SystemCertificates\My\Certificates\<SHA1>` and the registry
//! store in `...\SystemCertificates\MY\Certificates\<SHA1>\Blob`
//! (`CertSerializeCertificateStoreElement`).
//!
//! A sequence of properties `{prop id: u32 LE, encoding: u32 LE (1), length: u32 LE, value}`;
//! the DER certificate is property 32 (`CERT_CERT_PROP_ID`). A saved store (`.sto`) starts with
//! the 8-byte header `00 00 00 00 'C' 'E' 'R' 'T'` and holds one such element per certificate,
//! each ending with its property 32, and ends with a zero property.

use crate::error::AgentError;

/// `CERT_KEY_PROV_INFO_PROP_ID`: the certificate is linked to a private key container.
pub const KEY_PROV_INFO_PROP_ID: u32 = 2;
/// `CERT_SHA1_HASH_PROP_ID`: the thumbprint, cached.
pub const SHA1_HASH_PROP_ID: u32 = 3;
/// `CERT_FRIENDLY_NAME_PROP_ID`: UTF-16 friendly name.
pub const FRIENDLY_NAME_PROP_ID: u32 = 11;
/// `CERT_KEY_IDENTIFIER_PROP_ID`: the subject key identifier. Set for certificates with and
/// without a private key, so it says nothing about the key by itself.
pub const KEY_IDENTIFIER_PROP_ID: u32 = 20;
/// `CERT_CERT_PROP_ID`: the DER certificate itself.
pub const CERT_PROP_ID: u32 = 32;

const STORE_MAGIC: [u8; 8] = [0, 0, 0, 0, b'C', b'E', b'R', b'T'];

/// One certificate element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializedCert {
    /// The DER certificate.
    pub der: Vec<u8>,
    /// Property 2 is present: Windows knows a private key for this certificate.
    pub has_private_key: bool,
    pub friendly_name: Option<String>,
    /// Every property id seen before the certificate, in order.
    pub props: Vec<u32>,
}

/// Every certificate in a serialized element or a saved store.
pub fn parse(bytes: &[u8]) -> Result<Vec<SerializedCert>, AgentError> {
    let err = |detail: String| AgentError::parse("serialized certificate", detail);
    let mut rest = bytes.strip_prefix(&STORE_MAGIC[..]).unwrap_or(bytes);
    let mut out = Vec::new();
    let mut props = Vec::new();
    let mut has_key = false;
    let mut friendly_name = None;
    while !rest.is_empty() {
        let (Some(id), Some(_encoding), Some(len)) =
            (u32_at(rest, 0), u32_at(rest, 4), u32_at(rest, 8))
        else {
            return Err(err(format!("{} stray bytes at the end", rest.len())));
        };
        let len = usize::try_from(len).map_err(|_| err("length overflows".into()))?;
        let value = rest.get(12..12usize.saturating_add(len)).ok_or_else(|| {
            err(format!(
                "property {id} needs {len} bytes, {} left",
                rest.len() - 12
            ))
        })?;
        rest = &rest[12 + len..];
        match id {
            // The end of a saved store.
            0 if len == 0 => break,
            CERT_PROP_ID => {
                out.push(SerializedCert {
                    der: value.to_vec(),
                    has_private_key: has_key,
                    friendly_name: friendly_name.take(),
                    props: std::mem::take(&mut props),
                });
                has_key = false;
            }
            _ => {
                if id == KEY_PROV_INFO_PROP_ID && !value.is_empty() {
                    has_key = true;
                }
                if id == FRIENDLY_NAME_PROP_ID {
                    friendly_name = Some(crate::sources::registry::utf16z(value));
                }
                props.push(id);
            }
        }
    }
    if out.is_empty() {
        return Err(err("no certificate property (32)".into()));
    }
    Ok(out)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::certificates::parse;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/certstore")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn reads_a_user_store_file_with_a_key() {
        let certs = parse(&fixture("7234316D34F332E646EC9341A78AB4A33429E5C5")).unwrap();
        assert_eq!(certs.len(), 1);
        let c = &certs[0];
        assert!(c.has_private_key);
        assert_eq!(c.friendly_name.as_deref(), Some("オン資 電子証明書"));
        assert_eq!(
            c.props,
            [
                KEY_IDENTIFIER_PROP_ID,
                FRIENDLY_NAME_PROP_ID,
                KEY_PROV_INFO_PROP_ID
            ]
        );
        let parsed = parse::der(&c.der).unwrap();
        assert_eq!(
            parsed.thumbprint,
            "7234316D34F332E646EC9341A78AB4A33429E5C5"
        );
    }

    #[test]
    fn a_key_identifier_alone_is_not_a_key() {
        let certs = parse(&fixture("4FB032DA5AC10B53DE991F766E94543B1D18EF1D")).unwrap();
        assert!(!certs[0].has_private_key);
        assert_eq!(certs[0].props, [KEY_IDENTIFIER_PROP_ID]);
        assert_eq!(parse::der(&certs[0].der).unwrap().serial, "C0FFEE01");
    }

    #[test]
    fn reads_every_certificate_of_a_saved_store() {
        let certs = parse(&fixture("my.sto")).unwrap();
        assert_eq!(certs.len(), 2);
        assert!(certs[0].has_private_key);
        assert!(
            !certs[1].has_private_key,
            "key flags do not leak to the next element"
        );
    }

    #[test]
    fn rejects_damaged_elements() {
        let good = fixture("7234316D34F332E646EC9341A78AB4A33429E5C5");
        assert!(parse(&[]).is_err());
        assert!(parse(&good[..good.len() - 1]).is_err());
        assert!(parse(&good[..7]).is_err());
        // A length past the end.
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&bad).is_err());
        // Properties but no certificate.
        assert!(parse(&good[..12 + 20]).is_err());
        for len in 0..good.len() {
            let _ = parse(&good[..len]);
        }
    }
}
