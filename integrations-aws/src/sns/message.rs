//! Messages SNS POSTs to an HTTP(S) subscriber, the exact string SNS signs for each type, and a
//! signing helper so users can test their own handlers.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::{Error, Result, SignatureFailure};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

/// The `Type` of an inbound SNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum SnsMessageType {
    /// A published message.
    Notification,
    /// Sent when the endpoint is subscribed: confirm it to start receiving notifications.
    SubscriptionConfirmation,
    /// Sent after the endpoint is unsubscribed.
    UnsubscribeConfirmation,
}

/// `SignatureVersion`: `1` is SHA1withRSA, `2` is SHA256withRSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// SHA1withRSA (PKCS#1 v1.5).
    V1,
    /// SHA256withRSA (PKCS#1 v1.5); set a topic's `SignatureVersion` attribute to `2` to use it.
    V2,
}

impl SignatureVersion {
    /// `"1"` or `"2"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignatureVersion::V1 => "1",
            SignatureVersion::V2 => "2",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "1" => Some(SignatureVersion::V1),
            "2" => Some(SignatureVersion::V2),
            _ => None,
        }
    }
}

/// One message attribute as SNS delivers it (`{"Type":"String","Value":"…"}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnsMessageAttribute {
    /// `String`, `Number`, `Binary`, `String.Array`.
    #[serde(rename = "Type")]
    pub data_type: String,
    /// The value (base64 for `Binary`).
    #[serde(rename = "Value")]
    pub value: String,
}

/// An inbound SNS message, field names as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct SnsMessage {
    /// Notification or (un)subscribe confirmation.
    #[serde(rename = "Type")]
    pub kind: SnsMessageType,
    /// Unique per published message: use it as the dedup key (SNS delivers at least once).
    pub message_id: String,
    /// The topic.
    pub topic_arn: String,
    /// Subject (notifications published with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The body.
    pub message: String,
    /// When SNS published it (ISO 8601).
    pub timestamp: String,
    /// `"1"` or `"2"`.
    pub signature_version: String,
    /// Base64 signature over [`SnsMessage::string_to_sign`].
    pub signature: String,
    /// Where SNS's certificate is.
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    /// Confirmation token (confirmations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// URL that confirms the subscription (confirmations).
    #[serde(
        default,
        rename = "SubscribeURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscribe_url: Option<String>,
    /// Fields SNS sends but never signs (`UnsubscribeURL`, `MessageAttributes`): anyone who can
    /// reach the endpoint can change them on a validly signed message, so they are kept apart.
    #[serde(flatten)]
    pub unverified: SnsUnverified,
}

/// The fields of an inbound SNS message that are **not** part of the string SNS signs, for any
/// message type (see [`SnsMessage::string_to_sign`]): a verified message's signature says nothing
/// about them. Do not base a decision on them (publish what you need to trust inside `Message`);
/// an `UnsubscribeURL` may point anywhere — unsubscribe through the API instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct SnsUnverified {
    /// URL that unsubscribes (notifications). **Unverified.**
    #[serde(
        default,
        rename = "UnsubscribeURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub unsubscribe_url: Option<String>,
    /// Message attributes (notifications). **Unverified.**
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub message_attributes: BTreeMap<String, SnsMessageAttribute>,
}

impl SnsMessage {
    /// Parses a message body (no verification: use
    /// [`SnsMessageVerifier`](crate::sns::SnsMessageVerifier)).
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] with [`SignatureFailure::MalformedHeader`] when the body is not
    /// an SNS message.
    pub fn parse(body: &[u8]) -> Result<Self> {
        serde_json::from_slice(body).map_err(|e| {
            Error::invalid_signature(SignatureFailure::MalformedHeader(format!(
                "not an SNS message: {e}"
            )))
            .with_provider(crate::Service::Sns.provider_name())
        })
    }

    /// Drops the fields SNS does not sign for this message's type, so a verified message holds
    /// only signed values outside [`SnsMessage::unverified`]: a notification's `SubscribeURL`
    /// and `Token`, a confirmation's `Subject` (none is sent by SNS; a value there was added by
    /// someone else).
    pub(crate) fn drop_unsigned(&mut self) {
        match self.kind {
            SnsMessageType::Notification => {
                self.subscribe_url = None;
                self.token = None;
            }
            SnsMessageType::SubscriptionConfirmation | SnsMessageType::UnsubscribeConfirmation => {
                self.subject = None;
            }
        }
    }

    /// The exact bytes SNS signs: `"Key\nValue\n"` for each key, in this order —
    /// Notification: `Message`, `MessageId`, `Subject` (only if present), `Timestamp`, `TopicArn`,
    /// `Type`; (Un)SubscriptionConfirmation: `Message`, `MessageId`, `SubscribeURL`, `Timestamp`,
    /// `Token`, `TopicArn`, `Type`.
    ///
    /// # Errors
    /// [`SignatureFailure::MalformedHeader`] when a confirmation lacks `SubscribeURL` or `Token`.
    pub fn string_to_sign(&self) -> Result<String, SignatureFailure> {
        let kind = match self.kind {
            SnsMessageType::Notification => "Notification",
            SnsMessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            SnsMessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        };
        let mut out = String::with_capacity(self.message.len() + 256);
        let mut add = |k: &str, v: &str| {
            out.push_str(k);
            out.push('\n');
            out.push_str(v);
            out.push('\n');
        };
        add("Message", &self.message);
        add("MessageId", &self.message_id);
        match self.kind {
            SnsMessageType::Notification => {
                if let Some(s) = &self.subject {
                    add("Subject", s);
                }
                add("Timestamp", &self.timestamp);
            }
            SnsMessageType::SubscriptionConfirmation | SnsMessageType::UnsubscribeConfirmation => {
                let missing =
                    |f: &str| SignatureFailure::MalformedHeader(format!("{kind} without {f}"));
                add(
                    "SubscribeURL",
                    self.subscribe_url
                        .as_deref()
                        .ok_or_else(|| missing("SubscribeURL"))?,
                );
                add("Timestamp", &self.timestamp);
                add(
                    "Token",
                    self.token.as_deref().ok_or_else(|| missing("Token"))?,
                );
            }
        }
        add("TopicArn", &self.topic_arn);
        add("Type", kind);
        Ok(out)
    }

    /// Signs the message as SNS would with `SignatureVersion` 2 (SHA256withRSA), setting
    /// `SignatureVersion` and `Signature` (for testing handlers; pair it with a fetcher that
    /// returns the key's certificate).
    ///
    /// [`SignatureVersion::V1`] is refused: `ring` verifies SHA1withRSA signatures but does not
    /// make them. A handler is exercised the same way by either version, and the verifier's
    /// version 1 path is tested in this crate.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] when the message is malformed, `version` is
    /// [`SignatureVersion::V1`] or the key cannot sign.
    pub fn sign(&mut self, key: &SnsSigningKey, version: SignatureVersion) -> Result<()> {
        let text = self.string_to_sign().map_err(Error::invalid_signature)?;
        if version == SignatureVersion::V1 {
            return Err(Error::invalid_signature(SignatureFailure::InvalidKey(
                "signing with SignatureVersion 1 (SHA1withRSA) is not offered: sign with version 2"
                    .into(),
            ))
            .with_provider(crate::Service::Sns.provider_name()));
        }
        let mut sig = vec![0; key.0.public().modulus_len()];
        key.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                text.as_bytes(),
                &mut sig,
            )
            .map_err(|_| {
                Error::invalid_signature(SignatureFailure::InvalidKey(
                    "the RSA key could not sign".into(),
                ))
            })?;
        self.signature_version = version.as_str().to_owned();
        self.signature = STANDARD.encode(sig);
        Ok(())
    }
}

