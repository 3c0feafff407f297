//! What a run does: [`FlowConfig`], from the command line and the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::chaos::ChaosFault;

/// Stripe secret key; set → the real Stripe (test mode only).
pub const ENV_STRIPE: &str = "STRIPE_SECRET_KEY";
/// SendGrid API key; set → the real SendGrid.
pub const ENV_SENDGRID: &str = "SENDGRID_API_KEY";
/// Service-account key (path or JSON); set with a spreadsheet id → the real Google Sheets.
pub const ENV_GOOGLE: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// The spreadsheet, as the issue names it.
pub const ENV_SPREADSHEET: &str = "SHEETS_SPREADSHEET_ID";
/// The spreadsheet, as `integrations-sheets` names it (either works).
pub const ENV_SPREADSHEET_SHEETS: &str = "GOOGLE_SHEETS_SPREADSHEET_ID";
/// AWS access key; set (with a region) → SES as the backup email provider.
pub const ENV_AWS_KEY: &str = "AWS_ACCESS_KEY_ID";
/// AWS profile, the alternative to keys.
pub const ENV_AWS_PROFILE: &str = "AWS_PROFILE";
/// SNS topic for notifications (with AWS credentials).
pub const ENV_SNS_TOPIC: &str = "ORDER_FLOW_SNS_TOPIC_ARN";
/// Sender address; required with a real email provider (it must be verified there).
pub const ENV_EMAIL_FROM: &str = "ORDER_FLOW_EMAIL_FROM";
/// Inbox every customer email goes to; required with a real email provider.
pub const ENV_EMAIL_TO: &str = "ORDER_FLOW_EMAIL_TO";
/// Stripe's API base URL (`integrations-stripe` reads it); a loopback one is a local endpoint.
pub const ENV_STRIPE_API_BASE: &str = "STRIPE_API_BASE";
/// SendGrid's API base URL (`integrations-sendgrid` reads it); a loopback one is a local endpoint.
pub const ENV_SENDGRID_API_BASE: &str = "SENDGRID_API_BASE";
/// Google Sheets' base URL (`integrations-sheets` reads it); a loopback one is a local endpoint.
pub const ENV_SHEETS_BASE_URL: &str = "GOOGLE_SHEETS_BASE_URL";

/// Postgres URL; set → the outbox (and its dedup) lives in that database instead of SQLite.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";

const READ: [&str; 15] = [
    ENV_DATABASE_URL,
    ENV_STRIPE,
    ENV_SENDGRID,
    ENV_GOOGLE,
    ENV_SPREADSHEET,
    ENV_SPREADSHEET_SHEETS,
    ENV_AWS_KEY,
    ENV_AWS_PROFILE,
    ENV_SNS_TOPIC,
    ENV_EMAIL_FROM,
    ENV_EMAIL_TO,
    "AWS_REGION",
    ENV_STRIPE_API_BASE,
    ENV_SENDGRID_API_BASE,
    ENV_SHEETS_BASE_URL,
];

/// The variables that choose real services over sandboxes. Values are secrets: `Debug` shows
/// only which are set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("set", &self.vars.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Environment {
    /// No variables: every service is a sandbox.
    pub fn empty() -> Self {
        Environment::default()
    }

    /// The process environment's relevant, non-empty variables.
    pub fn from_process() -> Self {
        Environment::from_lookup(|k| std::env::var(k).ok())
    }

    /// The relevant, non-empty variables `lookup` knows.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let vars = READ
            .iter()
            .filter_map(|k| {
                let v = lookup(k)?;
                (!v.trim().is_empty()).then(|| ((*k).to_owned(), v.trim().to_owned()))
            })
            .collect();
        Environment { vars }
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Whether a variable is set.
    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// The spreadsheet id, from either variable.
    pub fn spreadsheet_id(&self) -> Option<&str> {
        self.get(ENV_SPREADSHEET)
            .or_else(|| self.get(ENV_SPREADSHEET_SHEETS))
    }

    /// Whether AWS credentials are configured (keys or a profile).
    pub fn has_aws(&self) -> bool {
        self.has(ENV_AWS_KEY) || self.has(ENV_AWS_PROFILE)
    }

    /// Whether the base URL in variable `name` points at this machine (`127.0.0.1`, `::1`,
    /// `localhost`): a sandbox or emulator, with no published quota to respect.
    pub fn is_loopback(&self, name: &str) -> bool {
        self.get(name)
            .and_then(|v| url::Url::parse(v).ok())
            .is_some_and(|u| match u.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            })
    }
}

