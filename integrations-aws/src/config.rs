//! Configuration shared by every service client: region, credentials, endpoints, HTTP client and
//! resilience policy.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::Policy;
use integrations_core::{Error, Result};
use url::Url;

use crate::credentials::{CredentialsProvider, DefaultCredentialsChain, EnvLookup, process_env};
use crate::profile::ProfileFiles;
pub use crate::service::{Service, default_policy, default_policy_builder};

/// Settings shared by the service clients. Build with [`AwsBuilder`]; cheap to clone.
#[derive(Clone)]
pub struct AwsConfig {
    pub(crate) region: String,
    pub(crate) credentials: Arc<dyn CredentialsProvider>,
    pub(crate) endpoint: Option<Url>,
    pub(crate) service_endpoints: HashMap<Service, Url>,
    pub(crate) http: Option<integrations_core::http::HttpClient>,
    pub(crate) policy: Option<Policy>,
    pub(crate) metrics: Option<MetricsRegistry>,
}

impl AwsConfig {
    /// Shorthand for [`AwsBuilder::new`].
    pub fn builder() -> AwsBuilder {
        AwsBuilder::new()
    }
    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }
    /// The credentials provider.
    pub fn credentials(&self) -> &Arc<dyn CredentialsProvider> {
        &self.credentials
    }
    /// The endpoint `service` is called at: its own override, else the global one, else AWS's.
    pub fn endpoint(&self, service: Service) -> Url {
        if let Some(u) = self
            .service_endpoints
            .get(&service)
            .or(self.endpoint.as_ref())
        {
            return u.clone();
        }
        Url::parse(&service.default_endpoint(&self.region)).expect("regions are validated")
    }
}

impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("credentials", &self.credentials)
            .field("endpoint", &self.endpoint.as_ref().map(Url::as_str))
            .field("service_endpoints", &self.service_endpoints.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Builder for [`AwsConfig`].
///
/// ```
/// use integrations_aws::{AwsBuilder, Credentials, Service};
///
/// let config = AwsBuilder::new()
///     .with_region("eu-west-1")
///     .with_credentials(Credentials::new("AKIDEXAMPLE", "secret"))
///     .with_service_base_url(Service::Sqs, "http://127.0.0.1:5055")
///     .build()?;
/// assert_eq!(config.endpoint(Service::Sqs).as_str(), "http://127.0.0.1:5055/");
/// # Ok::<(), integrations_core::Error>(())
/// ```
#[derive(Default)]
pub struct AwsBuilder {
    region: Option<String>,
    credentials: Option<Arc<dyn CredentialsProvider>>,
    endpoint: Option<String>,
    service_endpoints: Vec<(Service, String)>,
    http: Option<integrations_core::http::HttpClient>,
    policy: Option<Policy>,
    metrics: Option<MetricsRegistry>,
    endpoint_setting: Option<&'static str>,
    allow_http: bool,
}

impl AwsBuilder {
    /// Empty: region and credentials must be set.
    pub fn new() -> Self {
        Self::default()
    }

    /// From the standard variables: region `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the
    /// profile's `region`; credentials from [`DefaultCredentialsChain`] (environment, then profile
    /// `AWS_PROFILE` in the shared files); endpoints `AWS_ENDPOINT_URL` and
    /// `AWS_ENDPOINT_URL_<SERVICE>` (see [`Service::env_suffix`]), both ignored when
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`. Credentials are looked up when first needed.
    /// With the feature `aws-config`, credentials come from
    /// [`AwsConfigCredentials`](crate::AwsConfigCredentials) (the AWS SDK's chain) instead.
    pub fn from_env() -> Self {
        let b = Self::from_lookup(&process_env());
        #[cfg(feature = "aws-config")]
        let b = b.with_credentials(crate::AwsConfigCredentials::new());
        b
    }

    pub(crate) fn from_lookup(env: &EnvLookup) -> Self {
        let mut b = AwsBuilder::new();
        b.region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| ProfileFiles::from_env(env).region());
        b.credentials = Some(Arc::new(DefaultCredentialsChain::with_lookup(env)));
        let ignore = env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !ignore {
            if let Some(u) = env("AWS_ENDPOINT_URL") {
                b.endpoint = Some(u);
                b.endpoint_setting = Some("AWS_ENDPOINT_URL");
            }
            for s in Service::ALL {
                if let Some(u) = env(&format!("AWS_ENDPOINT_URL_{}", s.env_suffix())) {
                    b.service_endpoints.push((s, u));
                }
            }
        }
        b
    }

    /// Sets the region.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }
    /// Sets the credentials provider ([`Credentials`](crate::Credentials) for static keys).
    #[must_use]
    pub fn with_credentials(mut self, provider: impl CredentialsProvider + 'static) -> Self {
        self.credentials = Some(Arc::new(provider));
        self
    }
    /// Sets a shared credentials provider.
    #[must_use]
    pub fn with_credentials_provider(mut self, provider: Arc<dyn CredentialsProvider>) -> Self {
        self.credentials = Some(provider);
        self
    }
    /// Sends every service's requests to `url` (an emulator such as moto or LocalStack).
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self.endpoint_setting = None;
        self
    }
    /// Sends `service`'s requests to `url`; wins over [`AwsBuilder::with_base_url`].
    #[must_use]
    pub fn with_service_base_url(mut self, service: Service, url: impl Into<String>) -> Self {
        self.service_endpoints.retain(|(s, _)| *s != service);
        self.service_endpoints.push((service, url.into()));
        self
    }
    /// Uses this client (default: core's shared client): a `reqwest::Client`, or with feature
    /// `reqwest-middleware` a `reqwest_middleware::ClientWithMiddleware`. Its middleware runs
    /// after SigV4 signing: headers it adds are sent unsigned, and it must not change what was
    /// signed (method, URL, body, the signed headers).
    #[must_use]
    pub fn with_http_client(
        mut self,
        client: impl Into<integrations_core::http::HttpClient>,
    ) -> Self {
        self.http = Some(client.into());
        self
    }
    /// Allows plain `http` endpoints on hosts other than loopback (an emulator in another
    /// container). Without it an endpoint — set here or by `AWS_ENDPOINT_URL*` — must be `https`,
    /// or `http` to `localhost`, `127.0.0.0/8` or `[::1]` (core's
    /// [`check_base_url`](integrations_core::http::check_base_url)): SigV4 signs requests but
    /// does not encrypt them.
    #[must_use]
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }
    /// Records the default policies' metrics into `registry` instead of the global one (your
    /// service's registry, for its `/metrics`). A policy given with
    /// [`with_policy`](Self::with_policy) keeps its own.
    #[must_use]
    pub fn with_metrics(mut self, registry: &MetricsRegistry) -> Self {
        self.metrics = Some(registry.clone());
        self
    }
    /// Uses this policy for every service (default: one per service, see
    /// [`default_policy`](crate::default_policy)).
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `AWS_REGION` (missing or malformed), `AWS_ACCESS_KEY_ID`
    /// (no credentials provider) or the endpoint variable whose URL does not parse or is plain
    /// `http` to a host that is not loopback without [`AwsBuilder::with_allow_http`].
    pub fn build(self) -> Result<AwsConfig> {
        let region = self
            .region
            .ok_or_else(|| Error::configuration("AWS_REGION", "no region configured"))?;
        let valid = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(Error::configuration(
                "AWS_REGION",
                format!("`{region}` is not a region name"),
            ));
        }
        let credentials = self.credentials.ok_or_else(|| {
            Error::configuration("AWS_ACCESS_KEY_ID", "no credentials provider configured")
        })?;
        let endpoint = self
            .endpoint
            .map(|u| {
                parse_endpoint(
                    &u,
                    self.endpoint_setting.unwrap_or("endpoint"),
                    self.allow_http,
                )
            })
            .transpose()?;
        let mut service_endpoints = HashMap::new();
        for (s, u) in self.service_endpoints {
            let setting = format!("AWS_ENDPOINT_URL_{}", s.env_suffix());
            service_endpoints.insert(s, parse_endpoint(&u, setting, self.allow_http)?);
        }
        Ok(AwsConfig {
            region,
            credentials,
            endpoint,
            service_endpoints,
            http: self.http,
            policy: self.policy,
            metrics: self.metrics,
        })
    }
}

fn parse_endpoint(
    u: &str,
    setting: impl Into<std::borrow::Cow<'static, str>>,
    allow_http: bool,
) -> Result<Url> {
    integrations_core::http::check_base_url(setting, u, allow_http)
}

impl fmt::Debug for AwsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsBuilder")
            .field("region", &self.region)
            .field("credentials", &self.credentials)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Credentials;

    fn env(pairs: &[(&'static str, &'static str)]) -> EnvLookup {
        let pairs = pairs.to_vec();
        Arc::new(move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn from_env_reads_region_and_endpoints() {
        let c = AwsBuilder::from_lookup(&env(&[
            ("HOME", "/nonexistent"),
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", "http://localhost:4566"),
            ("AWS_ENDPOINT_URL_SQS", "http://localhost:9324"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "http://logs.local:1"),
        ]))
        .with_allow_http(true)
        .build()
        .unwrap();
        assert_eq!(c.region(), "eu-central-1");
        assert_eq!(c.endpoint(Service::Sqs).as_str(), "http://localhost:9324/");
        assert_eq!(c.endpoint(Service::Sns).as_str(), "http://localhost:4566/");
        assert_eq!(
            c.endpoint(Service::CloudWatchLogs).as_str(),
            "http://logs.local:1/"
        );
    }

    #[test]
    fn aws_region_wins_and_endpoints_can_be_ignored() {
        let c = AwsBuilder::from_lookup(&env(&[
            ("HOME", "/nonexistent"),
            ("AWS_REGION", "cn-north-1"),
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", "http://localhost:4566"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]))
        .build()
        .unwrap();
        assert_eq!(
            c.endpoint(Service::SesV2).as_str(),
            "https://email.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            c.endpoint(Service::CloudWatch).as_str(),
            "https://monitoring.cn-north-1.amazonaws.com.cn/"
        );
    }

    #[test]
    fn build_names_what_is_wrong() {
        let e = AwsBuilder::new()
            .with_credentials(Credentials::new("a", "b"))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some("AWS_REGION"));
        let e = AwsBuilder::new()
            .with_region("us-east-1")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some("AWS_ACCESS_KEY_ID"));
        let e = AwsBuilder::from_lookup(&env(&[
            ("HOME", "/nonexistent"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_SNS", "not a url"),
        ]))
        .build()
        .unwrap_err();
        assert_eq!(e.field(), Some("AWS_ENDPOINT_URL_SNS"));
        let e = AwsBuilder::new()
            .with_region("US East")
            .with_credentials(Credentials::new("a", "b"))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some("AWS_REGION"));
    }

    #[test]
    fn plain_http_endpoints_need_loopback_or_the_opt_in() {
        let lookup = env(&[
            ("HOME", "/nonexistent"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://localhost:4566"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "http://logs.local:1"),
        ]);
        let e = AwsBuilder::from_lookup(&lookup).build().unwrap_err();
        assert_eq!(e.field(), Some("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"));
        assert!(
            AwsBuilder::from_lookup(&lookup)
                .with_allow_http(true)
                .build()
                .is_ok()
        );
        let e = AwsBuilder::new()
            .with_region("us-east-1")
            .with_credentials(Credentials::new("a", "b"))
            .with_base_url("http://10.1.2.3:4566")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some("endpoint"));
        for ok in [
            "http://127.0.0.1:5055",
            "http://[::1]:4566",
            "https://sqs.internal",
        ] {
            AwsBuilder::new()
                .with_region("us-east-1")
                .with_credentials(Credentials::new("a", "b"))
                .with_service_base_url(Service::Sqs, ok)
                .build()
                .unwrap();
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = AwsBuilder::new()
            .with_region("us-east-1")
            .with_credentials(Credentials::new("AKID", "TOPSECRETKEY"))
            .build()
            .unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("AKID") && !d.contains("TOPSECRETKEY"), "{d}");
    }
}
