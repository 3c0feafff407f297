//! [`HttpClient`]: what a provider sends its requests with — a plain `reqwest::Client`, or (feature
//! `reqwest-middleware`) a `reqwest_middleware::ClientWithMiddleware` carrying the user's
//! middleware (`reqwest-tracing`, header injection, their own retries or caching).

use reqwest::{IntoUrl, Method, RequestBuilder};

/// The client a provider sends its requests with. Built from a `reqwest::Client` or, with
/// feature `reqwest-middleware`, from a `reqwest_middleware::ClientWithMiddleware`; every
/// provider builder's `with_http_client` takes either.
///
/// Requests are built as plain `reqwest` requests (so provider code is the same for both) and,
/// with middleware, executed through the middleware chain inside each attempt of the policy: the
/// middleware sees every attempt, retries included.
///
/// ```
/// use integrations_core::http::{self, HttpClient};
///
/// let client: HttpClient = http::default_client().into();
/// assert!(!client.has_middleware());
/// ```
#[derive(Clone)]
pub struct HttpClient {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Plain(reqwest::Client),
    #[cfg(feature = "reqwest-middleware")]
    Middleware(reqwest_middleware::ClientWithMiddleware),
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("middleware", &self.has_middleware())
            .finish_non_exhaustive()
    }
}

impl From<reqwest::Client> for HttpClient {
    fn from(client: reqwest::Client) -> Self {
        HttpClient {
            kind: Kind::Plain(client),
        }
    }
}

#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
impl From<reqwest_middleware::ClientWithMiddleware> for HttpClient {
    fn from(client: reqwest_middleware::ClientWithMiddleware) -> Self {
        HttpClient {
            kind: Kind::Middleware(client),
        }
    }
}

/// Builds requests for a middleware client, which does not hand out its inner `reqwest::Client`.
/// It never sends anything (the middleware chain's own client does), so one per process is safe
/// whatever runtime the requests run on.
#[cfg(feature = "reqwest-middleware")]
fn request_builder_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

impl HttpClient {
    /// A request of `method` to `url`, to hand to [`send_via`](super::send_via).
    pub fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        match &self.kind {
            Kind::Plain(client) => client.request(method, url),
            #[cfg(feature = "reqwest-middleware")]
            Kind::Middleware(_) => request_builder_client().request(method, url),
        }
    }
    /// A `GET` request to `url`.
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::GET, url)
    }
    /// A `POST` request to `url`.
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::POST, url)
    }
    /// A `PUT` request to `url`.
    pub fn put(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::PUT, url)
    }
    /// A `DELETE` request to `url`.
    pub fn delete(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// Whether requests go through a middleware chain.
    pub fn has_middleware(&self) -> bool {
        match &self.kind {
            Kind::Plain(_) => false,
            #[cfg(feature = "reqwest-middleware")]
            Kind::Middleware(_) => true,
        }
    }

    /// Executes `request`, built by `builder` (the client of the request builder): through the
    /// middleware chain if there is one, else on `builder` as a plain request always was.
    pub(super) async fn execute(
        &self,
        builder: reqwest::Client,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, ExecuteError> {
        match &self.kind {
            Kind::Plain(_) => builder
                .execute(request)
                .await
                .map_err(ExecuteError::Reqwest),
            #[cfg(feature = "reqwest-middleware")]
            Kind::Middleware(client) => client.execute(request).await.map_err(|e| match e {
                reqwest_middleware::Error::Reqwest(e) => ExecuteError::Reqwest(e),
                reqwest_middleware::Error::Middleware(e) => ExecuteError::Middleware(e.into()),
            }),
        }
    }
}

/// Why [`HttpClient::execute`] failed.
pub(super) enum ExecuteError {
    Reqwest(reqwest::Error),
    /// A user middleware's own error (never logged: its text is the user's, and may hold anything).
    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    Middleware(crate::BoxError),
}
