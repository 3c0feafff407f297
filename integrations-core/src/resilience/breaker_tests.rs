use super::*;
use crate::error::ErrorKind;

const SEC: Duration = Duration::from_secs(1);

fn config() -> CircuitBreakerConfig {
    CircuitBreakerConfig::new()
        .with_failure_rate_threshold(50)
        .with_window(SlidingWindow::Count(10))
        .with_minimum_calls(4)
        .with_open_duration(10 * SEC)
        .with_half_open_probes(2)
}

fn record(b: &CircuitBreaker, outcome: BreakerOutcome) {
    b.try_acquire("op").expect("permit").record(outcome);
}

fn fail(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        record(b, BreakerOutcome::Failure);
    }
}

fn succeed(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        record(b, BreakerOutcome::Success);
    }
}

#[tokio::test(start_paused = true)]
async fn opens_at_threshold_only_after_minimum_calls() {
    let b = CircuitBreaker::new("stripe", config());
    fail(&b, 3);
    // 100 % failures, but only 3 of the 4 calls needed.
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.window_counts(), (3, 3));
    fail(&b, 1);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.metrics().breaker_state(), BreakerState::Open);

    // Below the threshold it stays closed however many calls there are.
    let b = CircuitBreaker::new("stripe", config());
    for _ in 0..5 {
        succeed(&b, 2);
        fail(&b, 1);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // Exactly at the threshold (5 of 10) it opens.
    let b = CircuitBreaker::new("stripe", config());
    succeed(&b, 5);
    fail(&b, 4);
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b, 1);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn caller_faults_and_rate_limits_never_open() {
    let b = CircuitBreaker::new("stripe", config());
    for e in [
        Error::invalid_input("amount", "negative"),
        Error::declined(Some("card_declined".into()), None, "no"),
        Error::not_found("pi_1"),
        Error::conflict("idempotency key reuse"),
        Error::unauthenticated("bad key"),
        Error::rate_limited(None, "429"),
        Error::rate_limited(None, "429"),
        Error::circuit_open("nested"),
    ] {
        let r: Result<()> = b.call("op", async { Err(e) }).await;
        assert!(r.is_err());
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // Caller faults count as answered calls; rate limits and refusals are not counted at all.
    assert_eq!(b.window_counts(), (5, 0));
    assert_eq!(
        BreakerOutcome::from_error(&Error::timeout("t")),
        BreakerOutcome::Failure
    );
    assert_eq!(
        BreakerOutcome::from_error(&Error::provider("html")),
        BreakerOutcome::Failure
    );
    assert_eq!(
        BreakerOutcome::from_result::<()>(&Ok(())),
        BreakerOutcome::Success
    );
}

#[tokio::test(start_paused = true)]
async fn short_circuit_is_marked_and_counted() {
    let b = CircuitBreaker::new("sendgrid", config());
    fail(&b, 4);
    let e = b.try_acquire("send_mail").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    assert_eq!(e.provider_name(), Some("sendgrid"));
    assert_eq!(e.context().operation.as_deref(), Some("send_mail"));
    assert!(e.context().not_processed && e.is_failover_safe());
    assert_eq!(b.metrics().short_circuits(), 1);
}

#[tokio::test(start_paused = true)]
async fn half_open_probes_must_all_succeed_to_close() {
    let b = CircuitBreaker::new("stripe", config());
    let mut transitions = b.subscribe();
    let mut watch = b.watch();
    fail(&b, 4);
    tokio::time::advance(10 * SEC - Duration::from_millis(1)).await;
    assert!(
        b.try_acquire("op").is_err(),
        "still open just before the open duration"
    );
    tokio::time::advance(Duration::from_millis(1)).await;

    let p1 = b.try_acquire("op").expect("first probe");
    assert!(p1.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let p2 = b.try_acquire("op").expect("second probe");
    // Both probe slots are taken: a third call is refused.
    assert_eq!(
        b.try_acquire("op").unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    p1.record(BreakerOutcome::Success);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    p2.record(BreakerOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.window_counts(), (0, 0), "closing starts a fresh window");

    let seen: Vec<(BreakerState, BreakerState)> =
        std::iter::from_fn(|| transitions.try_recv().ok())
            .map(|t| (t.from, t.to))
            .collect();
    assert_eq!(
        seen,
        [
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failing_probe_reopens_for_a_full_open_duration() {
    let b = CircuitBreaker::new("stripe", config());
    fail(&b, 4);
    tokio::time::advance(10 * SEC).await;
    let p1 = b.try_acquire("op").unwrap();
    let p2 = b.try_acquire("op").unwrap();
    p1.record(BreakerOutcome::Success);
    p2.record(BreakerOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
    tokio::time::advance(5 * SEC).await;
    assert!(b.try_acquire("op").is_err());
    tokio::time::advance(5 * SEC).await;
    assert!(b.try_acquire("op").unwrap().is_probe());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_frees_its_slot() {
    let b = CircuitBreaker::new("stripe", config().with_half_open_probes(1));
    fail(&b, 4);
    tokio::time::advance(10 * SEC).await;
    let probe = b.try_acquire("op").unwrap();
    assert!(b.try_acquire("op").is_err());
    drop(probe); // e.g. the caller's future was cancelled
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.try_acquire("op").unwrap().record(BreakerOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn outcomes_from_a_previous_state_are_ignored() {
    let b = CircuitBreaker::new("stripe", config());
    let old = b.try_acquire("op").unwrap();
    fail(&b, 4);
    b.reset();
    // The permit was issued before the circuit opened and reset: its failure is stale.
    old.record(BreakerOutcome::Failure);
    assert_eq!(b.window_counts(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let cfg = config().with_window(SlidingWindow::Time(10 * SEC));
    let b = CircuitBreaker::new("sheets", cfg);
    fail(&b, 3);
    tokio::time::advance(11 * SEC).await;
    // The old failures left the window: one more failure is 1 of the 4 needed calls.
    fail(&b, 1);
    assert_eq!(b.window_counts(), (1, 1));
    assert_eq!(b.state(), BreakerState::Closed);
    tokio::time::advance(2 * SEC).await;
    fail(&b, 3);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn manual_controls() {
    let b = CircuitBreaker::new("sns", config());
    let mut transitions = b.subscribe();
    b.force_open();
    assert_eq!(b.state(), BreakerState::ForcedOpen);
    tokio::time::advance(3600 * SEC).await;
    assert!(
        b.try_acquire("op").is_err(),
        "forced open does not time out"
    );
    b.disable();
    assert_eq!(b.state(), BreakerState::Disabled);
    fail(&b, 20);
    assert_eq!(b.state(), BreakerState::Disabled, "disabled counts nothing");
    assert_eq!(b.metrics().breaker_state(), BreakerState::Disabled);
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b, 2);
    b.reset(); // closed → closed: clears the window, no transition
    assert_eq!(b.window_counts(), (0, 0));
    let seen: Vec<BreakerState> = std::iter::from_fn(|| transitions.try_recv().ok())
        .map(|t| t.to)
        .collect();
    assert_eq!(
        seen,
        [
            BreakerState::ForcedOpen,
            BreakerState::Disabled,
            BreakerState::Closed
        ]
    );
}

#[test]
fn config_is_normalised_and_states_round_trip() {
    let b = CircuitBreaker::new(
        "x",
        CircuitBreakerConfig::new()
            .with_failure_rate_threshold(0)
            .with_half_open_probes(0)
            .with_window(SlidingWindow::Count(5))
            .with_minimum_calls(50),
    );
    let c = b.config();
    assert_eq!(
        (
            c.failure_rate_threshold,
            c.half_open_probes,
            c.minimum_calls
        ),
        (1, 1, 5)
    );
    assert_eq!(
        CircuitBreakerConfig::default(),
        CircuitBreakerConfig::DEFAULT
    );
    for s in [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
        BreakerState::ForcedOpen,
        BreakerState::Disabled,
    ] {
        assert_eq!(BreakerState::from_u8(s.as_u8()), s);
        assert_eq!(s.to_string(), s.as_str());
    }
    assert!(format!("{b:?}").contains("state: Closed"));
    assert_eq!(b.provider(), "x");
}

#[tokio::test(start_paused = true)]
async fn the_lock_free_success_path_keeps_the_window_exact() {
    let cfg = config()
        .with_window(SlidingWindow::Count(4))
        .with_minimum_calls(4);
    let b = CircuitBreaker::new("stripe", cfg);
    succeed(&b, 4);
    assert!(b.inner.full_and_clean.load(Ordering::Acquire));
    succeed(&b, 100); // recorded without the lock
    assert_eq!(b.window_counts(), (4, 0));
    fail(&b, 1);
    assert!(!b.inner.full_and_clean.load(Ordering::Acquire));
    assert_eq!(
        (b.window_counts(), b.state()),
        ((4, 1), BreakerState::Closed)
    );
    succeed(&b, 3); // back through the locked path
    assert_eq!(b.window_counts(), (4, 1));
    assert!(!b.inner.full_and_clean.load(Ordering::Acquire));
    succeed(&b, 1); // the failure is the oldest of the last 4 and leaves
    assert_eq!(b.window_counts(), (4, 0));
    assert!(b.inner.full_and_clean.load(Ordering::Acquire));
    fail(&b, 2);
    assert_eq!(b.state(), BreakerState::Open);
    assert!(!b.inner.full_and_clean.load(Ordering::Acquire));
}

#[tokio::test(start_paused = true)]
async fn check_refuses_without_taking_a_permit() {
    let b = CircuitBreaker::new("stripe", config().with_half_open_probes(1));
    b.check("op").unwrap();
    fail(&b, 4);
    assert_eq!(b.check("op").unwrap_err().kind(), ErrorKind::CircuitOpen);
    tokio::time::advance(10 * SEC).await;
    // Past the open duration `check` lets the call on, and the probe slot is still free.
    b.check("op").unwrap();
    assert!(b.try_acquire("op").unwrap().is_probe());
    b.force_open();
    assert!(b.check("op").is_err());
    assert_eq!(b.metrics().short_circuits(), 2);
}
