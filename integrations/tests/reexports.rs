//! Types users reach through the facade, by the paths the docs give.

#[cfg(feature = "stripe")]
#[test]
fn stripe_raw_request_types_are_reexported() {
    // `StripeClient::request` takes per-request options: both must be nameable from the facade.
    let options = integrations::stripe::RequestOptions::new();
    assert_eq!(options, integrations::stripe::RequestOptions::default());
    let _client: Option<integrations::stripe::StripeClient> = None;
}

#[cfg(feature = "aws-config")]
#[test]
fn aws_config_credentials_are_reexported() {
    use integrations::aws::{AwsConfigCredentials, CredentialsProvider, DEFAULT_REFRESH_MARGIN};
    fn provider(_: &dyn CredentialsProvider) {}
    let c = AwsConfigCredentials::new().with_refresh_margin(DEFAULT_REFRESH_MARGIN);
    provider(&c);
}