/// The injected email-provider outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// Injected once this many orders have gone through checkout.
    pub after_orders: usize,
    /// SendGrid requests answered `500` from then on.
    pub failed_requests: usize,
}

impl Outage {
    /// SendGrid requests answered `500` by the default outage: enough that, with each email
    /// sent as its event is recorded (a few at a time, each retried twice), several calls fail
    /// outright and the local breaker (5 failures of its last 10 calls) opens; with 30 the
    /// retries absorbed the whole outage in one run of three.
    pub const DEFAULT_FAILED_REQUESTS: usize = 45;
}

/// A run of the order flow.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Orders to push through.
    pub orders: usize,
    /// Checkouts in flight at once.
    pub checkout_concurrency: usize,
    /// Outbox deliveries in flight at once, on the dispatcher of every kind but the Sheets rows.
    pub dispatch_concurrency: usize,
    /// Sheets-row deliveries in flight at once, on their own dispatcher (lane): each waits for
    /// the sink's next append, which carries the rows of the jobs waiting on it, so this many
    /// rows go in one append, once a second under the write quota. Default
    /// [`BatchConfig::DEFAULT`](integrations_sheets::BatchConfig::DEFAULT)'s `max_rows`.
    pub sheets_concurrency: usize,
    /// Delivery attempts per job before the dead-letter queue.
    pub max_attempts: u32,
    /// The SendGrid outage to inject (sandbox only); `None` for none.
    pub outage: Option<Outage>,
    /// Inject Stripe faults (a confirmation processed but its answer lost, a 500), sandbox only.
    pub stripe_faults: bool,
    /// Where progress bars are drawn ([`terminal_bars`](super::progress::terminal_bars));
    /// `None`: none.
    pub progress: Option<indicatif::MultiProgress>,
    /// After the last order, the longest wait for the outbox (and the webhooks) to make
    /// progress: the run stops waiting when nothing was delivered for this long, however long
    /// the whole drain takes.
    pub drain_timeout: Duration,
    /// Keep the temporary directory (outbox database, notifications, metrics) after the run.
    pub keep_files: bool,
    /// Which services are real.
    pub env: Environment,
    /// Where the run keeps its state — outbox, orders, delivery ledger, business counters,
    /// notifications — so that a process killed at any point can be started again on it and
    /// resume; `None`: a temporary directory.
    pub state_dir: Option<PathBuf>,
    /// The run's id, part of every order id and so of every idempotency key; `None`: a fresh
    /// one, or the one recorded in [`FlowConfig::state_dir`].
    pub run_id: Option<String>,
    /// The lease each outbox job is claimed under: how soon a job held by a process that died is
    /// claimed again. Each delivery gets five sixths of it, shared among the provider calls it
    /// makes as their policies' deadlines ([`JobBudgets`](super::policies::JobBudgets)).
    ///
    /// The default, 90 s, fits the sandboxes: they answer in milliseconds, so the deadlines
    /// (about 34 s for each email provider and Sheets call, 67 s for the notifier) only cut short
    /// the retries of an outage, whose job the outbox retries later. With a real email, Sheets
    /// or AWS provider configured (and neither `--lease-ms` nor `--state-dir`), it is raised to
    /// [`real_providers_lease`], so their published limits and `Retry-After` waits fit whole.
    pub lease: Duration,
    /// How often the events of a Stripe that cannot reach the webhook endpoint (the real one,
    /// or a sandbox in another process) are listed.
    pub event_poll: Duration,
    /// Overrides every policy's per-attempt timeout (e.g. short, for hang faults).
    pub attempt_timeout: Option<Duration>,
    /// Faults to inject into the sandboxes as checkout goes.
    pub chaos: Vec<ChaosFault>,
    /// Sample time per order and memory this many times over the orders (`--measure`: 10);
    /// `None`: not measured. See [`measure`](super::measure).
    pub measure: Option<usize>,
    /// What each sandbox keeps of its history: requests, Stripe events, idempotency keys and
    /// deliveries, SendGrid messages (default [`SANDBOX_RETENTION`]). The run needs none of it
    /// beyond the sandboxes' exact totals, the Stripe objects, the sheet's rows and the emails
    /// tallied as accepted, so a long run's memory stays bounded.
    pub sandbox_retention: usize,
    /// The Postgres database for the outbox (`DATABASE_URL`); `None`: SQLite in the run's
    /// directory, the embedded default. `Debug` shows no password.
    pub database: Option<integrations_outbox::PostgresOptions>,
}

