//! The signed HTTP exchange every service client uses: SigV4 (the `aws-sigv4` crate) on each
//! attempt, sent through `integrations_core::http::send` under the service's [`Policy`], errors
//! through the protocol's one `parse_error` ([`crate::error`]).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use integrations_core::http::{self, HttpResponse};
use integrations_core::resilience::Policy;
use integrations_core::{Error, Result};
use reqwest::Method;
#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{AwsConfig, Service, default_policy_builder};
use crate::credentials::{Credentials, CredentialsProvider};
#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
use crate::error::parse_json_error;
#[cfg(any(feature = "sns", feature = "cloudwatch"))]
use crate::error::parse_query_error;

/// How a service encodes requests and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `awsJson1_0`/`awsJson1_1` and REST-JSON.
    #[cfg(any(
        feature = "dynamodb",
        feature = "sqs",
        feature = "cloudwatch",
        feature = "ses"
    ))]
    Json,
    /// `awsQuery`: form-encoded request, XML response.
    #[cfg(any(feature = "sns", feature = "cloudwatch"))]
    Query,
}

/// One request before signing.
#[derive(Debug)]
pub(crate) struct AwsRequest {
    pub(crate) method: Method,
    /// Path (and query) relative to the endpoint, starting with `/`.
    pub(crate) path: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Bytes,
    pub(crate) protocol: Protocol,
}

/// A signed client for one service.
#[derive(Clone)]
pub(crate) struct AwsClient {
    service: Service,
    region: String,
    endpoint: Url,
    credentials: Arc<dyn CredentialsProvider>,
    http: http::HttpClient,
    policy: Policy,
}

impl fmt::Debug for AwsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsClient")
            .field("service", &self.service)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl AwsClient {
    pub(crate) fn new(config: &AwsConfig, service: Service) -> Self {
        AwsClient {
            service,
            region: config.region.clone(),
            endpoint: config.endpoint(service),
            credentials: config.credentials.clone(),
            http: config
                .http
                .clone()
                .unwrap_or_else(|| http::default_client().into()),
            policy: config.policy.clone().unwrap_or_else(|| {
                let builder = default_policy_builder(service);
                match &config.metrics {
                    Some(registry) => builder.metrics(registry),
                    None => builder,
                }
                .build()
            }),
        }
    }

    /// Signs and sends `req` under the policy; each attempt is signed afresh (new `X-Amz-Date`).
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        req: AwsRequest,
    ) -> Result<HttpResponse> {
        let provider = self.service.provider_name();
        let creds = self
            .credentials
            .credentials()
            .await
            .map_err(|e| e.or_provider(provider).with_operation(operation))?;
        let url = self.endpoint.join(&req.path).map_err(|e| {
            Error::configuration("endpoint", format!("cannot join `{}`", req.path)).with_source(e)
        })?;
        // Signing once up front surfaces a signing error as an error; later attempts re-sign and,
        // should that ever fail, reuse this signature (valid for minutes).
        let first = self.sign(&creds, &req, &url, SystemTime::now())?;
        let parse: fn(&HttpResponse, &'static str) -> Error = match req.protocol {
            #[cfg(any(
                feature = "dynamodb",
                feature = "sqs",
                feature = "cloudwatch",
                feature = "ses"
            ))]
            Protocol::Json => parse_json_error,
            #[cfg(any(feature = "sns", feature = "cloudwatch"))]
            Protocol::Query => parse_query_error,
        };
        http::send_via(
            &self.http,
            &self.policy,
            operation,
            |attempt| {
                integrations_core::telemetry::record_rpc(
                    "aws-api",
                    rpc_service(self.service),
                    operation,
                );
                let signed = if attempt.number <= 1 {
                    first.clone()
                } else {
                    self.sign(&creds, &req, &url, SystemTime::now())
                        .unwrap_or_else(|_| first.clone())
                };
                let mut rb = self.http.request(req.method.clone(), url.clone());
                for (k, v) in req.headers.iter().chain(signed.iter()) {
                    rb = rb.header(*k, v.as_str());
                }
                rb.body(req.body.clone())
            },
            |resp| parse(resp, provider).with_operation(operation),
        )
        .await
    }

    fn sign(
        &self,
        creds: &Credentials,
        req: &AwsRequest,
        url: &Url,
        at: SystemTime,
    ) -> Result<Vec<(&'static str, String)>> {
        let identity = creds.to_identity();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name())
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| sign_error(self.service, e))?
            .into();
        let signable = SignableRequest::new(
            req.method.as_str(),
            url.as_str(),
            req.headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&req.body),
        )
        .map_err(|e| sign_error(self.service, e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| sign_error(self.service, e))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (static_header(k), v.to_owned()))
            .collect())
    }

    #[cfg(any(feature = "dynamodb", feature = "sqs", feature = "cloudwatch"))]
    /// An `awsJson` call: `POST /` with `X-Amz-Target: {target}`.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        content_type: &'static str,
        target: String,
        body: &serde_json::Value,
    ) -> Result<T> {
        let req = AwsRequest {
            method: Method::POST,
            path: "/".to_owned(),
            headers: vec![
                ("content-type", content_type.to_owned()),
                ("x-amz-target", target),
            ],
            body: Bytes::from(serde_json::to_vec(body).map_err(encode_error)?),
            protocol: Protocol::Json,
        };
        let resp = self.send(operation, req).await?;
        decode_json(&resp, self.service, operation)
    }

    #[cfg(feature = "ses")]
    /// A REST-JSON call (SES v2).
    pub(crate) async fn rest_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: String,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(encode_error)?),
            None => Bytes::new(),
        };
        let req = AwsRequest {
            method,
            path,
            headers: vec![("content-type", "application/json".to_owned())],
            body,
            protocol: Protocol::Json,
        };
        let resp = self.send(operation, req).await?;
        decode_json(&resp, self.service, operation)
    }

    #[cfg(any(feature = "sns", feature = "cloudwatch"))]
    /// An `awsQuery` call: form-encoded `Action`, `Version` and `params`; returns the XML response.
    pub(crate) async fn query(
        &self,
        operation: &'static str,
        version: &'static str,
        params: &[(String, String)],
    ) -> Result<HttpResponse> {
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", operation);
            form.append_pair("Version", version);
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let req = AwsRequest {
            method: Method::POST,
            path: "/".to_owned(),
            headers: vec![(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            )],
            body: Bytes::from(form),
            protocol: Protocol::Query,
        };
        self.send(operation, req).await
    }
}

