//! Publishes one notification to the ntfy topic in `NTFY_TOPIC` (optional `NTFY_BASE_URL`,
//! `NTFY_TOKEN`). Without `NTFY_TOPIC` it says how to run it and exits.
#![allow(clippy::print_stdout)]

use integrations_core::Notifier;
use integrations_core::provider::Notification;
use integrations_custom_provider::NtfyBuilder;

#[tokio::main]
async fn main() -> Result<(), integrations_core::Error> {
    if std::env::var_os("NTFY_TOPIC").is_none() {
        println!(
            "Set NTFY_TOPIC (and optionally NTFY_BASE_URL, NTFY_TOKEN) to publish a real notification.\n\
             The provider's contract and behaviour tests run offline: cargo test -p integrations-custom-provider"
        );
        return Ok(());
    }
    let ntfy = NtfyBuilder::from_env().build()?;
    let sent = ntfy
        .publish(
            &Notification::new("Order 42 was paid.")
                .subject("Order paid")
                .attribute("order_id", "42"),
        )
        .await?;
    println!("published by {} as {}", sent.provider, sent.message_id);
    Ok(())
}
