//! Amazon SNS (feature `sns`): a signed query-protocol client ([`SnsClient`]), core's
//! [`Notifier`](integrations_core::Notifier) ([`SnsNotifier`]), and verification of the messages
//! SNS POSTs to HTTP(S) subscribers ([`SnsMessageVerifier`], [`SnsInboundHandler`]).

mod inbound;
mod message;
mod notifier;
mod verify;

use integrations_core::{Error, Notification, Result};

use crate::client::AwsClient;
use crate::config::{AwsConfig, Service};
use crate::xml;

pub use inbound::{SnsInbound, SnsInboundHandler};
pub use message::{
    SignatureVersion, SnsMessage, SnsMessageAttribute, SnsMessageType, SnsSigningKey, SnsUnverified,
};
pub use notifier::SnsNotifier;
pub use verify::{
    CertificateFetcher, DEFAULT_FAILURE_TTL, HttpsCertificateFetcher, SnsMessageVerifier,
};

const VERSION: &str = "2010-03-31";
/// Largest message SNS accepts (body plus attributes), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most message attributes SNS accepts on one message.
pub const MAX_ATTRIBUTES: usize = 10;

/// A signed SNS client (query protocol, `Version=2010-03-31`).
#[derive(Debug, Clone)]
pub struct SnsClient {
    client: AwsClient,
}

impl SnsClient {
    /// A client for `config`'s region, credentials and SNS endpoint.
    pub fn new(config: &AwsConfig) -> Self {
        SnsClient {
            client: AwsClient::new(config, Service::Sns),
        }
    }

    async fn call(
        &self,
        action: &'static str,
        params: &[(String, String)],
        want: &str,
    ) -> Result<String> {
        let resp = self.client.query(action, VERSION, params).await?;
        let text = resp.text();
        xml::leaves(&text)
            .and_then(|l| xml::first(&l, want))
            .ok_or_else(|| {
                Error::provider(format!("{action} response has no {want}"))
                    .with_provider(Service::Sns.provider_name())
                    .with_operation(action)
            })
    }

    /// Creates a topic (idempotent for the same name and attributes) and returns its ARN. A FIFO
    /// topic's name must end in `.fifo`.
    ///
    /// # Errors
    /// See [`SnsClient::publish`].
    pub async fn create_topic(&self, name: &str, fifo: bool) -> Result<String> {
        let mut params = vec![p("Name", name)];
        if fifo {
            params.extend([
                p("Attributes.entry.1.key", "FifoTopic"),
                p("Attributes.entry.1.value", "true"),
            ]);
        }
        self.call("CreateTopic", &params, "TopicArn").await
    }

    /// Publishes `n` to `topic_arn` and returns SNS's message id. Subject, string message
    /// attributes, and for FIFO topics (`….fifo`) the group and deduplication ids are sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `body`, `subject`, `attributes` or `group_id` when SNS would
    /// refuse the message; the mapped AWS error (throttling → [`Error::RateLimited`], bad
    /// signature → [`Error::Unauthenticated`], …); transport and policy errors.
    pub async fn publish(&self, topic_arn: &str, n: &Notification) -> Result<String> {
        let params = publish_params(topic_arn, n)?;
        self.call("Publish", &params, "MessageId").await
    }

    /// Subscribes `endpoint` over `protocol` (`https`, `sqs`, `email`, …) and returns the
    /// subscription ARN (`pending confirmation` until confirmed). `raw` turns on raw message
    /// delivery (no JSON envelope) for `sqs`/`http(s)`.
    ///
    /// # Errors
    /// See [`SnsClient::publish`].
    pub async fn subscribe(
        &self,
        topic_arn: &str,
        protocol: &str,
        endpoint: &str,
        raw: bool,
    ) -> Result<String> {
        let mut params = vec![
            p("TopicArn", topic_arn),
            p("Protocol", protocol),
            p("Endpoint", endpoint),
            p("ReturnSubscriptionArn", "true"),
        ];
        if raw {
            params.extend([
                p("Attributes.entry.1.key", "RawMessageDelivery"),
                p("Attributes.entry.1.value", "true"),
            ]);
        }
        self.call("Subscribe", &params, "SubscriptionArn").await
    }

    /// Confirms a subscription with the `Token` of its `SubscriptionConfirmation`; returns the
    /// subscription ARN. Unsubscribing then requires authentication.
    ///
    /// # Errors
    /// See [`SnsClient::publish`].
    pub async fn confirm_subscription(&self, topic_arn: &str, token: &str) -> Result<String> {
        let params = [
            p("TopicArn", topic_arn),
            p("Token", token),
            p("AuthenticateOnUnsubscribe", "true"),
        ];
        self.call("ConfirmSubscription", &params, "SubscriptionArn")
            .await
    }
}

