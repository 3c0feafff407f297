//! Throwaway service-account keys for tests and examples.

use std::fmt;
use std::sync::OnceLock;

use integrations_core::{Error, Result};
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::credentials::{GOOGLE_TOKEN_URI, ServiceAccountKey};

/// A generated service-account key: the JSON Google would hand out, and the public half the
/// sandbox verifies assertions with.
///
/// `Debug` never shows the JSON (it holds the private key).
#[derive(Clone)]
pub struct TestServiceAccount {
    client_email: String,
    private_key_id: String,
    json: String,
    public_key_pem: String,
}

impl TestServiceAccount {
    /// The account's email.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }
    /// The key id (`kid`).
    pub fn private_key_id(&self) -> &str {
        &self.private_key_id
    }
    /// The key file's JSON, as `GOOGLE_APPLICATION_CREDENTIALS` would point to.
    pub fn json(&self) -> &str {
        &self.json
    }
    /// The public key, PEM (SubjectPublicKeyInfo).
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }
    /// The parsed key.
    ///
    /// # Errors
    /// Never for a generated key; [`Error::Configuration`] if parsing fails anyway.
    pub fn key(&self) -> Result<ServiceAccountKey> {
        ServiceAccountKey::from_json(&self.json, "test_service_account")
    }
}

impl fmt::Debug for TestServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

struct KeyPair {
    private_pem: String,
    public_pem: String,
}

fn generate_pair() -> Result<KeyPair> {
    let failed = |what: &str| Error::configuration("test_service_account", what.to_owned());
    let key = RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
        .map_err(|e| failed("RSA key generation failed").with_source(e))?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| failed("PKCS#8 encoding failed").with_source(e))?
        .to_string();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| failed("public key encoding failed").with_source(e))?;
    Ok(KeyPair {
        private_pem,
        public_pem,
    })
}

fn assemble(client_email: &str, pair: &KeyPair) -> TestServiceAccount {
    let private_key_id: String = (0..40)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect();
    let project_id = client_email
        .split_once('@')
        .and_then(|(_, domain)| domain.split('.').next())
        .unwrap_or("sandbox-project")
        .to_owned();
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": private_key_id,
        "private_key": pair.private_pem,
        "client_email": client_email,
        "client_id": "100000000000000000000",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": GOOGLE_TOKEN_URI,
        "universe_domain": "googleapis.com",
    })
    .to_string();
    TestServiceAccount {
        client_email: client_email.to_owned(),
        private_key_id,
        json,
        public_key_pem: pair.public_pem.clone(),
    }
}

/// A service account named `client_email` with a fresh key id, on an RSA-2048 key generated once
/// per process and reused (generation takes a noticeable fraction of a second).
///
/// # Errors
/// [`Error::Configuration`] if the RNG or encoder fails.
pub fn test_service_account(client_email: &str) -> Result<TestServiceAccount> {
    static PAIR: OnceLock<KeyPair> = OnceLock::new();
    if let Some(pair) = PAIR.get() {
        return Ok(assemble(client_email, pair));
    }
    let pair = generate_pair()?;
    Ok(assemble(client_email, PAIR.get_or_init(|| pair)))
}

/// A service account on a freshly generated RSA-2048 key (not shared with any other account).
///
/// # Errors
/// [`Error::Configuration`] if the RNG or encoder fails.
pub fn generate_service_account(client_email: &str) -> Result<TestServiceAccount> {
    Ok(assemble(client_email, &generate_pair()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_and_debug_hides_it() {
        let sa = test_service_account("robot@demo-project.iam.gserviceaccount.com").unwrap();
        let key = sa.key().unwrap();
        assert_eq!(key.client_email(), sa.client_email());
        assert_eq!(key.private_key_id(), sa.private_key_id());
        assert_eq!(key.project_id(), Some("demo-project"));
        assert!(sa.json().contains("BEGIN PRIVATE KEY"));
        let dbg = format!("{sa:?} {key:?}");
        assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
        assert!(!dbg.contains("MII"), "{dbg}");
        let other = test_service_account("other@demo-project.iam.gserviceaccount.com").unwrap();
        assert_ne!(other.private_key_id(), sa.private_key_id());
        assert_eq!(other.public_key_pem(), sa.public_key_pem());
    }
}
