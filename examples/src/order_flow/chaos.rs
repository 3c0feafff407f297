//! Chaos: faults planned into a run — a provider answering 500s, 429s with `Retry-After`,
//! hanging past the policy's attempt timeout, or acting and then dropping the connection — and
//! how many requests each one actually hit.
//!
//! A [`ChaosFault`] is injected into a sandbox (or the local notifier) once checkout reaches an
//! order, and applies to that service's next requests, whichever part of the flow makes them.
//! On the command line: `--chaos TARGET:FAULT:N@ORDER`, e.g. `--chaos sendgrid:drop:3@5`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use integrations_core::{Error, Result};

use super::providers::Services;

/// The service a fault is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The Stripe sandbox (every API request: checkout, refunds, event reads).
    Stripe,
    /// The primary SendGrid sandbox (mail sends).
    SendGrid,
    /// The Google Sheets sandbox (values requests, not the token endpoint).
    Sheets,
    /// The local notifier ([`JsonlNotifier`](super::notifier::JsonlNotifier)).
    Notifier,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [
        Target::Stripe,
        Target::SendGrid,
        Target::Sheets,
        Target::Notifier,
    ];

    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Stripe => "stripe",
            Target::SendGrid => "sendgrid",
            Target::Sheets => "sheets",
            Target::Notifier => "notifier",
        }
    }
}

/// What the service does with the requests the fault hits: the testkit's one `Fault` type, the
/// same for every sandbox and the local notifier.
pub use integrations_testkit::sandbox::Fault as FaultKind;

/// The four kinds the chaos tests cover, with a one-second `Retry-After` for the 429.
pub const ALL_FAULTS: [FaultKind; 4] = [
    FaultKind::ServerError,
    FaultKind::RateLimited {
        retry_after: Some(Duration::from_secs(1)),
    },
    FaultKind::Hang,
    FaultKind::DropAfterAccept,
];

/// A fault as the command line writes it: `500`, `503`, `429=SECONDS`, `hang`, `drop`.
fn fault_label(kind: FaultKind) -> String {
    match kind {
        FaultKind::ServerError => "500".into(),
        FaultKind::Unavailable => "503".into(),
        FaultKind::RateLimited { retry_after } => {
            format!("429={}", retry_after.unwrap_or_default().as_secs())
        }
        FaultKind::Hang => "hang".into(),
        FaultKind::DropAfterAccept => "drop".into(),
        other => other.name().into(),
    }
}

/// One planned fault: `kind` for the next `requests` requests to `target`, injected when
/// checkout reaches order number `after_orders` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChaosFault {
    /// The service.
    pub target: Target,
    /// The fault.
    pub kind: FaultKind,
    /// How many requests it applies to.
    pub requests: usize,
    /// The order at which it is injected.
    pub after_orders: usize,
}

impl fmt::Display for ChaosFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}@{}",
            self.target.as_str(),
            fault_label(self.kind),
            self.requests,
            self.after_orders
        )
    }
}

impl FromStr for ChaosFault {
    type Err = String;

    /// `TARGET:FAULT:N@ORDER`: target `stripe`, `sendgrid`, `sheets` or `notifier`; fault `500`,
    /// `503`, `429` (Retry-After 1 s) or `429=SECONDS`, `hang` or `drop`; `N` requests; injected at
    /// order `ORDER`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = |why: &str| format!("--chaos `{s}`: {why} (expected TARGET:FAULT:N@ORDER)");
        let (spec, at) = s.split_once('@').ok_or_else(|| bad("no @ORDER"))?;
        let mut parts = spec.split(':');
        let (Some(target), Some(kind), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("three `:`-separated fields are needed"));
        };
        let target = Target::ALL
            .into_iter()
            .find(|t| t.as_str() == target)
            .ok_or_else(|| bad("the target is one of stripe, sendgrid, sheets, notifier"))?;
        let kind = match kind {
            "500" => FaultKind::ServerError,
            "503" => FaultKind::Unavailable,
            "429" => FaultKind::rate_limited(Duration::from_secs(1)),
            "hang" => FaultKind::Hang,
            "drop" => FaultKind::DropAfterAccept,
            other => match other.strip_prefix("429=").map(str::parse::<u64>) {
                Some(Ok(secs)) => FaultKind::rate_limited(Duration::from_secs(secs)),
                _ => {
                    return Err(bad(
                        "the fault is one of 500, 503, 429, 429=SECONDS, hang, drop",
                    ));
                }
            },
        };
        let requests = n.parse().map_err(|_| bad("N is not a number"))?;
        let after_orders = at.parse().map_err(|_| bad("ORDER is not a number"))?;
        Ok(ChaosFault {
            target,
            kind,
            requests,
            after_orders,
        })
    }
}

/// A fault as it went: what was planned, and how many requests it hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosReport {
    /// The plan.
    pub fault: ChaosFault,
    /// Whether it was injected (checkout reached its order).
    pub injected: bool,
    /// Requests it was applied to (at most [`ChaosFault::requests`]).
    pub hit: u64,
}

/// A fault injected into a run, with what its service had counted before, to tell afterwards
/// how many requests it hit.
#[derive(Debug, Clone)]
pub(super) struct Injected {
    index: usize,
    baseline: u64,
}

