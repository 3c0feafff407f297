//! Shared by the `aws_config_*` test binaries (one test each, since the AWS SDK's chain reads the
//! process environment and offers no way to inject another): an environment in which the one
//! credential source under test is the only one the chain can find.

use std::path::Path;

/// Every variable the SDK's default chain reads for a credential source.
const SOURCES: [&str; 12] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
];

/// Removes every credential source, points the config and credentials files at `none` (a path
/// that does not exist) and sets `region`; the caller then sets the one source it tests.
///
/// # Safety
/// Only from a binary's single test, before any other thread reads the environment.
pub(crate) unsafe fn isolate(none: &Path, region: &str) {
    // SAFETY: as the caller promises.
    unsafe {
        for k in SOURCES {
            std::env::remove_var(k);
        }
        std::env::set_var("AWS_CONFIG_FILE", none);
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", none);
        std::env::set_var("AWS_REGION", region);
    }
}
