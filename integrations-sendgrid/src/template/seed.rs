//! The five emails of the order flow, with typed data.
//!
//! The seed service wrote customer names straight into its HTML; here every value goes through
//! [`escape_html`](super::escape_html) in HTML bodies, so a name like `<img src=x onerror=…>`
//! arrives as text.

use integrations_core::provider::{EmailCapabilities, EmailMessageBuilder, Mailbox};
use integrations_core::{Error, Money, Result};
use serde_json::{Value, json};

use super::{Template, TemplateRegistry, Variables};

/// The order flow's emails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeedTemplate {
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

impl SeedTemplate {
    /// All five.
    pub const ALL: [SeedTemplate; 5] = [
        SeedTemplate::OrderConfirmation,
        SeedTemplate::PaymentReceived,
        SeedTemplate::PaymentFailed,
        SeedTemplate::RefundIssued,
        SeedTemplate::OrderCancelled,
    ];

    /// The registry name (`"order_confirmation"`), also used as the message category.
    pub const fn name(self) -> &'static str {
        match self {
            SeedTemplate::OrderConfirmation => "order_confirmation",
            SeedTemplate::PaymentReceived => "payment_received",
            SeedTemplate::PaymentFailed => "payment_failed",
            SeedTemplate::RefundIssued => "refund_issued",
            SeedTemplate::OrderCancelled => "order_cancelled",
        }
    }

    /// The template with its default sources and declared variables.
    pub fn template(self) -> Template {
        let (subject, text, html, required, optional): (&str, &str, &str, &[&str], &[&str]) =
            match self {
                SeedTemplate::OrderConfirmation => (
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
                SeedTemplate::PaymentReceived => (
                    "Payment received for order #{{order_id}}",
                    "Hi {{customer_name}},\n\nWe received your payment of {{amount}} for order #{{order_id}}.\n",
                    "<p>Hi {{customer_name}},</p>\
                     <p>We received your payment of <strong>{{amount}}</strong> for order #{{order_id}}.</p>",
                    &["customer_name", "order_id", "amount"],
                    &[],
                ),
                SeedTemplate::PaymentFailed => (
                    "Payment failed for order #{{order_id}}",
                    "Hi {{customer_name}},\n\nWe could not take your payment of {{amount}} for order #{{order_id}}.\
                     {{#if reason}}\nReason: {{reason}}{{/if}}\n",
                    "<p>Hi {{customer_name}},</p>\
                     <p>We could not take your payment of <strong>{{amount}}</strong> for order #{{order_id}}.</p>\
                     {{#if reason}}<p>Reason: {{reason}}</p>{{/if}}",
                    &["customer_name", "order_id", "amount"],
                    &["reason"],
                ),
                SeedTemplate::RefundIssued => (
                    "Refund issued for order #{{order_id}}",
                    "Hi {{customer_name}},\n\nWe refunded {{amount}} for order #{{order_id}}.\
                     {{#if reason}}\nReason: {{reason}}{{/if}}\n",
                    "<p>Hi {{customer_name}},</p>\
                     <p>We refunded <strong>{{amount}}</strong> for order #{{order_id}}.</p>\
                     {{#if reason}}<p>Reason: {{reason}}</p>{{/if}}",
                    &["customer_name", "order_id", "amount"],
                    &["reason"],
                ),
                SeedTemplate::OrderCancelled => (
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
            Err(e) => unreachable!("seed template {} is invalid: {e}", self.name()),
        }
    }
}

impl AsRef<str> for SeedTemplate {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    /// Product name.
    pub name: String,
    /// Quantity.
    pub quantity: u32,
    /// Price of one.
    pub unit_price: Money,
}

/// The data of one seed email, typed so that no required variable can be forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeedEmail {
    /// [`SeedTemplate::OrderConfirmation`].
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
    /// [`SeedTemplate::PaymentReceived`].
    PaymentReceived {
        /// Customer's name.
        customer_name: String,
        /// Order id.
        order_id: String,
        /// Amount paid.
        amount: Money,
    },
    /// [`SeedTemplate::PaymentFailed`].
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
    /// [`SeedTemplate::RefundIssued`].
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
    /// [`SeedTemplate::OrderCancelled`].
    OrderCancelled {
        /// Customer's name.
        customer_name: String,
        /// Order id.
        order_id: String,
        /// Why.
        reason: Option<String>,
    },
}

