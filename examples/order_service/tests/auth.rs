//! API-key authentication: which routes need a key, and what a wrong or missing one gets.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, KEY, order_body};

#[tokio::test]
async fn api_routes_refuse_missing_and_wrong_keys_with_401() {
    let h = Harness::new().await;
    let routes = [
        ("GET", "/api/orders"),
        ("GET", "/api/orders/ord_123"),
        ("POST", "/api/orders"),
        ("POST", "/api/payments/confirm"),
        ("POST", "/api/payments/refund"),
        ("POST", "/api/monitoring/dead-letters/1/replay"),
    ];
    for (method, uri) in routes {
        let body = (method == "POST").then(order_body);
        for key in [
            None,
            Some("wrong-key-0123456789abcdef"),
            Some(&KEY[..KEY.len() - 1]),
        ] {
            let r = h.request(method, uri, key, body.as_ref()).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} key {key:?}"
            );
            assert_eq!(r.json["success"], false);
            assert_eq!(r.json["error"]["type"], "unauthenticated");
            assert!(
                r.headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{method} {uri}"
            );
        }
    }
    // Nothing reached the store.
    let page = h.orders.list(10, None).await.unwrap();
    assert!(page.orders.is_empty());
}

#[tokio::test]
async fn the_key_is_accepted_in_either_header() {
    let h = Harness::new().await;
    let r = h.request("GET", "/api/orders", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for auth in [format!("Bearer {KEY}"), format!("bearer {KEY}")] {
        let req = Request::builder()
            .uri("/api/orders")
            .header("authorization", auth)
            .body(Body::empty())
            .unwrap();
        assert_eq!(h.send(req).await.status, StatusCode::OK);
    }
    let req = Request::builder()
        .uri("/api/orders")
        .header("authorization", format!("Basic {KEY}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn monitoring_needs_the_key_except_health_and_webhooks_need_none() {
    let h = Harness::new().await;
    for uri in [
        "/",
        "/metrics",
        "/integrations",
        "/api/monitoring/integrations",
        "/api/monitoring/metrics",
    ] {
        let r = h.request("GET", uri, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}: {}", r.text);
        let r = h.request("GET", uri, Some("wrong-key"), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}: {}", r.text);
    }
    for uri in ["/dashboard", "/dashboard/live", "/dashboard/api/metrics"] {
        let r = h.request("GET", uri, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}: {}", r.text);
    }
    let r = h
        .request("POST", "/dashboard/dead-letters/1/replay", None, None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "replay needs the key: {}",
        r.text
    );
    for uri in [
        "/dashboard",
        "/dashboard/live",
        "/dashboard/api/metrics",
        "/metrics",
        "/integrations",
    ] {
        let r = h.request("GET", uri, Some(common::KEY), None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
    }
    let r = h.request("GET", "/", Some(common::KEY), None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "/ leads to the dashboard");
    // Health stays open for load balancers.
    let r = h.request("GET", "/api/monitoring/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Webhooks authenticate by signature: no key, and a 400 for the missing signature, not a 401.
    let r = h
        .request(
            "POST",
            "/webhooks/stripe",
            None,
            Some(&serde_json::json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = h.request("GET", "/nope", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json["error"]["type"], "not_found");
}

#[tokio::test]
async fn keys_and_secrets_never_show_in_debug_output() {
    let h = Harness::new().await;
    let secret_text = String::from_utf8(h.stripe.webhook_secret().expose().to_vec()).unwrap();
    for dbg in [
        format!("{:?}", h.state),
        format!("{:?}", h.state.api_keys()),
    ] {
        assert!(!dbg.contains(KEY), "{dbg}");
        assert!(!dbg.contains(&secret_text), "{dbg}");
    }
}
