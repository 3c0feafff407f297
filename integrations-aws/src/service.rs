//! The AWS services this crate calls: signing names, endpoints, environment variables, and the
//! default resilience policy of each.

use std::time::Duration;

use integrations_core::resilience::{Backoff, Policy, PolicyBuilder, RetryPolicy};

/// An AWS service this crate talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// Amazon DynamoDB.
    DynamoDb,
    /// Amazon SNS.
    Sns,
    /// Amazon SES API v2.
    SesV2,
    /// Amazon SQS.
    Sqs,
    /// Amazon CloudWatch (metrics).
    CloudWatch,
    /// Amazon CloudWatch Logs.
    CloudWatchLogs,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 6] = [
        Service::DynamoDb,
        Service::Sns,
        Service::SesV2,
        Service::Sqs,
        Service::CloudWatch,
        Service::CloudWatchLogs,
    ];

    /// The SigV4 signing name (`ses` for SES v2, `monitoring` for CloudWatch).
    pub const fn signing_name(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::Sns => "sns",
            Service::SesV2 => "ses",
            Service::Sqs => "sqs",
            Service::CloudWatch => "monitoring",
            Service::CloudWatchLogs => "logs",
        }
    }

    /// The first label of the regional endpoint host (`email` for SES v2).
    pub const fn endpoint_prefix(self) -> &'static str {
        match self {
            Service::SesV2 => "email",
            other => other.signing_name(),
        }
    }

    /// The suffix of the per-service endpoint variable `AWS_ENDPOINT_URL_<SUFFIX>`, as in AWS's
    /// service-specific endpoint convention.
    pub const fn env_suffix(self) -> &'static str {
        match self {
            Service::DynamoDb => "DYNAMODB",
            Service::Sns => "SNS",
            Service::SesV2 => "SESV2",
            Service::Sqs => "SQS",
            Service::CloudWatch => "CLOUDWATCH",
            Service::CloudWatchLogs => "CLOUDWATCH_LOGS",
        }
    }

    /// The provider name carried by errors and metrics (`aws-sqs`).
    pub const fn provider_name(self) -> &'static str {
        match self {
            Service::DynamoDb => "aws-dynamodb",
            Service::Sns => "aws-sns",
            Service::SesV2 => "aws-ses",
            Service::Sqs => "aws-sqs",
            Service::CloudWatch => "aws-cloudwatch",
            Service::CloudWatchLogs => "aws-logs",
        }
    }

    /// The public regional endpoint (`https://sqs.eu-west-1.amazonaws.com`, `.amazonaws.com.cn` in
    /// China regions).
    pub fn default_endpoint(self, region: &str) -> String {
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://{}.{region}.{suffix}", self.endpoint_prefix())
    }
}

/// The policy a service client uses unless [`AwsBuilder::with_policy`](crate::AwsBuilder::with_policy)
/// set one: AWS SDKs' "standard" retry mode (3 attempts, exponential backoff with full jitter,
/// capped at 20 s), core's default circuit breaker, and a per-attempt timeout of 10 s —
/// 30 s for SQS, whose long polls wait up to 20 s. AWS publishes no single request rate for these
/// services (limits are per account, table or queue), so no client-side rate limiter is set.
///
/// Records into the global metrics registry; see [`default_policy_builder`] to change that or
/// any setting, or [`AwsBuilder::with_metrics`](crate::AwsBuilder::with_metrics).
pub fn default_policy(service: Service) -> Policy {
    default_policy_builder(service).build()
}

/// [`default_policy`]'s settings for `service`, as a builder to adjust before building.
pub fn default_policy_builder(service: Service) -> PolicyBuilder {
    let attempt_timeout = match service {
        Service::Sqs => Duration::from_secs(30),
        _ => Duration::from_secs(10),
    };
    Policy::builder(service.provider_name())
        .retry(RetryPolicy::new(
            2,
            Backoff::new(Duration::from_millis(100), Duration::from_secs(20), 2.0),
        ))
        .attempt_timeout(attempt_timeout)
}
