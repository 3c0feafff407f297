//! Objects rendered with the field shapes of Stripe's own examples (`fixtures3.json`).

use serde_json::{Value, json};

use super::params::{Reply, invalid};
use super::state::{ChargeRec, CustomerRec, Intent, RefundRec, State};

/// What may be expanded on each object.
pub(crate) fn check_expand(expand: &[String], allowed: &[&str]) -> Result<(), Reply> {
    for e in expand {
        if !allowed.contains(&e.as_str()) {
            return Err(invalid(
                400,
                format!("This property cannot be expanded ({e})."),
                Some("expand"),
                None,
            ));
        }
    }
    Ok(())
}

fn expanded(expand: &[String], field: &str) -> bool {
    expand.iter().any(|e| e == field)
}

pub(crate) fn intent(state: &State, pi: &Intent, expand: &[String]) -> Value {
    let latest_charge = match (&pi.latest_charge, expanded(expand, "latest_charge")) {
        (Some(id), true) => state
            .charges
            .get(id)
            .map_or(json!(id), |c| charge(state, c)),
        (Some(id), false) => json!(id),
        (None, _) => Value::Null,
    };
    let customer = match (&pi.customer, expanded(expand, "customer")) {
        (Some(id), true) => state.customers.get(id).map_or(json!(id), customer),
        (Some(id), false) => json!(id),
        (None, _) => Value::Null,
    };
    json!({
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "amount_capturable": pi.amount_capturable,
        "amount_details": { "tip": {} },
        "amount_received": pi.amount_received,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": if pi.payment_method_types.is_empty() { json!({ "allow_redirects": "always", "enabled": true }) } else { Value::Null },
        "canceled_at": pi.canceled_at,
        "cancellation_reason": pi.cancellation_reason,
        "capture_method": if pi.manual_capture { "manual" } else { "automatic" },
        "client_secret": pi.client_secret,
        "confirmation_method": "automatic",
        "created": pi.created,
        "currency": pi.currency,
        "customer": customer,
        "customer_account": null,
        "description": pi.description,
        "excluded_payment_method_types": null,
        "last_payment_error": pi.last_payment_error,
        "latest_charge": latest_charge,
        "livemode": false,
        "managed_payments": { "enabled": false },
        "metadata": pi.metadata,
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": pi.payment_method,
        "payment_method_configuration_details": null,
        "payment_method_options": { "card": { "installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic" } },
        "payment_method_types": if pi.payment_method_types.is_empty() { vec!["card".to_owned()] } else { pi.payment_method_types.clone() },
        "processing": null,
        "receipt_email": pi.receipt_email,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": pi.status.as_str(),
        "transfer_data": null,
        "transfer_group": null,
    })
}

