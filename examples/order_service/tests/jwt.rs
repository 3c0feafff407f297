//! `Authorization: Bearer <jwt_token>`: HS256 from a secret, RS256 from a JWKS served locally
//! (cached, fetched again for an unknown `kid` at most once per interval), `iss`, `aud`, `exp`,
//! `nbf` with leeway; API keys still accepted.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Harness, KEY};
use integrations_order_service::jwt::JwtVerifier;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

const ISS: &str = "https://auth.example.com/";
const AUD: &str = "order-service";
const SECRET: &[u8] = b"an-hs256-secret-of-at-least-32-bytes!!";

fn now() -> i64 {
    integrations_order_service::history::now_ms() / 1000
}

fn claims() -> Value {
    json!({ "sub": "user_1", "iss": ISS, "aud": AUD, "exp": now() + 600, "iat": now() })
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

fn hs_verifier() -> JwtVerifier {
    JwtVerifier::new(ISS, AUD).unwrap().hs256(SECRET).unwrap()
}

async fn get_orders(h: &Harness, auth: &str) -> common::Resp {
    let req = Request::builder()
        .uri("/api/orders")
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap();
    h.send(req).await
}

#[tokio::test]
async fn hs256_tokens_are_verified_with_issuer_audience_and_times() {
    let v = hs_verifier();
    let ok = v.verify(&hs256(&claims())).await.unwrap();
    assert_eq!(ok["sub"], "user_1");
    // Within the 60 s leeway.
    v.verify(&hs256(&with(claims(), "exp", json!(now() - 30))))
        .await
        .unwrap();
    // An audience list containing ours.
    v.verify(&hs256(&with(claims(), "aud", json!(["other", AUD]))))
        .await
        .unwrap();

    let refused = [
        (
            "expired",
            with(claims(), "exp", json!(now() - 120)),
            "expired",
        ),
        (
            "wrong audience",
            with(claims(), "aud", json!("billing")),
            "aud",
        ),
        (
            "wrong issuer",
            with(claims(), "iss", json!("https://evil.example/")),
            "iss",
        ),
        (
            "not yet valid",
            with(claims(), "nbf", json!(now() + 300)),
            "nbf",
        ),
        (
            "no exp",
            {
                let mut c = claims();
                c.as_object_mut().unwrap().remove("exp");
                c
            },
            "claim",
        ),
    ];
    for (what, c, why) in refused {
        let token = hs256(&c);
        let e = v.verify(&token).await.unwrap_err();
        assert_eq!(
            e.kind(),
            integrations_core::ErrorKind::Unauthenticated,
            "{what}"
        );
        assert!(e.to_string().contains(why), "{what}: {e}");
        assert!(!e.to_string().contains(&token), "{what}: the token leaked");
    }

    // Tampered: signature, then payload.
    let token = hs256(&claims());
    let (head, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let bad_sig = format!("{head}.{flipped}{}", &sig[1..]);
    assert!(v.verify(&bad_sig).await.is_err());
    let other = hs256(&with(claims(), "sub", json!("admin")));
    let parts: Vec<&str> = token.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    let swapped = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    assert!(v.verify(&swapped).await.is_err());
    // Signed with another secret.
    let foreign = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!!"),
    )
    .unwrap();
    assert!(v.verify(&foreign).await.is_err());
    // alg "none".
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    assert!(v.verify(&none).await.is_err());
    // RS256 without a JWKS configured.
    let rs = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"k"}"#),
        parts[1],
        parts[2]
    );
    assert!(v.verify(&rs).await.is_err());
}

#[tokio::test]
async fn configuration_is_checked_and_secrets_stay_out_of_debug() {
    assert!(JwtVerifier::new(ISS, AUD).unwrap().hs256(b"short").is_err());
    assert!(JwtVerifier::new("", AUD).is_err());
    assert!(
        JwtVerifier::new(ISS, AUD)
            .unwrap()
            .jwks("http://example.com/jwks")
            .is_err()
    );
    let secret = "an-hs256-secret-of-at-least-32-bytes!!";
    let env = |k: &str| match k {
        "ORDER_SERVICE_JWT_SECRET" => Some(secret.to_owned()),
        _ => None,
    };
    let e = JwtVerifier::from_lookup(&env).unwrap_err();
    assert_eq!(e.field(), Some("ORDER_SERVICE_JWT_ISSUER"));
    let env = |k: &str| match k {
        "ORDER_SERVICE_JWT_SECRET" => Some(secret.to_owned()),
        "ORDER_SERVICE_JWT_ISSUER" => Some(ISS.to_owned()),
        "ORDER_SERVICE_JWT_AUDIENCE" => Some(AUD.to_owned()),
        _ => None,
    };
    let v = JwtVerifier::from_lookup(&env).unwrap().unwrap();
    let dbg = format!("{v:?}");
    assert!(!dbg.contains(secret) && !dbg.contains("an-hs256"), "{dbg}");
    assert!(JwtVerifier::from_lookup(&|_| None).unwrap().is_none());

    let h = Harness::with(|b| b.jwt(v)).await;
    let dbg = format!("{:?}", h.state);
    assert!(!dbg.contains("an-hs256"), "{dbg}");
}

