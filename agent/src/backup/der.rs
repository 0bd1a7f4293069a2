//! Just enough DER to read a PKCS#8 private key's public half and to tell a truncated file from
//! one that is not DER at all. Pure functions over bytes.

/// Why bytes are not the DER that was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DerError {
    /// The bytes end before the element they start says is there.
    Truncated { needed: usize, available: usize },
    /// Not DER, or not the structure expected.
    Invalid(&'static str),
}

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_OID: u8 = 0x06;
pub const TAG_SEQUENCE: u8 = 0x30;
/// `[1]` constructed, context-specific (ECPrivateKey's `publicKey`).
pub const TAG_CONTEXT_1: u8 = 0xA1;

/// One element: its tag, its value, and the bytes after it.
pub fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError::Truncated {
        needed: 1,
        available: 0,
    })?;
    if tag & 0x1F == 0x1F {
        return Err(DerError::Invalid("multi-byte tags are not used here"));
    }
    let (&first, rest) = rest.split_first().ok_or(DerError::Truncated {
        needed: 2,
        available: 1,
    })?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 {
            return Err(DerError::Invalid("indefinite length"));
        }
        if count > 4 {
            return Err(DerError::Invalid("length too large"));
        }
        if rest.len() < count {
            return Err(DerError::Truncated {
                needed: 2 + count,
                available: 2 + rest.len(),
            });
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        let header = input.len() - rest.len();
        return Err(DerError::Truncated {
            needed: header + len,
            available: input.len(),
        });
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The value of an element that must have `tag`.
pub fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DerError> {
    let (got, value, rest) = element(input)?;
    if got == tag {
        Ok((value, rest))
    } else {
        Err(DerError::Invalid(what))
    }
}

/// An INTEGER's magnitude without leading zero bytes (DER pads positive numbers whose top bit
/// is set with one zero byte; certificates and keys do not always agree on that).
pub fn unsigned(value: &[u8]) -> &[u8] {
    let first = value.iter().position(|b| *b != 0).unwrap_or(value.len());
    &value[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let (tag, value, rest) = element(&[0x04, 0x02, 0xAA, 0xBB, 0xFF]).unwrap();
        assert_eq!((tag, value, rest), (0x04, &[0xAA, 0xBB][..], &[0xFF][..]));
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0u8, 256));
        let (tag, value, rest) = element(&long).unwrap();
        assert_eq!((tag, value.len(), rest.len()), (0x30, 256, 0));
    }

    #[test]
    fn tells_truncated_from_invalid() {
        assert_eq!(
            element(&[0x30, 0x82, 0x01, 0x00, 0x00]),
            Err(DerError::Truncated {
                needed: 260,
                available: 5
            })
        );
        assert!(matches!(element(&[]), Err(DerError::Truncated { .. })));
        assert!(matches!(
            element(&[0x30, 0x82]),
            Err(DerError::Truncated { .. })
        ));
        assert_eq!(
            element(&[0x30, 0x80, 0x00]),
            Err(DerError::Invalid("indefinite length"))
        );
        assert!(matches!(
            expect(&[0x02, 0x01, 0x03], TAG_SEQUENCE, "x"),
            Err(DerError::Invalid("x"))
        ));
    }

    #[test]
    fn strips_sign_padding() {
        assert_eq!(unsigned(&[0x00, 0x80, 0x01]), &[0x80, 0x01]);
        assert_eq!(unsigned(&[0x01, 0x00]), &[0x01, 0x00]);
        assert_eq!(unsigned(&[0x00]), &[] as &[u8]);
    }
}
