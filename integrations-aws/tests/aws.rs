//! Wire contract tests against `wiremock`: exact method, path, headers and encoded body of each
//! service call, and the mapping of real AWS error bodies (fixtures) that moto cannot produce
//! (throttling, 5xx) to core's errors.

mod aws {
    pub(crate) mod cloudwatch;
    pub(crate) mod dynamodb;
    pub(crate) mod ses;
    pub(crate) mod sns;
    pub(crate) mod spans;
    pub(crate) mod sqs;
}
#[path = "aws/support.rs"]
mod support;
