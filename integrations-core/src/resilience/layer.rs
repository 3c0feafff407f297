//! [`PolicyLayer`]: the whole [`Policy`] as a tower [`Layer`] (documented on the type).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::policy::{Attempt, Policy};
use crate::error::{BoxError, Error, Result};

/// Turns an inner service's error into the crate's [`Error`], whose kind and
/// [`is_retryable`](Error::is_retryable) the policy acts on.
///
/// Implemented for [`DefaultClassifier`] and for every `Fn(E) -> Error + Clone`:
///
/// ```
/// use integrations_core::{Error, Policy};
///
/// let policy = Policy::builder("inventory").build();
/// let layer = policy
///     .layer("reserve")
///     .classify(|e: std::io::Error| match e.kind() {
///         std::io::ErrorKind::InvalidInput => Error::invalid_input("sku", e.to_string()),
///         _ => Error::unavailable(e.to_string()).with_source(e),
///     });
/// # let _ = layer;
/// ```
pub trait ClassifyError<E> {
    /// The crate's error for `error`.
    fn classify(&self, error: E) -> Error;
}

impl<E, F> ClassifyError<E> for F
where
    F: Fn(E) -> Error,
{
    fn classify(&self, error: E) -> Error {
        self(error)
    }
}

/// The default classifier: an [`Error`] (from a service built on this crate) passes through
/// unchanged; any other error becomes a retryable [`Error::Unavailable`] carrying the original as
/// its source.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<E: Into<BoxError>> ClassifyError<E> for DefaultClassifier {
    fn classify(&self, error: E) -> Error {
        match error.into().downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::unavailable(other.to_string()).with_source(other),
        }
    }
}

/// A tower [`Layer`] that puts a [`Policy`] in front of a service (a hyper or tonic client, a
/// `tower::service_fn`, another stack), under one operation name. Made by [`Policy::layer`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use integrations_core::resilience::{Backoff, RetryPolicy};
/// use integrations_core::{Error, Policy};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let policy = Policy::builder("inventory")
///     .retry(RetryPolicy::new(2, Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2.0)))
///     .attempt_timeout(Duration::from_secs(2))
///     .build();
/// let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
/// let seen = calls.clone();
/// let svc = ServiceBuilder::new()
///     .layer(policy.layer("reserve"))
///     .service_fn(move |sku: &'static str| {
///         let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///         async move { if n == 0 { Err(std::io::Error::other("reset")) } else { Ok(sku.len()) } }
///     });
/// assert_eq!(svc.oneshot("sku-1").await.unwrap(), 5);
/// assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2); // one retry
/// # }
/// ```
///
/// # What the service does
///
/// - **`poll_ready`** asks the inner service and nothing else: no permit, no clock reading, no
///   breaker slot is taken there, so a caller that polls readiness and then drops the service
///   loses nothing. All of the policy's steps run inside the response future; only the call's
///   span (when spans are recorded) is made by `call`, as [`Policy::call`] makes it, so its
///   parent is the span current where `call` is called, not where the future is first polled.
/// - **`call`** takes the inner service that was just made ready and leaves a clone in its place
///   (as tower's own `Retry` and `Buffer` do), then runs the policy: the first attempt uses the
///   ready service, every retry a fresh clone made ready again with `poll_ready` — inside the
///   attempt, so the per-attempt timeout bounds that wait too.
/// - **Requests are cloned** once per attempt, so `Req: Clone` is required. For an
///   `http::Request`, which is not `Clone`, wrap the layer around a service that builds the
///   request from a cloneable description, or give the body a cheap clone (`Bytes`).
/// - **Errors** of the inner service become the crate's [`Error`] through a classifier, which
///   decides whether they are retried and how they count against the circuit breaker. The
///   default, [`DefaultClassifier`], passes an [`Error`] through unchanged and treats any other
///   error as transient ([`Error::Unavailable`], retryable, the original error kept as the
///   source). Set another with [`PolicyLayer::classify`]. Responses are not inspected: a service
///   that answers `503` with `Ok(response)` (hyper) is a success to the policy unless the service
///   turns such answers into errors.
///
/// # Why hand-written
///
/// tower's own `ConcurrencyLimit`, `RateLimit`, `Retry` and `Timeout` cover some of the same
/// ground, but not the policy's semantics (a rate-limit permit per retry, `Retry-After`, a
/// breaker over the logical call, an overall deadline, one set of metrics and tracing events),
/// and a stack of them costs more per call than [`Policy::call`] (the `policy` bench's
/// `policy_ir`, one quiet sitting, fastest and median of 21 runs: tower's stack 123 / 131 ns,
/// [`Policy::call`] 87 / 92 ns, this layer, which boxes the call's future, 108 / 111 ns). The
/// layer therefore adapts the one [`Policy`] rather than rebuilding it out of tower's pieces; it
/// depends only on the `tower-layer` and `tower-service` interface crates (and
/// `pin-project-lite`, already under tokio, for its attempt future).
#[derive(Clone)]
pub struct PolicyLayer<C = DefaultClassifier> {
    policy: Policy,
    operation: &'static str,
    classify: C,
}

