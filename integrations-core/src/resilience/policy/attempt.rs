//! One attempt of a [`Policy`] call: the attempt's future, cut off at the attempt timeout or
//! the overall deadline, and how it ended. A child of `policy` (it reads the policy's private
//! settings); split out so that each file holds one part of the call.
//!
//! The attempt is a future written by hand rather than an `async` block around a cut-off
//! future: the block kept its arguments, its span and the cut-off's copies of the same times
//! side by side (240 bytes around a trivial call), and every byte of a call's future was
//! copied twice by whoever awaited it (`perf` put those copies at an eighth of a composed call;
//! since `Policy::call` is always inlined the future is built in place, but a caller that moves
//! it still copies every byte).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tracing::Span;

use super::{Attempt, Policy};
use crate::error::{Error, Result};
use crate::resilience::time::Moment;
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
    /// first. In a span of its own if `spans`. `f` is called here, in that span.
    // The attempt's number and operation come apart, not as an `Attempt`: the future would
    // copy that struct as whole words, over its `u32` just stored (a store-forwarding stall,
    // ~12 % of the policy's own time in `perf annotate`).
    #[inline]
    pub(super) fn attempt<'a, F, Fut>(
        &'a self,
        number: u32,
        operation: &'static str,
        now: Option<Moment>,
        deadline: &'a Option<Instant>,
        f: &mut F,
        spans: bool,
    ) -> AttemptFuture<'a, Fut>
    where
        F: FnMut(Attempt) -> Fut,
    {
        let attempt = Attempt { number, operation };
        // Boxed: a `Span` is 40 bytes, which inline would grow every call's future for the
        // calls that record no spans; the spanned path allocates far more than this box.
        let span = spans.then(|| Box::new(telemetry::attempt_span(number)));
        let call = match &span {
            Some(span) => span.in_scope(|| f(attempt)),
            None => f(attempt),
        };
        AttemptFuture {
            call,
            policy: self,
            span,
            timer: None,
            now,
            deadline,
            operation,
            number,
            by_deadline: false,
        }
    }
}

pin_project_lite::pin_project! {
    /// An attempt's future (see [`Policy::attempt`]). Its `poll` is inlined into the call's, so a
    /// result ready on the first poll is not returned through memory; the timer's path and the
    /// timeout's bookkeeping stay out of line.
    pub(super) struct AttemptFuture<'a, Fut> {
        #[pin]
        call: Fut,
        policy: &'a Policy,
        // Entered around each poll by hand rather than by wrapping the call in `Instrumented`:
        // one layer less on the hot path.
        span: Option<Box<Span>>,
        // Made only if the attempt does not finish on its first poll: one that completes at
        // once never touches the timer wheel or tokio's clock. Boxed: a `Sleep` is 112 bytes.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        now: Option<Moment>,
        deadline: &'a Option<Instant>,
        operation: &'static str,
        number: u32,
        by_deadline: bool,
    }
}

impl<T, Fut: Future<Output = Result<T>>> Future for AttemptFuture<'_, Fut> {
    type Output = AttemptEnd<T>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AttemptEnd<T>> {
        let this = self.project();
        let span = this.span.as_deref();
        let polled = {
            let _in_span = span.map(Span::enter);
            this.call.poll(cx)
        };
        if let Poll::Ready(result) = polled {
            return Poll::Ready(AttemptEnd::of(telemetry::attempt_result(span, result)));
        }
        let attempt_timeout = this.policy.inner.attempt_timeout;
        match poll_cut_off(
            this.timer,
            this.by_deadline,
            attempt_timeout,
            *this.now,
            **this.deadline,
            cx,
        ) {
            Poll::Ready(()) => Poll::Ready(this.policy.cut_off(
                span,
                *this.number,
                this.operation,
                *this.by_deadline,
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Policy {
    /// How an attempt cut off by its timeout (or, `by_deadline`, by the overall deadline) ends:
    /// recorded on its span, counted and logged.
    #[cold]
    #[inline(never)]
    fn cut_off<T>(
        &self,
        span: Option<&Span>,
        number: u32,
        operation: &'static str,
        by_deadline: bool,
    ) -> AttemptEnd<T> {
        let inner = &*self.inner;
        telemetry::record_attempt_timeout(span);
        inner.metrics.record_timeout();
        let provider = &*inner.provider;
        if by_deadline {
            let total = inner.deadline.unwrap_or_default();
            tracing::warn!(
                provider,
                operation,
                attempt = number,
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
                attempt = number,
                timeout_ms = t.as_millis() as u64,
                "attempt timed out"
            );
            AttemptEnd::Failed(Box::new(Error::timeout(format!(
                "attempt timed out after {t:?}"
            ))))
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
    attempt_timeout: Option<std::time::Duration>,
    now: Option<Moment>,
    deadline: Option<Instant>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if timer.is_none() {
        let now = now.and_then(Moment::instant).unwrap_or_else(Instant::now);
        let own = attempt_timeout.and_then(|t| now.checked_add(t));
        let cut_off = match (own, deadline) {
            (Some(a), Some(d)) if d <= a => Some(d),
            (Some(a), _) => Some(a),
            (None, d) => d,
        };
        *by_deadline = cut_off.is_some() && cut_off == deadline;
        // No timeout and no deadline, or a timeout beyond `Instant`'s range: never fires.
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
