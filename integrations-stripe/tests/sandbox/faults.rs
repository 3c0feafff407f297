//! Faults: lost answers, server errors and rate limits, hangs, authentication, fault rules, the bounded request log.

use super::*;

#[tokio::test]
async fn lost_response_is_retried_with_the_same_key_and_charges_once() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 2));
    // The server creates and charges the intent, then the connection drops before the answer.
    sandbox.fail_next(1, Fault::DropAfterAccept);
    let k = key("order-77", "payment");
    let req = CreatePayment::new(usd(5998))
        .payment_method("pm_card_visa")
        .confirm(true);
    let p = payments.create_payment(&req, &k).await.unwrap();
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(
        sandbox.payment_intents().len(),
        1,
        "exactly one payment intent exists"
    );
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    let c = sandbox.intent_counters(&p.id).unwrap();
    assert_eq!((c.charges, c.successful_charges, c.captures), (1, 1, 1));
    let posts: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].fault, Some(Fault::DropAfterAccept));
    assert!(
        posts
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some(k.as_str()))
    );
    assert!(posts[1].replayed);
}

#[tokio::test]
async fn lost_response_without_retries_surfaces_as_unavailable() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 0));
    sandbox.fail_next(1, Fault::DropAfterAccept);
    let k = key("order-78", "payment");
    let req = CreatePayment::new(usd(100))
        .payment_method("pm_card_visa")
        .confirm(true);
    let e = payments.create_payment(&req, &k).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    assert!(!e.is_failover_safe(), "the provider may have acted");
    // The caller (or a restarted process) retries the business operation: same key, one charge.
    let p = payments.create_payment(&req, &k).await.unwrap();
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    assert_eq!(
        sandbox.intent_counters(&p.id).unwrap().successful_charges,
        1
    );
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 2);
    sandbox.fail_next(2, Fault::ServerError);
    let c = client
        .create_customer(
            &CreateCustomer::new().email("a@example.com"),
            &key("cust", "create"),
        )
        .await
        .unwrap();
    assert!(c.id.starts_with("cus_"));
    assert_eq!(sandbox.pending_faults(), 0);
    sandbox.fail_next(1, Fault::rate_limited(Duration::ZERO));
    client.retrieve_customer(&c.id).await.unwrap();

    let no_retry = StripeBuilder::new()
        .with_secret_key(sandbox.secret_key())
        .with_base_url(sandbox.base_url())
        .with_policy(policy(0, Duration::from_secs(5)))
        .build()
        .unwrap();
    sandbox.fail_next(1, Fault::rate_limited(Duration::from_secs(3)));
    let e = no_retry
        .client()
        .retrieve_customer(&c.id)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    sandbox.fail_next(1, Fault::ServerError);
    let e = no_retry
        .client()
        .retrieve_customer(&c.id)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn a_hung_request_times_out_and_the_retry_is_processed_once() {
    let sandbox = Sandbox::builder()
        .hang_duration(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let fast = |retries| {
        sandbox
            .client_builder()
            .with_policy(policy(retries, Duration::from_millis(300)))
            .build()
            .unwrap()
    };
    sandbox.fail_next(1, Fault::Hang);
    let e = fast(0)
        .create_payment(&CreatePayment::new(usd(100)), &key("order-h", "payment"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(sandbox.counters().payment_intents_created, 0);
    sandbox.fail_next(1, Fault::Hang);
    let p = fast(1)
        .create_payment(&CreatePayment::new(usd(100)), &key("order-h", "payment"))
        .await
        .unwrap();
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    assert_eq!(sandbox.payment_intents()[0]["id"], p.id.as_str());
}

#[tokio::test]
async fn authentication_is_required() {
    let sandbox = Sandbox::start().await.unwrap();
    let live = StripeBuilder::new()
        .with_secret_key("sk_live_abcdefgh1234")
        .with_base_url(sandbox.base_url())
        .with_policy(policy(0, Duration::from_secs(5)))
        .build()
        .unwrap();
    let e = live.client().retrieve_customer("cus_1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(
        e.message().contains("Invalid API Key provided: sk_live_"),
        "{e}"
    );
    assert!(!e.message().contains("abcdefgh"), "{e}");
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/customers/cus_1", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("You did not provide an API key")
    );
}

#[tokio::test]
async fn a_fault_rule_hits_exactly_the_requests_it_names() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 0);
    // Let the first retrieval through, fail the next two; other operations are never touched.
    sandbox.inject(
        FaultRule::new(Fault::ServerError)
            .after(1)
            .times(2)
            .on("customers.retrieve"),
    );
    assert_eq!(sandbox.pending_faults(), 2);
    let c = client
        .create_customer(&CreateCustomer::new(), &key("rule", "create"))
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for i in 0..4 {
        outcomes.push(client.retrieve_customer(&c.id).await.is_ok());
        // Another operation between retrievals neither fires nor counts towards `after`.
        client
            .create_customer(&CreateCustomer::new(), &key("rule", &i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(outcomes, [true, false, false, true]);
    assert_eq!(sandbox.pending_faults(), 0);
    let faulted: Vec<(String, String, u16)> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .map(|r| (r.method, r.path, r.status))
        .collect();
    let path = format!("/v1/customers/{}", c.id);
    assert_eq!(
        faulted,
        [
            ("GET".to_owned(), path.clone(), 500),
            ("GET".to_owned(), path, 500)
        ]
    );
    let faulted_at: Vec<usize> = sandbox
        .requests()
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.fault.map(|_| i))
        .collect();
    // create, get, create, GET, create, GET, create, get, create
    assert_eq!(faulted_at, [3, 5]);
}

#[tokio::test]
async fn the_request_log_is_bounded_and_the_counters_stay_exact() {
    let sandbox = Sandbox::builder()
        .request_retention(3)
        .start()
        .await
        .unwrap();
    sandbox.on_webhook(|_| {});
    let client = client(&sandbox, 0);
    let mut last = String::new();
    for i in 0..5 {
        last = client
            .create_customer(&CreateCustomer::new(), &key("bounded", &i.to_string()))
            .await
            .unwrap()
            .id;
    }
    client.retrieve_customer(&last).await.unwrap();
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[2].method, "GET");
    assert_eq!(requests[2].path, format!("/v1/customers/{last}"));
    let counters = sandbox.counters();
    assert_eq!(counters.requests, 6);
    // One `customer.created` per customer, each handed to the callback.
    assert_eq!(sandbox.deliveries().len(), 3);
    assert_eq!(counters.webhook_deliveries, 5);
    assert_eq!(counters.webhooks_delivered, 5);
    assert_eq!(sandbox.events().len(), 5);
}

#[tokio::test]
async fn a_create_dropped_after_processing_is_retried_into_the_same_intent() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 2);
    sandbox.inject(FaultRule::new(Fault::DropAfterAccept).on("payment_intents.create"));
    let k = key("order-drop", "payment");
    let pi = client
        .create_payment_intent(&CreatePaymentIntent::new(usd(4200)), &k)
        .await
        .unwrap();
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    let all = sandbox.payment_intents();
    assert_eq!(all.len(), 1, "exactly one intent created");
    assert_eq!(all[0]["id"], pi.id.as_str());
    let posts: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payment_intents")
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].fault, Some(Fault::DropAfterAccept));
    assert_eq!(posts[0].status, 200, "processed, answer dropped");
    assert!(!posts[0].replayed);
    assert!(posts[1].replayed && posts[1].fault.is_none());
    assert!(
        posts
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some(k.as_str()))
    );
}