/// [`FlowConfig::sandbox_retention`] unless set: the latest thousand of each.
pub const SANDBOX_RETENTION: usize = 1_000;

/// The lease with [`FlowConfig::state_dir`] unless set: a run killed and restarted waits at
/// most this long for the jobs the dead process held.
pub const STATE_DIR_LEASE: Duration = Duration::from_secs(5);

impl FlowConfig {
    /// `orders` orders on sandboxes only, whatever the environment says, with the outage after
    /// a third of them.
    pub fn sandbox(orders: usize) -> Self {
        FlowConfig {
            orders,
            checkout_concurrency: 16,
            dispatch_concurrency: 32,
            sheets_concurrency: integrations_sheets::BatchConfig::DEFAULT.max_rows,
            max_attempts: 8,
            outage: Some(Outage {
                after_orders: orders / 3,
                failed_requests: Outage::DEFAULT_FAILED_REQUESTS,
            }),
            stripe_faults: true,
            progress: None,
            drain_timeout: Duration::from_secs(120),
            keep_files: false,
            env: Environment::empty(),
            state_dir: None,
            run_id: None,
            lease: Duration::from_secs(90),
            event_poll: Duration::from_secs(2),
            attempt_timeout: None,
            chaos: Vec::new(),
            measure: None,
            sandbox_retention: SANDBOX_RETENTION,
            database: None,
        }
    }

    /// The time each delivery gets: five sixths of the lease, so a live worker never loses it.
    pub fn handler_timeout(&self) -> Duration {
        self.lease * 5 / 6
    }
}

/// Whether a job's handler calls a real (not loopback) provider: SendGrid, Google Sheets or AWS.
fn real_providers(env: &Environment) -> bool {
    (env.has(ENV_SENDGRID) && !env.is_loopback(ENV_SENDGRID_API_BASE))
        || (env.has(ENV_GOOGLE) && !env.is_loopback(ENV_SHEETS_BASE_URL))
        || env.has_aws()
}

/// A lease whose handler timeout gives each call of a delivery to real providers its policy's
/// whole worst case (attempts, rate-limit waits, backoff and `Retry-After`): the email failover
/// both providers', a Sheets row a read and a write, the notifier one call. `attempt_timeout`
/// as `--attempt-timeout-ms`.
pub fn real_providers_lease(attempt_timeout: Option<Duration>) -> Duration {
    use super::policies;
    let registry = integrations_core::metrics::MetricsRegistry::new();
    let worst = |p: integrations_core::Policy| p.worst_case().unwrap_or(Duration::from_secs(600));
    let email = worst(policies::email(
        "email",
        &registry,
        false,
        attempt_timeout,
        None,
    ));
    let sheets = worst(policies::sheets(
        "sheets",
        &registry,
        false,
        attempt_timeout,
        None,
    ));
    let notify = worst(policies::local("notify", &registry, attempt_timeout, None));
    // The inverse of `JobBudgets::of`: each email or Sheets call gets 9/20 of the handler
    // timeout, the notifier 9/10.
    let handler = (email * 20 / 9).max(sheets * 20 / 9).max(notify * 10 / 9);
    (handler * 6 / 5 + Duration::from_secs(1)).max(Duration::from_secs(90))
}

/// Checks a run id: 1 to 40 ASCII letters, digits, `-` or `_` (it goes into order ids and
/// idempotency keys).
///
/// # Errors
/// A message saying what is wrong.
pub fn check_run_id(id: &str) -> Result<(), String> {
    let ok = (1..=40).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "run id `{id}`: 1 to 40 ASCII letters, digits, `-` or `_`"
        ))
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Print [`USAGE`].
    Help,
    /// Run (boxed: a configuration is large next to `Help`).
    Run(Box<FlowConfig>),
    /// The scale bench: runs of several sizes, each in its own process.
    Scale(super::measure::Scale),
}

