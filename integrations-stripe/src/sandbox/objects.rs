//! `/v1/refunds`, `/v1/customers`, `/v1/charges/{id}` and `/v1/events`.

use integrations_core::{Currency, Money};
use serde_json::Value;

use super::params::{Handled, Params, Reply, invalid, missing};
use super::render;
use super::state::{ChargeRec, CustomerRec, RefundRec, State, new_id, now};

/// `$60.00` for USD, `60.00 EUR` otherwise, like Stripe's refund messages.
fn format_amount(wire: i64, currency: &str) -> String {
    match Currency::from_code(currency) {
        Ok(c) => {
            let factor = crate::currency::wire_factor(c);
            let m = Money::from_minor(wire / factor, c);
            if c == Currency::USD {
                format!("${}", m.to_decimal_string())
            } else {
                m.to_string()
            }
        }
        Err(_) => format!("{wire} {currency}"),
    }
}

const REFUND_PARAMS: &[&str] = &[
    "payment_intent",
    "charge",
    "amount",
    "reason",
    "metadata",
    "expand",
    "refund_application_fee",
    "reverse_transfer",
];

pub(crate) fn create_refund(state: &mut State, p: &Params) -> Handled {
    p.check_known(REFUND_PARAMS)?;
    let expand = p.list("expand")?;
    render::check_expand(&expand, &[])?;
    let charge_id = refund_target(state, p)?;
    let reason = p.one_of(
        "reason",
        &["duplicate", "fraudulent", "requested_by_customer"],
    )?;
    let metadata = p.map("metadata")?.unwrap_or_default();
    let charge = state.charges[&charge_id].clone();
    let amount = refund_amount(&charge, p)?;
    let refund = RefundRec {
        id: new_id("re"),
        amount,
        charge: charge_id.clone(),
        payment_intent: charge.payment_intent.clone(),
        payment_method: charge.payment_method.clone(),
        currency: charge.currency.clone(),
        created: now(),
        reason,
        metadata,
    };
    let refund_id = record_refund(state, refund);
    Ok(Reply::ok(announce_refund(state, &refund_id, &charge_id)))
}

/// The id of the charge to refund: named directly, or the latest charge of
/// the named PaymentIntent; exactly one of the two must be given.
fn refund_target(state: &State, p: &Params) -> Result<String, Reply> {
    match (p.get("payment_intent"), p.get("charge")) {
        (Some(pi_id), None) => intent_charge_to_refund(state, pi_id),
        (None, Some(ch)) => charge_to_refund(state, ch),
        (None, None) => Err(invalid(
            400,
            "One of the following params should be provided for this request: payment_intent or charge.",
            None,
            Some("parameter_missing"),
        )),
        (Some(_), Some(_)) => Err(invalid(
            400,
            "You can only pass one of payment_intent or charge.",
            Some("charge"),
            None,
        )),
    }
}

/// The PaymentIntent's latest charge, if it succeeded and was captured.
fn intent_charge_to_refund(state: &State, pi_id: &str) -> Result<String, Reply> {
    let pi = state
        .intents
        .get(pi_id)
        .ok_or_else(|| missing("payment_intent", pi_id, Some("payment_intent")))?;
    if let Some(c) = pi.latest_charge.as_deref()
        && !state.charges.contains_key(c)
    {
        // Its charge is past the sandbox's object retention.
        return Err(missing("charge", c, Some("payment_intent")));
    }
    let succeeded = pi
        .latest_charge
        .as_deref()
        .and_then(|c| state.charges.get(c))
        .filter(|c| c.succeeded && c.captured);
    match succeeded {
        Some(c) => Ok(c.id.clone()),
        None => Err(invalid(
            400,
            format!("This PaymentIntent ({pi_id}) does not have a successful charge to refund."),
            Some("payment_intent"),
            None,
        )),
    }
}

/// The named charge, if it succeeded and was captured.
fn charge_to_refund(state: &State, ch: &str) -> Result<String, Reply> {
    let c = state
        .charges
        .get(ch)
        .ok_or_else(|| missing("charge", ch, Some("charge")))?;
    if !(c.succeeded && c.captured) {
        return Err(invalid(
            400,
            format!("Charge {ch} has not been captured or did not succeed."),
            Some("charge"),
            None,
        ));
    }
    Ok(c.id.clone())
}

/// The requested amount (all that is left by default), refused when nothing
/// is left or when it exceeds what is left.
fn refund_amount(charge: &ChargeRec, p: &Params) -> Result<i64, Reply> {
    let refundable = charge.refundable();
    if refundable == 0 {
        return Err(invalid(
            400,
            format!("Charge {} has already been refunded.", charge.id),
            None,
            Some("charge_already_refunded"),
        ));
    }
    let amount = p.positive_int("amount")?.unwrap_or(refundable);
    if amount > refundable {
        // Stripe's own wording; note that it carries no `code`.
        return Err(invalid(
            400,
            format!(
                "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                format_amount(amount, &charge.currency),
                format_amount(refundable, &charge.currency)
            ),
            Some("amount"),
            None,
        ));
    }
    Ok(amount)
}

