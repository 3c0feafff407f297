//! The reference service under load: `service_load` starts the `integrations-order-service`
//! binary (embedded defaults: sandboxes, SQLite in a temporary directory), drives `N` orders
//! through its HTTP API from `C` concurrent clients — each order `POST /api/orders` then
//! `POST /api/payments/confirm` with a test card — and measures, per tenth of the orders, the
//! wall time per order and the **server process's** memory (`VmRSS`, `VmHWM` from
//! `/proc/<pid>/status`). One server process per size, so each starts from nothing.
//!
//! The points go into the same `scaling.csv`/`scaling.svg` as `order_flow --scale`, under their
//! own label (`service-…`), so the service's curve sits next to the main job's.
//!
//! A hand-written client rather than `oha`/`wrk`: each order is two dependent requests (the
//! confirm needs the intent id the create answered), and the memory to sample is the server's,
//! at the moments a tenth of the orders is done; the generic load generators do neither.
//!
//! The whole run ends when the service has **taken every Stripe event** the checkouts made
//! (`order_service_webhook_events_total` reaches `order_service_sandbox_events_total` in
//! `GET /metrics`), not when the last client has its answer: the sandbox answers the API before
//! it delivers the webhooks, so a short run would otherwise leave the intake's work queued
//! behind it and look faster than a long one, whose queue is full and slows the clients.
//!
//! What is not waited for: the outbox's deliveries after checkout (emails, analytics rows,
//! notifications) go on in the server at the providers' quotas (the Sheets sink's one append a
//! second) and are not part of the time per order here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::order_flow::measure::{Point, markdown_table, memory_of, merge_points, summarise};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The order service binary.
    pub service: PathBuf,
    /// Orders per run, one server process per run.
    pub sizes: Vec<usize>,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Label of the runs in the CSV and chart.
    pub label: String,
    /// Where `scaling.csv` and `scaling.svg` are.
    pub out: PathBuf,
}

/// The usage text of the `service_load` binary.
pub const USAGE: &str = "\
service_load: the order service under load, time per order and the server's memory per tenth

usage: service_load --service PATH [--orders 1000,10000] [--concurrency 16]
                    [--label service] [--out docs]

  --service PATH    the integrations-order-service binary (build it with the same profile)
  --orders LIST     orders per run, comma-separated; one server process per run (default 1000)
  --concurrency N   concurrent clients (default 16)
  --label NAME      label of the runs in DIR/scaling.csv (default `service`)
  --out DIR         where scaling.csv and scaling.svg are merged and redrawn (default docs)";

/// Parses the arguments (after the program name); `Ok(None)` for `--help`.
///
/// # Errors
/// An unknown argument or a bad value, named.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<LoadConfig>, String> {
    let mut cfg = LoadConfig {
        service: PathBuf::new(),
        sizes: vec![1000],
        concurrency: 16,
        label: "service".to_owned(),
        out: PathBuf::from("docs"),
    };
    let mut args = args.into_iter();
    let positive = |name: &str, v: Option<String>| -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{name} needs a value"))?;
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name}: {v:?} is not a positive whole number")),
        }
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--service" => {
                cfg.service = PathBuf::from(args.next().ok_or("--service needs a path")?);
            }
            "--orders" => {
                let list = args.next().ok_or("--orders needs a list")?;
                cfg.sizes = list
                    .split(',')
                    .map(|s| positive("--orders", Some(s.trim().to_owned())))
                    .collect::<Result<_, _>>()?;
            }
            "--concurrency" => cfg.concurrency = positive("--concurrency", args.next())?,
            "--label" => {
                let label = args.next().ok_or("--label needs a name")?;
                if label.is_empty() || label.contains([',', '\n']) {
                    return Err(format!("--label: {label:?} must be non-empty, no commas"));
                }
                cfg.label = label;
            }
            "--out" => cfg.out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            other => return Err(format!("unknown argument {other:?} (--help for usage)")),
        }
    }
    if cfg.service.as_os_str().is_empty() {
        return Err("--service PATH is required (the integrations-order-service binary)".into());
    }
    Ok(Some(cfg))
}