#[tokio::test]
async fn the_api_accepts_jwts_and_api_keys_and_refuses_bad_tokens_with_401() {
    let h = Harness::with(|b| b.jwt(hs_verifier())).await;
    let r = get_orders(&h, &format!("Bearer {}", hs256(&claims()))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["success"], true);
    // API keys, in either header.
    let r = get_orders(&h, &format!("Bearer {KEY}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = h.get("/api/orders").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let expired = hs256(&with(claims(), "exp", json!(now() - 3600)));
    let r = get_orders(&h, &format!("Bearer {expired}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["success"], false);
    assert_eq!(r.json["error"]["type"], "unauthenticated");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert!(!r.text.contains(&expired));
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    // A JWT in X-API-Key is not a key.
    let r = h
        .request("GET", "/api/orders", Some(&hs256(&claims())), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Without a verifier, a JWT is refused saying so.
    let plain = Harness::new().await;
    let r = get_orders(&plain, &format!("Bearer {}", hs256(&claims()))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
}

/// A JWKS served by a local axum server, replaceable, counting fetches.
struct JwksServer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(jwks: Value) -> Self {
        let jwks = Arc::new(Mutex::new(jwks));
        let hits = Arc::new(AtomicUsize::new(0));
        let (j, n) = (Arc::clone(&jwks), Arc::clone(&hits));
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (j, n) = (Arc::clone(&j), Arc::clone(&n));
                async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    axum::Json(j.lock().unwrap().clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            jwks,
            hits,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

struct RsaKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn rsa_key(kid: &str) -> RsaKey {
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let der = key.to_pkcs1_der().unwrap();
    let jwk = json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    });
    RsaKey {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk,
    }
}

fn rs256(key: &RsaKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    encode(&header, claims, &key.encoding).unwrap()
}

#[tokio::test]
async fn rs256_keys_come_from_the_jwks_and_rotate_on_an_unknown_kid() {
    let (k1, k2) = (rsa_key("k1"), rsa_key("k2"));
    let server = JwksServer::start(json!({ "keys": [k1.jwk] })).await;
    let interval = Duration::from_millis(300);
    let v = JwtVerifier::new(ISS, AUD)
        .unwrap()
        .jwks_with_interval(&server.url, interval)
        .unwrap();

    assert_eq!(
        v.verify(&rs256(&k1, &claims())).await.unwrap()["sub"],
        "user_1"
    );
    assert_eq!(server.hits(), 1);
    // Cached.
    v.verify(&rs256(&k1, &claims())).await.unwrap();
    assert_eq!(server.hits(), 1);
    // Checks still apply.
    let e = v
        .verify(&rs256(&k1, &with(claims(), "aud", json!("billing"))))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("aud"), "{e}");
    // A token signed by k2 but naming k1 does not verify.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let lying = encode(&header, &claims(), &k2.encoding).unwrap();
    assert!(v.verify(&lying).await.is_err());
    // HS256 with the public key as the secret (algorithm confusion) is refused.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(k1.jwk.to_string().as_bytes()),
    )
    .unwrap();
    assert!(v.verify(&confused).await.is_err());

    // The issuer rotates to k2. Right after the last fetch the unknown kid is refused without
    // asking the key server again…
    *server.jwks.lock().unwrap() = json!({ "keys": [k2.jwk] });
    assert!(v.verify(&rs256(&k2, &claims())).await.is_err());
    assert_eq!(server.hits(), 1);
    // …and once the interval has passed, it is fetched and accepted.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    v.verify(&rs256(&k2, &claims())).await.unwrap();
    assert_eq!(server.hits(), 2);
    // The old key is gone with the rotation.
    assert!(v.verify(&rs256(&k1, &claims())).await.is_err());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn unknown_kids_fetch_the_jwks_at_most_once_a_minute() {
    let k1 = rsa_key("k1");
    let server = JwksServer::start(json!({ "keys": [k1.jwk] })).await;
    let v = JwtVerifier::new(ISS, AUD)
        .unwrap()
        .jwks(&server.url)
        .unwrap();
    let forged = rsa_key("made-up");
    for _ in 0..5 {
        assert!(v.verify(&rs256(&forged, &claims())).await.is_err());
    }
    assert_eq!(server.hits(), 1);
    v.verify(&rs256(&k1, &claims())).await.unwrap();
    assert_eq!(server.hits(), 1);

    // Through the API, with the key server's JWKS.
    let h = Harness::with(|b| b.jwt(v)).await;
    let r = get_orders(&h, &format!("Bearer {}", rs256(&k1, &claims()))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get_orders(&h, &format!("Bearer {}", rs256(&forged, &claims()))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("kid"));
}

#[tokio::test]
async fn es256_keys_come_from_the_jwks_too() {
    use p256::pkcs8::EncodePrivateKey as _;
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let point = key.verifying_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    });
    let der = key.to_pkcs8_der().unwrap();
    let encoding = EncodingKey::from_ec_der(der.as_bytes());
    let server = JwksServer::start(json!({ "keys": [jwk] })).await;
    let v = JwtVerifier::new(ISS, AUD)
        .unwrap()
        .jwks(&server.url)
        .unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec1".into());
    let token = encode(&header, &claims(), &encoding).unwrap();
    assert_eq!(v.verify(&token).await.unwrap()["sub"], "user_1");
    // The EC key does not verify an RS256 token naming it.
    let rsa = rsa_key("ec1");
    assert!(v.verify(&rs256(&rsa, &claims())).await.is_err());
    let expired = encode(
        &header,
        &with(claims(), "exp", json!(now() - 120)),
        &encoding,
    )
    .unwrap();
    assert!(v.verify(&expired).await.is_err());
}