/// Stores the refund and books it against its charge and the counters.
fn record_refund(state: &mut State, refund: RefundRec) -> String {
    let refund_id = refund.id.clone();
    let (charge_id, intent_id) = (refund.charge.clone(), refund.payment_intent.clone());
    if let Some(c) = state.charges.get_mut(&charge_id) {
        c.amount_refunded += refund.amount;
        c.refunds.push(refund_id.clone());
    }
    state.refunds.insert(refund_id.clone(), refund);
    state.counters.refunds += 1;
    state.intent_counters(&intent_id).refunds += 1;
    refund_id
}

/// Emits `charge.refunded` and `refund.created`; returns the refund's JSON.
fn announce_refund(state: &mut State, refund_id: &str, charge_id: &str) -> Value {
    let refund_json = render::refund(&state.refunds[refund_id]);
    let charge_json = render::charge(state, &state.charges[charge_id]);
    state.emit("charge.refunded", charge_json);
    state.emit("refund.created", refund_json.clone());
    refund_json
}

pub(crate) fn retrieve_refund(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["expand"])?;
    let r = state
        .refunds
        .get(id)
        .ok_or_else(|| missing("refund", id, None))?;
    Ok(Reply::ok(render::refund(r)))
}

pub(crate) fn list_refunds(state: &mut State, p: &Params) -> Handled {
    p.check_known(&[
        "payment_intent",
        "charge",
        "limit",
        "starting_after",
        "expand",
    ])?;
    let limit = p.limit()?;
    let (pi, ch) = (p.get("payment_intent"), p.get("charge"));
    if let Some(pi) = pi {
        if !state.intents.contains_key(pi) {
            return Err(missing("payment_intent", pi, Some("payment_intent")));
        }
    }
    let items: Vec<(String, Value)> = state
        .refunds
        .in_order()
        .rev()
        .filter(|r| pi.is_none_or(|pi| r.payment_intent == pi))
        .filter(|r| ch.is_none_or(|ch| r.charge == ch))
        .map(|r| (r.id.clone(), render::refund(r)))
        .collect();
    render::list_page(
        "/v1/refunds",
        items,
        limit,
        p.get("starting_after"),
        "refund",
    )
    .map(Reply::ok)
}

pub(crate) fn create_customer(state: &mut State, p: &Params) -> Handled {
    p.check_known(&[
        "email",
        "name",
        "description",
        "phone",
        "metadata",
        "expand",
    ])?;
    let c = CustomerRec {
        id: new_id("cus"),
        created: now(),
        email: p.get("email").map(str::to_owned),
        name: p.get("name").map(str::to_owned),
        description: p.get("description").map(str::to_owned),
        phone: p.get("phone").map(str::to_owned),
        metadata: p.map("metadata")?.unwrap_or_default(),
    };
    let json = render::customer(&c);
    state.customers.insert(c.id.clone(), c);
    state.counters.customers += 1;
    state.emit("customer.created", json.clone());
    Ok(Reply::ok(json))
}

pub(crate) fn retrieve_customer(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["expand"])?;
    let c = state
        .customers
        .get(id)
        .ok_or_else(|| missing("customer", id, None))?;
    Ok(Reply::ok(render::customer(c)))
}

pub(crate) fn retrieve_charge(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["expand"])?;
    let c = state
        .charges
        .get(id)
        .ok_or_else(|| missing("charge", id, None))?;
    Ok(Reply::ok(render::charge(state, c)))
}

pub(crate) fn retrieve_event(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["expand"])?;
    state
        .event(id)
        .cloned()
        .map(Reply::ok)
        .ok_or_else(|| missing("event", id, None))
}

pub(crate) fn list_events(state: &mut State, p: &Params) -> Handled {
    p.check_known(&["type", "limit", "starting_after"])?;
    let limit = p.limit()?;
    let kind = p.get("type");
    let items: Vec<(String, Value)> = state
        .events_in_order()
        .rev()
        .filter(|e| kind.is_none_or(|k| e.get("type").and_then(Value::as_str) == Some(k)))
        .map(|e| {
            (
                e.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                e.clone(),
            )
        })
        .collect();
    render::list_page("/v1/events", items, limit, p.get("starting_after"), "event").map(Reply::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_like_stripes_messages() {
        assert_eq!(format_amount(6000, "usd"), "$60.00");
        assert_eq!(format_amount(500, "jpy"), "500 JPY");
        assert_eq!(format_amount(500, "isk"), "5 ISK");
    }
}
