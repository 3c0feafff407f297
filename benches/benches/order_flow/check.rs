//! Before any timing: both sides make the same calls.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::drive::{Flow, Side};
use crate::model::{Order, SHEET, SUCCEEDED, Sandboxes};
use crate::ours::{Dispatch, Store};

/// The strings that differ between two orders' traces, and what they become.
fn replacements(sb: &Sandboxes, order: &Order, pi: &Value) -> Vec<(String, String)> {
    let pi_id = pi["id"].as_str().unwrap_or_default().to_owned();
    let event = sb
        .stripe
        .events()
        .into_iter()
        .find(|e| e["type"] == SUCCEEDED && e["data"]["object"]["id"] == pi_id.as_str())
        .unwrap_or_default();
    let mut r = vec![
        (order.id.clone(), "<order>".to_owned()),
        (order.customer_email.clone(), "<email>".to_owned()),
        (pi_id, "<pi>".to_owned()),
        (
            event["id"].as_str().unwrap_or("-").to_owned(),
            "<event>".to_owned(),
        ),
        (event["created"].to_string(), "<created>".to_owned()),
    ];
    if let Some(secret) = pi["client_secret"].as_str() {
        r.insert(0, (secret.to_owned(), "<secret>".to_owned()));
    }
    r
}

/// `v` with every string (and number) in `r` replaced.
fn normalized(v: &Value, r: &[(String, String)]) -> Value {
    match v {
        Value::String(s) => Value::String(
            r.iter()
                .fold(s.clone(), |s, (from, to)| s.replace(from.as_str(), to)),
        ),
        Value::Number(n) => {
            let text = n.to_string();
            match r.iter().find(|(from, _)| *from == text) {
                Some((_, to)) => Value::String(to.clone()),
                None => v.clone(),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| normalized(x, r)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), normalized(x, r)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Runs one order each way and checks that the sandboxes saw the same thing: as many Stripe
/// requests, equal payment intents, equal mail bodies and equal rows (ids aside). Panics with
/// both versions when they differ.
pub(crate) async fn check_same_calls() {
    let sb = Sandboxes::start().await.expect("sandboxes");
    let mut intents = Vec::new();
    let mut stripe_requests = Vec::new();
    let mut orders = Vec::new();
    for side in [Side::Ours(Store::Memory, Dispatch::Poll), Side::Raw] {
        let flow = Arc::new(Flow::start(&sb, side, 1).await.expect("flow"));
        let before = sb.stripe.counters().requests;
        let order = Order::next(flow.letter());
        flow.order(&order).await.expect("order");
        flow.settle().await.expect("settle");
        stripe_requests.push(sb.stripe.counters().requests - before);
        intents.push(sb.stripe.payment_intents().pop().expect("an intent"));
        orders.push(order);
        Arc::into_inner(flow)
            .expect("one owner")
            .stop()
            .await
            .expect("stop");
    }
    assert_eq!(
        stripe_requests[0], stripe_requests[1],
        "Stripe requests per order"
    );
    let r: Vec<_> = (0..2)
        .map(|i| replacements(&sb, &orders[i], &intents[i]))
        .collect();
    let strip = |v: &Value, r| {
        let mut v = normalized(v, r);
        if let Some(o) = v.as_object_mut() {
            o.remove("created");
            o.remove("latest_charge");
        }
        v
    };
    let same = |what: &str, a: Value, b: Value| {
        assert!(
            a == b,
            "{what} differ:\nours {}\nraw  {}",
            serde_json::to_string_pretty(&a).unwrap_or_default(),
            serde_json::to_string_pretty(&b).unwrap_or_default()
        );
    };
    same(
        "payment intents",
        strip(&intents[0], &r[0]),
        strip(&intents[1], &r[1]),
    );
    let mails = sb.sendgrid.messages();
    assert_eq!(mails.len(), 2, "one mail per order");
    same(
        "mail bodies",
        normalized(&mails[0].body, &r[0]),
        normalized(&mails[1].body, &r[1]),
    );
    let rows = sb
        .sheets
        .rows(sb.sheets.spreadsheet_id(), SHEET)
        .expect("the sheet");
    assert_eq!(rows.len(), 2, "one row per order");
    let row = |i: usize| normalized(&json!(rows[i]), &r[i]);
    same("rows", row(0), row(1));
}
