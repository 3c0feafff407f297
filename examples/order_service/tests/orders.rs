//! `POST /api/orders`, `GET /api/orders/{id}`, `GET /api/orders`: validation naming the field,
//! the amount check, idempotent creation, cursor pagination.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, KEY, order_body};
use serde_json::{Value, json};

fn with(mut body: Value, path: &[&str], value: Value) -> Value {
    let mut at = &mut body;
    for (i, key) in path.iter().enumerate() {
        if i + 1 == path.len() {
            match key.parse::<usize>() {
                Ok(n) => at[n] = value.clone(),
                Err(_) => at[*key] = value.clone(),
            }
        } else {
            at = match key.parse::<usize>() {
                Ok(n) => &mut at[n],
                Err(_) => &mut at[*key],
            };
        }
    }
    body
}

fn without(mut body: Value, key: &str) -> Value {
    body.as_object_mut().unwrap().remove(key);
    body
}

#[tokio::test]
async fn validation_names_the_field() {
    let h = Harness::new().await;
    let cases: Vec<(Value, &str)> = vec![
        (without(order_body(), "customerEmail"), "customerEmail"),
        (
            with(order_body(), &["customerEmail"], json!("not-an-email")),
            "customerEmail",
        ),
        (
            with(order_body(), &["customerName"], json!("   ")),
            "customerName",
        ),
        (
            with(order_body(), &["customerName"], json!(42)),
            "customerName",
        ),
        (with(order_body(), &["currency"], json!("usx")), "currency"),
        (with(order_body(), &["items"], json!([])), "items"),
        (with(order_body(), &["items"], json!("two shoes")), "items"),
        (
            with(order_body(), &["items", "1"], json!("sticker")),
            "items[1]",
        ),
        (
            with(order_body(), &["items", "0", "quantity"], json!(0)),
            "items[0].quantity",
        ),
        (
            with(order_body(), &["items", "0", "quantity"], json!(2.5)),
            "items[0].quantity",
        ),
        (
            with(order_body(), &["items", "1", "price"], json!(0.025)),
            "items[1].price",
        ),
        (
            with(order_body(), &["items", "1", "price"], json!("0.025")),
            "items[1].price",
        ),
        (
            with(order_body(), &["items", "1", "price"], json!("-0.02")),
            "items[1].price",
        ),
        (
            with(order_body(), &["items", "1", "name"], Value::Null),
            "items[1].name",
        ),
        (without(order_body(), "totalAmount"), "totalAmount"),
        (
            with(order_body(), &["totalAmount"], json!(60.001)),
            "totalAmount",
        ),
        (
            with(order_body(), &["shippingAddress", "zipCode"], json!("")),
            "shippingAddress.zipCode",
        ),
        (
            with(order_body(), &["shippingAddress"], json!("NYC")),
            "shippingAddress",
        ),
    ];
    for (body, field) in cases {
        let r = h.post("/api/orders", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.text);
        assert_eq!(r.json["success"], false);
        assert_eq!(r.json["error"]["type"], "invalid_input", "{field}");
        assert_eq!(r.field(), Some(field), "{}", r.text);
    }
    let req = Request::builder()
        .method("POST")
        .uri("/api/orders")
        .header("x-api-key", KEY)
        .body(Body::from("{\"customerEmail\": "))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, Some("body"))
    );
    assert_eq!(
        h.stripe.counters().requests,
        0,
        "nothing invalid reached Stripe"
    );
}

#[tokio::test]
async fn a_total_that_is_not_the_sum_of_the_items_is_refused() {
    let h = Harness::new().await;
    for total in ["59.98", "60.01", "0.00"] {
        let r = h
            .post(
                "/api/orders",
                &with(order_body(), &["totalAmount"], json!(total)),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.field(), Some("totalAmount"));
        assert_eq!(r.code(), Some("amount_mismatch"));
    }
    // Exact decimal arithmetic: "60" and "60.000" are the same amount as "60.00".
    let r = h
        .post(
            "/api/orders",
            &with(order_body(), &["totalAmount"], json!("60")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Zero-decimal currencies.
    let jpy = json!({
        "customerEmail": "k@example.jp", "customerName": "Kenji", "currency": "JPY",
        "items": [{"id": "a", "name": "Tea", "quantity": 3, "price": "500"}],
        "totalAmount": "1500"
    });
    let r = h.post("/api/orders", &jpy).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["data"]["order"]["totalAmountMinor"], 1500);
    let r = h
        .post(
            "/api/orders",
            &with(jpy, &["items", "0", "price"], json!("500.5")),
        )
        .await;
    assert_eq!(r.field(), Some("items[0].price"));
}

#[tokio::test]
async fn create_stores_the_order_and_creates_one_payment() {
    let h = Harness::new().await;
    let data = h.create_order().await;
    let order = &data["order"];
    assert_eq!(order["status"], "pending");
    assert_eq!(order["totalAmount"], "60.00");
    assert_eq!(order["totalAmountMinor"], 6000);
    assert_eq!(order["items"][0]["lineTotal"], "59.98");
    let pi = order["paymentIntentId"].as_str().unwrap();
    assert!(pi.starts_with("pi_"), "{pi}");
    assert!(data["clientSecret"].as_str().unwrap().starts_with(pi));

    let intents = h.stripe.payment_intents();
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["amount"], 6000);
    assert_eq!(intents[0]["metadata"]["order_id"], order["id"]);
    // The payment was created with the key derived from the order.
    let create = h
        .stripe
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/v1/payment_intents")
        .unwrap();
    assert_eq!(
        create.idempotency_key.as_deref(),
        Some(format!("{}/payment", order["id"].as_str().unwrap()).as_str())
    );

    let r = h
        .get(&format!("/api/orders/{}", order["id"].as_str().unwrap()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["data"]["order"], *order);
    let r = h
        .get("/api/orders/ord_00000000000000000000000000000000")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json["error"]["type"], "not_found");
}

