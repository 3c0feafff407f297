//! What a run does: [`FlowConfig`], from the command line and the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

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

const READ: [&str; 11] = [
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
}

/// The injected email-provider outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// Injected once this many orders have gone through checkout.
    pub after_orders: usize,
    /// SendGrid requests answered `500` from then on.
    pub failed_requests: usize,
}

/// A run of the order flow.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Orders to push through.
    pub orders: usize,
    /// Checkouts in flight at once.
    pub checkout_concurrency: usize,
    /// Outbox deliveries in flight at once.
    pub dispatch_concurrency: usize,
    /// Delivery attempts per job before the dead-letter queue.
    pub max_attempts: u32,
    /// The SendGrid outage to inject (sandbox only); `None` for none.
    pub outage: Option<Outage>,
    /// Inject Stripe faults (a confirmation processed but its answer lost, a 500), sandbox only.
    pub stripe_faults: bool,
    /// Where progress bars are drawn ([`terminal_bars`](super::progress::terminal_bars));
    /// `None`: none.
    pub progress: Option<indicatif::MultiProgress>,
    /// Longest wait for the outbox to drain after the last order.
    pub drain_timeout: Duration,
    /// Keep the temporary directory (outbox database, notifications, metrics) after the run.
    pub keep_files: bool,
    /// Which services are real.
    pub env: Environment,
}

impl FlowConfig {
    /// `orders` orders on sandboxes only, whatever the environment says, with the outage after
    /// a third of them.
    pub fn sandbox(orders: usize) -> Self {
        FlowConfig {
            orders,
            checkout_concurrency: 16,
            dispatch_concurrency: 32,
            max_attempts: 8,
            outage: Some(Outage {
                after_orders: orders / 3,
                failed_requests: 30,
            }),
            stripe_faults: true,
            progress: None,
            drain_timeout: Duration::from_secs(120),
            keep_files: false,
            env: Environment::empty(),
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Print [`USAGE`].
    Help,
    /// Run.
    Run(FlowConfig),
}

/// The command line's help.
pub const USAGE: &str = "\
order_flow: the seed's order workflow end to end: checkout (Stripe), signed webhooks, a durable
outbox fanning out to email (SendGrid, failing over to a backup), analytics rows (Google Sheets),
notifications and metrics; then a report, and a non-zero exit if an invariant failed.

USAGE: order_flow [--orders N] [--concurrency N] [--no-outage] [--outage-requests N]
                  [--no-stripe-faults] [--no-progress] [--keep-files] [--sandbox]

  --orders N            orders to push through (default 200)
  --concurrency N       checkouts in flight at once (default 16)
  --no-outage           do not inject the SendGrid outage
  --outage-requests N   SendGrid requests answered 500 during the outage (default 30)
  --no-stripe-faults    do not inject Stripe faults
  --no-progress         no progress bars
  --keep-files          keep the temporary directory (outbox.db, notifications.jsonl, metrics.prom)
  --sandbox             ignore credentials in the environment; sandboxes only

With no credentials every service is an in-process sandbox. With STRIPE_SECRET_KEY (test mode),
SENDGRID_API_KEY (+ ORDER_FLOW_EMAIL_FROM, ORDER_FLOW_EMAIL_TO), GOOGLE_APPLICATION_CREDENTIALS
(+ SHEETS_SPREADSHEET_ID, a sheet named Orders) or AWS credentials (SES backup email; SNS with
ORDER_FLOW_SNS_TOPIC_ARN) the real services are used instead. RUST_LOG sets the log filter.";

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
    cfg.env = env;
    let mut progress = true;
    let mut outage_requests = None;
    let mut no_outage = false;
    let mut args = args.into_iter();
    let number = |flag: &str, v: Option<S>| -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a number"))?;
        v.as_ref()
            .parse::<usize>()
            .map_err(|_| format!("{flag}: `{}` is not a number", v.as_ref()))
    };
    while let Some(arg) = args.next() {
        match arg.as_ref() {
            "-h" | "--help" => return Ok(Command::Help),
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
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if cfg.orders == 0 {
        return Err("--orders must be at least 1".into());
    }
    if cfg.checkout_concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    cfg.progress = super::progress::terminal_bars(progress);
    cfg.outage = (!no_outage).then(|| Outage {
        after_orders: cfg.orders / 3,
        failed_requests: outage_requests.unwrap_or(30),
    });
    Ok(Command::Run(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> FlowConfig {
        match parse_args(args, Environment::empty()).unwrap() {
            Command::Run(c) => c,
            Command::Help => panic!("help"),
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
                failed_requests: 30
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
        for bad in [
            &["--orders"][..],
            &["--orders", "x"],
            &["--orders", "0"],
            &["--bogus"],
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
            Command::Run(c) => c,
            Command::Help => unreachable!(),
        };
        assert!(!with_sandbox.env.has(ENV_STRIPE));
    }
}
