//! `/v1/payment_intents`: the lifecycle `requires_payment_method` → `requires_confirmation` →
//! `succeeded` (or `requires_capture` → `succeeded`), declines back to
//! `requires_payment_method` with `last_payment_error`, and cancel.

use integrations_core::Currency;
use serde_json::{Value, json};

use super::params::{Handled, Params, Reply, card_error, invalid, missing};
use super::render;
use super::state::{ChargeRec, Decline, Intent, IntentStatus, State, new_id, now, random_token};

const EXPANDABLE: &[&str] = &["latest_charge", "customer"];

/// What a test payment method does when charged.
pub(crate) fn test_card(pm: &str) -> Option<Result<(), Decline>> {
    let decline = |code, decline_code, message| {
        Some(Err(Decline {
            code,
            decline_code,
            message,
        }))
    };
    match pm {
        "pm_card_visa"
        | "pm_card_visa_debit"
        | "pm_card_mastercard"
        | "pm_card_mastercard_debit"
        | "pm_card_amex"
        | "pm_card_discover"
        | "pm_card_jcb"
        | "pm_card_unionpay"
        | "pm_card_us" => Some(Ok(())),
        "pm_card_chargeDeclined" => decline(
            "card_declined",
            "generic_decline",
            "Your card was declined.",
        ),
        "pm_card_chargeDeclinedInsufficientFunds" => decline(
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
        "pm_card_chargeDeclinedExpiredCard" => {
            decline("expired_card", "expired_card", "Your card has expired.")
        }
        "pm_card_chargeDeclinedIncorrectCvc" => decline(
            "incorrect_cvc",
            "incorrect_cvc",
            "Your card's security code is incorrect.",
        ),
        "pm_card_chargeDeclinedProcessingError" => decline(
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        "pm_card_chargeDeclinedLostCard" => {
            decline("card_declined", "lost_card", "Your card was declined.")
        }
        "pm_card_chargeDeclinedStolenCard" => {
            decline("card_declined", "stolen_card", "Your card was declined.")
        }
        "pm_card_chargeDeclinedFraudulent" => {
            decline("card_declined", "fraudulent", "Your card was declined.")
        }
        _ => None,
    }
}

fn check_payment_method(pm: &str) -> Result<(), Reply> {
    match test_card(pm) {
        Some(_) => Ok(()),
        None => Err(missing("PaymentMethod", pm, Some("payment_method"))),
    }
}

/// Stripe's rules on wire amounts: ISK/UGX carry two implied decimals, three-decimal currencies
/// end in 0.
fn check_amount(amount: i64, currency: Currency, param: &str) -> Result<(), Reply> {
    if matches!(currency.code(), "ISK" | "UGX") && amount % 100 != 0 {
        return Err(invalid(
            400,
            format!(
                "Invalid amount. Currency {} has become effectively zero-decimal and charged amounts must be evenly divisible by 100.",
                currency.code()
            ),
            Some(param),
            Some("invalid_charge_amount_no_decimal_compatible"),
        ));
    }
    if currency.exponent() == 3 && amount % 10 != 0 {
        return Err(invalid(
            400,
            format!("Invalid {param}: {} amounts must end in 0", currency.code()),
            Some(param),
            Some("parameter_invalid_integer"),
        ));
    }
    Ok(())
}

fn find<'a>(state: &'a State, id: &str) -> Result<&'a Intent, Reply> {
    state
        .intents
        .get(id)
        .ok_or_else(|| missing("payment_intent", id, None))
}

fn unexpected_state(state: &State, pi: &Intent, action: &str, allowed: &str) -> Reply {
    let mut r = invalid(
        400,
        format!(
            "This PaymentIntent's {action} could not be performed because it has a status of {}. \
             Only a PaymentIntent with one of the following statuses may be {action}ed: {allowed}.",
            pi.status.as_str()
        ),
        None,
        Some("payment_intent_unexpected_state"),
    );
    r.body["error"]["payment_intent"] = render::intent(state, pi, &[]);
    r
}

fn respond(state: &State, id: &str, expand: &[String]) -> Handled {
    let pi = find(state, id)?;
    Ok(Reply::ok(render::intent(state, pi, expand)))
}

const CREATE_PARAMS: &[&str] = &[
    "amount",
    "currency",
    "customer",
    "payment_method",
    "payment_method_types",
    "confirm",
    "capture_method",
    "description",
    "receipt_email",
    "metadata",
    "expand",
    "return_url",
    "automatic_payment_methods",
];

