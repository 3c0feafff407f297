//! [`Report`]: what a run did, and whether its invariants held.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use integrations_core::metrics::IntegrationSnapshot;
use integrations_outbox::{OutboxCounts, RunStats};

use super::audit::PaymentAudit;
use super::chaos::ChaosReport;
use super::checkout::RefundMade;
use super::config::Outage;
use super::intake::IntakeStats;
use super::invariants::{Invariant, Redelivery};
use super::ledger::BusinessMetrics;
use super::measure::Slice;
use super::providers::Backend;

/// One dead-lettered job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterLine {
    /// Job id.
    pub job_id: String,
    /// Job kind.
    pub kind: String,
    /// The event that caused it.
    pub event_id: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was given up (kind and message).
    pub error: String,
}

/// The injected email outage and how it was absorbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageReport {
    /// What was injected.
    pub outage: Outage,
    /// Calls the primary's breaker refused while open.
    pub short_circuits: u64,
    /// Emails the second provider served.
    pub served_by_backup: u64,
}

/// What a run did. [`Report::ok`] is `false` if any invariant failed.
#[derive(Debug, Clone)]
pub struct Report {
    /// The run's id (part of every order id).
    pub run_id: String,
    /// Which start of the run this was (1 unless resumed from a state directory).
    pub start: u32,
    /// The state directory, if the run keeps one.
    pub state_dir: Option<PathBuf>,
    /// Orders found paid or declined by an earlier start, not checked out again.
    pub resumed_orders: usize,
    /// Orders pushed through.
    pub orders: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Which implementation served each role.
    pub backends: Vec<Backend>,
    /// Orders per final state.
    pub states: BTreeMap<String, usize>,
    /// Per-integration metrics (core's registry).
    pub integrations: Vec<IntegrationSnapshot>,
    /// Emails served per provider of the failover, in order.
    pub email_served: Vec<(String, u64)>,
    /// The outbox at the end.
    pub outbox: OutboxCounts,
    /// The dispatcher's totals.
    pub dispatch: RunStats,
    /// Dead letters.
    pub dead_letters: Vec<DeadLetterLine>,
    /// The webhook intake's counters.
    pub intake: IntakeStats,
    /// What the payment provider says.
    pub payments: PaymentAudit,
    /// The partial refund, if made.
    pub refund: Option<RefundMade>,
    /// Why the refund was not made, if it was not.
    pub refund_error: Option<String>,
    /// The event delivered twice on purpose.
    pub redelivered: Option<Redelivery>,
    /// The email outage, if injected.
    pub outage: Option<OutageReport>,
    /// Stripe faults injected.
    pub stripe_faults: Vec<String>,
    /// The planned chaos faults, and how many requests each hit.
    pub chaos: Vec<ChaosReport>,
    /// Emails beyond the first of each kind for an order, as counted by the evidence.
    pub duplicate_emails: u64,
    /// The shop's own counters.
    pub business: BusinessMetrics,
    /// The kept directory (outbox.db, notifications.jsonl, metrics.prom), with `--keep-files`.
    pub files: Option<PathBuf>,
    /// The invariants, checked.
    pub invariants: Vec<Invariant>,
    /// Time per order and memory per slice of the orders, with
    /// [`FlowConfig::measure`](super::FlowConfig::measure); the last line is the whole run.
    pub slices: Vec<Slice>,
}

impl Report {
    /// Whether every invariant held.
    pub fn ok(&self) -> bool {
        self.invariants.iter().all(|i| i.ok)
    }

    /// The invariant named `name`.
    pub fn invariant(&self, name: &str) -> Option<&Invariant> {
        self.invariants.iter().find(|i| i.name == name)
    }

    /// Emails served by the failover's provider `name`.
    pub fn served_by(&self, name: &str) -> u64 {
        self.email_served
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    }

    /// The metrics of integration `name`.
    pub fn integration(&self, name: &str) -> Option<&IntegrationSnapshot> {
        self.integrations.iter().find(|i| i.name == name)
    }
}

