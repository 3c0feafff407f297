//! The behaviour suite every [`Notifier`] must pass.

use super::suite_support::Checker;
use integrations_core::provider::{Notification, Notifier};

/// What [`notifier_suite`] needs: a run id written into the notifications it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierSuiteConfig {
    /// Distinguishes this run's notifications and dedup ids
    /// (see [`unique_run_id`](super::unique_run_id)).
    pub run_id: String,
}

impl NotifierSuiteConfig {
    /// A configuration.
    pub fn new(run_id: impl Into<String>) -> Self {
        NotifierSuiteConfig {
            run_id: run_id.into(),
        }
    }
}

/// Runs the notifier contract against `n`, panicking with the broken contract's name.
///
/// A notification with subject and attributes is published with a non-empty message id and a
/// receipt naming [`Notifier::name`]; an empty body is invalid input naming `body`, an empty
/// subject invalid input naming `subject`; a notification carrying a dedup id is accepted, and so
/// is its redelivery (deduplicated by providers that can, published again by those that cannot).
pub async fn notifier_suite(n: &dyn Notifier, cfg: &NotifierSuiteConfig) {
    let c = Checker::new("notifier", n.name());
    let run = cfg.run_id.as_str();

    let note = Notification::new(format!("integrations behaviour suite run {run}"))
        .subject("integrations suite")
        .attribute("suite_run", run);
    let published = c.ok("a valid notification is published", n.publish(&note).await);
    c.check(
        !published.message_id.is_empty(),
        "a published notification has a message id",
        "empty message id",
    );
    c.eq(
        published.provider.as_str(),
        n.name(),
        "the receipt names the provider that published it",
    );

    c.invalid_input(
        "an empty body is invalid input naming `body`",
        |f| f == "body",
        n.publish(&Notification::new("")).await,
    );
    c.invalid_input(
        "an empty subject is invalid input naming `subject`",
        |f| f == "subject",
        n.publish(&Notification::new("body").subject("")).await,
    );

    let dedup = Notification::new(format!("integrations suite dedup {run}"))
        .dedup_id(format!("{run}/dedup"))
        .group_id("integrations-suite");
    let first = c.ok(
        "a notification with a dedup id is accepted",
        n.publish(&dedup).await,
    );
    c.check(
        !first.message_id.is_empty(),
        "a published notification has a message id",
        "empty message id",
    );
    c.ok(
        "a redelivery with the same dedup id is accepted",
        n.publish(&dedup).await,
    );
}
