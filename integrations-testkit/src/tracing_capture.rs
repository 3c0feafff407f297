//! Capturing `tracing` events in tests, race-free under libtest's parallel threads.
//!
//! Why not `tracing::subscriber::set_default(my_collector)` in the test: tracing caches, per
//! callsite and for the whole process, whether any subscriber is interested in it. While a single
//! scoped subscriber is registered, a callsite first reached on *another* test thread (which has no
//! subscriber) is cached as "never", and from then on the event is skipped on every thread, the
//! capturing one included: the assertion fails one run in a few.
//!
//! Here one subscriber is installed as the global default the first time
//! a capture starts. It answers `Interest::sometimes()` for every callsite, so no callsite is ever
//! cached as "never" while it is installed and tracing asks it per event; it is enabled only on a
//! thread where a [`TracingCapture`] is active and hands the event to that capture. A binary that
//! installs another global subscriber cannot use this (starting a capture panics then).

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// One captured event: its level, target, message and every field as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedEvent {
    /// The event's level.
    pub level: Level,
    /// The event's target (`target: "…"` or the module path).
    pub target: String,
    /// The `message` field (the format string's output), empty when the event has none.
    pub message: String,
    /// The other fields in their order: strings as they are, everything else as `Debug`.
    pub fields: Vec<(String, String)>,
}

impl CapturedEvent {
    /// The value of field `name` (not the message), as text.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for CapturedEvent {
    /// `LEVEL target: message k=v k=v`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.level, self.target, self.message)?;
        for (k, v) in &self.fields {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// One captured span: its name and every field recorded on it, at creation or later through
/// `Span::record` (a field recorded twice appears twice, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedSpan {
    /// The span's name (`integration.call`).
    pub name: String,
    /// The span's parent, as an index into [`TracingCapture::spans`], if it was captured too.
    pub parent: Option<usize>,
    /// The fields with a value, in the order they were recorded: strings as they are,
    /// everything else as `Debug`.
    pub fields: Vec<(String, String)>,
}

impl CapturedSpan {
    /// The last value recorded for field `name`, as text.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Captured {
    events: Vec<CapturedEvent>,
    spans: Vec<CapturedSpan>,
    /// Span id → index in `spans`.
    ids: std::collections::HashMap<u64, usize>,
}

type Sink = Arc<Mutex<Captured>>;

thread_local! {
    /// The captures active on this thread, innermost last; every one gets every event.
    static ACTIVE: RefCell<Vec<(u64, Sink)>> = const { RefCell::new(Vec::new()) };
    /// The spans entered on this thread, innermost last (for `Span::current()`).
    static ENTERED: RefCell<Vec<Id>> = const { RefCell::new(Vec::new()) };
}

/// Live spans: id → metadata (for `Span::current()`) and the number of handles.
type Live = std::collections::HashMap<u64, (&'static Metadata<'static>, usize)>;

/// The live spans; a span is removed when its last handle closes.
fn span_metadata() -> std::sync::MutexGuard<'static, Live> {
    static META: OnceLock<Mutex<Live>> = OnceLock::new();
    META.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

static NEXT_SPAN: AtomicU64 = AtomicU64::new(1);

fn lock(sink: &Sink) -> std::sync::MutexGuard<'_, Captured> {
    sink.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

static NEXT_CAPTURE: AtomicU64 = AtomicU64::new(1);

/// Captures the `tracing` events emitted, and the spans created, on the current thread while it
/// lives. `Span::current()` works on that thread (the span entered last).
///
/// Events of tasks that run on other threads (a multi-thread runtime's workers, spawned threads)
/// are not captured: use a current-thread runtime (`#[tokio::test]`'s default).
///
/// ```
/// use integrations_testkit::TracingCapture;
///
/// let capture = TracingCapture::start();
/// tracing::info!(provider = "ses", "served");
/// let events = capture.events();
/// assert!(events.iter().any(|e| e.message == "served" && e.field("provider") == Some("ses")));
/// ```
pub struct TracingCapture {
    id: u64,
    sink: Sink,
    /// Bound to the thread whose events it captures.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl fmt::Debug for TracingCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = lock(&self.sink);
        f.debug_struct("TracingCapture")
            .field("events", &c.events.len())
            .field("spans", &c.spans.len())
            .finish()
    }
}

