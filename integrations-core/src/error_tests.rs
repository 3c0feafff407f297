use super::*;

#[test]
fn display_names_kind_field_provider_and_request() {
    let e = Error::invalid_input("amount", "must be positive")
        .with_provider("stripe")
        .with_code("parameter_invalid_integer")
        .with_request_id("req_123");
    let s = e.to_string();
    assert!(
        s.starts_with("invalid input `amount`: must be positive"),
        "{s}"
    );
    assert!(s.contains("provider stripe"), "{s}");
    assert!(s.contains("code parameter_invalid_integer"), "{s}");
    assert!(s.contains("request req_123"), "{s}");
    assert_eq!(e.field(), Some("amount"));
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn declined_display_carries_codes() {
    let e = Error::declined(
        Some("card_declined".into()),
        Some("insufficient_funds".into()),
        "Your card has insufficient funds.",
    );
    assert_eq!(
        e.to_string(),
        "declined (card_declined) [insufficient_funds]: Your card has insufficient funds."
    );
    assert!(!e.is_retryable());
    assert_eq!(e.code(), Some("card_declined"));
}

#[test]
fn retryability_by_kind_and_hint() {
    assert!(Error::unavailable("x").is_retryable());
    assert!(Error::timeout("x").is_retryable());
    assert!(Error::rate_limited(None, "x").is_retryable());
    assert!(!Error::conflict("x").is_retryable());
    assert!(Error::conflict("lock").with_retry_hint(true).is_retryable());
    assert!(
        !Error::unavailable("x")
            .with_retry_hint(false)
            .is_retryable()
    );
    assert!(!Error::circuit_open("x").is_retryable());
    assert!(!Error::invalid_input("f", "x").is_retryable());
    assert_eq!(
        Error::rate_limited(Some(Duration::from_secs(3)), "x").retry_after(),
        Some(Duration::from_secs(3))
    );
    assert_eq!(Error::unavailable("x").retry_after(), None);
}

#[test]
fn failover_safety() {
    assert!(Error::circuit_open("x").is_failover_safe());
    assert!(Error::bulkhead_full("x").is_failover_safe());
    assert!(Error::rate_limited(None, "x").is_failover_safe());
    assert!(!Error::unavailable("x").is_failover_safe());
    assert!(Error::unavailable("x").not_processed().is_failover_safe());
    assert!(!Error::timeout("x").is_failover_safe());
    assert!(
        !Error::invalid_input("to", "x")
            .not_processed()
            .is_failover_safe()
    );
}

#[test]
fn may_have_acted_is_the_ambiguous_errors_not_marked_not_processed() {
    assert!(Error::timeout("x").may_have_acted());
    assert!(Error::unavailable("502").may_have_acted());
    assert!(Error::provider("?").may_have_acted());
    assert!(
        !Error::unavailable("refused")
            .not_processed()
            .may_have_acted()
    );
    assert!(!Error::circuit_open("x").may_have_acted());
    assert!(!Error::rate_limited(None, "x").may_have_acted());
    assert!(!Error::declined(None, None, "x").may_have_acted());
    assert!(!Error::invalid_input("f", "x").may_have_acted());
}

#[test]
fn source_is_kept() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let e = Error::unavailable("connect").with_source(io);
    let src = std::error::Error::source(&e).expect("source");
    assert_eq!(src.to_string(), "refused");
}

#[test]
fn error_is_small_and_send_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Error>();
    assert!(
        std::mem::size_of::<Error>() <= 80,
        "{}",
        std::mem::size_of::<Error>()
    );
}

#[test]
fn kind_indices_match_all() {
    for (i, k) in ErrorKind::ALL.iter().enumerate() {
        assert_eq!(k.index(), i);
    }
}
