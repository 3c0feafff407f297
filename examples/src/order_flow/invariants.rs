//! The invariants a run must keep; any failure makes the example exit non-zero.

use integrations_core::Result;
use integrations_outbox::OutboxCounts;
use serde::Serialize;

use super::audit::{Evidence, PaymentAudit, RowStatus};
use super::checkout::RefundMade;
use super::intake::IntakeStats;
use super::jobs::OrderEventKind;
use super::ledger::BusinessMetrics;
use super::orders::{OrderRecord, OrderState, Records};

/// One checked invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invariant {
    /// What must hold.
    pub name: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// The numbers behind the verdict, or what broke it.
    pub detail: String,
}

/// No payment was made twice.
pub const NO_DOUBLE_PAYMENT: &str = "no payment made twice";
/// Every job was delivered or dead-lettered.
pub const NO_LOST_JOB: &str = "no job lost";
/// Every paid order got its email, row and notification.
pub const PAID_FULFILLED: &str = "every paid order has its email, analytics row and notification";
/// The partial refund reached every side effect.
pub const REFUND_DELIVERED: &str =
    "the partial refund reached email, sheet, notifications and metrics";
/// No effect was delivered twice where the receiving side can be asked (see [`judge`]).
pub const NO_DUPLICATE: &str = "no effect delivered twice: one row per order, one notification per event, emails within the documented window";

/// A webhook event delivered again on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redelivery {
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The order it is about.
    pub order_id: String,
}

/// Everything the invariants are judged on.
#[derive(Debug)]
pub struct Facts<'a> {
    /// Every order, read once, one at a time.
    pub orders: &'a dyn Records,
    /// What the receiving side got.
    pub evidence: &'a Evidence,
    /// What the payment provider says.
    pub payments: &'a PaymentAudit,
    /// The outbox at the end.
    pub outbox: OutboxCounts,
    /// Whether the outbox drained before the timeout.
    pub drained: bool,
    /// The webhook intake's counters.
    pub intake: &'a IntakeStats,
    /// The shop's counters.
    pub business: &'a BusinessMetrics,
    /// The refund, if it was made.
    pub refund: Option<&'a RefundMade>,
    /// The event delivered twice, if any.
    pub redelivered: Option<&'a Redelivery>,
    /// Email sends SendGrid accepted but whose answer was lost (injected): each may have been
    /// sent again, the documented duplicate window of a provider without idempotency keys.
    pub email_duplicates_allowed: u64,
}

fn check(name: &'static str, problems: Vec<String>, ok_detail: String) -> Invariant {
    let ok = problems.is_empty();
    let detail = if ok {
        ok_detail
    } else {
        let shown: Vec<&str> = problems.iter().take(5).map(String::as_str).collect();
        let more = problems.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        format!("{}{tail}", shown.join("; "))
    };
    Invariant { name, ok, detail }
}

fn is_paid(r: &OrderRecord) -> bool {
    r.state.is_paid()
}

/// Judges `f`, reading the orders once.
///
/// [`NO_DUPLICATE`] is judged only on evidence counted at the receiving side (the sandboxes,
/// the notifications file): the handlers' own records can hold a delivery twice that the
/// provider deduplicated. Emails may be duplicated only within the documented window, at most
/// once per answer lost after SendGrid accepted (`Facts::email_duplicates_allowed`).
///
/// # Errors
/// The order store's read error: a run whose orders cannot be read cannot be judged.
pub fn judge(f: &Facts<'_>) -> Result<Vec<Invariant>> {
    let mut pass = Pass::default();
    f.orders.each(&mut |r| pass.see(f, r))?;
    let mut out = vec![
        checkouts_ended(&mut pass),
        no_double_payment(f, &mut pass),
        no_lost_job(f),
        paid_fulfilled(f, &mut pass),
    ];
    out.extend(no_duplicate(f));
    out.push(declined_handled(&mut pass));
    out.push(events_recorded_once(f, &mut pass));
    out.extend(redelivery_ignored(f));
    out.push(refund_delivered(f));
    out.push(business_counted_once(f, &pass));
    Ok(out)
}