impl TracingCapture {
    /// Starts capturing this thread's events (every level), installing the capturing global
    /// subscriber on first use.
    ///
    /// # Panics
    ///
    /// If another global default subscriber is installed in this test binary.
    pub fn start() -> Self {
        install();
        let id = NEXT_CAPTURE.fetch_add(1, Ordering::Relaxed);
        let sink = Sink::default();
        ACTIVE.with(|a| a.borrow_mut().push((id, sink.clone())));
        TracingCapture {
            id,
            sink,
            _not_send: std::marker::PhantomData,
        }
    }

    /// The events captured so far, oldest first.
    pub fn events(&self) -> Vec<CapturedEvent> {
        lock(&self.sink).events.clone()
    }

    /// The spans created so far, oldest first, with every field recorded on them.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        lock(&self.sink).spans.clone()
    }

    /// The events captured so far, one [`Display`](CapturedEvent#impl-Display-for-CapturedEvent)
    /// line each: for assertions on text and for failure messages.
    pub fn lines(&self) -> Vec<String> {
        self.events().iter().map(ToString::to_string).collect()
    }
}

impl Drop for TracingCapture {
    fn drop(&mut self) {
        let _ = ACTIVE.try_with(|a| a.borrow_mut().retain(|(id, _)| *id != self.id));
    }
}

/// Runs `f` capturing the events it emits on this thread; returns its result and the events.
pub fn capture_tracing<R>(f: impl FnOnce() -> R) -> (R, Vec<CapturedEvent>) {
    let capture = TracingCapture::start();
    let r = f();
    (r, capture.events())
}

fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(CaptureRouter).expect(
            "TracingCapture installs the global default subscriber; this test binary already has one",
        );
    });
    // Installing rebuilt every registered callsite's interest; a callsite whose first
    // registration on another thread straddled the installation may still have stored "never":
    // recompute (cheap, and the router answers "sometimes" to all of them).
    tracing::callsite::rebuild_interest_cache();
}

/// The global subscriber: interested in every callsite, enabled where a capture is active.
struct CaptureRouter;

fn active() -> bool {
    ACTIVE.try_with(|a| !a.borrow().is_empty()).unwrap_or(false)
}