pub(crate) fn create(state: &mut State, p: &Params) -> Handled {
    p.check_known(CREATE_PARAMS)?;
    let (amount, code) = amount_and_currency(p)?;
    let customer = existing_customer(state, p)?;
    let payment_method = p.get("payment_method").map(str::to_owned);
    if let Some(pm) = &payment_method {
        check_payment_method(pm)?;
    }
    let capture = p.one_of(
        "capture_method",
        &["automatic", "automatic_async", "manual"],
    )?;
    let confirm = p.boolean("confirm")?.unwrap_or(false);
    let expand = p.list("expand")?;
    render::check_expand(&expand, EXPANDABLE)?;
    let manual_capture = capture.as_deref() == Some("manual");
    let pi = new_intent(p, amount, code, customer, payment_method, manual_capture)?;
    let id = store_intent(state, pi);
    let rendered = render::intent(state, &state.intents[&id], &[]);
    state.emit("payment_intent.created", rendered);
    if confirm {
        do_confirm(state, &id, None)?;
    }
    respond(state, &id, &expand)
}

/// The required `amount` and `currency` (lowercase, known, and an amount
/// the currency allows).
fn amount_and_currency(p: &Params) -> Result<(i64, &str), Reply> {
    let amount = p.positive_int("amount")?.ok_or_else(|| {
        invalid(
            400,
            "Missing required param: amount.",
            Some("amount"),
            Some("parameter_missing"),
        )
    })?;
    let code = p.get("currency").ok_or_else(|| {
        invalid(
            400,
            "Missing required param: currency.",
            Some("currency"),
            Some("parameter_missing"),
        )
    })?;
    let currency = Currency::from_code(code)
        .ok()
        .filter(|_| code.bytes().all(|b| b.is_ascii_lowercase()))
        .ok_or_else(|| {
            invalid(
                400,
                format!("Invalid currency: {code}."),
                Some("currency"),
                Some("parameter_invalid_string"),
            )
        })?;
    check_amount(amount, currency, "amount")?;
    Ok((amount, code))
}

/// The `customer` parameter, which must name a customer that exists.
fn existing_customer(state: &State, p: &Params) -> Result<Option<String>, Reply> {
    let customer = p.get("customer").map(str::to_owned);
    if let Some(c) = &customer {
        if !state.customers.contains_key(c) {
            return Err(missing("customer", c, Some("customer")));
        }
    }
    Ok(customer)
}

/// A fresh intent, waiting for a payment method or for confirmation.
fn new_intent(
    p: &Params,
    amount: i64,
    currency: &str,
    customer: Option<String>,
    payment_method: Option<String>,
    manual_capture: bool,
) -> Result<Intent, Reply> {
    let id = new_id("pi");
    Ok(Intent {
        client_secret: random_token(&format!("{id}_secret"), 25),
        id,
        amount,
        amount_capturable: 0,
        amount_received: 0,
        currency: currency.to_owned(),
        status: if payment_method.is_some() {
            IntentStatus::RequiresConfirmation
        } else {
            IntentStatus::RequiresPaymentMethod
        },
        manual_capture,
        created: now(),
        customer,
        description: p.get("description").map(str::to_owned),
        receipt_email: p.get("receipt_email").map(str::to_owned),
        metadata: p.map("metadata")?.unwrap_or_default(),
        payment_method,
        payment_method_types: p.list("payment_method_types")?,
        last_payment_error: None,
        latest_charge: None,
        canceled_at: None,
        cancellation_reason: None,
    })
}

/// Stores a new intent and starts its counters; returns its id.
fn store_intent(state: &mut State, pi: Intent) -> String {
    let id = pi.id.clone();
    state.store_intent(pi);
    id
}

pub(crate) fn retrieve(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["expand", "client_secret"])?;
    let expand = p.list("expand")?;
    render::check_expand(&expand, EXPANDABLE)?;
    respond(state, id, &expand)
}

pub(crate) fn update(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["metadata", "description", "receipt_email", "expand"])?;
    let expand = p.list("expand")?;
    render::check_expand(&expand, EXPANDABLE)?;
    let metadata = p.map("metadata")?;
    find(state, id)?;
    let Some(pi) = state.intents.get_mut(id) else {
        return Err(missing("payment_intent", id, None));
    };
    if let Some(updates) = metadata {
        if updates.is_empty() {
            pi.metadata.clear();
        }
        for (k, v) in updates {
            // Stripe merges; an empty value unsets the key.
            if v.is_empty() {
                pi.metadata.remove(&k);
            } else {
                pi.metadata.insert(k, v);
            }
        }
    }
    if let Some(d) = p.get("description") {
        pi.description = Some(d.to_owned()).filter(|d| !d.is_empty());
    }
    if let Some(e) = p.get("receipt_email") {
        pi.receipt_email = Some(e.to_owned()).filter(|e| !e.is_empty());
    }
    respond(state, id, &expand)
}

