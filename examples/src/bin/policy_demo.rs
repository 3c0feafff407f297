//! Shows a call going through the resilience policy with scripted failing providers, then the
//! breaker opening and failover moving on, and prints the integration metrics.
//!
//! `cargo run -p integrations-examples --bin policy_demo` — no credentials, no network.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use integrations_core::failover::Failover;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::{EmailMessage, EmailProvider, Mailbox};
use integrations_core::resilience::{Backoff, CircuitBreakerConfig, RetryPolicy, SlidingWindow};
use integrations_core::{Error, Policy};
use integrations_testkit::StubEmailProvider;

/// An email provider guarded by a policy: what a provider crate does internally.
#[derive(Debug)]
struct Guarded {
    inner: Arc<StubEmailProvider>,
    policy: Policy,
}

#[async_trait::async_trait]
impl EmailProvider for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> integrations_core::provider::EmailCapabilities {
        self.inner.capabilities()
    }
    async fn send(
        &self,
        message: &EmailMessage,
    ) -> integrations_core::Result<integrations_core::provider::SentEmail> {
        self.policy.call("send", |_| self.inner.send(message)).await
    }
}

fn policy(name: &'static str, registry: &MetricsRegistry) -> Policy {
    Policy::builder(name)
        .retry(RetryPolicy::new(
            2,
            Backoff::new(Duration::from_millis(20), Duration::from_millis(200), 2.0),
        ))
        .circuit_breaker(
            CircuitBreakerConfig::new()
                .with_window(SlidingWindow::Count(10))
                .with_minimum_calls(4)
                .with_failure_rate_threshold(50)
                .with_open_duration(Duration::from_secs(30)),
        )
        .attempt_timeout(Duration::from_secs(2))
        .metrics(registry)
        .build()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,integrations_core=info".into()),
        )
        .init();
    let registry = MetricsRegistry::new();
    let primary = Arc::new(StubEmailProvider::new_ok().with_name("primary"));
    let secondary = Arc::new(StubEmailProvider::new_ok().with_name("secondary"));
    let email = Failover::<dyn EmailProvider>::from_primary(Arc::new(Guarded {
        inner: primary.clone(),
        policy: policy("primary", &registry),
    }))
    .with_fallback(Arc::new(Guarded {
        inner: secondary.clone(),
        policy: policy("secondary", &registry),
    }));

    let msg = |i: usize| {
        EmailMessage::builder(Mailbox::named("shop@example.com", "Shop"))
            .to(format!("customer{i}@example.com").as_str())
            .subject(format!("Order {i} confirmed"))
            .text("Thanks for your order.")
            .custom_arg("order_id", i.to_string())
            .build()
    };

    println!("1. two transient failures, absorbed by retries");
    primary.fail_next(2, || Error::unavailable("503 from primary"));
    let r = email.send(&msg(1)).await?;
    println!("   sent by {} as {}", r.provider, r.message_id);

    println!("2. primary goes down: failures open its breaker, failover moves to the secondary");
    primary.fail_next(usize::MAX, || Error::unavailable("primary is down"));
    for i in 2..10 {
        match email.send(&msg(i)).await {
            Ok(r) => println!("   order {i}: sent by {}", r.provider),
            Err(e) => println!(
                "   order {i}: failed ({}), the outbox would retry it",
                e.kind()
            ),
        }
    }

    println!("3. an invalid message is never failed over");
    let bad = EmailMessage::builder("shop@example.com")
        .subject("x")
        .text("x")
        .build();
    let e = email.send(&bad).await.unwrap_err();
    println!("   refused: {e}");

    println!("\nserved per provider: {:?}", email.served_counts());
    println!(
        "primary saw {} calls, secondary {}",
        primary.calls(),
        secondary.calls()
    );
    println!(
        "\n{:<10} {:>6} {:>9} {:>8} {:>8} {:>8} {:>10}",
        "provider", "calls", "successes", "retries", "p50 ms", "p99 ms", "breaker"
    );
    for s in registry.snapshot().integrations {
        println!(
            "{:<10} {:>6} {:>9} {:>8} {:>8.2} {:>8.2} {:>10}",
            s.name,
            s.calls,
            s.successes,
            s.retries,
            s.p50_ms,
            s.p99_ms,
            format!("{:?}", s.breaker_state)
        );
    }
    println!("\nPrometheus text:\n{}", registry.render_prometheus());
    Ok(())
}
