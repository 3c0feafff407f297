//! `AwsConfigCredentials` (feature `aws-config`) through the AWS SDK's default chain against a
//! local stand-in for the ECS / EKS Pod Identity container credentials endpoint
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI` on loopback, with `AWS_CONTAINER_AUTHORIZATION_TOKEN`).
//!
//! Its own test binary with a single test: `aws-config` reads the process environment and offers
//! no public way to inject another, so the test sets variables no other test can race.

mod aws_config_env;

use std::time::{Duration, UNIX_EPOCH};

use integrations_aws::{AwsBuilder, AwsConfigCredentials, CredentialsProvider};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `2099-01-01T00:00:00Z`.
const EXPIRES: u64 = 4_070_908_800;

#[tokio::test]
async fn container_credentials_come_from_the_full_uri_endpoint_with_its_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/credentials/task-1"))
        .and(header("authorization", "ecs-auth-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "AccessKeyId": "ASIAECSEXAMPLE",
            "SecretAccessKey": "ecs-secret-access-key",
            "Token": "ecs-session-token",
            "Expiration": "2099-01-01T00:00:00Z",
            "RoleArn": "arn:aws:iam::123456789012:role/task",
        })))
        .mount(&server)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none");
    // SAFETY: this binary's only test; no other thread reads the environment while it is set.
    unsafe {
        aws_config_env::isolate(&none, "eu-west-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/v2/credentials/task-1", server.uri()),
        );
        std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth-token");
    }

    let provider = AwsConfigCredentials::new();
    let c = provider.credentials().await.unwrap();
    assert_eq!(c.access_key_id(), "ASIAECSEXAMPLE");
    assert_eq!(c.secret_access_key(), "ecs-secret-access-key");
    assert_eq!(c.session_token(), Some("ecs-session-token"));
    assert_eq!(
        c.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(EXPIRES))
    );
    // Cached: the endpoint is asked once.
    let again = provider.credentials().await.unwrap();
    assert_eq!(again, c);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let debug = format!("{provider:?}");
    assert!(
        !debug.contains("ecs-secret") && !debug.contains("ecs-session"),
        "{debug}"
    );

    // `AwsBuilder::from_env` uses the same chain when the feature is on.
    let config = AwsBuilder::from_env().build().unwrap();
    let c = config.credentials().credentials().await.unwrap();
    assert_eq!(c.access_key_id(), "ASIAECSEXAMPLE");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