fn p(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// Checks `n` against SNS's rules and builds the `Publish` parameters.
pub(crate) fn publish_params(topic_arn: &str, n: &Notification) -> Result<Vec<(String, String)>> {
    n.validate()?;
    let traced;
    let n = match crate::trace::traceparent_attribute(
        &n.attributes,
        n.body.len(),
        MAX_ATTRIBUTES,
        MAX_MESSAGE_BYTES,
    ) {
        Some((k, v)) => {
            let mut with = n.clone();
            with.attributes.insert(k, v);
            traced = with;
            &traced
        }
        None => n,
    };
    if topic_arn.is_empty() {
        return Err(Error::invalid_input("topic_arn", "must not be empty"));
    }
    if let Some(s) = &n.subject {
        let printable = s.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
        if s.len() > 100 || !printable {
            return Err(Error::invalid_input(
                "subject",
                "SNS subjects are at most 100 printable ASCII characters without line breaks",
            ));
        }
    }
    if n.attributes.len() > MAX_ATTRIBUTES {
        return Err(Error::invalid_input(
            "attributes",
            format!("SNS accepts at most {MAX_ATTRIBUTES}"),
        ));
    }
    let size = n.body.len()
        + n.attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + "String".len())
            .sum::<usize>();
    if size > MAX_MESSAGE_BYTES {
        return Err(Error::invalid_input(
            "body",
            format!("{size} bytes with attributes; SNS accepts {MAX_MESSAGE_BYTES}"),
        ));
    }
    let fifo = topic_arn.ends_with(".fifo");
    if fifo && n.group_id.is_none() {
        return Err(Error::invalid_input(
            "group_id",
            "a FIFO topic needs a message group id",
        ));
    }
    let mut params = vec![p("TopicArn", topic_arn), p("Message", &n.body)];
    if let Some(s) = &n.subject {
        params.push(p("Subject", s));
    }
    for (i, (k, v)) in n.attributes.iter().enumerate() {
        if k.is_empty() || k.len() > 256 || k.starts_with("AWS.") || k.starts_with("Amazon.") {
            return Err(Error::invalid_input(
                "attributes",
                format!("`{k}` is not a valid SNS attribute name"),
            ));
        }
        let base = format!("MessageAttributes.entry.{}", i + 1);
        params.push((format!("{base}.Name"), k.clone()));
        params.push((format!("{base}.Value.DataType"), "String".to_owned()));
        params.push((format!("{base}.Value.StringValue"), v.clone()));
    }
    if fifo {
        if let Some(g) = &n.group_id {
            params.push(p("MessageGroupId", g));
        }
        if let Some(d) = &n.dedup_id {
            params.push(p("MessageDeduplicationId", d));
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_params_encode_everything() {
        let n = Notification::new("order 42 paid")
            .subject("Order paid")
            .attribute("event", "order.paid")
            .attribute("region", "eu")
            .group_id("order-42")
            .dedup_id("order-42/paid");
        let params = publish_params("arn:aws:sns:us-east-1:1:orders.fifo", &n).unwrap();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Message"), Some("order 42 paid"));
        assert_eq!(get("Subject"), Some("Order paid"));
        assert_eq!(get("MessageAttributes.entry.1.Name"), Some("event"));
        assert_eq!(
            get("MessageAttributes.entry.1.Value.DataType"),
            Some("String")
        );
        assert_eq!(
            get("MessageAttributes.entry.2.Value.StringValue"),
            Some("eu")
        );
        assert_eq!(get("MessageGroupId"), Some("order-42"));
        assert_eq!(get("MessageDeduplicationId"), Some("order-42/paid"));
        // Standard topics get no FIFO ids.
        let params = publish_params("arn:aws:sns:us-east-1:1:orders", &n).unwrap();
        assert!(
            !params
                .iter()
                .any(|(k, _)| k == "MessageGroupId" || k == "MessageDeduplicationId")
        );
    }

    #[test]
    fn publish_params_refuse_what_sns_refuses() {
        let fifo = "arn:aws:sns:us-east-1:1:t.fifo";
        let std = "arn:aws:sns:us-east-1:1:t";
        let field = |arn: &str, n: Notification| {
            publish_params(arn, &n)
                .unwrap_err()
                .field()
                .map(str::to_owned)
        };
        assert_eq!(
            field(fifo, Notification::new("x")).as_deref(),
            Some("group_id")
        );
        assert_eq!(field(std, Notification::new("")).as_deref(), Some("body"));
        assert_eq!(
            field(std, Notification::new("x").subject("a\nb")).as_deref(),
            Some("subject")
        );
        assert_eq!(
            field(std, Notification::new("x").subject("é")).as_deref(),
            Some("subject")
        );
        assert_eq!(
            field(std, Notification::new("x").subject("s".repeat(101))).as_deref(),
            Some("subject")
        );
        assert_eq!(
            field(std, Notification::new("x".repeat(MAX_MESSAGE_BYTES + 1))).as_deref(),
            Some("body")
        );
        assert_eq!(
            field(std, Notification::new("x").attribute("AWS.x", "y")).as_deref(),
            Some("attributes")
        );
        let many = (0..11).fold(Notification::new("x"), |n, i| {
            n.attribute(format!("a{i}"), "v")
        });
        assert_eq!(field(std, many).as_deref(), Some("attributes"));
    }
}