/// What the checks that look at every order found, in one pass over the orders (the store
/// reads them one at a time; nothing of an order is kept but its problems).
#[derive(Debug, Default)]
struct Pass {
    paid: usize,
    declined: usize,
    /// The paid orders' totals, in minor units.
    revenue_minor: i64,
    with_intent: u64,
    unfinished: Vec<String>,
    charges: Vec<String>,
    unfulfilled: Vec<String>,
    mishandled: Vec<String>,
    events: Vec<String>,
}

impl Pass {
    fn see(&mut self, f: &Facts<'_>, r: &OrderRecord) {
        let id = r.order.id.as_str();
        let paid = is_paid(r);
        let declined = matches!(r.state, OrderState::Declined(_));
        if paid {
            self.paid += 1;
            self.revenue_minor += r.order.total().map_or(0, |m| m.minor());
        } else if declined {
            self.declined += 1;
        } else {
            self.unfinished.push(format!("{id} is {}", r.state));
        }
        // One intent per order with a payment, charged once if paid.
        self.with_intent += u64::from(r.payment_id.is_some());
        if let Some(by_order) = &f.payments.charges_by_order {
            let charges = by_order.get(id);
            if charges != u32::from(paid) {
                self.charges.push(format!(
                    "{id} ({}) has {charges} successful charges",
                    r.state
                ));
            }
        }
        let e = f.evidence;
        if paid {
            if e.emails_of(id, OrderEventKind::Paid.template()) == 0 {
                self.unfulfilled
                    .push(format!("{id}: no confirmation email"));
            }
            if !e.has_row(id) {
                self.unfulfilled.push(format!("{id}: no analytics row"));
            }
            if e.notifications_of(id, OrderEventKind::Paid) == 0 {
                self.unfulfilled.push(format!("{id}: no notification"));
            }
        }
        if declined {
            if e.emails_of(id, OrderEventKind::PaymentFailed.template()) == 0 {
                self.mishandled
                    .push(format!("{id}: no payment-failed email"));
            }
            if e.emails_of(id, OrderEventKind::Paid.template()) > 0 || e.has_row(id) {
                self.mishandled.push(format!("{id}: treated as paid"));
            }
        }
        // Each payment event recorded exactly once.
        let t = if paid {
            "payment_intent.succeeded"
        } else if declined {
            "payment_intent.payment_failed"
        } else {
            return;
        };
        let n = events(f, id, t);
        if n != 1 {
            self.events.push(format!("{id}: {t} recorded {n} times"));
        }
    }
}

/// Every checkout ended paid or declined.
fn checkouts_ended(pass: &mut Pass) -> Invariant {
    check(
        "every checkout ended paid or declined",
        std::mem::take(&mut pass.unfinished),
        format!("{} paid, {} declined", pass.paid, pass.declined),
    )
}

/// [`NO_DOUBLE_PAYMENT`]: one intent per order with a payment, charged at most once.
fn no_double_payment(f: &Facts<'_>, pass: &mut Pass) -> Invariant {
    let p = f.payments;
    let mut problems: Vec<String> = p
        .orders_with_several_intents
        .iter()
        .map(|o| format!("{o} has several payment intents"))
        .chain(
            p.intents_charged_twice
                .iter()
                .map(|i| format!("{i} charged twice")),
        )
        .collect();
    let with_intent = pass.with_intent;
    if p.intents != with_intent {
        problems.push(format!(
            "{} intents for {with_intent} orders with a payment",
            p.intents
        ));
    }
    problems.append(&mut pass.charges);
    let max = p
        .max_charges_per_intent
        .map_or_else(|| "not reported by the API".to_owned(), |m| m.to_string());
    check(
        NO_DOUBLE_PAYMENT,
        problems,
        format!(
            "{} intents for {with_intent} orders (1 each); most successful charges on one intent: {max}",
            p.intents
        ),
    )
}