impl SeedEmail {
    /// Which template this data fills.
    pub fn template(&self) -> SeedTemplate {
        match self {
            SeedEmail::OrderConfirmation { .. } => SeedTemplate::OrderConfirmation,
            SeedEmail::PaymentReceived { .. } => SeedTemplate::PaymentReceived,
            SeedEmail::PaymentFailed { .. } => SeedTemplate::PaymentFailed,
            SeedEmail::RefundIssued { .. } => SeedTemplate::RefundIssued,
            SeedEmail::OrderCancelled { .. } => SeedTemplate::OrderCancelled,
        }
    }

    /// The order id.
    pub fn order_id(&self) -> &str {
        match self {
            SeedEmail::OrderConfirmation { order_id, .. }
            | SeedEmail::PaymentReceived { order_id, .. }
            | SeedEmail::PaymentFailed { order_id, .. }
            | SeedEmail::RefundIssued { order_id, .. }
            | SeedEmail::OrderCancelled { order_id, .. } => order_id,
        }
    }

    /// The template variables. Amounts are written as `"59.98 USD"`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `items[i].quantity` if a line total overflows.
    pub fn variables(&self) -> Result<Variables> {
        let v = match self {
            SeedEmail::OrderConfirmation {
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
            SeedEmail::PaymentReceived {
                customer_name,
                order_id,
                amount,
            } => json!({"customer_name": customer_name, "order_id": order_id,
                        "amount": amount.to_string()}),
            SeedEmail::PaymentFailed {
                customer_name,
                order_id,
                amount,
                reason,
            }
            | SeedEmail::RefundIssued {
                customer_name,
                order_id,
                amount,
                reason,
            } => json!({"customer_name": customer_name, "order_id": order_id,
                        "amount": amount.to_string(), "reason": reason}),
            SeedEmail::OrderCancelled {
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
    /// As [`TemplateRegistry::message`] and [`SeedEmail::variables`].
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

    fn samples() -> Vec<SeedEmail> {
        let name = HOSTILE.to_owned();
        vec![
            SeedEmail::OrderConfirmation {
                customer_name: name.clone(),
                order_id: "550e8400".into(),
                items: vec![LineItem {
                    name: "Product <A>".into(),
                    quantity: 2,
                    unit_price: usd(2999),
                }],
                total: usd(5998),
            },
            SeedEmail::PaymentReceived {
                customer_name: name.clone(),
                order_id: "550e8400".into(),
                amount: usd(5998),
            },
            SeedEmail::PaymentFailed {
                customer_name: name.clone(),
                order_id: "550e8400".into(),
                amount: usd(5998),
                reason: Some("<b>card declined</b>".into()),
            },
            SeedEmail::RefundIssued {
                customer_name: name.clone(),
                order_id: "550e8400".into(),
                amount: usd(1000),
                reason: None,
            },
            SeedEmail::OrderCancelled {
                customer_name: name,
                order_id: "550e8400".into(),
                reason: Some("requested_by_customer".into()),
            },
        ]
    }

    #[test]
    fn every_seed_email_renders_with_every_value_escaped() {
        let reg = TemplateRegistry::seed();
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
        let reg = TemplateRegistry::seed();
        let vars = samples()[0].variables().unwrap();
        let r = reg.render(SeedTemplate::OrderConfirmation, &vars).unwrap();
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
        for (t, email) in SeedTemplate::ALL.into_iter().zip(samples()) {
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
        let e = SeedEmail::OrderConfirmation {
            customer_name: "x".into(),
            order_id: "1".into(),
            items: vec![LineItem {
                name: "big".into(),
                quantity: u32::MAX,
                unit_price: usd(i64::MAX / 2),
            }],
            total: usd(1),
        }
        .variables()
        .unwrap_err();
        assert_eq!(e.field(), Some("items[0].quantity"));
    }
}
