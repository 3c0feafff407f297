use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::credential_fn::provide_credentials_fn;
use integrations_core::ErrorKind;
use integrations_core::clock::FixedClock;

use super::*;

const T0: u64 = 1_800_000_000;

/// A source that hands out `AKID<n>` (n = call number) expiring `ttl` after the clock's now, or
/// fails while `fail` is set.
#[derive(Clone)]
struct Counting {
    calls: Arc<AtomicUsize>,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl Counting {
    fn new() -> Self {
        Counting {
            calls: Arc::default(),
            fail: Arc::default(),
        }
    }
    fn provider(&self, clock: FixedClock, ttl: Duration) -> AwsConfigCredentials {
        let me = self.clone();
        let source = provide_credentials_fn(move || {
            let n = me.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let fail = me.fail.load(Ordering::SeqCst);
            let expiry = clock.now() + ttl;
            async move {
                // Long enough for concurrent callers to pile up behind the refresh.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if fail {
                    return Err(CredentialsError::provider_error("STS said no"));
                }
                Ok(aws_credential_types::Credentials::new(
                    format!("AKID{n}"),
                    "wJalrXUtnFEMI/SECRET",
                    Some("SESSIONTOKEN".into()),
                    Some(expiry),
                    "test",
                ))
            }
        });
        AwsConfigCredentials::from_provider(source)
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn clock() -> FixedClock {
    FixedClock::new(UNIX_EPOCH + Duration::from_secs(T0))
}

#[tokio::test]
async fn cached_until_the_margin_before_expiry_then_refreshed() {
    let clock = clock();
    let src = Counting::new();
    let p = src
        .provider(clock.clone(), Duration::from_secs(3600))
        .with_clock(clock.clone());
    let c = p.credentials().await.unwrap();
    assert_eq!(c.access_key_id(), "AKID1");
    assert_eq!(c.session_token(), Some("SESSIONTOKEN"));
    assert_eq!(
        c.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(T0 + 3600))
    );
    // 54 minutes on: 6 minutes left, more than the 5-minute margin.
    clock.advance(Duration::from_secs(54 * 60));
    assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKID1");
    assert_eq!(src.calls(), 1);
    // 56 minutes on: inside the margin.
    clock.advance(Duration::from_secs(2 * 60));
    assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKID2");
    assert_eq!(src.calls(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let src = Counting::new();
    let clock = clock();
    let p = Arc::new(
        src.provider(clock.clone(), Duration::from_secs(3600))
            .with_clock(clock),
    );
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.credentials().await.unwrap().access_key_id().to_owned() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "AKID1");
    }
    assert_eq!(src.calls(), 1);
}

#[tokio::test]
async fn a_failed_refresh_keeps_unexpired_credentials_and_reports_after_expiry() {
    let src = Counting::new();
    let clock = clock();
    let p = src
        .provider(clock.clone(), Duration::from_secs(600))
        .with_clock(clock.clone());
    assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKID1");
    src.fail.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(400)); // inside the margin, not expired
    assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKID1");
    clock.advance(Duration::from_secs(300)); // expired
    let e = p.credentials().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("STS said no"), "{e}");
    assert_eq!(src.calls(), 3);
}

#[tokio::test]
async fn errors_by_meaning() {
    let not_loaded = AwsConfigCredentials::from_provider(provide_credentials_fn(|| async {
        Err(CredentialsError::not_loaded(
            "no providers in chain provided credentials",
        ))
    }));
    let e = not_loaded.credentials().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert_eq!(e.field(), Some("AWS_ACCESS_KEY_ID"));
    assert!(e.to_string().contains("no providers in chain"), "{e}");

    let timed_out = AwsConfigCredentials::from_provider(provide_credentials_fn(|| async {
        Err(CredentialsError::provider_timed_out(Duration::from_secs(5)))
    }));
    assert_eq!(
        timed_out.credentials().await.unwrap_err().kind(),
        ErrorKind::Timeout
    );

    let empty = AwsConfigCredentials::from_provider(provide_credentials_fn(|| async {
        Ok(aws_credential_types::Credentials::new(
            "", "", None, None, "t",
        ))
    }));
    assert_eq!(
        empty.credentials().await.unwrap_err().kind(),
        ErrorKind::Configuration
    );
}

#[tokio::test]
async fn debug_shows_no_key_material() {
    let src = Counting::new();
    let p = src.provider(clock(), Duration::from_secs(3600));
    p.credentials().await.unwrap();
    let d = format!("{p:?}");
    assert!(d.starts_with("AwsConfigCredentials"), "{d}");
    assert!(
        !d.contains("SECRET") && !d.contains("SESSIONTOKEN") && !d.contains("AKID"),
        "{d}"
    );
}