/// [`NO_LOST_JOB`]: the outbox drained, every job done or dead-lettered.
fn no_lost_job(f: &Facts<'_>) -> Invariant {
    let o = f.outbox;
    let mut problems = Vec::new();
    if !f.drained || o.pending > 0 || o.leased > 0 {
        problems.push(format!(
            "outbox not drained: {} pending, {} leased",
            o.pending, o.leased
        ));
    }
    let jobs = f.intake.jobs_known;
    if o.done + o.dead != jobs {
        problems.push(format!(
            "{} done + {} dead-lettered != {jobs} jobs of the events recorded",
            o.done, o.dead
        ));
    }
    check(
        NO_LOST_JOB,
        problems,
        format!(
            "{jobs} jobs of {} events = {} done + {} dead-lettered",
            f.intake.events_known(),
            o.done,
            o.dead
        ),
    )
}

/// [`PAID_FULFILLED`]: every paid order got its email, row and notification.
fn paid_fulfilled(f: &Facts<'_>, pass: &mut Pass) -> Invariant {
    let e = f.evidence;
    check(
        PAID_FULFILLED,
        std::mem::take(&mut pass.unfulfilled),
        format!(
            "{} of {} (emails: {}; rows: {}; notifications: {})",
            pass.paid, pass.paid, e.email_source, e.rows_source, e.notifications_source
        ),
    )
}

/// Every declined order got a payment-failed email and nothing of a paid one.
/// Every declined order got its failure email and nothing of a paid order.
pub const DECLINED_HANDLED: &str =
    "every declined order got a payment-failed email and nothing of a paid one";

fn declined_handled(pass: &mut Pass) -> Invariant {
    check(
        DECLINED_HANDLED,
        std::mem::take(&mut pass.mishandled),
        format!("{} declined orders", pass.declined),
    )
}

/// Each payment event recorded exactly once.
fn events_recorded_once(f: &Facts<'_>, pass: &mut Pass) -> Invariant {
    check(
        "each payment event recorded exactly once",
        std::mem::take(&mut pass.events),
        format!(
            "{} events in the outbox, {} recorded by this start",
            f.intake.events_known(),
            f.intake.recorded
        ),
    )
}

/// A redelivered webhook has no second effect (judged only when one was redelivered).
fn redelivery_ignored(f: &Facts<'_>) -> Option<Invariant> {
    let rd = f.redelivered?;
    let e = f.evidence;
    let mut problems = Vec::new();
    if f.intake.duplicates == 0 {
        problems.push(format!("{} was not seen as a duplicate", rd.event_id));
    }
    if events(f, &rd.order_id, &rd.event_type) != 1 {
        problems.push(format!("{} recorded again", rd.event_id));
    }
    // One email, or more only within the documented window (an answer lost after acceptance).
    // Counted from the handlers' own records (a resumed run), a second email is the job re-run
    // after a process died between sending and marking it done — the same window, which those
    // records cannot tell apart from a second effect — so only the provider's count is judged
    // for more than one; that the redelivery recorded nothing is judged above either way.
    let n = e.emails_of(&rd.order_id, OrderEventKind::Paid.template()) as u64;
    if n == 0 || (e.emails_at_provider && n > 1 + f.email_duplicates_allowed) {
        problems.push(format!("{}: {n} confirmation emails", rd.order_id));
    }
    Some(check(
        "a redelivered webhook has no second effect",
        problems,
        format!(
            "{} duplicate deliveries acknowledged, nothing recorded",
            f.intake.duplicates
        ),
    ))
}