/// A running server process, stopped (SIGTERM, then SIGKILL) when dropped so its temporary data
/// directory is cleaned up by its own shutdown.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(exe: &Path, key: &str) -> Result<Server, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(exe)
            .env("ORDER_SERVICE_ADDR", format!("127.0.0.1:{port}"))
            .env("ORDER_SERVICE_API_KEYS", key)
            .env("RUST_LOG", "warn")
            .env_remove("ORDER_SERVICE_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        Ok(Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of every order: two items, USD, as the seed's API takes it.
fn order_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "customerEmail": "load@example.com", "customerName": "Load Test", "currency": "usd",
        "items": [{"id": "item_1", "name": "Product A", "quantity": 2, "price": "29.99"}],
        "totalAmount": "59.98"
    }))
    .unwrap_or_default()
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<Value, String> {
    let r = http
        .post(url)
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = r.status();
    let text = r.text().await.map_err(|e| format!("POST {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("POST {url}: {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("POST {url}: not JSON ({e}): {text}"))
}

/// One order: create, then confirm with the test card; the order must end `paid`.
async fn one_order(http: &reqwest::Client, base: &str, key: &str) -> Result<(), String> {
    let created = post(http, &format!("{base}/api/orders"), key, order_body()).await?;
    let order = &created["data"]["order"];
    let confirm = serde_json::to_vec(&json!({
        "orderId": order["id"],
        "paymentIntentId": order["paymentIntentId"],
        "paymentMethod": "pm_card_visa",
    }))
    .unwrap_or_default();
    let paid = post(http, &format!("{base}/api/payments/confirm"), key, confirm).await?;
    match paid["data"]["order"]["status"].as_str() {
        Some("paid") => Ok(()),
        other => Err(format!("confirm answered status {other:?}")),
    }
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = http
            .get(format!("{base}/api/monitoring/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the service at {base} was not healthy within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(taken, made)`: the Stripe events the service's webhook took and those its Stripe sandbox
/// made, from `GET /metrics`.
async fn webhook_counts(
    http: &reqwest::Client,
    base: &str,
    key: &str,
) -> Result<(u64, u64), String> {
    let url = format!("{base}/metrics");
    let text = http
        .get(&url)
        .header("x-api-key", key)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let read = |name: &str| {
        let prefix = format!("{name}{{provider=\"stripe\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("GET {url}: no {name} for Stripe (not on the sandbox?)"))
    };
    Ok((
        read("order_service_webhook_events_total")?,
        read("order_service_sandbox_events_total")?,
    ))
}

/// Waits until the service has taken every Stripe event its sandbox made (at most 10 minutes).
async fn wait_webhooks_taken(http: &reqwest::Client, base: &str, key: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (taken, made) = webhook_counts(http, base, key).await?;
        if taken >= made {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the service took {taken} of the {made} Stripe events within 10 minutes"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Tenths of a run: the orders done so far and when the last tenth ended.
struct Slicer {
    size: usize,
    step: usize,
    last: Instant,
    last_done: usize,
    points: Vec<Point>,
}

/// Runs `size` orders against a fresh server; the points of its tenths and an `end` point
/// (whole run per order, peak memory), and the failed orders' errors (at most 10 kept).
async fn run_one(
    cfg: &LoadConfig,
    size: usize,
) -> Result<(Vec<Point>, usize, Vec<String>), String> {
    let key = format!("load_{:016x}", fastrand::u64(..));
    let server = Server::start(&cfg.service, &key)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.concurrency)
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    wait_ready(&http, &server.base).await?;
    let pid = server.pid();
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new((0usize, Vec::new())));
    let slicer = Arc::new(Mutex::new(Slicer {
        size,
        step: (size / 10).max(1),
        last: start,
        last_done: 0,
        points: Vec::new(),
    }));
    let label = cfg.label.clone();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..cfg.concurrency.min(size) {
        let (http, base, key) = (http.clone(), server.base.clone(), key.clone());
        let (next, done, failures, slicer, label) = (
            next.clone(),
            done.clone(),
            failures.clone(),
            slicer.clone(),
            label.clone(),
        );
        clients.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < size {
                if let Err(e) = one_order(&http, &base, &key).await {
                    let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                    f.0 += 1;
                    if f.1.len() < 10 {
                        f.1.push(e);
                    }
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                let mut s = slicer.lock().unwrap_or_else(|p| p.into_inner());
                if (n % s.step == 0 || n == s.size) && n > s.last_done {
                    let now = Instant::now();
                    let size = s.size;
                    let slice = (n - s.last_done).max(1);
                    let mem = memory_of(pid);
                    let per_order = now.duration_since(s.last) / u32::try_from(slice).unwrap_or(1);
                    s.points.push(Point {
                        label: label.clone(),
                        size,
                        phase: "checkout".to_owned(),
                        orders: n,
                        per_order_us: u64::try_from(per_order.as_micros()).unwrap_or(u64::MAX),
                        rss_kb: mem.rss_kb,
                        hwm_kb: mem.hwm_kb,
                    });
                    s.last = now;
                    s.last_done = n;
                }
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.map_err(|e| format!("a client task failed: {e}"))?;
    }
    let checkout = start.elapsed();
    wait_webhooks_taken(&http, &server.base, &key).await?;
    eprintln!(
        "service_load: {size} orders: checkout {:.1} s, every webhook taken {:.1} s later",
        checkout.as_secs_f64(),
        (start.elapsed() - checkout).as_secs_f64()
    );
    let whole = start.elapsed() / u32::try_from(size).unwrap_or(u32::MAX);
    let mem = memory_of(pid);
    drop(server);
    let mut slicer = Arc::try_unwrap(slicer)
        .map_err(|_| "clients still hold the slicer".to_owned())?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    slicer.points.push(Point {
        label: cfg.label.clone(),
        size,
        phase: "end".to_owned(),
        orders: size,
        per_order_us: u64::try_from(whole.as_micros()).unwrap_or(u64::MAX),
        rss_kb: mem.rss_kb,
        hwm_kb: mem.hwm_kb,
    });
    let (failed, errors) = std::mem::take(&mut *failures.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((slicer.points, failed, errors))
}

/// Runs every size and returns the Markdown table of the whole CSV, with a note per run that
/// had failed orders.
///
/// # Errors
/// A server that does not start or answer, a file that cannot be written.
pub async fn run(cfg: &LoadConfig) -> Result<String, String> {
    let mut notes = Vec::new();
    let mut points = Vec::new();
    for &size in &cfg.sizes {
        let started = Instant::now();
        let (new, failed, errors) = run_one(cfg, size).await?;
        eprintln!(
            "service_load: {size} orders in {:.1} s, {failed} failed",
            started.elapsed().as_secs_f64()
        );
        if failed > 0 {
            notes.push(format!(
                "{failed} of {size} orders failed ({}); first errors: {}",
                cfg.label,
                errors.join(" | ")
            ));
        }
        points = merge_points(&cfg.out, &cfg.label, size, new)?;
    }
    let mut out = markdown_table(&summarise(&points));
    for n in notes {
        out.push_str("\nnote: ");
        out.push_str(&n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_are_parsed_and_bad_ones_named() {
        let cfg = parse_args(args(&[
            "--service",
            "/bin/x",
            "--orders",
            "10,20",
            "--concurrency",
            "4",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((cfg.sizes, cfg.concurrency), (vec![10, 20], 4));
        assert_eq!(cfg.label, "service");
        assert!(parse_args(args(&["--help"])).unwrap().is_none());
        let e = parse_args(args(&["--orders", "10"])).unwrap_err();
        assert!(e.contains("--service"), "{e}");
        let e = parse_args(args(&["--service", "x", "--orders", "10,0"])).unwrap_err();
        assert!(e.contains("--orders") && e.contains("\"0\""), "{e}");
        let e = parse_args(args(&["--service", "x", "--label", "a,b"])).unwrap_err();
        assert!(e.contains("--label"), "{e}");
        let e = parse_args(args(&["--frobnicate"])).unwrap_err();
        assert!(e.contains("--frobnicate"), "{e}");
    }
}
