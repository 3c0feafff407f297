//! The shared outbox behaviour suite, run against every store in this crate.
#![cfg(feature = "testing")]

use integrations_core::clock::FixedClock;
use integrations_outbox::InMemoryOutbox;
use integrations_outbox::behaviour::outbox_store_suite;

fn clock() -> FixedClock {
    FixedClock::from_unix(1_700_000_000)
}

#[tokio::test]
async fn in_memory_outbox_passes_the_suite() {
    let clock = clock();
    let store = InMemoryOutbox::new().with_clock(clock.clone());
    outbox_store_suite(&store, &clock).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_outbox_passes_the_suite() {
    use integrations_outbox::SqliteOutbox;

    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = SqliteOutbox::open(dir.path().join("outbox.db"))
        .await
        .unwrap()
        .with_clock(clock.clone());
    outbox_store_suite(&store, &clock).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_outbox_passes_the_suite_with_synchronous_normal() {
    use integrations_outbox::{SqliteOptions, SqliteOutbox, Synchronous};

    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let options = SqliteOptions::new().synchronous(Synchronous::Normal);
    let store = SqliteOutbox::open_with(dir.path().join("outbox.db"), options)
        .await
        .unwrap()
        .with_clock(clock.clone());
    outbox_store_suite(&store, &clock).await;
}