/// An RSA private key that signs test messages as SNS would ([`SnsMessage::sign`]).
/// `Debug` shows the key size only.
pub struct SnsSigningKey(RsaKeyPair);

impl SnsSigningKey {
    /// From a PKCS#8 `PrivateKeyInfo` (DER), the `-----BEGIN PRIVATE KEY-----` body.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] naming why `ring` rejected the key (not RSA, under 2048 bits…).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        RsaKeyPair::from_pkcs8(der)
            .map(SnsSigningKey)
            .map_err(key_rejected)
    }
    /// From a PKCS#1 `RSAPrivateKey` (DER), the `-----BEGIN RSA PRIVATE KEY-----` body.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] naming why `ring` rejected the key.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self> {
        RsaKeyPair::from_der(der)
            .map(SnsSigningKey)
            .map_err(key_rejected)
    }
}

fn key_rejected(e: ring::error::KeyRejected) -> Error {
    Error::invalid_signature(SignatureFailure::InvalidKey(format!(
        "SNS signing key rejected: {e}"
    )))
    .with_provider(crate::Service::Sns.provider_name())
}

impl std::fmt::Debug for SnsSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsSigningKey")
            .field("bits", &(self.0.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(subject: Option<&str>) -> SnsMessage {
        SnsMessage {
            kind: SnsMessageType::Notification,
            message_id: "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324".into(),
            topic_arn: "arn:aws:sns:us-west-2:123456789012:MyTopic".into(),
            subject: subject.map(str::to_owned),
            message: "Hello world!".into(),
            timestamp: "2012-05-02T00:54:06.655Z".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem".into(),
            token: None,
            subscribe_url: None,
            unverified: SnsUnverified {
                unsubscribe_url: Some("https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe".into()),
                message_attributes: BTreeMap::new(),
            },
        }
    }

    #[test]
    fn notification_string_to_sign() {
        assert_eq!(
            notification(Some("My First Message"))
                .string_to_sign()
                .unwrap(),
            "Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             Subject\nMy First Message\nTimestamp\n2012-05-02T00:54:06.655Z\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n"
        );
        let no_subject = notification(None).string_to_sign().unwrap();
        assert!(!no_subject.contains("Subject"));
        assert!(!no_subject.contains("Unsubscribe"));
    }

    #[test]
    fn confirmation_string_to_sign_and_wire_names() {
        let body = br#"{
  "Type" : "SubscriptionConfirmation",
  "MessageId" : "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
  "Token" : "2336412f37",
  "TopicArn" : "arn:aws:sns:us-west-2:123456789012:MyTopic",
  "Message" : "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.",
  "SubscribeURL" : "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37",
  "Timestamp" : "2012-04-26T20:45:04.751Z",
  "SignatureVersion" : "1",
  "Signature" : "EXAMPLEpH+==",
  "SigningCertURL" : "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
}"#;
        let m = SnsMessage::parse(body).unwrap();
        assert_eq!(m.kind, SnsMessageType::SubscriptionConfirmation);
        let s = m.string_to_sign().unwrap();
        assert!(s.starts_with("Message\nYou have chosen"), "{s}");
        assert!(s.contains(
            "\nSubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&"
        ));
        assert!(s.ends_with("Token\n2336412f37\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nSubscriptionConfirmation\n"), "{s}");
        let mut bad = m.clone();
        bad.token = None;
        assert!(bad.string_to_sign().is_err());
        assert!(SnsMessage::parse(b"{}").is_err());
    }
}