pub(crate) fn confirm(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["payment_method", "return_url", "expand", "client_secret"])?;
    let expand = p.list("expand")?;
    render::check_expand(&expand, EXPANDABLE)?;
    find(state, id)?;
    do_confirm(state, id, p.get("payment_method"))?;
    respond(state, id, &expand)
}

/// Charges the intent's payment method: succeeded / requires_capture, or a 402 decline.
fn do_confirm(state: &mut State, id: &str, payment_method: Option<&str>) -> Result<(), Reply> {
    let pi = find(state, id)?.clone();
    check_confirmable(state, &pi)?;
    let pm = payment_method_to_confirm(state, &pi, payment_method)?;
    check_payment_method(&pm)?;
    let outcome = test_card(&pm).unwrap_or(Ok(()));
    let charge_id = record_charge(state, &pi, &pm, &outcome);
    let Some(intent) = state.intents.get_mut(id) else {
        return Err(missing("payment_intent", id, None));
    };
    intent.payment_method = Some(pm.clone());
    intent.latest_charge = Some(charge_id.clone());
    match outcome {
        Ok(()) => {
            settle(intent);
            count_success(state, id, pi.manual_capture);
            announce_success(state, id, &charge_id, pi.manual_capture);
            Ok(())
        }
        Err(d) => {
            intent.status = IntentStatus::RequiresPaymentMethod;
            intent.last_payment_error = Some(last_payment_error(&d, &charge_id, &pm));
            Err(announce_decline(state, id, &charge_id, &pm, d))
        }
    }
}

/// Only an intent waiting for a payment method or for confirmation can be confirmed.
fn check_confirmable(state: &State, pi: &Intent) -> Result<(), Reply> {
    if !matches!(
        pi.status,
        IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresConfirmation
    ) {
        return Err(unexpected_state(
            state,
            pi,
            "confirm",
            "requires_payment_method, requires_confirmation",
        ));
    }
    Ok(())
}

/// The payment method passed to confirm, else the one attached to the intent.
fn payment_method_to_confirm(
    state: &State,
    pi: &Intent,
    payment_method: Option<&str>,
) -> Result<String, Reply> {
    let Some(pm) = payment_method
        .map(str::to_owned)
        .or(pi.payment_method.clone())
    else {
        let mut r = invalid(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent with a payment method, pass `payment_method`.",
            None,
            Some("payment_intent_unexpected_state"),
        );
        r.body["error"]["payment_intent"] = render::intent(state, pi, &[]);
        return Err(r);
    };
    Ok(pm)
}

/// Stores the charge a confirmation makes and counts it; returns its id.
fn record_charge(
    state: &mut State,
    pi: &Intent,
    pm: &str,
    outcome: &Result<(), Decline>,
) -> String {
    let charge_id = new_id("ch");
    let captured = outcome.is_ok() && !pi.manual_capture;
    let charge = ChargeRec {
        id: charge_id.clone(),
        amount: pi.amount,
        amount_captured: if captured { pi.amount } else { 0 },
        amount_refunded: 0,
        captured,
        currency: pi.currency.clone(),
        created: now(),
        customer: pi.customer.clone(),
        description: pi.description.clone(),
        payment_intent: pi.id.clone(),
        payment_method: pm.to_owned(),
        succeeded: outcome.is_ok(),
        failure: outcome.clone().err(),
        metadata: pi.metadata.clone(),
        refunds: Vec::new(),
    };
    state.charges.insert(charge_id.clone(), charge);
    state.counters.charges += 1;
    {
        let c = state.intent_counters(&pi.id);
        c.confirmations += 1;
        c.charges += 1;
    }
    charge_id
}

/// A successful charge: `requires_capture` for manual capture, else `succeeded`.
fn settle(intent: &mut Intent) {
    intent.last_payment_error = None;
    if intent.manual_capture {
        intent.status = IntentStatus::RequiresCapture;
        intent.amount_capturable = intent.amount;
    } else {
        intent.status = IntentStatus::Succeeded;
        intent.amount_received = intent.amount;
    }
}

fn count_success(state: &mut State, id: &str, manual_capture: bool) {
    state.counters.successful_charges += 1;
    state.intent_counters(id).successful_charges += 1;
    if !manual_capture {
        state.counters.captures += 1;
        state.intent_counters(id).captures += 1;
    }
}

/// Emits `charge.succeeded`, then the intent's `amount_capturable_updated` or `succeeded`.
fn announce_success(state: &mut State, id: &str, charge_id: &str, manual_capture: bool) {
    let charge_json = render::charge(state, &state.charges[charge_id]);
    state.emit("charge.succeeded", charge_json);
    let pi_json = render::intent(state, &state.intents[id], &[]);
    let event = if manual_capture {
        "payment_intent.amount_capturable_updated"
    } else {
        "payment_intent.succeeded"
    };
    state.emit(event, pi_json);
}