impl Subscriber for CaptureRouter {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        active()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = NEXT_SPAN.fetch_add(1, Ordering::Relaxed);
        span_metadata().insert(id, (attrs.metadata(), 1));
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let parent = if attrs.is_root() {
            None
        } else if let Some(p) = attrs.parent() {
            Some(p.into_u64())
        } else {
            ENTERED
                .try_with(|e| e.borrow().last().map(Id::into_u64))
                .ok()
                .flatten()
        };
        let _ = ACTIVE.try_with(|a| {
            for (_, sink) in a.borrow().iter() {
                let mut c = lock(sink);
                let span = CapturedSpan {
                    name: attrs.metadata().name().to_owned(),
                    parent: parent.and_then(|p| c.ids.get(&p).copied()),
                    fields: fields.fields.clone(),
                };
                let index = c.spans.len();
                c.spans.push(span);
                c.ids.insert(id, index);
            }
        });
        Id::from_u64(id)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        let _ = ACTIVE.try_with(|a| {
            for (_, sink) in a.borrow().iter() {
                let mut c = lock(sink);
                if let Some(&i) = c.ids.get(&id.into_u64()) {
                    c.spans[i].fields.extend(fields.fields.iter().cloned());
                }
            }
        });
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn current_span(&self) -> tracing_core::span::Current {
        let current = ENTERED
            .try_with(|e| e.borrow().last().cloned())
            .ok()
            .flatten();
        match current {
            Some(id) => match span_metadata().get(&id.into_u64()) {
                Some((meta, _)) => tracing_core::span::Current::new(id, meta),
                None => tracing_core::span::Current::none(),
            },
            None => tracing_core::span::Current::none(),
        }
    }
    fn clone_span(&self, id: &Id) -> Id {
        if let Some((_, handles)) = span_metadata().get_mut(&id.into_u64()) {
            *handles += 1;
        }
        id.clone()
    }
    fn try_close(&self, id: Id) -> bool {
        let mut live = span_metadata();
        let key = id.into_u64();
        let closed = match live.get_mut(&key) {
            Some((_, handles)) if *handles > 1 => {
                *handles -= 1;
                false
            }
            Some(_) => true,
            None => false,
        };
        if closed {
            live.remove(&key);
        }
        closed
    }
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let captured = CapturedEvent {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message: fields.message,
            fields: fields.fields,
        };
        let _ = ACTIVE.try_with(|a| {
            for (_, sink) in a.borrow().iter() {
                lock(sink).events.push(captured.clone());
            }
        });
    }
    fn enter(&self, id: &Id) {
        let _ = ENTERED.try_with(|e| e.borrow_mut().push(id.clone()));
    }
    fn exit(&self, id: &Id) {
        let _ = ENTERED.try_with(|e| {
            let mut e = e.borrow_mut();
            if let Some(i) = e.iter().rposition(|x| x == id) {
                e.remove(i);
            }
        });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.fields.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_this_threads_events_with_their_fields() {
        let ((), events) = capture_tracing(|| {
            tracing::warn!(target: "t", provider = "ses", position = 1_u64, "failing over");
            tracing::debug!(order = ?("a", 2), "detail {}", 7);
        });
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].level, Level::WARN);
        assert_eq!(events[0].target, "t");
        assert_eq!(events[0].message, "failing over");
        assert_eq!(events[0].field("provider"), Some("ses"));
        assert_eq!(events[0].field("position"), Some("1"));
        assert_eq!(
            events[0].to_string(),
            "WARN t: failing over provider=ses position=1"
        );
        assert_eq!(events[1].message, "detail 7");
        assert_eq!(events[1].field("order"), Some("(\"a\", 2)"));
    }

    #[test]
    fn other_threads_and_ended_captures_see_nothing() {
        let capture = TracingCapture::start();
        std::thread::spawn(|| tracing::info!("elsewhere"))
            .join()
            .unwrap();
        tracing::info!("here");
        let inner = TracingCapture::start();
        tracing::info!("both");
        drop(inner);
        drop(capture);
        tracing::info!("after");
        let again = TracingCapture::start();
        assert!(again.events().is_empty());
    }

    #[test]
    fn captures_spans_their_parents_and_later_records() {
        let capture = TracingCapture::start();
        let outer = tracing::info_span!("outer", provider = "ses", status = tracing::field::Empty);
        let inner = outer.in_scope(|| {
            assert_eq!(tracing::Span::current().id(), outer.id(), "current span");
            tracing::debug_span!("inner", attempt = 2_u32)
        });
        outer.record("status", 202_u16);
        inner.in_scope(|| {
            tracing::Span::current().record("attempt", 3_u32);
        });
        drop(inner);
        assert!(tracing::Span::current().is_none(), "nothing entered now");
        let spans = capture.spans();
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(spans[0].name, "outer");
        assert_eq!(spans[0].parent, None);
        assert_eq!(spans[0].field("provider"), Some("ses"));
        assert_eq!(spans[0].field("status"), Some("202"));
        assert_eq!(spans[1].name, "inner");
        assert_eq!(spans[1].parent, Some(0));
        assert_eq!(spans[1].field("attempt"), Some("3"));
        assert_eq!(spans[1].fields.len(), 2, "both records kept");
    }

    #[test]
    fn nested_captures_both_receive() {
        let outer = TracingCapture::start();
        tracing::info!("one");
        let inner = TracingCapture::start();
        tracing::info!("two");
        assert_eq!(inner.lines().len(), 1);
        drop(inner);
        let messages: Vec<String> = outer.events().into_iter().map(|e| e.message).collect();
        assert_eq!(messages, ["one", "two"]);
    }

    /// The race this module exists for: a callsite first reached on a thread without a capture,
    /// while another thread captures, must still be captured afterwards.
    #[test]
    fn a_callsite_first_reached_elsewhere_is_still_captured() {
        fn shared() {
            tracing::info!(target: "shared", "event from shared code");
        }
        for _ in 0..20 {
            let capture = TracingCapture::start();
            std::thread::spawn(shared).join().unwrap();
            shared();
            assert_eq!(capture.events().len(), 1, "{:?}", capture.lines());
        }
    }
}
