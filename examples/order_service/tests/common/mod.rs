//! The service in-process on the Stripe sandbox, with recording stubs for email, sheets and
//! notifications, driven through `tower::ServiceExt::oneshot`.
//!
//! The stores are a temporary SQLite file, or a fresh Postgres database when
//! `ORDER_SERVICE_TEST_DATABASE=postgres` (`scripts/test` runs the HTTP tests both ways).
#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::Mailbox;
use integrations_order_service::auth::ApiKeys;
use integrations_order_service::effects::Effects;
use integrations_order_service::orders::OrderStore;
use integrations_order_service::wiring::sandbox_policy;
use integrations_order_service::{
    AppState, AppStateBuilder, IntegrationInfo, IntegrationMode, app,
};
use integrations_outbox::postgres::testing::TestDatabase;
use integrations_outbox::{Dispatcher, OutboxStore, PostgresOutbox, RunStats, SqliteOutbox};
use integrations_sendgrid::webhook::EventWebhookSigner;
use integrations_stripe::sandbox::{Sandbox, WebhookDelivery};
use integrations_stripe::webhook::StripeWebhookVerifier;
use integrations_testkit::{StubEmailProvider, StubNotifier, StubSheetsSink};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The API key every harness accepts.
pub(crate) const KEY: &str = "test-key-0123456789abcdef";

/// A response, its JSON body parsed (Null when not JSON).
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
    pub(crate) text: String,
}

impl Resp {
    /// `error.field` of an error answer.
    pub(crate) fn field(&self) -> Option<&str> {
        self.json["error"]["field"].as_str()
    }
    /// `error.code` of an error answer.
    pub(crate) fn code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }
}

pub(crate) struct Harness {
    pub(crate) app: Router,
    pub(crate) state: AppState,
    pub(crate) registry: MetricsRegistry,
    pub(crate) stripe: Sandbox,
    deliveries: Arc<Mutex<Vec<WebhookDelivery>>>,
    pub(crate) sendgrid_signer: EventWebhookSigner,
    pub(crate) email: Arc<StubEmailProvider>,
    pub(crate) sheets: Arc<StubSheetsSink>,
    pub(crate) notifier: Arc<StubNotifier>,
    pub(crate) outbox: Arc<dyn OutboxStore>,
    pub(crate) orders: OrderStore,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) db: Db,
    _dashboard: integrations_dashboard::Dashboard,
}

/// Chooses the harness's database: `ORDER_SERVICE_TEST_DATABASE=postgres` (or `sqlite`, the
/// default).
pub(crate) const DATABASE_VAR: &str = "ORDER_SERVICE_TEST_DATABASE";

/// Where a harness keeps its stores.
pub(crate) enum Db {
    /// A temporary SQLite file.
    Sqlite(tempfile::TempDir),
    /// A fresh database on the Postgres test server.
    Postgres(Box<TestDatabase>),
}

impl Db {
    /// A fresh database of the kind [`DATABASE_VAR`] asks for.
    pub(crate) async fn create() -> Db {
        match std::env::var(DATABASE_VAR).as_deref() {
            Ok("postgres") => match TestDatabase::create("order_service_http").await {
                Some(db) => Db::Postgres(Box::new(db)),
                None => panic!("{DATABASE_VAR}=postgres but no Postgres test server"),
            },
            Ok("sqlite") | Err(_) => Db::Sqlite(tempfile::tempdir().unwrap()),
            Ok(other) => panic!("{DATABASE_VAR}={other}: expected sqlite or postgres"),
        }
    }

    /// An outbox and the order store beside it on this database, as one service instance opens
    /// them.
    pub(crate) async fn open(&self) -> (Arc<dyn OutboxStore>, OrderStore) {
        match self {
            Db::Sqlite(dir) => {
                let outbox = SqliteOutbox::open(dir.path().join("service.db"))
                    .await
                    .unwrap();
                let orders = OrderStore::sqlite(&outbox).await.unwrap();
                (Arc::new(outbox), orders)
            }
            Db::Postgres(db) => {
                let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
                let orders = OrderStore::postgres(&outbox).await.unwrap();
                (Arc::new(outbox), orders)
            }
        }
    }