/// The intent's `last_payment_error` after a decline.
fn last_payment_error(d: &Decline, charge_id: &str, pm: &str) -> Value {
    json!({
        "type": "card_error",
        "code": d.code,
        "decline_code": d.decline_code,
        "message": d.message,
        "charge": charge_id,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", d.code.replace('_', "-")),
        "payment_method": { "id": pm, "object": "payment_method", "type": "card" },
    })
}

/// Emits `charge.failed` and `payment_intent.payment_failed`; returns the 402 card error.
fn announce_decline(state: &mut State, id: &str, charge_id: &str, pm: &str, d: Decline) -> Reply {
    let charge_json = render::charge(state, &state.charges[charge_id]);
    state.emit("charge.failed", charge_json);
    let pi_json = render::intent(state, &state.intents[id], &[]);
    state.emit("payment_intent.payment_failed", pi_json.clone());
    let extra = json!({
        "charge": charge_id,
        "payment_intent": pi_json,
        "payment_method": { "id": pm, "object": "payment_method", "type": "card" },
    });
    card_error(d.code, d.decline_code, d.message, extra)
}

pub(crate) fn capture(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["amount_to_capture", "expand", "metadata"])?;
    let expand = p.list("expand")?;
    render::check_expand(&expand, EXPANDABLE)?;
    let pi = find(state, id)?.clone();
    if pi.status != IntentStatus::RequiresCapture {
        return Err(unexpected_state(state, &pi, "capture", "requires_capture"));
    }
    let amount = p
        .positive_int("amount_to_capture")?
        .unwrap_or(pi.amount_capturable);
    if amount > pi.amount_capturable {
        return Err(invalid(
            400,
            format!(
                "The amount to capture ({amount}) must be less than or equal to the amount capturable ({}).",
                pi.amount_capturable
            ),
            Some("amount_to_capture"),
            Some("amount_too_large"),
        ));
    }
    if let Ok(currency) = Currency::from_code(&pi.currency) {
        check_amount(amount, currency, "amount_to_capture")?;
    }
    let metadata = p.map("metadata")?;
    let charge_id = pi.latest_charge.clone().unwrap_or_default();
    if let Some(c) = state.charges.get_mut(&charge_id) {
        c.captured = true;
        c.amount_captured = amount;
        // Stripe releases the uncaptured remainder and reports it as refunded.
        c.amount_refunded = c.amount - amount;
    }
    if let Some(intent) = state.intents.get_mut(id) {
        intent.status = IntentStatus::Succeeded;
        intent.amount_received = amount;
        intent.amount_capturable = 0;
        if let Some(m) = metadata {
            intent.metadata.extend(m);
        }
    }
    state.counters.captures += 1;
    state.intent_counters(id).captures += 1;
    if let Some(c) = state.charges.get(&charge_id) {
        let charge_json = render::charge(state, c);
        state.emit("charge.captured", charge_json);
    }
    let pi_json = render::intent(state, &state.intents[id], &[]);
    state.emit("payment_intent.succeeded", pi_json);
    respond(state, id, &expand)
}

pub(crate) fn cancel(state: &mut State, id: &str, p: &Params) -> Handled {
    p.check_known(&["cancellation_reason", "expand"])?;
    let expand = p.list("expand")?;
    render::check_expand(&expand, EXPANDABLE)?;
    let reason = p.one_of(
        "cancellation_reason",
        &[
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ],
    )?;
    let pi = find(state, id)?.clone();
    if matches!(pi.status, IntentStatus::Succeeded | IntentStatus::Canceled) {
        return Err(unexpected_state(
            state,
            &pi,
            "cancel",
            "requires_payment_method, requires_capture, requires_confirmation, requires_action, processing",
        ));
    }
    if let Some(intent) = state.intents.get_mut(id) {
        intent.status = IntentStatus::Canceled;
        intent.canceled_at = Some(now());
        intent.cancellation_reason = reason;
        intent.amount_capturable = 0;
    }
    let pi_json = render::intent(state, &state.intents[id], &[]);
    state.emit("payment_intent.canceled", pi_json);
    respond(state, id, &expand)
}

pub(crate) fn list(state: &mut State, p: &Params) -> Handled {
    p.check_known(&["customer", "limit", "starting_after", "expand"])?;
    let limit = p.limit()?;
    let customer = p.get("customer");
    let items: Vec<(String, Value)> = state
        .intents
        .in_order()
        .rev()
        .filter(|pi| customer.is_none() || pi.customer.as_deref() == customer)
        .map(|pi| (pi.id.clone(), render::intent(state, pi, &[])))
        .collect();
    render::list_page(
        "/v1/payment_intents",
        items,
        limit,
        p.get("starting_after"),
        "payment_intent",
    )
    .map(Reply::ok)
}