/// The command line's help.
pub const USAGE: &str = "\
order_flow: the seed's order workflow end to end: checkout (Stripe), signed webhooks, a durable
outbox fanning out to email (SendGrid, failing over to a backup), analytics rows (Google Sheets),
notifications and metrics; then a report, and a non-zero exit if an invariant failed.

USAGE: order_flow [--orders N] [--concurrency N] [--no-outage] [--outage-requests N]
                  [--no-stripe-faults] [--no-progress] [--keep-files] [--sandbox]
                  [--state-dir DIR] [--run-id ID] [--dispatch-concurrency N]
                  [--sheets-concurrency N] [--max-attempts N] [--lease-ms N] [--poll-ms N] [--attempt-timeout-ms N] [--chaos SPEC]...
                  [--measure [N]] [--retention N]
       order_flow --scale N,N,... [--label LABEL] [--out DIR] [-- RUN ARGS...]

  --orders N            orders to push through (default 200)
  --concurrency N       checkouts in flight at once (default 16)
  --no-outage           do not inject the SendGrid outage
  --outage-requests N   SendGrid requests answered 500 during the outage (default 45)
  --no-stripe-faults    do not inject Stripe faults
  --no-progress         no progress bars
  --keep-files          keep the temporary directory (outbox.db, shop.db, notifications.jsonl,
                        metrics.prom)
  --sandbox             ignore credentials in the environment; sandboxes only
                        (DATABASE_URL still puts the outbox in Postgres: an empty database
                        per run, kept across the restarts of one --state-dir)

  --state-dir DIR       keep the run's state in DIR (outbox.db, shop.db, ledger.jsonl,
                        notifications.jsonl, run.json) and resume the run found
                        there: kill the process at any point and start it again with the same
                        arguments; nothing is lost or done twice (emails excepted: one accepted
                        by SendGrid just before the kill may be sent again). Lease 5 s unless set.
  --run-id ID           the run's id, part of every order id and idempotency key (default: fresh,
                        or the one in DIR)
  --dispatch-concurrency N  outbox deliveries in flight at once, Sheets rows apart (default 32)
  --sheets-concurrency N  Sheets-row deliveries in flight at once, on their own dispatcher: the
                        most rows one append carries (default 1000, the sink's batch limit)
  --max-attempts N      delivery attempts per job before the dead-letter queue (default 8)
  --lease-ms N          lease of each claimed outbox job (default 90000)
  --poll-ms N           how often Stripe's events are listed when it cannot reach the webhook
                        endpoint (a real Stripe, or one in another process; default 2000)
  --attempt-timeout-ms N  every policy's per-attempt timeout (default: each provider's own)
  --chaos SPEC          inject a fault into a sandbox: TARGET:FAULT:N@ORDER, target stripe,
                        sendgrid, sheets or notifier, fault 500, 429[=SECONDS], hang or drop
                        (act, then close the connection unanswered), for N requests from
                        order ORDER on; repeatable
  --retention N         requests, events, idempotency keys and messages each sandbox keeps, the
                        latest ones (default 1000, at least 100; totals are exact whatever it is)
  --measure [N]         report time per order and memory (VmRSS, VmHWM) for each of N slices
                        of the orders (default 10), as `measure …` lines after the report

  --scale N,N,...       the scale bench: one run per size, each in its own process with
                        --measure --sandbox and the defaults (RUN ARGS after `--` are added);
                        merges the slices into DIR/scaling.csv under LABEL (default `after`),
                        redraws DIR/scaling.svg (default DIR: docs) and prints the table

With no credentials every service is an in-process sandbox. With STRIPE_SECRET_KEY (test mode),
SENDGRID_API_KEY (+ ORDER_FLOW_EMAIL_FROM, ORDER_FLOW_EMAIL_TO), GOOGLE_APPLICATION_CREDENTIALS
(+ SHEETS_SPREADSHEET_ID, a sheet named Orders) or AWS credentials (SES backup email; SNS with
ORDER_FLOW_SNS_TOPIC_ARN) the real services are used instead; STRIPE_API_BASE, SENDGRID_API_BASE
and GOOGLE_SHEETS_BASE_URL point them elsewhere (a loopback URL counts as a local endpoint, with
the sandbox policies). RUST_LOG sets the log filter.";

