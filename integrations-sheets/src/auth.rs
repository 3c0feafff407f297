//! The access-token cache in front of a [`TokenProvider`]: refreshed ahead of expiry, one refresh
//! shared by every concurrent caller (single flight), a refused token forgotten.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integrations_core::http::HttpClient;
use integrations_core::{Error, Policy, Result};
use tokio::time::Instant;

use crate::client::replicate;
use crate::token::{TokenProvider, TokenRequest};

/// An access token and when it stops working (on tokio's clock). `Debug` hides the token.
#[derive(Clone)]
pub(crate) struct AccessToken {
    value: Arc<str>,
    /// When a refresh is due: the refresh margin before expiry, or half-way for short lifetimes.
    refresh_at: Instant,
    expires: Instant,
}

impl AccessToken {
    pub(crate) fn secret(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Cache {
    token: Option<AccessToken>,
    /// When the last refresh failed, and how, to hand to callers that queued behind it.
    failure: Option<(Instant, Error)>,
}

/// Fetches access tokens from its provider and caches them.
pub(crate) struct TokenSource {
    provider: Arc<dyn TokenProvider>,
    scope: String,
    http: HttpClient,
    policy: Policy,
    refresh_before: Duration,
    cache: Mutex<Cache>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("provider", &self.provider)
            .field("scope", &self.scope)
            .field("refresh_before", &self.refresh_before)
            .field("fetches", &self.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(
        provider: Arc<dyn TokenProvider>,
        scope: String,
        http: HttpClient,
        policy: Policy,
        refresh_before: Duration,
    ) -> Self {
        TokenSource {
            provider,
            scope,
            http,
            policy,
            refresh_before,
            cache: Mutex::new(Cache::default()),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    pub(crate) fn principal(&self) -> Option<&str> {
        self.provider.principal()
    }

    /// Token exchanges made so far.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached token when it is good for longer than the refresh margin.
    fn fresh(&self) -> Option<AccessToken> {
        let cache = self.cache();
        let t = cache.token.as_ref()?;
        (Instant::now() < t.refresh_at).then(|| t.clone())
    }

    /// A token good for at least the refresh margin, fetching one if needed. Concurrent callers
    /// wait for one shared refresh; if it fails, they all get its error. A refresh that fails
    /// while the cached token is still valid falls back to that token.
    ///
    /// # Errors
    /// The token endpoint's error ([`Error::Unauthenticated`] for `invalid_grant`, …).
    pub(crate) async fn token(&self) -> Result<AccessToken> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let queued_at = Instant::now();
        let _flight = self.refresh.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        if let Some((at, e)) = &self.cache().failure
            && *at >= queued_at
        {
            return Err(replicate(e));
        }
        match self.fetch().await {
            Ok(t) => {
                let mut cache = self.cache();
                cache.token = Some(t.clone());
                cache.failure = None;
                Ok(t)
            }
            Err(e) => {
                let mut cache = self.cache();
                if let Some(still_valid) =
                    cache.token.clone().filter(|t| t.expires > Instant::now())
                {
                    tracing::warn!(provider = crate::PROVIDER, error = %e, "token refresh failed; using the current token until it expires");
                    return Ok(still_valid);
                }
                cache.failure = Some((Instant::now(), replicate(&e)));
                Err(e)
            }
        }
    }

    /// Forgets `stale` (a token the API refused with 401) so the next call fetches a new one.
    /// A token that was already replaced is left alone, so concurrent 401s cause one refresh.
    pub(crate) fn invalidate(&self, stale: &AccessToken) {
        let mut cache = self.cache();
        if cache
            .token
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&t.value, &stale.value))
        {
            cache.token = None;
        }
    }

    async fn fetch(&self) -> Result<AccessToken> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let sent_at = Instant::now();
        let fetched = self
            .provider
            .fetch_token(&TokenRequest::new(&self.scope, &self.http, &self.policy))
            .await?;
        if fetched.access_token().is_empty() {
            return Err(
                Error::provider("the token provider returned an empty access token")
                    .with_provider(crate::PROVIDER),
            );
        }
        let lifetime = token_lifetime(fetched.expires_in().map(|d| d.as_secs()));
        tracing::debug!(
            provider = crate::PROVIDER,
            lifetime_s = lifetime.as_secs(),
            "access token fetched"
        );
        let margin = self.refresh_before.min(lifetime / 2);
        // Clamped above, so these cannot overflow; checked anyway (an `Instant` past the
        // platform's range panics), falling back to the shortest lifetime.
        let expires = sent_at
            .checked_add(lifetime)
            .unwrap_or(sent_at + MIN_TOKEN_LIFETIME);
        let refresh_at = expires.checked_sub(margin).unwrap_or(sent_at);
        Ok(AccessToken {
            value: Arc::from(fetched.access_token()),
            refresh_at,
            expires,
        })
    }
}

/// Shortest token lifetime believed: a token endpoint answering `expires_in: 0` would otherwise
/// make every call fetch a new token.
pub(crate) const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest token lifetime believed (Google's are one hour): an absurd `expires_in` would
/// otherwise overflow `Instant` (a panic) or keep a token long after it is revoked.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// `expires_in` (default one hour) clamped to [`MIN_TOKEN_LIFETIME`, `MAX_TOKEN_LIFETIME`].
fn token_lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(expires_in.unwrap_or(3600)).clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_clamped() {
        assert_eq!(token_lifetime(None), Duration::from_secs(3600));
        assert_eq!(token_lifetime(Some(3599)), Duration::from_secs(3599));
        assert_eq!(token_lifetime(Some(0)), MIN_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(Some(u64::MAX)), MAX_TOKEN_LIFETIME);
    }
}