/// [`REFUND_DELIVERED`]: the refund was recorded once and fanned out.
fn refund_delivered(f: &Facts<'_>) -> Invariant {
    let e = f.evidence;
    match f.refund {
        Some(rf) => {
            let id = rf.order_id.as_str();
            let mut problems = Vec::new();
            if events(f, id, "refund.created") != 1 {
                problems.push("refund.created not recorded once".to_owned());
            }
            if e.emails_of(id, OrderEventKind::Refunded.template()) == 0 {
                problems.push("no refund email".to_owned());
            }
            if e.row_status(id) != RowStatus::PartiallyRefunded {
                problems.push(format!("row status {:?}", e.row_status(id)));
            }
            if e.notifications_of(id, OrderEventKind::Refunded) == 0 {
                problems.push("no refund notification".to_owned());
            }
            if f.business.refunds != 1 {
                problems.push(format!("{} refunds counted", f.business.refunds));
            }
            check(
                REFUND_DELIVERED,
                problems,
                format!("{} refunded on {id}", rf.amount),
            )
        }
        None => check(
            REFUND_DELIVERED,
            vec!["no refund was made".to_owned()],
            String::new(),
        ),
    }
}

/// Business metrics count each event exactly once.
fn business_counted_once(f: &Facts<'_>, pass: &Pass) -> Invariant {
    let revenue = pass.revenue_minor;
    let (paid, declined) = (pass.paid, pass.declined);
    let b = f.business;
    let counted: i64 = b.revenue_minor.values().sum();
    let mut problems = Vec::new();
    if b.orders_paid != paid as u64 || b.payments_failed != declined as u64 {
        problems.push(format!(
            "counted {} paid / {} failed, expected {paid} / {declined}",
            b.orders_paid, b.payments_failed,
        ));
    }
    if counted != revenue {
        problems.push(format!(
            "revenue counted {counted}, expected {revenue} (minor units)"
        ));
    }
    check(
        "business metrics count each event exactly once",
        problems,
        format!(
            "{} paid, {} failed, {} refund(s)",
            b.orders_paid, b.payments_failed, b.refunds
        ),
    )
}

/// How many times `t` was recorded for `order`.
fn events(f: &Facts<'_>, order: &str, t: &str) -> usize {
    f.intake.events.count(order, t)
}

