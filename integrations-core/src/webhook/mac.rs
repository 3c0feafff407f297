//! HMAC-SHA256 over several parts, constant-time verification, and a secret that never prints.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

fn mac_over(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed, short ones padded), so the
    // `InvalidLength` error of the generic `KeyInit` interface cannot happen here.
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
///
/// Passing the parts separately avoids building the signed string (`"{id}.{timestamp}.{body}"`)
/// in memory; the result is the same as over the joined bytes.
///
/// ```
/// use integrations_core::webhook::hmac_sha256;
///
/// let joined = hmac_sha256(b"key", &[b"1614265330.{\"a\":1}"]);
/// let parts = hmac_sha256(b"key", &[b"1614265330", b".", b"{\"a\":1}"]);
/// assert_eq!(joined, parts);
/// ```
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac_over(key, parts).finalize().into_bytes().into()
}

/// Whether `expected` is the HMAC-SHA256 of `parts` under `key`, compared in constant time.
///
/// A wrong length is refused at once (the length of a MAC is public); the bytes themselves are
/// compared without an early exit, so response timing reveals nothing about how much matched.
///
/// ```
/// use integrations_core::webhook::{hmac_sha256, verify_hmac_sha256};
///
/// let tag = hmac_sha256(b"key", &[b"message"]);
/// assert!(verify_hmac_sha256(b"key", &[b"mess", b"age"], &tag));
/// assert!(!verify_hmac_sha256(b"other key", &[b"message"], &tag));
/// assert!(!verify_hmac_sha256(b"key", &[b"message"], &tag[..31]));
/// ```
pub fn verify_hmac_sha256(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    mac_over(key, parts).verify_slice(expected).is_ok()
}

/// Constant-time equality of two byte strings (different lengths are unequal at once).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A webhook signing key. Its bytes are reachable through [`WebhookSecret::expose`] only; `Debug`
/// prints `WebhookSecret { len: 24, .. }`.
///
/// ```
/// use integrations_core::webhook::WebhookSecret;
///
/// let s = WebhookSecret::new(b"super-secret".to_vec());
/// assert!(!format!("{s:?}").contains("super"));
/// assert_eq!(s.expose(), b"super-secret");
/// ```
#[derive(Clone)]
pub struct WebhookSecret {
    bytes: Vec<u8>,
}

impl WebhookSecret {
    /// Wraps raw key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        WebhookSecret {
            bytes: bytes.into(),
        }
    }

    /// The key bytes, for computing a MAC.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// HMAC-SHA256 of `parts` under this key.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(&self.bytes, parts)
    }

    /// Constant-time check that `expected` is the HMAC-SHA256 of `parts` under this key.
    pub fn verify(&self, parts: &[&[u8]], expected: &[u8]) -> bool {
        verify_hmac_sha256(&self.bytes, parts, expected)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecret")
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    const RFC4231_2: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn matches_rfc_4231_over_split_parts() {
        let whole = hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(hex::encode(whole), RFC4231_2);
        let split = hmac_sha256(b"Jefe", &[b"what do ya ", b"", b"want for nothing?"]);
        assert_eq!(whole, split);
    }

    #[test]
    fn long_keys_are_hashed_per_rfc_4231() {
        // Test case 6: 131-byte key of 0xaa.
        let key = [0xaa_u8; 131];
        let tag = hmac_sha256(
            &key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn verify_rejects_any_single_bit_flip() {
        let tag = hmac_sha256(b"k", &[b"body"]);
        assert!(verify_hmac_sha256(b"k", &[b"body"], &tag));
        for i in 0..tag.len() {
            let mut bad = tag;
            bad[i] ^= 1;
            assert!(!verify_hmac_sha256(b"k", &[b"body"], &bad), "byte {i}");
        }
        assert!(!verify_hmac_sha256(b"k", &[b"body"], &[]));
        assert!(!verify_hmac_sha256(b"k", &[b"bodY"], &tag));
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = WebhookSecret::new(b"hunter2-hunter2".to_vec());
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("len: 15"), "{d}");
        assert!(s.verify(&[b"x"], &s.sign(&[b"x"])));
        assert_eq!(s.len(), 15);
        assert!(!s.is_empty());
    }
}
