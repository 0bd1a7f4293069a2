//! X.509 certificates from PEM or DER bytes.

use chrono::{DateTime, Utc};
use sha1::{Digest, Sha1};
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::objects::{oid_registry, oid2abbrev};
use x509_parser::pem::Pem;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::error::AgentError;

/// What the agent keeps of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCert {
    /// RFC 4514 string, most significant RDN last (`CN=...,O=...,C=JP`).
    pub subject: String,
    pub issuer: String,
    /// Upper-case hex of the serial number, without sign padding (as OpenSSL prints it).
    pub serial: String,
    /// SHA-1 of the DER encoding, upper-case hex, as Windows shows it.
    pub thumbprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Subject and issuer are the same name: a root, not a certificate issued under one.
    pub self_issued: bool,
}

/// Every certificate in a file: all `CERTIFICATE` blocks of a PEM file, or one DER
/// certificate. Bytes that are neither are an error (the caller skips such files).
pub fn certificates(bytes: &[u8]) -> Result<Vec<ParsedCert>, AgentError> {
    if contains(bytes, b"-----BEGIN ") {
        let mut certs = Vec::new();
        for block in Pem::iter_from_buffer(bytes) {
            let block =
                block.map_err(|e| AgentError::parse("PEM", format!("invalid block: {e}")))?;
            if matches!(
                block.label.as_str(),
                "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
            ) {
                certs.push(der(&block.contents)?);
            }
        }
        if certs.is_empty() {
            return Err(AgentError::parse("PEM", "no CERTIFICATE block"));
        }
        Ok(certs)
    } else {
        Ok(vec![der(bytes)?])
    }
}

/// One DER certificate.
pub fn der(bytes: &[u8]) -> Result<ParsedCert, AgentError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(bytes)
        .map_err(|e| AgentError::parse("X.509", e.to_string()))?;
    if !rest.is_empty() {
        return Err(AgentError::parse(
            "X.509",
            format!("{} bytes after the certificate", rest.len()),
        ));
    }
    let der_len = bytes.len() - rest.len();
    Ok(from_cert(&cert, &bytes[..der_len]))
}

fn from_cert(cert: &X509Certificate<'_>, der: &[u8]) -> ParsedCert {
    let validity = cert.validity();
    let time = |t: i64| DateTime::from_timestamp(t, 0).unwrap_or(DateTime::UNIX_EPOCH);
    let raw_serial = cert.raw_serial();
    let significant = raw_serial
        .iter()
        .position(|b| *b != 0)
        .map_or(&raw_serial[raw_serial.len().saturating_sub(1)..], |i| {
            &raw_serial[i..]
        });
    let subject = rfc4514(cert.subject());
    let issuer = rfc4514(cert.issuer());
    ParsedCert {
        self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        subject,
        issuer,
        serial: hex::encode_upper(significant),
        thumbprint: hex::encode_upper(Sha1::digest(der)),
        not_before: time(validity.not_before.timestamp()),
        not_after: time(validity.not_after.timestamp()),
    }
}

/// A distinguished name as RFC 4514 writes it: RDNs in reverse order, `,` between them, `+`
/// inside a multi-valued RDN, special characters escaped.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| format!("{}={}", attr_type(attr), attr_value(attr)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attr_type(attr: &AttributeTypeAndValue<'_>) -> String {
    oid2abbrev(attr.attr_type(), oid_registry())
        .map(str::to_string)
        .unwrap_or_else(|_| attr.attr_type().to_id_string())
}

fn attr_value(attr: &AttributeTypeAndValue<'_>) -> String {
    let value = attr.attr_value();
    let data = value.data;
    let text = match value.tag() {
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::NumericString
        | Tag::PrintableString
        | Tag::Utf8String
        | Tag::Ia5String
        | Tag::VisibleString
        | Tag::T61String
        | Tag::GeneralString
        | Tag::UniversalString => std::str::from_utf8(data).ok().map(str::to_string),
        _ => None,
    };
    match text {
        Some(text) => escape(&text),
        // RFC 4514 §2.4: values that are not strings are written as `#` and hex.
        None => format!("#{}", hex::encode(data)),
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/certs")
            .join(name);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn parses_a_pem_certificate() {
        let certs = certificates(&fixture("clinic.pem")).unwrap();
        assert_eq!(certs.len(), 1);
        let c = &certs[0];
        assert_eq!(c.subject, "CN=1312345678,O=Sample Clinic,C=JP");
        assert_eq!(
            c.issuer,
            "CN=Online Billing NW Common Root CA,O=Online Billing NW,C=JP"
        );
        assert_eq!(c.serial, "4F2A19");
        assert_eq!(c.thumbprint, "7234316D34F332E646EC9341A78AB4A33429E5C5");
        assert_eq!(
            c.not_before,
            Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            c.not_after,
            Utc.with_ymd_and_hms(2028, 5, 31, 0, 0, 0).unwrap()
        );
        assert!(!c.self_issued);
    }

    #[test]
    fn parses_a_der_certificate_and_strips_sign_padding() {
        let certs = certificates(&fixture("clinic-old.der")).unwrap();
        assert_eq!(certs[0].serial, "C0FFEE01");
        assert_eq!(
            certs[0].thumbprint,
            "4FB032DA5AC10B53DE991F766E94543B1D18EF1D"
        );
    }

    #[test]
    fn sees_a_root_as_self_issued() {
        let certs = certificates(&fixture("root-ca.pem")).unwrap();
        assert!(certs[0].self_issued);
    }

    #[test]
    fn reads_every_block_of_a_chain() {
        let mut chain = fixture("clinic.pem");
        chain.extend_from_slice(b"some text between blocks\n");
        chain.extend(fixture("root-ca.pem"));
        let certs = certificates(&chain).unwrap();
        assert_eq!(certs.len(), 2);
    }

    #[test]
    fn rejects_what_is_not_a_certificate() {
        assert!(certificates(b"hello").is_err());
        assert!(
            certificates(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        let mut der = fixture("clinic-old.der");
        der.truncate(der.len() - 3);
        assert!(certificates(&der).is_err());
    }

    #[test]
    fn escapes_special_characters() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape("Sample Clinic"), "Sample Clinic");
    }
}