/// Checks that every target of `plan` can be injected into with `services`.
///
/// # Errors
/// [`Error::Configuration`] naming `chaos` for a target served by a real service.
pub fn check(plan: &[ChaosFault], services: &Services) -> Result<()> {
    for f in plan {
        let local = match f.target {
            Target::Stripe => services.stripe_sandbox.is_some(),
            Target::SendGrid => services.sendgrid_sandbox.is_some(),
            Target::Sheets => services.sheets_sandbox.is_some(),
            Target::Notifier => services.jsonl_notifier.is_some(),
        };
        if !local {
            return Err(Error::configuration(
                "chaos",
                format!(
                    "{f}: {} is not local here; faults are injected into sandboxes only",
                    f.target.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// What the target has counted so far, in the unit its faults are applied to (Stripe: none,
/// see [`reports`]).
fn counter(services: &Services, f: &ChaosFault) -> u64 {
    match f.target {
        Target::Stripe => 0,
        Target::SendGrid => services
            .sendgrid_sandbox
            .as_ref()
            .map_or(0, integrations_sendgrid::sandbox::Sandbox::request_count),
        Target::Sheets => services
            .sheets_sandbox
            .as_ref()
            .map_or(0, |s| s.stats().faults_injected),
        Target::Notifier => services
            .jsonl_notifier
            .as_ref()
            .map_or(0, |n| n.faults_applied()),
    }
}

/// Injects `f`, number `index` of the plan, into its target (checked by [`check`]).
pub(super) fn inject(services: &Services, index: usize, f: ChaosFault) -> Injected {
    let baseline = counter(services, &f);
    let n = f.requests;
    // One fault type for every target: no translation.
    match f.target {
        Target::Stripe => {
            if let Some(s) = &services.stripe_sandbox {
                s.fail_next(n, f.kind);
            }
        }
        Target::SendGrid => {
            if let Some(s) = &services.sendgrid_sandbox {
                s.fail_next(n, f.kind);
            }
        }
        Target::Sheets => {
            if let Some(s) = &services.sheets_sandbox {
                s.fail_next(u32::try_from(n).unwrap_or(u32::MAX), f.kind);
            }
        }
        Target::Notifier => {
            if let Some(notifier) = &services.jsonl_notifier {
                notifier.fail_next(n, f.kind);
            }
        }
    }
    tracing::warn!(fault = %f, "chaos fault injected");
    Injected { index, baseline }
}

/// How each planned fault went. Faults queued on one service apply in order, so a count is
/// exact when each service has one fault planned: Stripe's is the planned number minus the
/// faults still queued (a held request is recorded only once answered), SendGrid's the requests
/// received since the injection, capped at the planned number.
pub(super) fn reports(
    plan: &[ChaosFault],
    injected: &[Injected],
    services: &Services,
) -> Vec<ChaosReport> {
    plan.iter()
        .enumerate()
        .map(
            |(index, f)| match injected.iter().find(|i| i.index == index) {
                Some(i) => {
                    let planned = f.requests as u64;
                    let hit = match (f.target, &services.stripe_sandbox) {
                        (Target::Stripe, Some(s)) => {
                            planned - (s.pending_faults() as u64).min(planned)
                        }
                        _ => counter(services, f).saturating_sub(i.baseline).min(planned),
                    };
                    ChaosReport {
                        fault: *f,
                        injected: true,
                        hit,
                    }
                }
                None => ChaosReport {
                    fault: *f,
                    injected: false,
                    hit: 0,
                },
            },
        )
        .collect()
}

/// Email requests SendGrid accepted whose answer was then lost: each may have been sent again
/// (the documented duplicate window of a provider without idempotency keys).
pub fn lost_email_answers(reports: &[ChaosReport]) -> u64 {
    reports
        .iter()
        .filter(|r| {
            r.fault.target == Target::SendGrid && r.fault.kind == FaultKind::DropAfterAccept
        })
        .map(|r| r.hit)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for spec in [
            "stripe:500:2@3",
            "sendgrid:drop:3@0",
            "sheets:hang:1@10",
            "notifier:429=2:4@1",
        ] {
            let f: ChaosFault = spec.parse().unwrap();
            assert_eq!(f.to_string(), spec);
        }
        let f: ChaosFault = "sheets:429:1@2".parse().unwrap();
        assert_eq!(
            f.kind,
            FaultKind::RateLimited {
                retry_after: Some(Duration::from_secs(1))
            }
        );
        for bad in [
            "stripe:500:2",
            "ses:500:2@1",
            "stripe:418:2@1",
            "stripe:500:x@1",
            "stripe:500@1",
            "stripe:500:1:2@1",
            "stripe:500:1@x",
        ] {
            assert!(bad.parse::<ChaosFault>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lost_email_answers_counts_sendgrid_drops_only() {
        let r = |target, kind, hit| ChaosReport {
            fault: ChaosFault {
                target,
                kind,
                requests: 5,
                after_orders: 0,
            },
            injected: true,
            hit,
        };
        let reports = [
            r(Target::SendGrid, FaultKind::DropAfterAccept, 3),
            r(Target::SendGrid, FaultKind::ServerError, 5),
            r(Target::Notifier, FaultKind::DropAfterAccept, 2),
        ];
        assert_eq!(lost_email_answers(&reports), 3);
    }
}
