//! The monitoring page as a person sees it: the whole service on loopback (every provider its
//! sandbox, Stripe's and SendGrid's webhooks delivered over HTTP), real traffic including a
//! SendGrid outage that dead-letters a confirmation email, then the page loaded in headless
//! Chromium and its rendered DOM checked.
//!
//! The browser sends no API key, so it loads the page from the keyless monitoring listener
//! (`ORDER_SERVICE_MONITORING_ADDR`); on the main listener the page needs the key.
//!
//! Chromium is `/usr/bin/chromium` (Debian's `chromium` package) or `$CHROMIUM`. Missing, the
//! test fails when `CI=true` and is skipped otherwise. Set `ORDER_SERVICE_SCREENSHOT=<file.png>`
//! to also save a screenshot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integrations_core::resilience::Backoff;
use integrations_order_service::auth::ApiKeys;
use integrations_order_service::server::{Server, ServerConfig};
use integrations_sendgrid::sandbox::Fault;
use serde_json::{Value, json};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "Chromium not found at {} and CI=true: install it (apt-get install -y chromium) or set CHROMIUM",
            path.display()
        );
    }
    eprintln!(
        "skipping the monitoring page test: no Chromium at {}",
        path.display()
    );
    None
}

/// Runs headless Chromium with `args` then `url`, its stdout into `out`, killed after a minute.
async fn run_chromium(bin: &Path, args: &[String], url: &str, out: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text a person reads: tags dropped (style and head content included), entities decoded,
/// whitespace collapsed.
fn visible_text(html: &str) -> String {
    // Past `<body`, we are inside that tag until its `>`.
    let (body, mut in_tag) = html
        .split_once("<body")
        .map_or((html, false), |(_, b)| (b, true));
    let mut text = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let decoded = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The visible text of the table row (in `html`) whose first cell is `first`.
fn row(html: &str, first: &str) -> String {
    html.split("<tr")
        .map(|r| visible_text(&format!("<body{r}")))
        .find(|t| t.split(' ').next() == Some(first))
        .unwrap_or_else(|| panic!("no row starting with {first:?} in the page"))
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", &self.key);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).unwrap());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn paid_order(&self, name: &str) -> String {
        let body = json!({
            "customerEmail": "jane@example.com", "customerName": name, "currency": "eur",
            "items": [{"id": "sku-1", "name": "Rain shell", "quantity": 1, "price": "129.00"}],
            "totalAmount": "129.00"
        });
        let created = self
            .call(reqwest::Method::POST, "/api/orders", Some(&body))
            .await;
        let order = &created["data"]["order"];
        let confirm = json!({
            "orderId": order["id"], "paymentIntentId": order["paymentIntentId"],
            "paymentMethod": "pm_card_visa"
        });
        self.call(
            reqwest::Method::POST,
            "/api/payments/confirm",
            Some(&confirm),
        )
        .await;
        order["id"].as_str().unwrap().to_owned()
    }

    /// Polls `/integrations` until `done(outbox)` holds (the deliveries are asynchronous).
    async fn wait_outbox(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let v = self.call(reqwest::Method::GET, "/integrations", None).await;
            if done(&v["data"]["outbox"]) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_page_shows_live_integration_status_in_a_browser() {
    let Some(chromium) = chromium() else { return };
    let (keys, key) = ApiKeys::generate();
    let mut config = ServerConfig::local(keys);
    // The page in a browser, which sends no API key: from the keyless monitoring listener.
    config.monitoring_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    config.monitoring_interval = Duration::from_millis(100);
    config.poll_interval = Duration::from_millis(50);
    config.dispatcher_backoff =
        Backoff::new(Duration::from_millis(10), Duration::from_millis(50), 2.0);
    let server = Server::start(config).await.unwrap();
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base_url(),
        key,
    };

    // A healthy order: Stripe's webhook reaches the service, the three jobs are delivered.
    c.paid_order("Amara <Okafor>").await;
    c.wait_outbox("the first order's jobs", |o| o["done"].as_u64() >= Some(3))
        .await;

    // SendGrid goes down: the next confirmation email exhausts its attempts.
    let sendgrid = server.services().sendgrid_sandbox.as_ref().unwrap();
    sendgrid.fail_next(10_000, Fault::ServerError);
    c.paid_order("Lukas Meyer").await;
    let v = c
        .wait_outbox("a dead letter", |o| {
            o["dead"].as_u64() >= Some(1) && o["done"].as_u64() >= Some(5)
        })
        .await;
    let dead = v["data"]["outbox"]["dead"].as_u64().unwrap();

    // On the main listener the page needs the key; the monitoring listener serves it without.
    let http = reqwest::Client::new();
    let main = http
        .get(format!("{}/", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status().as_u16(), 401);
    let monitoring = server.monitoring_url().expect("a monitoring listener");
    let plain = http.get(format!("{monitoring}/")).send().await.unwrap();
    assert_eq!(plain.status().as_u16(), 200);

    let dir = tempfile::tempdir().unwrap();
    let dom_file = dir.path().join("dom.html");
    run_chromium(
        &chromium,
        &["--dump-dom".to_owned()],
        &format!("{}/", monitoring),
        &dom_file,
    )
    .await;
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    let text = visible_text(&dom);

    assert!(text.starts_with("Order service — monitoring"), "{text}");
    for heading in [
        "Integrations",
        "Outbox",
        &format!("Dead letters ({dead})"),
        "Orders",
    ] {
        assert!(text.contains(heading), "no {heading:?} in: {text}");
    }
    for column in [
        "Status",
        "Breaker",
        "Calls",
        "Success rate",
        "p50",
        "p95",
        "p99",
    ] {
        assert!(text.contains(column), "no column {column:?}");
    }

    // Every integration has a row whose numbers are the registry's.
    let snapshot = server.state().metrics().snapshot();
    let stripe = row(&dom, "stripe");
    let s = snapshot.get("stripe").unwrap();
    assert!(
        stripe.contains("payments sandbox healthy closed"),
        "{stripe}"
    );
    assert!(
        stripe.contains(&format!("closed {} 100.0 %", s.calls)),
        "{stripe}"
    );
    assert!(
        stripe.contains(" ms "),
        "latency percentiles shown: {stripe}"
    );

    let sg = row(&dom, "sendgrid");
    let m = snapshot.get("sendgrid").unwrap();
    let failures: u64 = m.failures.values().sum();
    assert!(failures >= 1, "SendGrid failures recorded");
    assert!(
        sg.contains(&format!("{} ", m.breaker_state.as_str().replace('_', "-")))
            || sg.contains(&format!("{} ", m.breaker_state.as_str())),
        "breaker {:?} shown: {sg}",
        m.breaker_state
    );
    assert!(
        sg.contains(&format!("{:.1} %", m.success_rate * 100.0)),
        "{sg}"
    );
    assert!(m.success_rate < 1.0);
    assert!(row(&dom, "google-sheets").contains("analytics sandbox healthy closed"));
    assert!(row(&dom, "local-notifier").contains("notifications local healthy closed"));

    // The dead letter: the email job of the second order, failed at SendGrid.
    let dead_row = dom
        .split("<tr")
        .map(|r| visible_text(&format!("<body{r}")))
        .find(|t| t.contains("email.confirmation"))
        .unwrap_or_else(|| panic!("no dead letter row: {text}"));
    assert!(dead_row.contains("sendgrid"), "{dead_row}");
    assert!(text.contains("2 paid"), "orders tile: {text}");
    assert!(!text.contains("Amara"), "no customer data on the page");

    if let Some(shot) = std::env::var_os("ORDER_SERVICE_SCREENSHOT") {
        let shot = PathBuf::from(shot);
        run_chromium(
            &chromium,
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=1280,1000".to_owned(),
            ],
            &format!("{}/", monitoring),
            &dir.path().join("shot.log"),
        )
        .await;
        assert!(shot.exists());
    }
    sendgrid.reset();
    server.shutdown().await.unwrap();
}