pub(crate) fn charge(state: &State, c: &ChargeRec) -> Value {
    let refunds: Vec<Value> = c
        .refunds
        .iter()
        .rev()
        .filter_map(|id| state.refunds.get(id))
        .map(refund)
        .collect();
    let (outcome, failure_code, failure_message) = match &c.failure {
        None => (
            json!({ "advice_code": null, "network_advice_code": null, "network_decline_code": null,
                    "network_status": "approved_by_network", "reason": null, "risk_level": "normal",
                    "risk_score": 32, "seller_message": "Payment complete.", "type": "authorized" }),
            Value::Null,
            Value::Null,
        ),
        Some(d) => (
            json!({ "advice_code": "try_again_later", "network_advice_code": null, "network_decline_code": null,
                    "network_status": "declined_by_network", "reason": d.decline_code, "risk_level": "normal",
                    "risk_score": 40, "seller_message": "The bank did not return any further details with this decline.",
                    "type": "issuer_declined" }),
            json!(d.code),
            json!(d.message),
        ),
    };
    json!({
        "id": c.id,
        "object": "charge",
        "amount": c.amount,
        "amount_captured": c.amount_captured,
        "amount_refunded": c.amount_refunded,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": if c.captured { json!(format!("txn_{}", &c.id[3..])) } else { Value::Null },
        "billing_details": { "address": { "city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null },
                             "email": null, "name": null, "phone": null, "tax_id": null },
        "calculated_statement_descriptor": "INTEGRATIONS SANDBOX",
        "captured": c.captured,
        "created": c.created,
        "currency": c.currency,
        "customer": c.customer,
        "description": c.description,
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "fraud_details": {},
        "livemode": false,
        "metadata": c.metadata,
        "on_behalf_of": null,
        "outcome": outcome,
        "paid": c.succeeded,
        "payment_intent": c.payment_intent,
        "payment_method": c.payment_method,
        "payment_method_details": { "card": card_details(&c.payment_method), "type": "card" },
        "receipt_email": null,
        "receipt_number": null,
        "receipt_url": format!("https://pay.stripe.com/receipts/payment/sandbox/{}", c.id),
        "refunded": c.amount_refunded > 0 && c.amount_refunded >= c.amount,
        "refunds": { "object": "list", "data": refunds, "has_more": false, "url": format!("/v1/charges/{}/refunds", c.id) },
        "review": null,
        "shipping": null,
        "source": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": if c.succeeded { "succeeded" } else { "failed" },
        "transfer_data": null,
        "transfer_group": null,
    })
}

fn card_details(pm: &str) -> Value {
    let (brand, last4) = match pm {
        "pm_card_mastercard" | "pm_card_mastercard_debit" => ("mastercard", "4444"),
        "pm_card_amex" => ("amex", "8431"),
        "pm_card_discover" => ("discover", "1117"),
        "pm_card_chargeDeclined" => ("visa", "0002"),
        "pm_card_chargeDeclinedInsufficientFunds" => ("visa", "9995"),
        "pm_card_chargeDeclinedExpiredCard" => ("visa", "0069"),
        _ => ("visa", "4242"),
    };
    json!({
        "amount_authorized": null, "authorization_code": null, "brand": brand,
        "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass" },
        "country": "US", "exp_month": 12, "exp_year": 2034, "fingerprint": "sandboxFingerprint",
        "funding": "credit", "last4": last4, "network": brand, "three_d_secure": null, "wallet": null,
    })
}

pub(crate) fn refund(r: &RefundRec) -> Value {
    json!({
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": format!("txn_{}", &r.id[3..]),
        "charge": r.charge,
        "created": r.created,
        "currency": r.currency,
        "customer": null,
        "customer_account": null,
        "destination_details": { "card": { "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund" }, "type": "card" },
        "metadata": r.metadata,
        "payment_intent": r.payment_intent,
        "payment_method": r.payment_method,
        "reason": r.reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null,
    })
}

pub(crate) fn customer(c: &CustomerRec) -> Value {
    json!({
        "id": c.id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": c.created,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": c.description,
        "discount": null,
        "email": c.email,
        "invoice_prefix": c.id[4..12].to_ascii_uppercase(),
        "invoice_settings": { "custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null },
        "livemode": false,
        "metadata": c.metadata,
        "name": c.name,
        "next_invoice_sequence": 1,
        "phone": c.phone,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null,
    })
}

/// A list page over `items` (newest first), honouring `limit` and `starting_after`.
pub(crate) fn list_page(
    url: &str,
    items: Vec<(String, Value)>,
    limit: usize,
    starting_after: Option<&str>,
    kind: &str,
) -> Result<Value, Reply> {
    let start = match starting_after {
        None => 0,
        Some(after) => {
            let pos = items
                .iter()
                .position(|(id, _)| id == after)
                .ok_or_else(|| super::params::missing(kind, after, Some("starting_after")))?;
            pos + 1
        }
    };
    let rest = items.len().saturating_sub(start);
    let data: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(_, v)| v)
        .collect();
    Ok(json!({ "object": "list", "data": data, "has_more": rest > limit, "url": url }))
}
