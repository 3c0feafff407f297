//! The five transactional emails of the shop, with typed data, on the generic template engine of
//! `integrations-sendgrid` ([`Template`], [`TemplateRegistry`]).
//!
//! Every value goes through [`escape_html`](integrations_sendgrid::template::escape_html) in HTML
//! bodies, so a customer name like `<img src=x onerror=…>` arrives as text.

use integrations_core::provider::{EmailCapabilities, EmailMessageBuilder, Mailbox};
use integrations_core::{Error, Money, Result};
use serde_json::{Value, json};

use integrations_sendgrid::template::{Template, TemplateRegistry, Variables};

use crate::order::LineItem;

/// The shop's five order emails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderTemplate {
    /// Order accepted: items and total.
    OrderConfirmation,
    /// Payment succeeded.
    PaymentReceived,
    /// Payment failed, with an optional reason.
    PaymentFailed,
    /// Refund issued, with an optional reason.
    RefundIssued,
    /// Order cancelled, with an optional reason.
    OrderCancelled,
}

impl OrderTemplate {
    /// All five.
    pub const ALL: [OrderTemplate; 5] = [
        OrderTemplate::OrderConfirmation,
        OrderTemplate::PaymentReceived,
        OrderTemplate::PaymentFailed,
        OrderTemplate::RefundIssued,
        OrderTemplate::OrderCancelled,
    ];

    /// The registry name (`"order_confirmation"`), also used as the message category.
    pub const fn name(self) -> &'static str {
        match self {
            OrderTemplate::OrderConfirmation => "order_confirmation",
            OrderTemplate::PaymentReceived => "payment_received",
            OrderTemplate::PaymentFailed => "payment_failed",
            OrderTemplate::RefundIssued => "refund_issued",
            OrderTemplate::OrderCancelled => "order_cancelled",
        }
    }

    /// The template with its default sources and declared variables.
    pub fn template(self) -> Template {
        let (subject, text, html, required, optional): (&str, &str, &str, &[&str], &[&str]) =
            match self {
                OrderTemplate::OrderConfirmation => (
                    "Order #{{order_id}} confirmed",
                    "Hi {{customer_name}},\n\nThank you for your order #{{order_id}}.\n\n\
                     {{#each items}}- {{quantity}} x {{name}} at {{unit_price}}: {{line_total}}\n{{/each}}\n\
                     Total: {{total}}\n",
                    "<p>Hi {{customer_name}},</p>\
                     <p>Thank you for your order #{{order_id}}.</p>\
                     <table><tr><th>Item</th><th>Qty</th><th>Price</th><th>Subtotal</th></tr>\
                     {{#each items}}<tr><td>{{name}}</td><td>{{quantity}}</td><td>{{unit_price}}</td><td>{{line_total}}</td></tr>{{/each}}\
                     </table><p><strong>Total: {{total}}</strong></p>",
                    &["customer_name", "order_id", "items", "total"],
                    &[],
                ),
                OrderTemplate::PaymentReceived => (
                    "Payment received for order #{{order_id}}",
                    "Hi {{customer_name}},\n\nWe received your payment of {{amount}} for order #{{order_id}}.\n",
                    "<p>Hi {{customer_name}},</p>\
                     <p>We received your payment of <strong>{{amount}}</strong> for order #{{order_id}}.</p>",
                    &["customer_name", "order_id", "amount"],
                    &[],
                ),
                OrderTemplate::PaymentFailed => (
                    "Payment failed for order #{{order_id}}",
                    "Hi {{customer_name}},\n\nWe could not take your payment of {{amount}} for order #{{order_id}}.\
                     {{#if reason}}\nReason: {{reason}}{{/if}}\n",
                    "<p>Hi {{customer_name}},</p>\
                     <p>We could not take your payment of <strong>{{amount}}</strong> for order #{{order_id}}.</p>\
                     {{#if reason}}<p>Reason: {{reason}}</p>{{/if}}",
                    &["customer_name", "order_id", "amount"],
                    &["reason"],
                ),
                OrderTemplate::RefundIssued => (
                    "Refund issued for order #{{order_id}}",
                    "Hi {{customer_name}},\n\nWe refunded {{amount}} for order #{{order_id}}.\
                     {{#if reason}}\nReason: {{reason}}{{/if}}\n",
                    "<p>Hi {{customer_name}},</p>\
                     <p>We refunded <strong>{{amount}}</strong> for order #{{order_id}}.</p>\
                     {{#if reason}}<p>Reason: {{reason}}</p>{{/if}}",
                    &["customer_name", "order_id", "amount"],
                    &["reason"],
                ),
                OrderTemplate::OrderCancelled => (
                    "Order #{{order_id}} cancelled",
                    "Hi {{customer_name}},\n\nYour order #{{order_id}} has been cancelled.\
                     {{#if reason}}\nReason: {{reason}}{{/if}}\n",
                    "<p>Hi {{customer_name}},</p><p>Your order #{{order_id}} has been cancelled.</p>\
                     {{#if reason}}<p>Reason: {{reason}}</p>{{/if}}",
                    &["customer_name", "order_id"],
                    &["reason"],
                ),
            };
        match Template::builder(self.name())
            .subject(subject)
            .text(text)
            .html(html)
            .required(required.iter().copied())
            .optional(optional.iter().copied())
            .build()
        {
            Ok(t) => t,
            // The sources above are fixed and covered by tests; reaching this is a bug here.
            Err(e) => unreachable!("order email template {} is invalid: {e}", self.name()),
        }
    }
}

