//! Stripe webhook verification against its floor, in one run.
//!
//! For a 2 KB and a 16 KB delivery:
//!
//! 1. `hmac_sha256`: the plain `hmac` crate computing HMAC-SHA256 of `"{t}." + body` — the
//!    unavoidable work;
//! 2. `verify_signature`: `integrations_stripe::webhook::verify_signature` — body limit, header
//!    parse, HMAC, constant-time compare, timestamp check (goal: ≤ 1.2× the baseline);
//! 3. `verify_and_parse`: `webhook::verify`, which also parses the event envelope; the event's
//!    `data.object` is kept as raw JSON until asked for (goal: ≤ 3× the baseline);
//! 4. `verify_parse_object`: the same, then the typed payment intent read from the object — what
//!    a handler that uses the object pays in all.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use integrations_core::clock::from_unix_seconds;
use integrations_core::webhook::WebhookSecret;
use integrations_stripe::webhook::{self, DEFAULT_TOLERANCE};
use sha2::Sha256;

const SECRET: &str = "whsec_bench_4eC39HqLyjWDarjtT1zdp7dc";
const T: i64 = 1_700_000_000;

/// A `payment_intent.succeeded` event, pretty-printed as Stripe sends it, padded with metadata
/// lines to about `size` bytes.
fn event_of_size(size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{
  "id": "evt_3PgbWqB7WZ01zgkW0ulmfjDb",
  "object": "event",
  "api_version": "2025-03-31.basil",
  "created": {T},
  "data": {{
    "object": {{
      "id": "pi_3PgbWqB7WZ01zgkW0ulmfjDb",
      "object": "payment_intent",
      "amount": 5998,
      "amount_capturable": 0,
      "amount_received": 5998,
      "capture_method": "automatic",
      "currency": "usd",
      "latest_charge": "ch_3PgbWqB7WZ01zgkW0hGS1ZPa",
      "livemode": false,
      "payment_method": "pm_1PgbWqB7WZ01zgkWpQdWm8cl",
      "payment_method_types": ["card"],
      "status": "succeeded",
      "metadata": {{
        "order_id": "42""#
    );
    let tail = r#"
      }
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_8qX2TmQv2GbEsF",
    "idempotency_key": "order-42/payment"
  },
  "type": "payment_intent.succeeded"
}"#;
    let mut body = head;
    let mut i = 0;
    while body.len() + tail.len() < size {
        body.push_str(&format!(
            ",\n        \"line_{i:04}\": \"sku-000000-quantity-1-price-2999\""
        ));
        i += 1;
    }
    body.push_str(tail);
    body.into_bytes()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn baseline_hmac(secret: &[u8], t: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn stripe_webhook(c: &mut Criterion) {
    let secret = WebhookSecret::new(SECRET);
    let secrets = [secret.clone()];
    let now = from_unix_seconds(T + 30);
    let t = T.to_string();
    let mut group = c.benchmark_group("stripe_webhook");
    for size in [2 * 1024, 16 * 1024] {
        let body = event_of_size(size);
        let header = webhook::sign_for_test(&body, &secret, T);
        // Sanity: all three agree before anything is timed.
        assert_eq!(
            to_hex(&baseline_hmac(SECRET.as_bytes(), &t, &body)),
            header.rsplit("v1=").next().expect("signed")
        );
        webhook::verify(&body, &header, &secrets, DEFAULT_TOLERANCE, now).expect("verifies");

        let label = format!("{}KB", size / 1024);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("hmac_sha256", &label), &body, |b, body| {
            b.iter(|| baseline_hmac(black_box(SECRET.as_bytes()), black_box(&t), black_box(body)))
        });
        group.bench_with_input(
            BenchmarkId::new("verify_signature", &label),
            &body,
            |b, body| {
                b.iter(|| {
                    webhook::verify_signature(
                        black_box(body),
                        black_box(&header),
                        black_box(&secrets),
                        DEFAULT_TOLERANCE,
                        now,
                    )
                    .expect("verifies")
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("verify_and_parse", &label),
            &body,
            |b, body| {
                b.iter(|| {
                    webhook::verify(
                        black_box(body),
                        black_box(&header),
                        black_box(&secrets),
                        DEFAULT_TOLERANCE,
                        now,
                    )
                    .expect("verifies")
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("verify_parse_object", &label),
            &body,
            |b, body| {
                b.iter(|| {
                    let event = webhook::verify(
                        black_box(body),
                        black_box(&header),
                        black_box(&secrets),
                        DEFAULT_TOLERANCE,
                        now,
                    )
                    .expect("verifies");
                    event.payment_intent().map(|pi| pi.amount_received)
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = stripe_webhook
}
criterion_main!(benches);
