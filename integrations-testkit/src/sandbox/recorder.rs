//! A bounded log of the requests a sandbox served, with totals that count every request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method};

use super::Fault;

/// Request headers never kept in a record (credentials).
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "x-api-key",
    "cookie",
    "x-amz-security-token",
];

/// One request as the sandbox saw it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// When it arrived.
    pub at: SystemTime,
    /// Method.
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The operation the service named it ([`SandboxService::operation`](super::SandboxService::operation)).
    pub operation: String,
    /// Request headers, credentials removed.
    pub headers: HeaderMap,
    /// Status answered; for [`Fault::Hang`] and [`Fault::DropAfterAccept`] the status that was
    /// *not* delivered (`0` for a hang).
    pub status: u16,
    /// Response headers (also when the answer was dropped).
    pub response_headers: HeaderMap,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    /// A request header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A response header as text.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    pub(crate) fn strip_secrets(headers: &mut HeaderMap) {
        for h in SECRET_HEADERS {
            headers.remove(h);
        }
    }
}

/// Totals since the server started (or was [reset](RequestLog::reset)); never trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestTotals {
    /// Every request received.
    pub requests: u64,
    /// Requests that got a fault.
    pub faulted: u64,
    /// Requests per operation.
    pub by_operation: BTreeMap<String, u64>,
    /// Requests per status answered (`0` for a hang).
    pub by_status: BTreeMap<u16, u64>,
}

/// `headers` with every value in an allocation of its own.
///
/// hyper parses a request's header values without copying them: each `HeaderValue` is a slice
/// of the connection's read buffer (8 KiB, grown adaptively towards ~400 KiB on a connection
/// whose reads fill it), and a slice keeps its whole buffer alive. A log that kept the
/// request's own values kept one such buffer per retained request, so its memory was the
/// retention times the buffers' size, not the headers' (measured on the reference service:
/// the largest part of its heap that grew with the run). A copy is the headers' ~1 KB.
fn detached(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        out.append(name.clone(), copy);
    }
    out
}

/// The default number of requests a [`RequestLog`] keeps.
pub const DEFAULT_RETENTION: usize = 10_000;

/// The last `retention` requests in full, and [`RequestTotals`] over all of them: a long run
/// against a sandbox keeps its memory bounded, and totals stay exact.
#[derive(Debug)]
pub struct RequestLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug)]
struct LogInner {
    retention: usize,
    recent: VecDeque<RecordedRequest>,
    totals: RequestTotals,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self::with_retention(DEFAULT_RETENTION)
    }
}

impl RequestLog {
    /// Keeps the last `retention` requests (0 keeps none, only totals).
    pub fn with_retention(retention: usize) -> Self {
        RequestLog {
            inner: Mutex::new(LogInner {
                retention,
                recent: VecDeque::new(),
                totals: RequestTotals::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one request.
    pub fn record(&self, request: RecordedRequest) {
        // Copied before the lock, both ways: a service may answer with a value it took from
        // the request.
        let request = RecordedRequest {
            headers: detached(&request.headers),
            response_headers: detached(&request.response_headers),
            ..request
        };
        let mut g = self.lock();
        let t = &mut g.totals;
        t.requests += 1;
        t.faulted += u64::from(request.fault.is_some());
        *t.by_status.entry(request.status).or_default() += 1;
        if let Some(n) = t.by_operation.get_mut(&request.operation) {
            *n += 1;
        } else {
            t.by_operation.insert(request.operation.clone(), 1);
        }
        if g.retention == 0 {
            return;
        }
        while g.recent.len() >= g.retention {
            g.recent.pop_front();
        }
        g.recent.push_back(request);
    }

    /// The retained requests, oldest first.
    pub fn recent(&self) -> Vec<RecordedRequest> {
        self.lock().recent.iter().cloned().collect()
    }

    /// The totals.
    pub fn totals(&self) -> RequestTotals {
        self.lock().totals.clone()
    }

    /// Requests received.
    pub fn count(&self) -> u64 {
        self.lock().totals.requests
    }

    /// Forgets every request and total.
    pub fn reset(&self) {
        let mut g = self.lock();
        g.recent.clear();
        g.totals = RequestTotals::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: &str, status: u16) -> RecordedRequest {
        RecordedRequest {
            at: SystemTime::now(),
            method: Method::POST,
            path: "/x".into(),
            query: None,
            operation: op.into(),
            headers: HeaderMap::new(),
            status,
            response_headers: HeaderMap::new(),
            fault: None,
        }
    }

    #[test]
    fn keeps_the_last_n_and_counts_all() {
        let log = RequestLog::with_retention(3);
        for i in 0..10u16 {
            log.record(rec(if i % 2 == 0 { "a" } else { "b" }, 200 + i % 2));
        }
        let recent = log.recent();
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[2].status, 201);
        let t = log.totals();
        assert_eq!(t.requests, 10);
        assert_eq!(t.by_operation["a"], 5);
        assert_eq!(t.by_status[&201], 5);
        log.reset();
        assert_eq!(log.count(), 0);
        assert!(log.recent().is_empty());
    }

    #[test]
    fn a_kept_request_keeps_its_headers_not_the_buffer_they_were_read_from() {
        // As hyper hands a request over: the header value a slice of the connection's buffer.
        let buffer = bytes::Bytes::from(vec![b'k'; 64 * 1024]);
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_maybe_shared(buffer.slice(100..132)).unwrap();
        headers.insert("idempotency-key", value);
        let mut sensitive = HeaderValue::from_static("s");
        sensitive.set_sensitive(true);
        headers.append("x-note", sensitive);
        headers.append("x-note", HeaderValue::from_static("second"));
        // A service answering with a value it took from the request, as Stripe echoes the key.
        let mut response_headers = HeaderMap::new();
        let echoed = HeaderValue::from_maybe_shared(buffer.slice(100..132)).unwrap();
        response_headers.insert("idempotency-key", echoed);
        let log = RequestLog::with_retention(10);
        log.record(RecordedRequest {
            headers,
            response_headers,
            ..rec("a", 200)
        });
        let mut buffer = buffer;
        assert!(
            buffer.is_unique(),
            "the log holds none of the 64 KiB buffer the header was read from"
        );
        let kept = &log.recent()[0].headers;
        assert_eq!(kept["idempotency-key"], "k".repeat(32).as_str());
        let notes: Vec<_> = kept.get_all("x-note").iter().collect();
        assert_eq!(notes, ["s", "second"]);
        assert!(notes[0].is_sensitive() && !notes[1].is_sensitive());
        // The buffer is the caller's again: nothing else refers to it.
        assert_eq!(
            bytes::BytesMut::from(std::mem::take(&mut buffer)).len(),
            64 * 1024
        );
    }

    #[test]
    fn credentials_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer sk_live_secret".parse().unwrap());
        h.insert("x-amz-security-token", "tok".parse().unwrap());
        h.insert("idempotency-key", "k".parse().unwrap());
        RecordedRequest::strip_secrets(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.get("idempotency-key").is_some());
    }
}
