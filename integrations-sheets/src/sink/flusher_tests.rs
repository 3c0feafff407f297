//! The sink's known keys are hashes: a key whose hash is known must still be appended when it
//! is not in the sheet, and an update must still find its own row, when every key has the same
//! hash. Against the sandbox, through the flusher's own functions.

use std::hash::{BuildHasher, Hasher};

use integrations_core::Policy;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::Row;
use integrations_core::resilience::RetryPolicy;
use tokio::sync::oneshot;

use super::*;
use crate::sandbox::{Endpoint, Sandbox};

/// Every key hashes to 7.
#[derive(Debug, Default, Clone, Copy)]
struct OneHash;

struct Seven;

impl Hasher for Seven {
    fn finish(&self) -> u64 {
        7
    }
    fn write(&mut self, _: &[u8]) {}
}

impl BuildHasher for OneHash {
    type Hasher = Seven;
    fn build_hasher(&self) -> Seven {
        Seven
    }
}

fn bare() -> Policy {
    Policy::builder(crate::PROVIDER)
        .retry(RetryPolicy::none())
        .no_circuit_breaker()
        .metrics(&MetricsRegistry::new())
        .build()
}

async fn sandbox() -> (Sandbox, GoogleSheetsClient) {
    let sb = Sandbox::start().await.unwrap();
    sb.add_sheet(sb.spreadsheet_id(), "S");
    let client = sb
        .client_builder()
        .with_write_policy(bare())
        .with_read_policy(bare())
        .with_token_policy(bare())
        .build_client()
        .unwrap();
    (sb, client)
}

fn row(key: &str, value: &str) -> Row {
    Row::new(key).cell(value)
}

async fn append<S: BuildHasher>(
    client: &GoogleSheetsClient,
    keys: &mut KnownKeys<S>,
    rows: Vec<Row>,
) -> AppendOutcome {
    let (done, outcome) = oneshot::channel();
    let job = AppendJob {
        seq: 0,
        rows,
        bytes: 0,
        enqueued: Instant::now(),
        done,
    };
    append_jobs(client, "S", keys, vec![job]).await.unwrap();
    outcome.await.unwrap().unwrap()
}

async fn update<S: BuildHasher>(
    client: &GoogleSheetsClient,
    keys: &mut KnownKeys<S>,
    rows: Vec<Row>,
) -> Vec<UpdateOutcome> {
    let (done, outcome) = oneshot::channel();
    let job = UpdateJob {
        seq: 0,
        rows,
        enqueued: Instant::now(),
        done,
    };
    update_jobs(client, "S", keys, vec![job]).await.unwrap();
    outcome.await.unwrap().unwrap()
}

fn count(sb: &Sandbox, endpoint: Endpoint) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.endpoint == endpoint)
        .count()
}

fn sheet(sb: &Sandbox) -> Vec<Vec<String>> {
    sb.rows(sb.spreadsheet_id(), "S").unwrap()
}

#[tokio::test]
async fn keys_of_one_hash_are_told_apart_by_their_cells() {
    let (sb, client) = sandbox().await;
    let mut keys = KnownKeys {
        rows: HashMap::new(),
        seed: OneHash,
        loaded: false,
    };
    let a = append(&client, &mut keys, vec![row("a", "1")]).await;
    assert_eq!((a.appended, a.already_present), (1, 0));
    // `b` has `a`'s hash: its cell is read (it holds `a`), then the column, and `b` is sent.
    let b = append(&client, &mut keys, vec![row("b", "2")]).await;
    assert_eq!(
        (b.appended, b.already_present),
        (1, 0),
        "a row lost to a hash"
    );
    assert_eq!(sheet(&sb), [["a", "1"], ["b", "2"]]);
    let (batch_gets, gets) = (count(&sb, Endpoint::BatchGet), count(&sb, Endpoint::Get));
    assert_eq!(batch_gets, 1, "the known row's cell was read");
    // A retried append of `b`, whose row the hash now holds: one cell read confirms it.
    let again = append(&client, &mut keys, vec![row("b", "2")]).await;
    assert_eq!((again.appended, again.already_present), (0, 1));
    assert_eq!(count(&sb, Endpoint::BatchGet), batch_gets + 1);
    assert_eq!(
        count(&sb, Endpoint::Get),
        gets,
        "confirmed without the column"
    );
    // A retried append of `a`: its hash's row holds `b`, so the column decides.
    let again = append(&client, &mut keys, vec![row("a", "1")]).await;
    assert_eq!((again.appended, again.already_present), (0, 1));
    assert_eq!(count(&sb, Endpoint::Get), gets + 1);
    assert_eq!(sheet(&sb), [["a", "1"], ["b", "2"]]);
    // The column read left the hash at `a`'s row: `b`'s update must not land there.
    let updated = update(&client, &mut keys, vec![row("b", "20")]).await;
    assert_eq!(updated, [UpdateOutcome::Updated { row: 2 }]);
    let updated = update(&client, &mut keys, vec![row("a", "10")]).await;
    assert_eq!(updated, [UpdateOutcome::Updated { row: 1 }]);
    assert_eq!(sheet(&sb), [["a", "10"], ["b", "20"]]);
    // A key never appended, with the same hash: not found, nothing written.
    let missing = update(&client, &mut keys, vec![row("c", "30")]).await;
    assert_eq!(missing, [UpdateOutcome::NotFound]);
    assert_eq!(sheet(&sb), [["a", "10"], ["b", "20"]]);
}

#[tokio::test]
async fn known_keys_hold_no_key_text() {
    let (sb, client) = sandbox().await;
    let mut keys = KnownKeys::<RandomState>::default();
    let rows: Vec<Row> = (0..100).map(|i| row(&format!("order-{i}"), "x")).collect();
    assert_eq!(append(&client, &mut keys, rows).await.appended, 100);
    assert_eq!(keys.rows.len(), 100);
    assert_eq!(keys.row("order-41"), Some(42));
    // A retried job of those rows appends nothing, after one read of their cells.
    let rows: Vec<Row> = (0..100).map(|i| row(&format!("order-{i}"), "x")).collect();
    let again = append(&client, &mut keys, rows).await;
    assert_eq!((again.appended, again.already_present), (0, 100));
    assert_eq!(sheet(&sb).len(), 100);
    assert!(!format!("{keys:?}").contains("order-"));
}