/// Parses the arguments after the program name, with `env` as the environment.
///
/// # Errors
/// A message naming the offending argument.
pub fn parse_args<I, S>(args: I, env: Environment) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut cfg = FlowConfig::sandbox(200);
    cfg.database = env
        .get(ENV_DATABASE_URL)
        .map(integrations_outbox::PostgresOptions::new)
        .transpose()
        .map_err(|e| e.to_string())?;
    cfg.env = env;
    let mut progress = true;
    let mut outage_requests = None;
    let mut no_outage = false;
    let mut lease = None;
    let args = args.into_iter();
    let number = |flag: &str, v: Option<S>| -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a number"))?;
        v.as_ref()
            .parse::<usize>()
            .map_err(|_| format!("{flag}: `{}` is not a number", v.as_ref()))
    };
    let positive = |flag: &str, v: Option<S>| -> Result<usize, String> {
        match number(flag, v)? {
            0 => Err(format!("{flag} must be at least 1")),
            n => Ok(n),
        }
    };
    let millis = |flag: &str, v: Option<S>| -> Result<Duration, String> {
        positive(flag, v).map(|n| Duration::from_millis(n as u64))
    };
    let text = |flag: &str, v: Option<S>| -> Result<String, String> {
        v.map(|v| v.as_ref().to_owned())
            .ok_or_else(|| format!("{flag} needs a value"))
    };
    let mut scale: Option<super::measure::Scale> = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_ref() {
            "-h" | "--help" => return Ok(Command::Help),
            "--measure" => {
                let slices = match args.peek().map(|a| a.as_ref().parse::<usize>()) {
                    Some(Ok(n)) if n > 0 => {
                        args.next();
                        n
                    }
                    _ => 10,
                };
                cfg.measure = Some(slices);
            }
            "--scale" => {
                let sizes = text("--scale", args.next())?
                    .split(',')
                    .map(|n| match n.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("--scale: `{n}` is not a positive number")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                scale = Some(super::measure::Scale {
                    sizes,
                    label: "after".into(),
                    out: PathBuf::from("docs"),
                    pass: Vec::new(),
                });
            }
            "--label" | "--out" | "--" if scale.is_none() => {
                return Err(format!("{} goes with --scale", arg.as_ref()));
            }
            "--label" => {
                let label = text("--label", args.next())?;
                if label.is_empty() || label.contains([',', '\n']) {
                    return Err("--label: no commas".into());
                }
                if let Some(s) = scale.as_mut() {
                    s.label = label;
                }
            }
            "--out" => {
                let out = PathBuf::from(text("--out", args.next())?);
                if let Some(s) = scale.as_mut() {
                    s.out = out;
                }
            }
            "--" => {
                if let Some(s) = scale.as_mut() {
                    s.pass = args.by_ref().map(|a| a.as_ref().to_owned()).collect();
                }
            }
            "--orders" => cfg.orders = number("--orders", args.next())?,
            "--concurrency" => cfg.checkout_concurrency = number("--concurrency", args.next())?,
            "--outage-requests" => {
                outage_requests = Some(number("--outage-requests", args.next())?);
            }
            "--no-outage" => no_outage = true,
            "--no-stripe-faults" => cfg.stripe_faults = false,
            "--no-progress" => progress = false,
            "--keep-files" => cfg.keep_files = true,
            "--sandbox" => cfg.env = Environment::empty(),
            "--state-dir" => cfg.state_dir = Some(PathBuf::from(text("--state-dir", args.next())?)),
            "--run-id" => {
                let id = text("--run-id", args.next())?;
                check_run_id(&id)?;
                cfg.run_id = Some(id);
            }
            "--dispatch-concurrency" => {
                cfg.dispatch_concurrency = positive("--dispatch-concurrency", args.next())?;
            }
            "--sheets-concurrency" => {
                cfg.sheets_concurrency = positive("--sheets-concurrency", args.next())?;
            }
            "--max-attempts" => {
                let n = positive("--max-attempts", args.next())?;
                cfg.max_attempts = u32::try_from(n).map_err(|_| "--max-attempts: too large")?;
            }
            "--lease-ms" => {
                let l = millis("--lease-ms", args.next())?;
                if l < Duration::from_millis(100) {
                    return Err("--lease-ms must be at least 100".into());
                }
                lease = Some(l);
            }
            "--poll-ms" => cfg.event_poll = millis("--poll-ms", args.next())?,
            "--attempt-timeout-ms" => {
                cfg.attempt_timeout = Some(millis("--attempt-timeout-ms", args.next())?);
            }
            "--chaos" => cfg.chaos.push(text("--chaos", args.next())?.parse()?),
            "--retention" => {
                // The redelivered event must still be kept when the run redelivers it.
                cfg.sandbox_retention = match number("--retention", args.next())? {
                    n if n < 100 => return Err("--retention must be at least 100".into()),
                    n => n,
                };
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if let Some(scale) = scale {
        return Ok(Command::Scale(scale));
    }
    cfg.lease = match (lease, &cfg.state_dir) {
        (Some(l), _) => l,
        (None, Some(_)) => STATE_DIR_LEASE,
        (None, None) if real_providers(&cfg.env) => real_providers_lease(cfg.attempt_timeout),
        (None, None) => cfg.lease,
    };
    if cfg.orders == 0 {
        return Err("--orders must be at least 1".into());
    }
    if cfg.checkout_concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    cfg.progress = super::progress::terminal_bars(progress);
    cfg.outage = (!no_outage).then(|| Outage {
        after_orders: cfg.orders / 3,
        failed_requests: outage_requests.unwrap_or(Outage::DEFAULT_FAILED_REQUESTS),
    });
    Ok(Command::Run(Box::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lease_covers_the_job_policies_of_its_providers() {
        use crate::order_flow::policies::{self, JobBudgets};
        let registry = integrations_core::metrics::MetricsRegistry::new();
        // Sandboxes: the default lease, each call bounded by its share of the handler timeout.
        let cfg = FlowConfig::sandbox(3);
        let b = JobBudgets::of(cfg.handler_timeout());
        let e = policies::email("e", &registry, true, None, Some(b.email_each));
        let both = policies::in_sequence("email", &[&e, &e]);
        assert!(both.worst_case().unwrap() <= cfg.handler_timeout());
        // Real providers: a lease whose shares hold each real policy's whole worst case.
        let mut real = cfg.clone();
        real.lease = real_providers_lease(None);
        let b = JobBudgets::of(real.handler_timeout());
        for p in [
            policies::email("e", &registry, false, None, None),
            policies::sheets("s", &registry, false, None, None),
        ] {
            assert!(
                p.worst_case().unwrap() <= b.email_each.min(b.sheets_each),
                "{p:?}"
            );
        }
        assert!(
            policies::local("n", &registry, None, None)
                .worst_case()
                .unwrap()
                <= b.notify
        );
        assert!(real.lease > cfg.lease);
    }

    fn run(args: &[&str]) -> FlowConfig {
        match parse_args(args, Environment::empty()).unwrap() {
            Command::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_the_documented_flags() {
        let c = run(&[]);
        assert_eq!(c.orders, 200);
        assert_eq!(
            c.outage,
            Some(Outage {
                after_orders: 66,
                failed_requests: 45
            })
        );
        let c = run(&["--orders", "20", "--outage-requests", "9", "--no-progress"]);
        assert_eq!(c.orders, 20);
        assert!(c.progress.is_none());
        assert_eq!(c.outage.unwrap().failed_requests, 9);
        assert!(run(&["--no-outage"]).outage.is_none());
        assert!(matches!(
            parse_args(["--help"], Environment::empty()),
            Ok(Command::Help)
        ));
        let c = run(&[
            "--state-dir",
            "/tmp/x",
            "--run-id",
            "crash-1",
            "--dispatch-concurrency",
            "4",
            "--max-attempts",
            "20",
            "--poll-ms",
            "100",
            "--attempt-timeout-ms",
            "700",
            "--chaos",
            "sendgrid:drop:2@3",
            "--chaos",
            "stripe:500:1@0",
        ]);
        assert_eq!(c.state_dir.as_deref(), Some(std::path::Path::new("/tmp/x")));
        assert_eq!(c.run_id.as_deref(), Some("crash-1"));
        assert_eq!((c.dispatch_concurrency, c.max_attempts), (4, 20));
        assert_eq!(
            c.sheets_concurrency, 1000,
            "the sink's batch limit unless set"
        );
        assert_eq!(run(&["--sheets-concurrency", "50"]).sheets_concurrency, 50);
        assert_eq!(c.lease, STATE_DIR_LEASE, "a short lease with a state dir");
        assert_eq!(c.event_poll, Duration::from_millis(100));
        assert_eq!(c.attempt_timeout, Some(Duration::from_millis(700)));
        assert_eq!(c.chaos.len(), 2);
        assert_eq!(c.chaos[0].to_string(), "sendgrid:drop:2@3");
        assert_eq!(run(&[]).lease, Duration::from_secs(90));
        let c = run(&["--state-dir", "d", "--lease-ms", "2000"]);
        assert_eq!(c.lease, Duration::from_secs(2));
        assert!(c.handler_timeout() < c.lease);
        for bad in [
            &["--orders"][..],
            &["--orders", "x"],
            &["--orders", "0"],
            &["--bogus"],
            &["--run-id", "a/b"],
            &["--run-id", ""],
            &["--state-dir"],
            &["--dispatch-concurrency", "0"],
            &["--sheets-concurrency", "0"],
            &["--lease-ms", "50"],
            &["--chaos", "stripe:teapot:1@1"],
        ] {
            assert!(parse_args(bad, Environment::empty()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn measure_and_scale_are_parsed() {
        assert_eq!(run(&[]).measure, None);
        assert_eq!(run(&["--measure"]).measure, Some(10));
        assert_eq!(run(&[]).sandbox_retention, SANDBOX_RETENTION);
        assert_eq!(run(&["--retention", "500"]).sandbox_retention, 500);
        assert!(parse_args(["--retention", "50"], Environment::empty()).is_err());
        assert_eq!(run(&["--measure", "4", "--orders", "8"]).measure, Some(4));
        assert_eq!(run(&["--measure", "--orders", "8"]).orders, 8);
        match parse_args(
            [
                "--scale",
                "10,100",
                "--label",
                "before",
                "--",
                "--no-outage",
            ],
            Environment::empty(),
        ) {
            Ok(Command::Scale(s)) => {
                assert_eq!(s.sizes, [10, 100]);
                assert_eq!(s.label, "before");
                assert_eq!(s.out, PathBuf::from("docs"));
                assert_eq!(s.pass, ["--no-outage"]);
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            &["--scale", "10,x"][..],
            &["--label", "a"],
            &["--scale", "0"],
        ] {
            assert!(parse_args(bad, Environment::empty()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn environment_keeps_relevant_values_and_hides_them() {
        let env = Environment::from_lookup(|k| match k {
            ENV_STRIPE => Some("sk_test_supersecret".into()),
            ENV_SENDGRID => Some("  ".into()),
            "HOME" => Some("/root".into()),
            _ => None,
        });
        assert!(env.has(ENV_STRIPE) && !env.has(ENV_SENDGRID) && !env.has("HOME"));
        let debug = format!("{env:?}");
        assert!(!debug.contains("supersecret"), "{debug}");
        assert!(debug.contains(ENV_STRIPE), "{debug}");
        let with_sandbox = match parse_args(["--sandbox"], env).unwrap() {
            Command::Run(c) => *c,
            _ => unreachable!(),
        };
        assert!(!with_sandbox.env.has(ENV_STRIPE));
    }

    #[test]
    fn loopback_base_urls_are_local_endpoints() {
        let env = Environment::from_lookup(|k| match k {
            ENV_STRIPE_API_BASE => Some("http://127.0.0.1:4242".into()),
            ENV_SENDGRID_API_BASE => Some("http://localhost:1/".into()),
            ENV_SHEETS_BASE_URL => Some("https://sheets.googleapis.com".into()),
            _ => None,
        });
        assert!(env.is_loopback(ENV_STRIPE_API_BASE));
        assert!(env.is_loopback(ENV_SENDGRID_API_BASE));
        assert!(!env.is_loopback(ENV_SHEETS_BASE_URL));
        assert!(!env.is_loopback(ENV_STRIPE));
        assert!(check_run_id("ok_run-1").is_ok());
        assert!(check_run_id(&"x".repeat(41)).is_err());
    }
}
