//! The real client and `StripePayments` against the in-process sandbox: lifecycle, declines,
//! refunds, idempotent replay, fault injection (the retry that must not charge twice), and the
//! core `PaymentProvider` behaviour suite.

use std::time::Duration;

use futures_util::StreamExt;
use integrations_core::provider::{
    CancelReason, CaptureMethod, CreatePayment, PaymentProvider, PaymentStatus, RefundReason,
    RefundRequest,
};
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_core::{Currency, Error, ErrorKind, IdempotencyKey, Money, Policy};
use integrations_stripe::api::{
    CreateCustomer, CreatePaymentIntent, CreateRefund, ListPaymentIntents,
};
use integrations_stripe::sandbox::{Fault, FaultRule, Sandbox};
use integrations_stripe::{PROVIDER, StripeBuilder, StripeClient, StripePayments};
use integrations_testkit::{PaymentSuiteConfig, payment_provider_suite};

fn policy(retries: u32, attempt_timeout: Duration) -> Policy {
    Policy::builder(PROVIDER)
        .retry(
            RetryPolicy::new(
                retries,
                Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2.0),
            )
            .with_max_retry_after(Duration::from_secs(2)),
        )
        .no_circuit_breaker()
        .attempt_timeout(attempt_timeout)
        .build()
}

fn client(sandbox: &Sandbox, retries: u32) -> StripeClient {
    sandbox
        .client_builder()
        .with_policy(policy(retries, Duration::from_secs(10)))
        .build()
        .unwrap()
        .client()
        .clone()
}

fn usd(m: i64) -> Money {
    Money::from_minor(m, Currency::USD)
}

fn key(entity: &str, op: &str) -> IdempotencyKey {
    IdempotencyKey::derive(entity, op).unwrap()
}

mod faults;
mod payments;
mod retention;
mod wire;
