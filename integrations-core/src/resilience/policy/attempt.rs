//! One attempt of a [`Policy`] call: the attempt's future, cut off at the attempt timeout or
//! the overall deadline, and how it ended. A child of `policy` (it reads the policy's private
//! settings); split out so that each file holds one part of the call.

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::{Attempt, Policy};
use crate::error::{Error, Result};
use crate::telemetry;

/// How one attempt ended. The errors are boxed, on the error path only: an [`Error`] is ~80
/// bytes, and a success carried through the attempt's and the call's futures as a `Result<T>`
/// of that size was copied at each step, and each copy stalled on store forwarding (the
/// policy's hottest instructions in `perf annotate`).
pub(super) enum AttemptEnd<T> {
    Ok(T),
    Failed(Box<Error>),
    /// The overall deadline passed during the attempt.
    Deadline(Box<Error>),
}

impl<T> AttemptEnd<T> {
    #[inline]
    pub(super) fn of(result: Result<T>) -> Self {
        match result {
            Ok(v) => AttemptEnd::Ok(v),
            Err(e) => AttemptEnd::Failed(Box::new(e)),
        }
    }
}

impl Policy {
    /// One attempt, cut off at the attempt timeout (counted from `now`, or from the end of the
    /// attempt's first poll when no reading was taken) or the overall deadline, whichever is
    /// first. In a span of its own if `spans`.
    // The attempt's number and operation come apart, not as an `Attempt`: the future would
    // copy that struct as whole words, over its `u32` just stored (a store-forwarding stall,
    // ~12 % of the policy's own time in `perf annotate`).
    #[allow(clippy::manual_async_fn)]
    pub(super) fn attempt<T, F, Fut>(
        &self,
        number: u32,
        operation: &'static str,
        now: Option<Instant>,
        deadline: Option<Instant>,
        f: &mut F,
        spans: bool,
    ) -> impl Future<Output = AttemptEnd<T>>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        async move {
            let inner = &*self.inner;
            let attempt = Attempt { number, operation };
            let span = spans.then(|| telemetry::attempt_span(attempt.number));
            if inner.attempt_timeout.is_none() && deadline.is_none() {
                let result = match &span {
                    Some(span) => f(attempt).instrument(span.clone()).await,
                    None => f(attempt).await,
                };
                return AttemptEnd::of(telemetry::attempt_result(span.as_ref(), result));
            }
            // The timer is made only if the attempt does not finish on its first poll: one that
            // completes at once never touches the timer wheel or tokio's clock. It is boxed: a
            // `Sleep` is 112 bytes, which inline would grow every call's future (and what
            // `PolicyLayer` moves into its box) for the calls that never need it. The attempt's
            // span is entered around each poll by hand rather than by wrapping the future in
            // `Instrumented`: one layer less on the hot path.
            let cut_off = CutOff {
                call: std::pin::pin!(f(attempt)),
                span: span.as_ref(),
                timer: None,
                attempt_timeout: inner.attempt_timeout,
                now,
                deadline,
                by_deadline: false,
            };
            let by_deadline = match cut_off.await {
                CutOffEnd::Done(end) => return end,
                CutOffEnd::CutOff { by_deadline } => by_deadline,
            };
            telemetry::record_attempt_timeout(span.as_ref());
            inner.metrics.record_timeout();
            let provider = &*inner.provider;
            let operation = attempt.operation;
            if by_deadline {
                let total = inner.deadline.unwrap_or_default();
                tracing::warn!(
                    provider,
                    operation,
                    attempt = attempt.number,
                    deadline_ms = total.as_millis() as u64,
                    "overall deadline exceeded"
                );
                AttemptEnd::Deadline(Box::new(Error::timeout(format!(
                    "overall deadline of {total:?} exceeded"
                ))))
            } else {
                let t = inner.attempt_timeout.unwrap_or_default();
                tracing::warn!(
                    provider,
                    operation,
                    attempt = attempt.number,
                    timeout_ms = t.as_millis() as u64,
                    "attempt timed out"
                );
                AttemptEnd::Failed(Box::new(Error::timeout(format!(
                    "attempt timed out after {t:?}"
                ))))
            }
        }
    }
}

/// An attempt's future, cut off at the attempt timeout or the overall deadline (see
/// `Policy::attempt`). A future of its own rather than a `poll_fn` closure: its `poll` is
/// inlined into the attempt's, so a result ready on the first poll is not returned through
/// memory, and the timer's path stays out of line.
struct CutOff<'a, Fut> {
    call: Pin<&'a mut Fut>,
    span: Option<&'a Span>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    attempt_timeout: Option<Duration>,
    now: Option<Instant>,
    deadline: Option<Instant>,
    by_deadline: bool,
}

enum CutOffEnd<T> {
    Done(AttemptEnd<T>),
    /// The timer fired: the overall deadline's (`by_deadline`) or the attempt timeout's.
    CutOff {
        by_deadline: bool,
    },
}

impl<T, Fut: Future<Output = Result<T>>> Future for CutOff<'_, Fut> {
    type Output = CutOffEnd<T>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<CutOffEnd<T>> {
        let this = &mut *self;
        let polled = {
            let _in_span = this.span.map(Span::enter);
            this.call.as_mut().poll(cx)
        };
        if let Poll::Ready(result) = polled {
            return Poll::Ready(CutOffEnd::Done(AttemptEnd::of(telemetry::attempt_result(
                this.span, result,
            ))));
        }
        match poll_cut_off(
            &mut this.timer,
            &mut this.by_deadline,
            this.attempt_timeout,
            this.now,
            this.deadline,
            cx,
        ) {
            Poll::Ready(()) => Poll::Ready(CutOffEnd::CutOff {
                by_deadline: this.by_deadline,
            }),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Arms the attempt's timer on its first use (at the attempt timeout from `now`, or from this
/// moment when there is no reading, or at the overall deadline if that is sooner) and polls it:
/// `Ready` once the attempt is cut off; `by_deadline` tells which of the two cut it off.
#[cold]
#[inline(never)]
fn poll_cut_off(
    timer: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    by_deadline: &mut bool,
    attempt_timeout: Option<Duration>,
    now: Option<Instant>,
    deadline: Option<Instant>,
    cx: &mut std::task::Context<'_>,
) -> Poll<()> {
    if timer.is_none() {
        let own = attempt_timeout.and_then(|t| now.unwrap_or_else(Instant::now).checked_add(t));
        let cut_off = match (own, deadline) {
            (Some(a), Some(d)) if d <= a => Some(d),
            (Some(a), _) => Some(a),
            (None, d) => d,
        };
        *by_deadline = cut_off.is_some() && cut_off == deadline;
        // An attempt timeout beyond `Instant`'s range never fires.
        let Some(cut_off) = cut_off else {
            return Poll::Pending;
        };
        *timer = Some(Box::pin(tokio::time::sleep_until(cut_off)));
    }
    match timer.as_mut().map(|t| t.as_mut().poll(cx)) {
        Some(Poll::Ready(())) => Poll::Ready(()),
        _ => Poll::Pending,
    }
}