/// [`NO_DUPLICATE`], if any evidence was counted at the receiving side.
fn no_duplicate(f: &Facts<'_>) -> Option<Invariant> {
    let e = f.evidence;
    if !(e.rows_at_provider || e.notifications_at_provider || e.emails_at_provider) {
        return None;
    }
    let mut problems = Vec::new();
    let mut judged = Vec::new();
    if e.rows_at_provider {
        let mut twice: Vec<_> = e
            .rows
            .iter()
            .filter(|(_, row)| row.count > 1)
            .map(|(id, row)| format!("{id}: {} analytics rows", row.count))
            .collect();
        twice.sort();
        problems.extend(twice);
        judged.push("one row per order".to_owned());
    }
    if e.notifications_at_provider {
        let mut twice: Vec<String> = e
            .notifications
            .iter()
            .flat_map(|(id, by_event)| {
                by_event
                    .iter()
                    .filter(|(_, n)| *n > 1)
                    .map(move |(event, n)| format!("{id}: {n} {event} notifications"))
                    .collect::<Vec<_>>()
            })
            .collect();
        twice.sort();
        problems.extend(twice);
        judged.push("one notification per event".to_owned());
    }
    if e.emails_at_provider {
        let d = e.duplicate_emails();
        let allowed = f.email_duplicates_allowed;
        if d > allowed {
            problems.push(format!(
                "{d} emails sent twice, but only {allowed} answers were lost after SendGrid accepted"
            ));
        }
        judged.push(format!(
            "{d} email(s) sent twice, {allowed} allowed (answers lost after acceptance)"
        ));
    }
    Some(check(NO_DUPLICATE, problems, judged.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order_flow::by_order::ByOrder;
    use crate::order_flow::orders::Order;
    use integrations_core::Money;

    struct World {
        orders: Vec<OrderRecord>,
        evidence: Evidence,
        payments: PaymentAudit,
        outbox: OutboxCounts,
        intake: IntakeStats,
        business: BusinessMetrics,
        refund: RefundMade,
        lost_answers: u64,
    }

    /// Order 0 paid and partly refunded, order 1 paid, order 7 declined: everything delivered.
    fn healthy() -> World {
        let rec = |n: usize, state: OrderState| OrderRecord {
            order: Order::sample("t", n, None),
            state,
            payment_id: Some(format!("pi_{n}")),
            refunded_minor: 0,
        };
        let orders = vec![
            rec(0, OrderState::PartiallyRefunded),
            rec(1, OrderState::Paid),
            rec(7, OrderState::Declined("generic_decline".into())),
        ];
        let (o0, o1, o7) = (
            orders[0].order.id.clone(),
            orders[1].order.id.clone(),
            orders[2].order.id.clone(),
        );
        let mut evidence = Evidence::default();
        for (o, templates) in [
            (&o0, &["order_confirmation", "refund_issued"][..]),
            (&o1, &["order_confirmation"]),
            (&o7, &["payment_failed"]),
        ] {
            for t in templates {
                evidence.add_email(o, t);
                evidence.add_notification(o, t);
            }
        }
        // The refund updated the paid row in place: one row, with the new status.
        evidence.add_row(&o0, "partially_refunded", true);
        evidence.add_row(&o1, "paid", true);
        evidence.emails_at_provider = true;
        evidence.rows_at_provider = true;
        evidence.notifications_at_provider = true;
        let mut payments = PaymentAudit {
            intents: 3,
            max_charges_per_intent: Some(1),
            ..PaymentAudit::default()
        };
        let mut charges = ByOrder::new();
        *charges.entry(&o0) = 1;
        *charges.entry(&o1) = 1;
        payments.charges_by_order = Some(charges);
        let mut intake = IntakeStats {
            recorded: 4,
            jobs_recorded: 15,
            jobs_known: 15,
            duplicates: 1,
            ..IntakeStats::default()
        };
        for (o, t) in [
            (&o0, "payment_intent.succeeded"),
            (&o0, "refund.created"),
            (&o1, "payment_intent.succeeded"),
            (&o7, "payment_intent.payment_failed"),
        ] {
            intake.events.know(o, t, &format!("evt_{o}_{t}"));
        }
        let revenue =
            orders[0].order.total().unwrap().minor() + orders[1].order.total().unwrap().minor();
        let business = BusinessMetrics {
            orders_paid: 2,
            payments_failed: 1,
            refunds: 1,
            revenue_minor: [("USD".to_owned(), revenue)].into(),
            ..BusinessMetrics::default()
        };
        let total = orders[0].order.total().unwrap();
        World {
            refund: RefundMade {
                order_id: o0,
                refund_id: "re_1".into(),
                amount: Money::from_minor(100, total.currency()),
                total,
            },
            orders,
            evidence,
            payments,
            outbox: OutboxCounts {
                done: 15,
                events: 4,
                ..OutboxCounts::default()
            },
            intake,
            business,
            lost_answers: 0,
        }
    }

    fn judged(w: &World, drained: bool) -> Vec<Invariant> {
        judged_from(w, &w.orders, drained)
    }

    /// `w` judged with its orders read from `orders`.
    fn judged_from(w: &World, orders: &dyn Records, drained: bool) -> Vec<Invariant> {
        let redelivery = Redelivery {
            event_id: "evt_x".into(),
            event_type: "payment_intent.succeeded".into(),
            order_id: w.orders[1].order.id.clone(),
        };
        judge(&Facts {
            orders,
            evidence: &w.evidence,
            payments: &w.payments,
            outbox: w.outbox,
            drained,
            intake: &w.intake,
            business: &w.business,
            refund: Some(&w.refund),
            redelivered: Some(&redelivery),
            email_duplicates_allowed: w.lost_answers,
        })
        .unwrap()
    }

    fn failed(invariants: &[Invariant]) -> Vec<&'static str> {
        invariants
            .iter()
            .filter(|i| !i.ok)
            .map(|i| i.name)
            .collect()
    }

    #[test]
    fn a_healthy_run_keeps_every_invariant() {
        let w = healthy();
        let all = judged(&w, true);
        assert_eq!(all.len(), 10);
        assert!(failed(&all).is_empty(), "{all:#?}");
    }

    /// `w`'s orders in an order book, as the run keeps them.
    fn book_of(w: &World) -> crate::order_flow::orders::OrderBook {
        let book = crate::order_flow::orders::OrderBook::new();
        for r in &w.orders {
            book.insert(r.order.clone()).unwrap();
            if let Some(p) = &r.payment_id {
                book.payment_created(&r.order.id, p).unwrap();
            }
            book.set_state(&r.order.id, r.state.clone()).unwrap();
        }
        book
    }

    #[test]
    fn the_order_book_is_judged_as_the_records_are() {
        let w = healthy();
        let from_book = judged_from(&w, &book_of(&w), true);
        assert!(failed(&from_book).is_empty(), "{from_book:#?}");
        assert_eq!(from_book, judged(&w, true));

        // A stuck order and a declined one with a paid effect, read from the book.
        let mut w = healthy();
        w.orders[1].state = OrderState::PaymentPending;
        let id7 = w.orders[2].order.id.clone();
        w.evidence.add_email(&id7, "order_confirmation");
        let from_book = judged_from(&w, &book_of(&w), true);
        assert_eq!(from_book, judged(&w, true));
        let f = failed(&from_book);
        assert!(
            f.contains(&"every checkout ended paid or declined"),
            "{f:?}"
        );
        assert!(f.contains(&DECLINED_HANDLED), "{f:?}");
    }

    #[test]
    fn a_declined_order_treated_as_paid_is_caught() {
        for effect in ["confirmation email", "analytics row"] {
            let mut w = healthy();
            let id = w.orders[2].order.id.clone();
            if effect == "analytics row" {
                w.evidence.add_row(&id, "paid", true);
            } else {
                w.evidence.add_email(&id, "order_confirmation");
            }
            let all = judged(&w, true);
            let verdict = all.iter().find(|i| i.name == DECLINED_HANDLED).unwrap();
            assert!(!verdict.ok, "{effect}: {verdict:?}");
            assert_eq!(verdict.detail, format!("{id}: treated as paid"), "{effect}");
        }
        // And one without its failure email.
        let mut w = healthy();
        let id = w.orders[2].order.id.clone();
        w.evidence.emails.remove(&id);
        let all = judged(&w, true);
        let verdict = all.iter().find(|i| i.name == DECLINED_HANDLED).unwrap();
        assert_eq!(verdict.detail, format!("{id}: no payment-failed email"));
    }

    #[test]
    fn a_double_charge_is_caught() {
        let mut w = healthy();
        let paid = w.orders[1].order.id.clone();
        *w.payments.charges_by_order.as_mut().unwrap().entry(&paid) = 2;
        w.payments.intents_charged_twice.push("pi_1".into());
        assert_eq!(failed(&judged(&w, true)), [NO_DOUBLE_PAYMENT]);
        let mut w = healthy();
        w.payments
            .orders_with_several_intents
            .push(w.orders[1].order.id.clone());
        assert_eq!(failed(&judged(&w, true)), [NO_DOUBLE_PAYMENT]);
    }

    #[test]
    fn a_lost_job_is_caught() {
        let mut w = healthy();
        w.outbox.done = 14;
        assert_eq!(failed(&judged(&w, true)), [NO_LOST_JOB]);
        let w = healthy();
        assert_eq!(failed(&judged(&w, false)), [NO_LOST_JOB]);
    }

    #[test]
    fn a_paid_order_without_its_effects_is_caught() {
        for missing in ["email", "row", "notification"] {
            let mut w = healthy();
            let id = w.orders[1].order.id.clone();
            match missing {
                "email" => w.evidence.emails.remove(&id),
                "row" => w.evidence.rows.remove(&id),
                _ => w.evidence.notifications.remove(&id),
            }
            let f = failed(&judged(&w, true));
            assert!(f.contains(&PAID_FULFILLED), "{missing}: {f:?}");
        }
    }

    #[test]
    fn a_visible_duplicate_is_caught_and_an_email_one_only_beyond_the_window() {
        let mut w = healthy();
        let id = w.orders[1].order.id.clone();
        w.evidence.add_row(&id, "paid", true);
        assert_eq!(failed(&judged(&w, true)), [NO_DUPLICATE]);

        let mut w = healthy();
        w.evidence.add_notification(&id, "order_confirmation");
        assert_eq!(failed(&judged(&w, true)), [NO_DUPLICATE]);

        let mut w = healthy();
        w.evidence.add_email(&id, "order_confirmation");
        assert_eq!(w.evidence.duplicate_emails(), 1);
        let f = failed(&judged(&w, true));
        assert!(f.contains(&NO_DUPLICATE), "{f:?}");
        w.lost_answers = 1;
        let f = failed(&judged(&w, true));
        assert!(!f.contains(&NO_DUPLICATE), "within the window: {f:?}");

        // Evidence from the handlers' records is not judged for duplicates.
        let mut w = healthy();
        w.evidence.add_row(&id, "paid", true);
        w.evidence.rows_at_provider = false;
        w.evidence.emails_at_provider = false;
        w.evidence.notifications_at_provider = false;
        let all = judged(&w, true);
        assert!(all.iter().all(|i| i.name != NO_DUPLICATE));
    }

    #[test]
    fn a_second_email_for_the_redelivered_order_is_judged_only_at_the_provider() {
        let mut w = healthy();
        let id = w.orders[1].order.id.clone();
        w.evidence.add_email(&id, "order_confirmation");
        let f = failed(&judged(&w, true));
        assert!(
            f.contains(&"a redelivered webhook has no second effect"),
            "counted at SendGrid: {f:?}"
        );
        // A resumed run's handler records: a job re-run after a kill in its window.
        w.evidence.emails_at_provider = false;
        let f = failed(&judged(&w, true));
        assert!(
            !f.contains(&"a redelivered webhook has no second effect"),
            "{f:?}"
        );
        // No email at all is still caught.
        w.evidence.emails.remove(&id);
        let f = failed(&judged(&w, true));
        assert!(
            f.contains(&"a redelivered webhook has no second effect"),
            "{f:?}"
        );
    }

    #[test]
    fn jobs_of_events_recorded_by_an_earlier_process_count() {
        let mut w = healthy();
        // A resumed process recorded nothing itself: every event was found recorded.
        w.intake.recorded = 0;
        w.intake.jobs_recorded = 0;
        assert!(failed(&judged(&w, true)).is_empty());
        w.intake.jobs_known = 16;
        assert_eq!(failed(&judged(&w, true)), [NO_LOST_JOB]);
    }

    #[test]
    fn an_event_recorded_twice_or_a_stuck_order_is_caught() {
        let mut w = healthy();
        let id = w.orders[1].order.id.clone();
        w.intake
            .events
            .know(&id, "payment_intent.succeeded", "evt_again");
        let f = failed(&judged(&w, true));
        assert!(
            f.contains(&"each payment event recorded exactly once"),
            "{f:?}"
        );
        assert!(
            f.contains(&"a redelivered webhook has no second effect"),
            "{f:?}"
        );

        let mut w = healthy();
        w.orders[1].state = OrderState::PaymentPending;
        let f = failed(&judged(&w, true));
        assert!(
            f.contains(&"every checkout ended paid or declined"),
            "{f:?}"
        );
    }
}
