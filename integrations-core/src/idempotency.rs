//! Deterministic idempotency keys, derived from the business operation.
//!
//! A key built from the clock or a fresh UUID per attempt defeats its purpose: after a crash, the
//! retry gets a new key and the provider charges twice. A key derived from what the operation *is*
//! (`order-42` / `payment`) is the same on every attempt, in every process.
//!
//! ```
//! use integrations_core::IdempotencyKey;
//!
//! let key = IdempotencyKey::derive("order-42", "payment")?;
//! assert_eq!(key.as_str(), "order-42/payment");
//! let refund = key.child("refund")?.child("1")?;
//! assert_eq!(refund.as_str(), "order-42/payment/refund/1");
//! # Ok::<(), integrations_core::Error>(())
//! ```

use std::fmt;

use sha2::{Digest, Sha256};

use crate::Error;

/// Longest key Stripe (and most providers) accept.
pub const MAX_LEN: usize = 255;

/// A validated idempotency key: 1 to 255 printable ASCII characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Uses `key` as it is, after validation.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `idempotency_key` when empty, longer than 255 characters, or
    /// containing anything but printable ASCII.
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        validate(&key)?;
        Ok(IdempotencyKey(key))
    }

    /// Derives the key of `operation` on `entity` (`"order-42"`, `"payment"` → `"order-42/payment"`).
    ///
    /// When the joined key would exceed 255 characters, the entity is replaced by the hex SHA-256
    /// of itself, so the key stays deterministic and within the limit.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if either part is empty or not printable ASCII.
    pub fn derive(entity: &str, operation: &str) -> Result<Self, Error> {
        check_part("entity", entity)?;
        check_part("operation", operation)?;
        let joined = format!("{entity}/{operation}");
        if joined.len() <= MAX_LEN {
            return Ok(IdempotencyKey(joined));
        }
        IdempotencyKey::new(format!("{}/{}", hash(entity), shorten(operation)))
    }

    /// A key for a sub-operation (`order-42/payment` → `order-42/payment/refund`), hashing the
    /// prefix if the result would be too long.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `part` is empty or not printable ASCII.
    pub fn child(&self, part: &str) -> Result<Self, Error> {
        check_part("part", part)?;
        let joined = format!("{}/{part}", self.0);
        if joined.len() <= MAX_LEN {
            return Ok(IdempotencyKey(joined));
        }
        IdempotencyKey::new(format!("{}/{}", hash(&self.0), shorten(part)))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn shorten(s: &str) -> String {
    // 64 hex chars + '/' leaves 190 for the operation; hash it too if it is longer than that.
    if s.len() > MAX_LEN - 65 {
        hash(s)
    } else {
        s.to_owned()
    }
}

fn check_part(name: &'static str, part: &str) -> Result<(), Error> {
    if part.is_empty() {
        return Err(Error::invalid_input(name, "must not be empty"));
    }
    if let Some((i, c)) = part.char_indices().find(|(_, c)| !is_printable_ascii(*c)) {
        return Err(Error::invalid_input(
            name,
            format!("character {c:?} at byte {i} is not printable ASCII"),
        ));
    }
    Ok(())
}

fn is_printable_ascii(c: char) -> bool {
    c.is_ascii_graphic() || c == ' '
}

fn validate(key: &str) -> Result<(), Error> {
    if key.len() > MAX_LEN {
        return Err(Error::invalid_input(
            "idempotency_key",
            format!("{} characters, at most {MAX_LEN} allowed", key.len()),
        ));
    }
    check_part("idempotency_key", key)
}

impl TryFrom<String> for IdempotencyKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        IdempotencyKey::new(s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

impl AsRef<str> for IdempotencyKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn derive_is_deterministic() {
        let a = IdempotencyKey::derive("order-42", "payment").unwrap();
        let b = IdempotencyKey::derive("order-42", "payment").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "order-42/payment");
        assert_ne!(a, IdempotencyKey::derive("order-43", "payment").unwrap());
    }

    #[test]
    fn validation_names_the_problem() {
        let e = IdempotencyKey::new("").unwrap_err();
        assert_eq!(e.field(), Some("idempotency_key"));
        let e = IdempotencyKey::new("x".repeat(256)).unwrap_err();
        assert!(e.to_string().contains("256 characters"), "{e}");
        assert!(IdempotencyKey::new("x".repeat(255)).is_ok());
        let e = IdempotencyKey::new("bad\nkey").unwrap_err();
        assert!(e.to_string().contains("not printable ASCII"), "{e}");
        assert!(IdempotencyKey::new("naïve").is_err());
        assert_eq!(
            IdempotencyKey::derive("", "x").unwrap_err().field(),
            Some("entity")
        );
        assert_eq!(
            IdempotencyKey::derive("x", "").unwrap_err().field(),
            Some("operation")
        );
    }

    #[test]
    fn long_keys_are_hashed_deterministically() {
        let entity = "e".repeat(300);
        let a = IdempotencyKey::derive(&entity, "payment").unwrap();
        assert!(a.as_str().len() <= MAX_LEN);
        assert!(a.as_str().ends_with("/payment"));
        assert_eq!(a, IdempotencyKey::derive(&entity, "payment").unwrap());
        let op = "o".repeat(300);
        let b = IdempotencyKey::derive(&entity, &op).unwrap();
        assert!(b.as_str().len() <= MAX_LEN);
        let c = a.child(&"c".repeat(250)).unwrap();
        assert!(c.as_str().len() <= MAX_LEN);
    }

    #[test]
    fn serde_validates() {
        let k: IdempotencyKey = serde_json::from_str("\"order-1/payment\"").unwrap();
        assert_eq!(k.as_str(), "order-1/payment");
        assert!(serde_json::from_str::<IdempotencyKey>("\"\"").is_err());
    }

    proptest! {
        #[test]
        fn derived_keys_are_always_valid(entity in "[ -~]{1,400}", op in "[ -~]{1,400}") {
            let k = IdempotencyKey::derive(&entity, &op).unwrap();
            prop_assert!(k.as_str().len() <= MAX_LEN);
            prop_assert!(IdempotencyKey::new(k.as_str()).is_ok());
            prop_assert_eq!(k, IdempotencyKey::derive(&entity, &op).unwrap());
        }
    }
}