    /// Runs `sqlite` or `postgres` (statements in that dialect) on the database.
    pub(crate) async fn execute(&self, sqlite: &str, postgres: &str) {
        match self {
            Db::Sqlite(dir) => {
                let db = rusqlite::Connection::open(dir.path().join("service.db")).unwrap();
                db.execute_batch(sqlite).unwrap();
            }
            Db::Postgres(db) => {
                let pool = db.options().connect().await.unwrap();
                integrations_outbox::postgres::sqlx::raw_sql(postgres)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }
}

impl Harness {
    pub(crate) async fn new() -> Self {
        Self::with(|b| b).await
    }

    /// A harness whose state builder is adjusted by `f` (e.g. to add inbound SNS).
    pub(crate) async fn with(f: impl FnOnce(AppStateBuilder) -> AppStateBuilder) -> Self {
        Self::on(Db::create().await, f).await
    }

    /// A harness on `db`, its state builder adjusted by `f`.
    pub(crate) async fn on(db: Db, f: impl FnOnce(AppStateBuilder) -> AppStateBuilder) -> Self {
        let (outbox, orders) = db.open().await;
        let registry = MetricsRegistry::new();
        let stripe = Sandbox::start().await.unwrap();
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&deliveries);
        stripe.on_webhook(move |d| sink.lock().unwrap_or_else(PoisonError::into_inner).push(d));
        let client = stripe
            .client_builder()
            .with_policy(sandbox_policy("stripe", &registry))
            .build()
            .unwrap();
        let sendgrid_signer = EventWebhookSigner::generate();
        let builder = AppState::builder(
            orders.clone(),
            Arc::new(client),
            Arc::clone(&outbox),
            ApiKeys::new([KEY]).unwrap(),
            StripeWebhookVerifier::new(stripe.webhook_secret()),
        )
        .metrics(registry.clone())
        .sendgrid_webhook(sendgrid_signer.verifier())
        .integration(IntegrationInfo::new(
            "stripe",
            "payments",
            IntegrationMode::Sandbox,
        ));
        let dashboard = integrations_dashboard::Dashboard::builder()
            .metrics(&registry)
            .outbox(outbox.clone())
            .build()
            .unwrap();
        let state = f(builder.dashboard(&dashboard)).build();
        let email = Arc::new(StubEmailProvider::new_ok());
        let sheets = Arc::new(StubSheetsSink::new_ok());
        let notifier = Arc::new(StubNotifier::new_ok());
        let dispatcher = Effects::new(
            orders.clone(),
            email.clone(),
            Mailbox::new("orders@example.com"),
            sheets.clone(),
            notifier.clone(),
        )
        // Delivers into the service's metrics, as the server's dispatcher does.
        .register(Dispatcher::builder(outbox.clone()).metrics(Arc::clone(state.outbox_metrics())))
        .build()
        .unwrap();
        Harness {
            app: app(state.clone()),
            state,
            registry,
            stripe,
            deliveries,
            sendgrid_signer,
            email,
            sheets,
            notifier,
            outbox,
            orders,
            dispatcher,
            db,
            _dashboard: dashboard,
        }
    }

    pub(crate) async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 8 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            json,
            text,
        }
    }

    pub(crate) async fn request(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            b = b.header("x-api-key", k);
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(serde_json::to_vec(v).unwrap())
            }
            None => Body::empty(),
        };
        self.send(b.body(body).unwrap()).await
    }

    /// POSTs `body` exactly as written (for literals `serde_json` would reformat).
    pub(crate) async fn post_raw(&self, uri: &str, body: &str) -> Resp {
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(req).await
    }

    /// Another service instance on the same database file and Stripe sandbox (its own store
    /// connections, locks and provider client), as a second process would be.
    pub(crate) async fn second_instance(&self) -> Router {
        let (outbox, orders) = self.db.open().await;
        let client = self
            .stripe
            .client_builder()
            .with_policy(sandbox_policy("stripe", &MetricsRegistry::new()))
            .build()
            .unwrap();
        let state = AppState::builder(
            orders,
            Arc::new(client),
            outbox,
            ApiKeys::new([KEY]).unwrap(),
            StripeWebhookVerifier::new(self.stripe.webhook_secret()),
        )
        .build();
        app(state)
    }

    /// POSTs `body` to `uri` on `router` (another instance).
    pub(crate) async fn post_to(router: &Router, uri: &str, body: &Value) -> Resp {
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json")
            .header("x-api-key", KEY)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 8 << 20)
            .await
            .unwrap();
        Resp {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(crate) async fn get(&self, uri: &str) -> Resp {
        self.request("GET", uri, Some(KEY), None).await
    }

    pub(crate) async fn post(&self, uri: &str, body: &Value) -> Resp {
        self.request("POST", uri, Some(KEY), Some(body)).await
    }

    /// Creates a valid order (2 × 29.99 + 1 × 0.02 USD = 60.00) and returns `data`.
    pub(crate) async fn create_order(&self) -> Value {
        let r = self.post("/api/orders", &order_body()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["data"].clone()
    }

    /// Confirms `order`'s payment with `payment_method`.
    pub(crate) async fn confirm(&self, order: &Value, payment_method: &str) -> Resp {
        self.post(
            "/api/payments/confirm",
            &json!({
                "orderId": order["id"],
                "paymentIntentId": order["paymentIntentId"],
                "paymentMethod": payment_method,
            }),
        )
        .await
    }

    /// Creates an order and pays it; returns the order as the confirm answered it.
    pub(crate) async fn paid_order(&self) -> Value {
        let data = self.create_order().await;
        let r = self.confirm(&data["order"], "pm_card_visa").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["data"]["order"]["status"], "paid");
        r.json["data"]["order"].clone()
    }

    /// The Stripe events the sandbox signed so far, removed from the queue.
    pub(crate) fn take_deliveries(&self) -> Vec<WebhookDelivery> {
        std::mem::take(
            &mut *self
                .deliveries
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// POSTs a sandbox delivery to `/webhooks/stripe`, as Stripe would.
    pub(crate) async fn deliver(&self, d: &WebhookDelivery) -> Resp {
        let req = Request::builder()
            .method("POST")
            .uri("/webhooks/stripe")
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", &d.signature)
            .body(Body::from(d.payload.clone()))
            .unwrap();
        self.send(req).await
    }

    /// Delivers every queued event of `event_type`; returns the deliveries.
    pub(crate) async fn deliver_all(&self, event_type: &str) -> Vec<WebhookDelivery> {
        let ds: Vec<_> = self
            .take_deliveries()
            .into_iter()
            .filter(|d| d.event_type == event_type)
            .collect();
        for d in &ds {
            let r = self.deliver(d).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        ds
    }

    /// Re-reads the stores' figures the monitoring views show (a server does it every 2 s).
    pub(crate) async fn refresh_monitoring(&self) {
        integrations_order_service::monitoring::refresh(&self.state)
            .await
            .unwrap();
    }

    pub(crate) async fn drain(&self) -> RunStats {
        self.dispatcher.run_until_idle().await.unwrap()
    }
}

/// A valid order body: 2 × 29.99 + 1 × 0.02 = 60.00 USD.
pub(crate) fn order_body() -> Value {
    json!({
        "customerId": "cust_123",
        "customerEmail": "john@example.com",
        "customerName": "John Doe",
        "currency": "usd",
        "items": [
            {"id": "item_1", "name": "Product A", "quantity": 2, "price": "29.99"},
            {"id": "item_2", "name": "Sticker", "quantity": 1, "price": "0.02"}
        ],
        "totalAmount": "60.00",
        "shippingAddress": {
            "street": "123 Main St", "city": "New York", "state": "NY",
            "zipCode": "10001", "country": "USA"
        }
    })
}
