//! [`TraceParent`]: a W3C Trace Context `traceparent` value.
//!
//! Hand-written rather than taken from `opentelemetry`'s propagator: that one needs the SDK and a
//! carrier map, returns an empty context instead of saying what was wrong, and would make every
//! store depend on OpenTelemetry just to check four fixed-width hex fields. This type is the
//! check; feature `opentelemetry` converts it to and from OpenTelemetry's `SpanContext`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The name of the header and of the message attribute that carries a [`TraceParent`].
pub const TRACEPARENT: &str = "traceparent";

/// A W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`): a trace id, the id of the span
/// that recorded it, and the trace flags (bit 0: sampled).
///
/// Parsing follows the W3C Trace Context rules: lowercase hex, no all-zero ids, version `ff`
/// refused, a later version accepted by its first four fields. It is always written back as
/// version `00`.
///
/// ```
/// use integrations_core::telemetry::TraceParent;
///
/// let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// assert!(tp.sampled());
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// let err = "00-00000000000000000000000000000000-00f067aa0ba902b7-01".parse::<TraceParent>().unwrap_err();
/// assert_eq!(err.field(), Some("traceparent"));
/// # Ok::<(), integrations_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// A traceparent from its parts; `None` when an id is all zeros (invalid in W3C).
    pub fn new(trace_id: [u8; 16], parent_id: [u8; 8], flags: u8) -> Option<Self> {
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }
    /// The id of the span that recorded this traceparent.
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }
    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }
    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// Parses `raw`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `traceparent`, saying which part is malformed.
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid_input(super::TRACEPARENT, why.to_owned());
        let s = raw.trim_matches([' ', '\t']);
        if !s.is_ascii() {
            return Err(bad("must be ASCII"));
        }
        let version = s.get(..2).ok_or_else(|| bad("is too short"))?;
        let version =
            hex_byte(version).ok_or_else(|| bad("version is not two lowercase hex digits"))?;
        if version == 0xff {
            return Err(bad("version ff is invalid"));
        }
        match (version, s.len()) {
            (0, 55) => {}
            (0, _) => return Err(bad("version 00 must be exactly 55 characters")),
            (_, n) if n < 55 => return Err(bad("is too short")),
            (_, 55) => {}
            (_, _) if s.as_bytes()[55] == b'-' => {}
            _ => return Err(bad("has trailing data not separated by `-`")),
        }
        let b = s.as_bytes();
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(bad("fields must be separated by `-`"));
        }
        let mut trace_id = [0u8; 16];
        for (i, out) in trace_id.iter_mut().enumerate() {
            *out = hex_byte(&s[3 + 2 * i..5 + 2 * i])
                .ok_or_else(|| bad("trace id is not 32 lowercase hex digits"))?;
        }
        let mut parent_id = [0u8; 8];
        for (i, out) in parent_id.iter_mut().enumerate() {
            *out = hex_byte(&s[36 + 2 * i..38 + 2 * i])
                .ok_or_else(|| bad("parent id is not 16 lowercase hex digits"))?;
        }
        let flags =
            hex_byte(&s[53..55]).ok_or_else(|| bad("flags are not two lowercase hex digits"))?;
        if trace_id == [0; 16] {
            return Err(bad("trace id is all zeros"));
        }
        if parent_id == [0; 8] {
            return Err(bad("parent id is all zeros"));
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Parses `raw` from `source` (a job, a message): a malformed value is dropped with a warning
    /// naming `source` and what was wrong (never the value itself), for places where a bad trace
    /// context must not fail the work it came with.
    pub fn parse_or_warn(raw: &str, source: &'static str) -> Option<Self> {
        match TraceParent::parse(raw) {
            Ok(tp) => Some(tp),
            Err(e) => {
                tracing::warn!(
                    source,
                    len = raw.len(),
                    error = %e,
                    "malformed traceparent dropped"
                );
                None
            }
        }
    }
}

/// Two lowercase hex digits.
fn hex_byte(s: &str) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match s.as_bytes() {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

impl FromStr for TraceParent {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TraceParent::parse(s)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        for b in self.trace_id {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in self.parent_id {
            write!(f, "{b:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_and_reads_the_parts() {
        let tp = TraceParent::parse(OK).unwrap();
        assert_eq!(tp.to_string(), OK);
        assert_eq!(tp.trace_id()[0], 0x4b);
        assert_eq!(tp.parent_id()[7], 0xb7);
        assert!(tp.sampled());
        let unsampled = TraceParent::parse(&OK.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
        assert_eq!(TraceParent::parse(&format!(" {OK}\t")).unwrap(), tp);
        assert_eq!(TraceParent::new(tp.trace_id(), tp.parent_id(), 1), Some(tp));
        assert_eq!(TraceParent::new([0; 16], [1; 8], 1), None);
        assert_eq!(TraceParent::new([1; 16], [0; 8], 1), None);
    }

    #[test]
    fn later_versions_are_read_by_their_first_fields() {
        let v1 = OK.replacen("00", "01", 1);
        assert_eq!(TraceParent::parse(&v1).unwrap().to_string(), OK);
        let longer = format!("{v1}-whatever");
        assert_eq!(TraceParent::parse(&longer).unwrap().to_string(), OK);
        assert!(TraceParent::parse(&format!("{v1}x")).is_err());
    }

    #[test]
    fn malformed_values_say_what_is_wrong() {
        let cases = [
            ("", "too short"),
            ("0", "too short"),
            (&*OK.replacen("00", "ff", 1), "version ff"),
            (&*OK.replacen("00", "0g", 1), "version"),
            (&*format!("{OK}-01"), "exactly 55"),
            (&*OK.replace("4bf9", "4BF9"), "trace id"),
            (&*OK.replace("00f0", "00fz"), "parent id"),
            (&*OK.replace("-01", "-1x"), "flags"),
            (&*OK.replace('-', "_"), "separated"),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "trace id is all zeros",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "parent id is all zeros",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é",
                "ASCII",
            ),
        ];
        for (raw, why) in cases {
            let e = TraceParent::parse(raw).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{raw}");
            assert_eq!(e.field(), Some("traceparent"), "{raw}");
            assert!(e.to_string().contains(why), "{raw}: {e}");
        }
    }

    #[test]
    fn a_malformed_value_is_dropped_not_echoed() {
        let capture = integrations_testkit::TracingCapture::start();
        assert_eq!(
            TraceParent::parse_or_warn(OK, "test"),
            TraceParent::parse(OK).ok()
        );
        assert!(capture.events().is_empty(), "{:?}", capture.lines());
        assert_eq!(TraceParent::parse_or_warn("00-sk_live_junk", "job"), None);
        let lines = capture.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("malformed traceparent dropped"),
            "{lines:?}"
        );
        assert!(lines[0].contains("source=job"), "{lines:?}");
        assert!(!lines[0].contains("sk_live_junk"), "{lines:?}");
    }
}