#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
fn decode_json<T: DeserializeOwned>(
    resp: &HttpResponse,
    service: Service,
    operation: &'static str,
) -> Result<T> {
    let body: &[u8] = if resp.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &resp.body
    };
    serde_json::from_slice(body).map_err(|e| {
        Error::provider("could not decode the response body")
            .with_provider(service.provider_name())
            .with_operation(operation)
            .with_status(resp.status.as_u16())
            .with_source(e)
    })
}

#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
fn encode_error(e: serde_json::Error) -> Error {
    Error::invalid_input("body", "could not encode the request as JSON").with_source(e)
}

/// The service's name in spans' `rpc.service`, as the AWS SDKs' service ids.
fn rpc_service(service: Service) -> &'static str {
    match service {
        Service::DynamoDb => "DynamoDB",
        Service::Sns => "SNS",
        Service::SesV2 => "SESv2",
        Service::Sqs => "SQS",
        Service::CloudWatch => "CloudWatch",
        Service::CloudWatchLogs => "CloudWatchLogs",
    }
}

fn sign_error(service: Service, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::configuration("credentials", "the request could not be signed")
        .with_provider(service.provider_name())
        .with_source(e)
}

/// The signer only ever adds these headers.
fn static_header(name: &str) -> &'static str {
    match name {
        "authorization" => "authorization",
        "x-amz-date" => "x-amz-date",
        "x-amz-security-token" => "x-amz-security-token",
        "x-amz-content-sha256" => "x-amz-content-sha256",
        "x-amz-region-set" => "x-amz-region-set",
        _ => "x-amz-unknown",
    }
}

#[cfg(all(test, feature = "sqs"))]
mod tests {
    use super::*;
    use crate::AwsBuilder;
    use std::time::Duration;

    #[test]
    fn with_metrics_puts_the_default_policies_in_that_registry() {
        let registry = integrations_core::metrics::MetricsRegistry::new();
        let cfg = AwsBuilder::new()
            .with_region("us-east-1")
            .with_credentials(Credentials::new("AKIDEXAMPLE", "secret"))
            .with_metrics(&registry)
            .build()
            .unwrap();
        let c = AwsClient::new(&cfg, Service::Sqs);
        assert!(Arc::ptr_eq(
            c.policy.metrics(),
            &registry.integration(Service::Sqs.provider_name())
        ));
    }

    fn client() -> AwsClient {
        let cfg = AwsBuilder::new()
            .with_region("us-east-1")
            .with_credentials(Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ))
            .with_base_url("http://127.0.0.1:9")
            .build()
            .unwrap();
        AwsClient::new(&cfg, Service::Sqs)
    }

    #[test]
    fn signs_with_scope_and_signed_headers() {
        let c = client();
        let req = AwsRequest {
            method: Method::POST,
            path: "/".into(),
            headers: vec![
                ("content-type", "application/x-amz-json-1.0".into()),
                ("x-amz-target", "AmazonSQS.ListQueues".into()),
            ],
            body: Bytes::from_static(b"{}"),
            protocol: Protocol::Json,
        };
        let url = Url::parse("http://127.0.0.1:9/").unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let creds = Credentials::new("AKIDEXAMPLE", "secret").with_session_token("TOKEN");
        let h = c.sign(&creds, &req, &url, at).unwrap();
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(get("x-amz-date").as_deref(), Some("20150830T123600Z"));
        assert_eq!(get("x-amz-security-token").as_deref(), Some("TOKEN"));
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sqs/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            ),
            "{auth}"
        );
        // Deterministic: same inputs, same signature; another secret, another signature.
        assert_eq!(c.sign(&creds, &req, &url, at).unwrap(), h);
        let other = c
            .sign(
                &Credentials::new("AKIDEXAMPLE", "other").with_session_token("TOKEN"),
                &req,
                &url,
                at,
            )
            .unwrap();
        assert_ne!(other, h);
    }

    #[test]
    fn debug_hides_the_secret() {
        let d = format!("{:?}", client());
        assert!(!d.contains("EXAMPLEKEY"), "{d}");
    }
}
