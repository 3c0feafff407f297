//! `Debug` of job payloads and saga data without their content.

use std::fmt;

/// Prints a JSON value's shape without its content.
pub(crate) struct Redacted<'a>(pub(crate) &'a serde_json::Value);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            serde_json::Value::Null => f.write_str("null"),
            serde_json::Value::Object(m) => write!(f, "<redacted object, {} keys>", m.len()),
            serde_json::Value::Array(a) => write!(f, "<redacted array, {} items>", a.len()),
            _ => f.write_str("<redacted>"),
        }
    }
}
