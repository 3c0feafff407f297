//! The sandbox delivers webhooks to URLs concurrently, up to `webhook_concurrency` at a time
//! (as Stripe does), so a receiver that takes a few milliseconds per event does not let a queue
//! of undelivered events grow with the traffic; and when the receiver is slower still, at most
//! `webhook_backlog` deliveries wait for a slot while the API calls that make events wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::provider::{CreatePayment, PaymentProvider};
use integrations_core::{Currency, IdempotencyKey, Money};
use integrations_stripe::sandbox::{Sandbox, WEBHOOK_BACKLOG_MAX_WAIT};
use integrations_testkit::sandbox::{
    Fault, SandboxRequest, SandboxResponse, SandboxServer, SandboxService, ServerOptions,
};

/// A webhook receiver that holds each request until `target` are in flight at once (or all the
/// `expected` ones have arrived, or `hold` has passed), and keeps the most it saw in flight.
#[derive(Debug)]
struct Receiver {
    target: usize,
    expected: usize,
    hold: Duration,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    received: AtomicUsize,
}

#[async_trait]
impl SandboxService for Receiver {
    async fn handle(&self, _req: SandboxRequest) -> SandboxResponse {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let until = tokio::time::Instant::now() + self.hold;
        let arrived =
            || self.in_flight.load(Ordering::SeqCst) + self.received.load(Ordering::SeqCst);
        while self.in_flight.load(Ordering::SeqCst) < self.target
            && arrived() < self.expected
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.received.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        SandboxResponse::new(200)
    }

    fn fault_response(&self, fault: Fault, _req: &SandboxRequest) -> SandboxResponse {
        SandboxResponse::new(fault.status())
    }
}

async fn deliver_with(concurrency: usize, target: usize, hold: Duration) -> (Arc<Receiver>, usize) {
    let receiver = Arc::new(Receiver {
        target,
        // 3 orders: created, succeeded and charge.succeeded each.
        expected: 9,
        hold,
        in_flight: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
    });
    let server = SandboxServer::start(receiver.clone(), ServerOptions::default())
        .await
        .unwrap();
    let sandbox = Sandbox::builder()
        .webhook_concurrency(concurrency)
        .start()
        .await
        .unwrap();
    sandbox.add_webhook_endpoint(format!("{}/hooks", server.base_url()));
    let payments = sandbox.client_builder().build().unwrap();
    for i in 0..3 {
        let k = |op: &str| IdempotencyKey::derive(&format!("order-{i}"), op).unwrap();
        let p = payments
            .create_payment(
                &CreatePayment::new(Money::from_minor(1000, Currency::USD)),
                &k("pay"),
            )
            .await
            .unwrap();
        payments
            .confirm_payment(&p.id, Some("pm_card_visa"), &k("confirm"))
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), sandbox.flush_webhooks())
        .await
        .expect("every delivery ends");
    let delivered = sandbox.deliveries().iter().filter(|d| d.delivered).count();
    (receiver, delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_a_url_run_up_to_the_configured_concurrency() {
    // Each request is held until 4 are in flight: only concurrent delivery gets there.
    let (receiver, delivered) = deliver_with(4, 4, Duration::from_secs(5)).await;
    assert_eq!(receiver.most.load(Ordering::SeqCst), 4);
    assert_eq!(delivered, 9);
    assert_eq!(receiver.received.load(Ordering::SeqCst), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_of_one_delivers_one_at_a_time() {
    let (receiver, delivered) = deliver_with(1, 2, Duration::from_millis(20)).await;
    assert_eq!(receiver.most.load(Ordering::SeqCst), 1);
    assert_eq!(delivered, 9);
}

/// A webhook receiver that answers nothing until the gate opens.
#[derive(Debug)]
struct Gated {
    gate: tokio::sync::Semaphore,
    received: AtomicUsize,
}

#[async_trait]
impl SandboxService for Gated {
    async fn handle(&self, _req: SandboxRequest) -> SandboxResponse {
        let _pass = self.gate.acquire().await.unwrap();
        self.received.fetch_add(1, Ordering::SeqCst);
        SandboxResponse::new(200)
    }

    fn fault_response(&self, fault: Fault, _req: &SandboxRequest) -> SandboxResponse {
        SandboxResponse::new(fault.status())
    }
}

async fn gated_sandbox(backlog: usize) -> (Sandbox, Arc<Gated>, SandboxServer) {
    let receiver = Arc::new(Gated {
        gate: tokio::sync::Semaphore::new(0),
        received: AtomicUsize::new(0),
    });
    let server = SandboxServer::start(receiver.clone(), ServerOptions::default())
        .await
        .unwrap();
    let sandbox = Sandbox::builder()
        .webhook_concurrency(1)
        .webhook_backlog(backlog)
        .start()
        .await
        .unwrap();
    sandbox.add_webhook_endpoint(format!("{}/hooks", server.base_url()));
    (sandbox, receiver, server)
}

fn create(sandbox: &Sandbox, i: usize) -> impl std::future::Future<Output = ()> + use<> {
    let payments = sandbox.client_builder().build().unwrap();
    async move {
        let key = IdempotencyKey::derive(&format!("order-{i}"), "pay").unwrap();
        payments
            .create_payment(
                &CreatePayment::new(Money::from_minor(1000, Currency::USD)),
                &key,
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_holds_the_calls_that_make_events_until_the_receiver_takes_one() {
    let (sandbox, receiver, _server) = gated_sandbox(2).await;
    // One `payment_intent.created` each: the first is taken into the one delivery slot (and held
    // by the receiver), the next two fill the backlog of 2.
    for i in 0..3 {
        create(&sandbox, i).await;
    }
    let fourth = tokio::spawn(create(&sandbox, 3));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !fourth.is_finished(),
        "a POST went through with the backlog full"
    );
    assert_eq!(sandbox.counters().payment_intents_created, 3);
    // Reads never wait.
    let payments = sandbox.client_builder().build().unwrap();
    let first = sandbox.payment_intents()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::timeout(Duration::from_secs(2), payments.retrieve_payment(&first))
        .await
        .expect("a GET does not wait for the backlog")
        .unwrap();

    receiver.gate.add_permits(100);
    tokio::time::timeout(Duration::from_secs(30), fourth)
        .await
        .expect("the held call goes through once a delivery is taken")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), sandbox.flush_webhooks())
        .await
        .expect("every delivery ends");
    assert_eq!(receiver.received.load(Ordering::SeqCst), 4);
    assert_eq!(sandbox.counters().payment_intents_created, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_only_slows_the_calls_down() {
    let (sandbox, receiver, _server) = gated_sandbox(1).await;
    create(&sandbox, 0).await;
    create(&sandbox, 1).await;
    // The backlog is full and the receiver holds its one slot: the next call waits the longest
    // wait, then goes through (a receiver calling the sandbox from inside a delivery must not
    // deadlock it).
    let started = std::time::Instant::now();
    tokio::time::timeout(WEBHOOK_BACKLOG_MAX_WAIT * 4, create(&sandbox, 2))
        .await
        .expect("the call goes through after the longest wait");
    assert!(started.elapsed() >= WEBHOOK_BACKLOG_MAX_WAIT);
    assert_eq!(sandbox.counters().payment_intents_created, 3);
    receiver.gate.add_permits(100);
    tokio::time::timeout(Duration::from_secs(30), sandbox.flush_webhooks())
        .await
        .expect("every delivery ends");
    assert_eq!(receiver.received.load(Ordering::SeqCst), 3);
}