/// A registry holding the five order emails ([`OrderTemplate::ALL`]), rendered locally until
/// given hosted ids with [`TemplateRegistry::set_hosted_id`].
pub fn order_templates() -> TemplateRegistry {
    let mut r = TemplateRegistry::new();
    for t in OrderTemplate::ALL {
        r.insert(t.template());
    }
    r
}

impl AsRef<str> for OrderTemplate {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

/// The data of one order email, typed so that no required variable can be forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderEmail {
    /// [`OrderTemplate::OrderConfirmation`].
    OrderConfirmation {
        /// Customer's name as they gave it (escaped when rendered).
        customer_name: String,
        /// Order id.
        order_id: String,
        /// Lines.
        items: Vec<LineItem>,
        /// Order total.
        total: Money,
    },
    /// [`OrderTemplate::PaymentReceived`].
    PaymentReceived {
        /// Customer's name.
        customer_name: String,
        /// Order id.
        order_id: String,
        /// Amount paid.
        amount: Money,
    },
    /// [`OrderTemplate::PaymentFailed`].
    PaymentFailed {
        /// Customer's name.
        customer_name: String,
        /// Order id.
        order_id: String,
        /// Amount attempted.
        amount: Money,
        /// Why, in words fit for the customer.
        reason: Option<String>,
    },
    /// [`OrderTemplate::RefundIssued`].
    RefundIssued {
        /// Customer's name.
        customer_name: String,
        /// Order id.
        order_id: String,
        /// Amount refunded.
        amount: Money,
        /// Why.
        reason: Option<String>,
    },
    /// [`OrderTemplate::OrderCancelled`].
    OrderCancelled {
        /// Customer's name.
        customer_name: String,
        /// Order id.
        order_id: String,
        /// Why.
        reason: Option<String>,
    },
}

impl OrderEmail {
    /// Which template this data fills.
    pub fn template(&self) -> OrderTemplate {
        match self {
            OrderEmail::OrderConfirmation { .. } => OrderTemplate::OrderConfirmation,
            OrderEmail::PaymentReceived { .. } => OrderTemplate::PaymentReceived,
            OrderEmail::PaymentFailed { .. } => OrderTemplate::PaymentFailed,
            OrderEmail::RefundIssued { .. } => OrderTemplate::RefundIssued,
            OrderEmail::OrderCancelled { .. } => OrderTemplate::OrderCancelled,
        }
    }

    /// The order id.
    pub fn order_id(&self) -> &str {
        match self {
            OrderEmail::OrderConfirmation { order_id, .. }
            | OrderEmail::PaymentReceived { order_id, .. }
            | OrderEmail::PaymentFailed { order_id, .. }
            | OrderEmail::RefundIssued { order_id, .. }
            | OrderEmail::OrderCancelled { order_id, .. } => order_id,
        }
    }

    /// The template variables. Amounts are written as `"59.98 USD"`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `items[i].quantity` if a line total overflows.
    pub fn variables(&self) -> Result<Variables> {
        let v = match self {
            OrderEmail::OrderConfirmation {
                customer_name,
                order_id,
                items,
                total,
            } => {
                let mut lines = Vec::with_capacity(items.len());
                for (i, it) in items.iter().enumerate() {
                    let line_total =
                        it.unit_price
                            .checked_mul(i64::from(it.quantity))
                            .map_err(|e| {
                                Error::invalid_input(format!("items[{i}].quantity"), e.to_string())
                            })?;
                    lines.push(json!({
                        "name": it.name,
                        "quantity": it.quantity,
                        "unit_price": it.unit_price.to_string(),
                        "line_total": line_total.to_string(),
                    }));
                }
                json!({"customer_name": customer_name, "order_id": order_id,
                       "items": lines, "total": total.to_string()})
            }
            OrderEmail::PaymentReceived {
                customer_name,
                order_id,
                amount,
            } => json!({"customer_name": customer_name, "order_id": order_id,
                        "amount": amount.to_string()}),
            OrderEmail::PaymentFailed {
                customer_name,
                order_id,
                amount,
                reason,
            }
            | OrderEmail::RefundIssued {
                customer_name,
                order_id,
                amount,
                reason,
            } => json!({"customer_name": customer_name, "order_id": order_id,
                        "amount": amount.to_string(), "reason": reason}),
            OrderEmail::OrderCancelled {
                customer_name,
                order_id,
                reason,
            } => json!({"customer_name": customer_name, "order_id": order_id, "reason": reason}),
        };
        match v {
            Value::Object(map) => Ok(map),
            _ => unreachable!("json! object literal"),
        }
    }