impl<C> std::fmt::Debug for PolicyLayer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyLayer")
            .field("provider", &self.policy.provider())
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// This policy as a tower [`Layer`], recording calls as `operation` (feature `tower`).
    /// The layer shares the policy's limiter, breaker, bulkhead and metrics with every other use
    /// of the policy.
    pub fn layer(&self, operation: &'static str) -> PolicyLayer {
        PolicyLayer {
            policy: self.clone(),
            operation,
            classify: DefaultClassifier,
        }
    }
}

impl<C> PolicyLayer<C> {
    /// The same layer under another operation name.
    pub fn operation(mut self, operation: &'static str) -> Self {
        self.operation = operation;
        self
    }

    /// Classifies the inner service's errors with `classify` instead of [`DefaultClassifier`].
    pub fn classify<D>(self, classify: D) -> PolicyLayer<D> {
        PolicyLayer {
            policy: self.policy,
            operation: self.operation,
            classify,
        }
    }
}

impl<S, C: Clone> Layer<S> for PolicyLayer<C> {
    type Service = PolicyService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService {
            inner,
            policy: self.policy.clone(),
            operation: self.operation,
            classify: self.classify.clone(),
        }
    }
}

/// The service [`PolicyLayer`] makes: `inner` behind the policy.
#[derive(Clone)]
pub struct PolicyService<S, C = DefaultClassifier> {
    inner: S,
    policy: Policy,
    operation: &'static str,
    classify: C,
}

impl<S, C> std::fmt::Debug for PolicyService<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyService")
            .field("provider", &self.policy.provider())
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

impl<S, C> PolicyService<S, C> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// The response future of a [`PolicyService`].
pub type PolicyFuture<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

impl<S, C, Req> Service<Req> for PolicyService<S, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    Req: Clone + Send + 'static,
    C: ClassifyError<S::Error> + Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = Error;
    type Future = PolicyFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                let e = self.classify.classify(e);
                Poll::Ready(Err(self.policy.decorate(e, self.operation)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The ready service goes into the future; its clone stays behind, not yet ready.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let classify = self.classify.clone();
        // The policy (a clone: one reference count) moves into the call's future itself, not
        // into an `async` block around a borrowing call, which would copy the call's future
        // twice more on every call (`scripts/policy-ir`: a sixth of the layer's instructions).
        let policy = self.policy.clone();
        let operation = self.operation;
        pin_in_box(move || {
            Policy::run(
                policy,
                operation,
                Error::is_retryable,
                move |attempt: Attempt| {
                    let state = if attempt.number == 1 {
                        AttemptState::Called {
                            fut: ready.call(req.clone()),
                        }
                    } else {
                        AttemptState::Fresh {
                            svc: ready.clone(),
                            req: Some(req.clone()),
                        }
                    };
                    AttemptFuture {
                        state,
                        classify: classify.clone(),
                    }
                },
            )
        })
    }
}

/// The future `make` builds, in a box allocated before it is built, so that it is written
/// there in place: `Box::pin(fut)` builds it first and copies it in (`memmove`, ~6 % of the
/// layer's call in `perf`).
#[inline(always)]
fn pin_in_box<F>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

pin_project_lite::pin_project! {
    /// One attempt: the first calls the service made ready by the caller's `poll_ready`; a retry
    /// gets a clone that is made ready first. Written out rather than as an `async` block, whose
    /// state machine (with its drop flags and a variant per `await`) cost the layer ~10 ns a
    /// call in the `policy` bench.
    struct AttemptFuture<S: Service<Req>, Req, C> {
        #[pin]
        state: AttemptState<S, Req>,
        classify: C,
    }
}

pin_project_lite::pin_project! {
    #[project = AttemptProj]
    enum AttemptState<S: Service<Req>, Req> {
        Called { #[pin] fut: S::Future },
        Fresh { svc: S, req: Option<Req> },
    }
}

impl<S, Req, C> Future for AttemptFuture<S, Req, C>
where
    S: Service<Req>,
    C: ClassifyError<S::Error>,
{
    type Output = Result<S::Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                AttemptProj::Called { fut } => {
                    return match fut.poll(cx) {
                        Poll::Ready(Ok(response)) => Poll::Ready(Ok(response)),
                        Poll::Ready(Err(e)) => Poll::Ready(Err(this.classify.classify(e))),
                        Poll::Pending => Poll::Pending,
                    };
                }
                AttemptProj::Fresh { svc, req } => {
                    match svc.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(this.classify.classify(e))),
                        Poll::Pending => return Poll::Pending,
                    }
                    let req = req.take().expect("an attempt's request is sent once");
                    let fut = svc.call(req);
                    this.state.set(AttemptState::Called { fut });
                }
            }
        }
    }
}
