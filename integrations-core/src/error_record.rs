//! [`ErrorRecord`]: a failure as stored with a dead letter or a saga step.

use std::fmt;

use crate::{Error, ErrorKind};

/// A failure as stored: enough to triage a dead letter without the original [`Error`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorRecord {
    /// Kind of the error.
    #[serde(with = "kind_name")]
    pub kind: ErrorKind,
    /// Message.
    pub message: String,
    /// Provider that raised it (`"sendgrid"`), if any.
    pub provider: Option<String>,
    /// The provider's own code (`"card_declined"`), if any.
    pub code: Option<String>,
    /// For a decline, the issuer's reason (`"insufficient_funds"`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    /// The provider's request id, if any.
    pub request_id: Option<String>,
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// Whether the error was retryable.
    pub retryable: bool,
    /// Whether the provider may have acted although the call failed
    /// ([`Error::may_have_acted`]: a timeout, a `5xx` after sending) — `None` in records
    /// written before this was kept; see [`ErrorRecord::may_have_acted`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_have_acted: Option<bool>,
}

impl ErrorRecord {
    /// Whether the failed call may have acted: the recorded answer, or for older records one
    /// guessed from the kind (a timeout, unavailable or unclassified provider error may have).
    pub fn may_have_acted(&self) -> bool {
        self.may_have_acted.unwrap_or(matches!(
            self.kind,
            ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::Provider
        ))
    }
}

impl From<&Error> for ErrorRecord {
    fn from(e: &Error) -> Self {
        let (declined_code, decline_code) = match e {
            Error::Declined {
                code, decline_code, ..
            } => (code.clone(), decline_code.clone()),
            _ => (None, None),
        };
        ErrorRecord {
            kind: e.kind(),
            message: e.message().to_owned(),
            provider: e.provider_name().map(str::to_owned),
            code: e.code().map(str::to_owned).or(declined_code),
            decline_code,
            request_id: e.request_id().map(str::to_owned),
            status: e.status(),
            retryable: e.is_retryable(),
            may_have_acted: Some(e.may_have_acted()),
        }
    }
}

impl fmt::Display for ErrorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(p) = &self.provider {
            write!(f, " [provider {p}")?;
            if let Some(c) = &self.code {
                write!(f, ", code {c}")?;
            }
            f.write_str("]")?;
        } else if let Some(c) = &self.code {
            write!(f, " [code {c}]")?;
        }
        Ok(())
    }
}

/// The [`ErrorKind`] named `name` ([`ErrorKind::as_str`]).
pub fn parse_error_kind(name: &str) -> Option<ErrorKind> {
    ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
}

mod kind_name {
    use crate::ErrorKind;

    pub(super) fn serialize<S: serde::Serializer>(k: &ErrorKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(k.as_str())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<ErrorKind, D::Error> {
        let name: String = serde::Deserialize::deserialize(d)?;
        super::parse_error_kind(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error kind `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_record_keeps_kind_provider_code_and_round_trips() {
        let e = Error::declined(
            Some("card_declined".into()),
            Some("expired_card".into()),
            "no",
        )
        .with_provider("stripe")
        .with_request_id("req_1")
        .with_status(402);
        let r = ErrorRecord::from(&e);
        assert_eq!(r.kind, ErrorKind::Declined);
        assert_eq!(r.provider.as_deref(), Some("stripe"));
        assert_eq!(r.code.as_deref(), Some("card_declined"));
        assert_eq!(r.decline_code.as_deref(), Some("expired_card"));
        assert_eq!(r.request_id.as_deref(), Some("req_1"));
        assert_eq!(r.status, Some(402));
        assert!(!r.retryable);
        assert_eq!(r.may_have_acted, Some(false));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"kind\":\"declined\""), "{json}");
        assert_eq!(serde_json::from_str::<ErrorRecord>(&json).unwrap(), r);
        assert!(
            serde_json::from_str::<ErrorRecord>(&json.replace("declined\"", "nope\"")).is_err()
        );
        assert_eq!(
            r.to_string(),
            "declined: no [provider stripe, code card_declined]"
        );
    }

    #[test]
    fn may_have_acted_is_recorded_and_guessed_for_old_records() {
        let timeout = ErrorRecord::from(&Error::timeout("no answer"));
        assert_eq!(timeout.may_have_acted, Some(true));
        let refused = ErrorRecord::from(&Error::unavailable("refused").not_processed());
        assert!(!refused.may_have_acted());
        let json = serde_json::to_string(&refused).unwrap();
        assert_eq!(serde_json::from_str::<ErrorRecord>(&json).unwrap(), refused);
        // A record stored before the field existed.
        let old: ErrorRecord = serde_json::from_str(
            r#"{"kind":"timeout","message":"m","provider":null,"code":null,"request_id":null,"status":null,"retryable":true}"#,
        )
        .unwrap();
        assert_eq!(old.may_have_acted, None);
        assert!(old.may_have_acted());
    }
}