fn money(minor: &BTreeMap<String, i64>) -> String {
    if minor.is_empty() {
        return "0".into();
    }
    minor
        .iter()
        .map(|(c, m)| match integrations_core::Currency::from_code(c) {
            Ok(cur) => integrations_core::Money::from_minor(*m, cur).to_string(),
            Err(_) => format!("{m} {c} (minor units)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    /// The run, its services and the orders by final state.
    fn write_header(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "order_flow: {} orders in {:.1} s (run {})\n",
            self.orders,
            self.elapsed.as_secs_f64(),
            self.run_id
        )?;
        if let Some(dir) = &self.state_dir {
            writeln!(
                f,
                "state dir {} (start {} of the run; {} orders found finished)\n",
                dir.display(),
                self.start,
                self.resumed_orders
            )?;
        }
        writeln!(f, "services")?;
        for b in &self.backends {
            writeln!(f, "  {b}")?;
        }

        writeln!(f, "\norders by final state")?;
        for (state, n) in &self.states {
            writeln!(f, "  {state:<40} {n:>6}")?;
        }
        Ok(())
    }

    /// Each integration's calls, and who served the emails.
    fn write_integrations(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\n{:<18} {:>6} {:>9} {:>8} {:>7} {:>8} {:>8} {:>10}",
            "integration",
            "calls",
            "successes",
            "retries",
            "refused",
            "p50 ms",
            "p99 ms",
            "breaker"
        )?;
        for s in &self.integrations {
            writeln!(
                f,
                "  {:<16} {:>6} {:>9} {:>8} {:>7} {:>8.1} {:>8.1} {:>10}",
                s.name,
                s.calls,
                s.successes,
                s.retries,
                s.short_circuits,
                s.p50_ms,
                s.p99_ms,
                s.breaker_state.as_str()
            )?;
        }
        let served: Vec<String> = self
            .email_served
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        writeln!(f, "  emails served by: {}", served.join(", "))?;
        Ok(())
    }

    /// Webhooks in, outbox jobs out, dead letters.
    fn write_delivery(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.intake;
        let by_type: Vec<String> = i.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let earlier = i.events_known().saturating_sub(i.recorded);
        let resumed = if self.start > 1 {
            format!(", {earlier} found recorded by an earlier start")
        } else {
            String::new()
        };
        writeln!(
            f,
            "\nwebhooks      {} received, {} refused, {} recorded ({}){resumed}, {} redelivered duplicate(s) ignored, {} other event types acknowledged",
            i.received,
            i.rejected,
            i.recorded,
            by_type.join(", "),
            i.duplicates,
            i.ignored
        )?;
        let o = &self.outbox;
        writeln!(
            f,
            "outbox        {} jobs ({} recorded by this start): {} done, {} dead-lettered, {} pending, {} leased; dispatcher claimed {}, retried {}",
            i.jobs_known,
            i.jobs_recorded,
            o.done,
            o.dead,
            o.pending,
            o.leased,
            self.dispatch.claimed,
            self.dispatch.retried
        )?;
        if self.dead_letters.is_empty() {
            writeln!(f, "dead letters  none")?;
        } else {
            writeln!(f, "dead letters  {}", self.dead_letters.len())?;
            for d in &self.dead_letters {
                writeln!(
                    f,
                    "  job {} {} (event {}) after {} attempts: {}",
                    d.job_id, d.kind, d.event_id, d.attempts, d.error
                )?;
            }
        }
        Ok(())
    }

    /// Payments, the faults injected, duplicates, the outage, the refund and the redelivery.
    fn write_payments(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.payments;
        let mut line = format!("payments      {}: {} payment intents", p.source, p.intents);
        if let Some(m) = p.max_charges_per_intent {
            line.push_str(&format!(", at most {m} successful charge per intent"));
        }
        if let Some(r) = p.idempotent_replays {
            line.push_str(&format!(", {r} idempotent replays"));
        }
        if let Some(r) = p.refunds {
            line.push_str(&format!(", {r} refund(s)"));
        }
        writeln!(f, "{line}")?;
        if !self.stripe_faults.is_empty() {
            writeln!(f, "stripe faults {}", self.stripe_faults.join("; "))?;
        }
        for c in &self.chaos {
            let when = if c.injected {
                format!("hit {} of {} requests", c.hit, c.fault.requests)
            } else {
                "not injected (checkout never reached its order)".to_owned()
            };
            writeln!(f, "chaos         {}: {when}", c.fault)?;
        }
        if self.duplicate_emails > 0 {
            writeln!(
                f,
                "duplicates    {} email(s) sent twice: accepted, then the answer lost or the process killed before the job was marked done (the documented window)",
                self.duplicate_emails
            )?;
        }
        if let Some(out) = &self.outage {
            writeln!(
                f,
                "email outage  {} SendGrid requests answered 500 from order {} on: the breaker refused {} calls, the backup served {} emails",
                out.outage.failed_requests,
                out.outage.after_orders,
                out.short_circuits,
                out.served_by_backup
            )?;
        }
        match (&self.refund, &self.refund_error) {
            (Some(r), _) => writeln!(
                f,
                "refund        {} of {} on {} ({})",
                r.amount, r.total, r.order_id, r.refund_id
            )?,
            (None, Some(e)) => writeln!(f, "refund        not made: {e}")?,
            (None, None) => {}
        }
        if let Some(r) = &self.redelivered {
            writeln!(
                f,
                "redelivery    {} ({} of {}) delivered again and ignored",
                r.event_id, r.event_type, r.order_id
            )?;
        }
        Ok(())
    }

    /// The shop's counters, kept files and the invariants.
    fn write_outcome(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.business;
        writeln!(
            f,
            "shop metrics  {} paid, {} declined, {} refund(s); revenue {}, refunded {}",
            b.orders_paid,
            b.payments_failed,
            b.refunds,
            money(&b.revenue_minor),
            money(&b.refunded_minor)
        )?;
        if let Some(dir) = &self.files {
            writeln!(f, "files kept in {}", dir.display())?;
        }

        writeln!(f, "\ninvariants")?;
        for inv in &self.invariants {
            let mark = if inv.ok { " ok " } else { "FAIL" };
            writeln!(f, "  [{mark}] {} — {}", inv.name, inv.detail)?;
        }
        let failed = self.invariants.iter().filter(|i| !i.ok).count();
        if failed == 0 {
            write!(f, "\nall {} invariants hold", self.invariants.len())
        } else {
            write!(
                f,
                "\n{failed} of {} invariants FAILED",
                self.invariants.len()
            )
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_header(f)?;
        self.write_integrations(f)?;
        self.write_delivery(f)?;
        self.write_payments(f)?;
        self.write_outcome(f)?;
        if !self.slices.is_empty() {
            writeln!(f, "\n\ntime per order and memory, per slice of the orders")?;
            for s in &self.slices {
                write!(f, "\n{s}")?;
            }
        }
        Ok(())
    }
}