#[tokio::test]
async fn an_idempotency_key_makes_create_safe_to_retry() {
    let h = Harness::new().await;
    let post = |body: Value, key: &'static str| {
        let req = Request::builder()
            .method("POST")
            .uri("/api/orders")
            .header("x-api-key", KEY)
            .header("idempotency-key", key)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        h.send(req)
    };
    let first = post(order_body(), "client-retry-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = post(order_body(), "client-retry-1").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(
        again.json["data"]["order"]["id"],
        first.json["data"]["order"]["id"]
    );
    assert_eq!(
        again.json["data"]["clientSecret"],
        first.json["data"]["clientSecret"]
    );
    assert_eq!(
        h.stripe.payment_intents().len(),
        1,
        "one payment for one order"
    );

    let other = post(
        with(order_body(), &["customerName"], json!("Jane")),
        "client-retry-1",
    )
    .await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text);
    assert_eq!(other.code(), Some("idempotency_key_reused"));
    let bad = post(order_body(), "").await;
    assert_eq!(bad.field(), Some("Idempotency-Key"));
}

#[tokio::test]
async fn pages_walk_every_order_once_newest_first() {
    let h = Harness::new().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(
            h.create_order().await["order"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    created.reverse();
    let mut seen = Vec::new();
    let mut uri = "/api/orders?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let r = h.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        pages += 1;
        let d = &r.json["data"];
        assert!(d["count"].as_u64().unwrap() <= 2);
        seen.extend(
            d["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match d["nextCursor"].as_str() {
            Some(c) => uri = format!("/api/orders?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 5);

    // The seed's `lastKey` works as the cursor too.
    let first = h.get("/api/orders?limit=4").await;
    let c = first.json["data"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let rest = h.get(&format!("/api/orders?lastKey={c}")).await;
    assert_eq!(rest.json["data"]["orders"][0]["id"], created[4].as_str());
    assert_eq!(rest.json["data"]["nextCursor"], Value::Null);

    for (uri, field) in [
        ("/api/orders?limit=0", "limit"),
        ("/api/orders?limit=101", "limit"),
        ("/api/orders?limit=ten", "limit"),
        ("/api/orders?cursor=zzz", "cursor"),
        ("/api/orders?cursor=c", "cursor"),
    ] {
        let r = h.get(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.field(), Some(field), "{uri}");
    }
}

/// The seed's body with its amounts as the literal JSON text `price` and `total`.
fn seed_body(price: &str, total: &str) -> String {
    format!(
        r#"{{"customerId": "cust_123", "customerEmail": "john@example.com", "customerName": "John Doe",
            "items": [{{"id": "item_1", "name": "Product A", "quantity": 2, "price": {price}}}],
            "totalAmount": {total}, "currency": "usd"}}"#
    )
}

#[tokio::test]
async fn amounts_as_json_numbers_are_read_exactly_from_their_text() {
    let h = Harness::new().await;
    // As the seed documents them, as strings, mixed, and with exact trailing zeros.
    for (price, total) in [
        ("29.99", "59.98"),
        (r#""29.99""#, r#""59.98""#),
        ("29.99", r#""59.98""#),
        ("29.990", "59.9800"),
    ] {
        let r = h.post_raw("/api/orders", &seed_body(price, total)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{price} {total}: {}", r.text);
        assert_eq!(r.json["success"], true);
        assert_eq!(
            r.json["data"]["order"]["totalAmount"], "59.98",
            "{}",
            r.text
        );
    }
    // 0.1 + 0.2 style sums stay exact: 3 × 0.10 is 0.30, not 0.30000000000000004.
    let body = r#"{"customerEmail": "a@example.com", "customerName": "A", "currency": "usd",
        "items": [{"id": "x", "name": "X", "quantity": 3, "price": 0.1}], "totalAmount": 0.3}"#;
    let r = h.post_raw("/api/orders", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let refused = [
        ("29.999", "59.998", "items[0].price"),
        ("2.999e1", "59.98", "items[0].price"),
        ("29.99", "5.998E1", "totalAmount"),
        (r#""NaN""#, "59.98", "items[0].price"),
        (r#""Infinity""#, "59.98", "items[0].price"),
        ("-29.99", "-59.98", "items[0].price"),
        ("29.99", "-59.98", "totalAmount"),
        ("29.99", "59.981", "totalAmount"),
    ];
    for (price, total, field) in refused {
        let r = h.post_raw("/api/orders", &seed_body(price, total)).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{price} {total}: {}",
            r.text
        );
        assert_eq!(r.json["success"], false);
        assert_eq!(r.field(), Some(field), "{price} {total}: {}", r.text);
    }
    // A bare NaN token is not JSON at all: the body is refused.
    let r = h.post_raw("/api/orders", &seed_body("NaN", "59.98")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.field(), Some("body"));
    // JPY has no minor unit.
    let jpy = r#"{"customerEmail": "a@example.com", "customerName": "A", "currency": "jpy",
        "items": [{"id": "x", "name": "X", "quantity": 1, "price": 1500.5}], "totalAmount": 1500.5}"#;
    let r = h.post_raw("/api/orders", jpy).await;
    assert_eq!(r.field(), Some("items[0].price"), "{}", r.text);
}