    /// A message for this email from `registry` (hosted or rendered, see
    /// [`TemplateRegistry::message`]), tagged with the template name as category and the order id
    /// as the `order_id` custom argument, so event webhooks can be matched to the order.
    ///
    /// # Errors
    /// As [`TemplateRegistry::message`] and [`OrderEmail::variables`].
    pub fn message(
        &self,
        registry: &TemplateRegistry,
        from: impl Into<Mailbox>,
        to: impl Into<Mailbox>,
        capabilities: EmailCapabilities,
    ) -> Result<EmailMessageBuilder> {
        let vars = self.variables()?;
        Ok(registry
            .message(self.template(), from, to, &vars, capabilities)?
            .category(self.template().name())
            .custom_arg("order_id", self.order_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::Currency;
    use integrations_core::provider::EmailBody;

    const HOSTILE: &str = "<img src=x onerror=alert(1)>\"Bobby\" & 'Co'";

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::USD)
    }

    fn samples() -> Vec<OrderEmail> {
        let name = HOSTILE.to_owned();
        vec![
            OrderEmail::OrderConfirmation {
                customer_name: name.clone(),
                order_id: "550e8400".into(),
                items: vec![LineItem::new("a", "Product <A>", 2, usd(2999))],
                total: usd(5998),
            },
            OrderEmail::PaymentReceived {
                customer_name: name.clone(),
                order_id: "550e8400".into(),
                amount: usd(5998),
            },
            OrderEmail::PaymentFailed {
                customer_name: name.clone(),
                order_id: "550e8400".into(),
                amount: usd(5998),
                reason: Some("<b>card declined</b>".into()),
            },
            OrderEmail::RefundIssued {
                customer_name: name.clone(),
                order_id: "550e8400".into(),
                amount: usd(1000),
                reason: None,
            },
            OrderEmail::OrderCancelled {
                customer_name: name,
                order_id: "550e8400".into(),
                reason: Some("requested_by_customer".into()),
            },
        ]
    }

    #[test]
    fn every_order_email_renders_with_every_value_escaped() {
        let reg = order_templates();
        for email in samples() {
            let msg = email
                .message(
                    &reg,
                    "shop@example.com",
                    "jane@example.com",
                    EmailCapabilities::default(),
                )
                .unwrap()
                .build();
            assert!(msg.validate().is_ok(), "{:?}", email.template());
            assert_eq!(msg.categories, [email.template().name()]);
            assert_eq!(msg.custom_args["order_id"], "550e8400");
            let EmailBody::Content { text, html } = &msg.body else {
                panic!("local rendering expected")
            };
            let html = html.as_deref().unwrap();
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<b>card"), "{html}");
            assert!(html.contains("&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;&quot;Bobby&quot; &amp; &#x27;Co&#x27;"), "{html}");
            assert!(text.as_deref().unwrap().contains(HOSTILE));
            assert!(msg.subject.as_deref().unwrap().contains("550e8400"));
        }
    }

    #[test]
    fn order_confirmation_lists_lines_and_totals() {
        let reg = order_templates();
        let vars = samples()[0].variables().unwrap();
        let r = reg.render(OrderTemplate::OrderConfirmation, &vars).unwrap();
        let text = r.text.unwrap();
        assert!(
            text.contains("- 2 x Product <A> at 29.99 USD: 59.98 USD"),
            "{text}"
        );
        assert!(text.contains("Total: 59.98 USD"), "{text}");
        assert!(r.html.unwrap().contains("<td>Product &lt;A&gt;</td>"));
    }

    #[test]
    fn each_template_declares_what_it_needs() {
        for (t, email) in OrderTemplate::ALL.into_iter().zip(samples()) {
            assert_eq!(email.template(), t);
            let tpl = t.template();
            assert!(
                tpl.required_variables().any(|v| v == "customer_name"),
                "{t:?}"
            );
            assert!(tpl.required_variables().any(|v| v == "order_id"), "{t:?}");
            let full = email.variables().unwrap();
            assert!(tpl.render(&full).is_ok());
            for var in tpl.required_variables() {
                let mut vars = full.clone();
                vars.remove(var);
                let e = tpl.render(&vars).unwrap_err();
                assert_eq!(e.field(), Some(var), "{t:?}");
            }
        }
    }

    #[test]
    fn line_total_overflow_names_the_line() {
        let e = OrderEmail::OrderConfirmation {
            customer_name: "x".into(),
            order_id: "1".into(),
            items: vec![LineItem::new("big", "big", u32::MAX, usd(i64::MAX / 2))],
            total: usd(1),
        }
        .variables()
        .unwrap_err();
        assert_eq!(e.field(), Some("items[0].quantity"));
    }
}
