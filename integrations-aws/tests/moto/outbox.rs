//! `DynamoSqsOutbox` on moto: core's behaviour suite, plus the properties that rest on DynamoDB
//! and SQS themselves (transactions, conditional claims, the queue's messages).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use integrations_aws::outbox::DynamoSqsOutbox;
use integrations_aws::sqs::{QueueWithDlq, SendOptions, SqsClient};
use integrations_core::clock::{Clock, FixedClock};
use integrations_core::{Error, ErrorKind};
use integrations_outbox::behaviour::outbox_store_suite;
use integrations_outbox::{
    FailOutcome, JobId, JobState, LEASE_LOST, NewJob, OutboxStore, RecordOutcome,
};
use serde_json::json;

use crate::support::{Moto, moto_or_skip, unique};

const LEASE: Duration = Duration::from_secs(30);

struct Fixture {
    outbox: DynamoSqsOutbox,
    queue: QueueWithDlq,
    sqs: SqsClient,
    table: String,
}

async fn fixture(m: &Moto, clock: Option<FixedClock>) -> Fixture {
    let config = m.config();
    let table = unique("outbox");
    let queue = DynamoSqsOutbox::create_resources(
        &config,
        &table,
        &unique("outbox-jobs"),
        DynamoSqsOutbox::DEFAULT_MAX_RECEIVE_COUNT,
    )
    .await
    .expect("create resources");
    let mut outbox = DynamoSqsOutbox::new(&config, &table, &queue.queue_url);
    if let Some(c) = clock {
        outbox = outbox.with_clock(c);
    }
    Fixture {
        outbox,
        queue,
        sqs: SqsClient::new(&config),
        table,
    }
}

/// (visible, in flight) messages of the job queue.
async fn depth(f: &Fixture) -> (u64, u64) {
    let a = f.sqs.queue_attributes(&f.queue.queue_url).await.unwrap();
    let get = |k: &str| a.get(k).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    (
        get("ApproximateNumberOfMessages"),
        get("ApproximateNumberOfMessagesNotVisible"),
    )
}

fn job(kind: &str) -> NewJob {
    NewJob::new(kind, json!({ "order_id": "42", "kind": kind }))
}

fn ids(outcome: RecordOutcome) -> Vec<JobId> {
    match outcome {
        RecordOutcome::Recorded { job_ids } => job_ids,
        RecordOutcome::Duplicate => panic!("expected a first recording"),
    }
}

fn assert_lease_lost(r: integrations_core::Result<impl std::fmt::Debug>) {
    let e = r.expect_err("a stale lease must be refused");
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Conflict, Some(LEASE_LOST)),
        "{e}"
    );
}

#[tokio::test]
async fn behaviour_suite_passes() {
    let m = moto_or_skip!();
    let clock = FixedClock::from_unix(1_700_000_000);
    let f = fixture(&m, Some(clock.clone())).await;
    outbox_store_suite(&f.outbox, &clock).await;
    // Every message the suite caused was settled with its job: the suite's last step delivers
    // what was still pending (`evt_a`, recorded again after the purge) before it checks the
    // oldest pending age.
    assert_eq!(depth(&f).await, (0, 0), "messages left in the job queue");
    let delivered = f.outbox.job(&JobId::new("evt_a#0")).await.unwrap().unwrap();
    assert_eq!(delivered.state, JobState::Done);
}

#[tokio::test]
async fn duplicate_event_writes_nothing() {
    let m = moto_or_skip!();
    let f = fixture(&m, None).await;
    let first = ids(f
        .outbox
        .record_event("evt_dup", vec![job("email"), job("sheets")])
        .await
        .unwrap());
    assert_eq!(
        first.iter().map(JobId::as_str).collect::<Vec<_>>(),
        ["evt_dup#0", "evt_dup#1"]
    );
    assert_eq!(depth(&f).await, (2, 0), "one message per job");

    let again = f
        .outbox
        .record_event("evt_dup", vec![job("email"), job("sns"), job("extra")])
        .await
        .unwrap();
    assert_eq!(again, RecordOutcome::Duplicate);
    assert!(
        f.outbox
            .job(&JobId::new("evt_dup#2"))
            .await
            .unwrap()
            .is_none(),
        "the duplicate's third job must not exist"
    );
    let kind = f.outbox.job(&first[1]).await.unwrap().unwrap().job.kind;
    assert_eq!(kind, "sheets", "the first recording's jobs are untouched");
    let c = f.outbox.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (1, 2), "{c:?}");
    assert_eq!(depth(&f).await, (2, 0), "a duplicate sends no message");

    // One job DynamoDB refuses (an item over 400 KB) cancels the whole transaction.
    let huge = NewJob::new("big", json!({ "blob": "x".repeat(500 * 1024) }));
    let err = f
        .outbox
        .record_event("evt_big", vec![job("email"), huge])
        .await
        .expect_err("an oversized job");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        f.outbox
            .job(&JobId::new("evt_big#0"))
            .await
            .unwrap()
            .is_none()
    );
    let c = f.outbox.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (1, 2), "nothing of evt_big: {c:?}");
    // Not recorded, so a corrected redelivery is new.
    let retried = f
        .outbox
        .record_event("evt_big", vec![job("email")])
        .await
        .unwrap();
    assert!(!retried.is_duplicate());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_job() {
    let m = moto_or_skip!();
    let f = fixture(&m, None).await;
    let mut all = HashSet::new();
    for e in 0..3 {
        let jobs = (0..8)
            .map(|i| job("bulk").with_key_suffix(i.to_string()))
            .collect();
        all.extend(ids(f
            .outbox
            .record_event(&format!("evt_c{e}"), jobs)
            .await
            .unwrap()));
    }
    // Six workers, each its own store instance as on six machines, racing on one table with
    // small batches: three take messages from the queue, three see no queue at all (every
    // receive fails) and so claim only by sweeping DynamoDB, contending for the same oldest jobs.
    let missing = format!("{}/123456789012/{}", m.endpoint, unique("none"));
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..6 {
        let queue = if w % 2 == 0 {
            &f.queue.queue_url
        } else {
            &missing
        };
        let outbox = DynamoSqsOutbox::new(&m.config(), &f.table, queue);
        let barrier = barrier.clone();
        tasks.spawn(async move {
            let worker = format!("w{w}");
            let mut got = Vec::new();
            barrier.wait().await;
            loop {
                let batch = outbox
                    .claim(&worker, 3, Duration::from_secs(300))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch);
            }
        });
    }
    let mut claimed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        claimed.extend(r.unwrap());
    }
    let unique_ids: HashSet<JobId> = claimed.iter().map(|c| c.job.id.clone()).collect();
    assert_eq!(claimed.len(), 24, "each job claimed exactly once");
    assert_eq!(unique_ids, all);
    assert!(
        claimed.iter().all(|c| c.job.attempt == 1),
        "no job was claimed twice"
    );
    for c in &claimed {
        f.outbox.complete(&c.job.id, &c.lease).await.unwrap();
    }
    assert_eq!(f.outbox.counts().await.unwrap().done, 24);
    assert_eq!(depth(&f).await, (0, 0));
}

#[tokio::test]
async fn stale_tokens_are_refused() {
    let m = moto_or_skip!();
    let clock = FixedClock::from_unix(1_700_000_000);
    let f = fixture(&m, Some(clock.clone())).await;
    let id = ids(f
        .outbox
        .record_event("evt_s", vec![job("a"), job("b")])
        .await
        .unwrap());
    let first = f.outbox.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(first.len(), 2);
    let (a, b) = (&first[0], &first[1]);
    assert_eq!(a.job.id, id[0], "oldest first");

    // Another job's token does not fence this one.
    assert_lease_lost(f.outbox.complete(&a.job.id, &b.lease).await);

    clock.advance(LEASE + Duration::from_secs(1));
    let second = f.outbox.claim("w2", 1, LEASE).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!((&second[0].job.id, second[0].job.attempt), (&a.job.id, 2));
    let rec = f.outbox.job(&a.job.id).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.leased_by.as_deref()),
        (JobState::Leased, Some("w2"))
    );

    assert_lease_lost(f.outbox.complete(&a.job.id, &a.lease).await);
    let err = Error::unavailable("late").with_provider("test");
    assert_lease_lost(
        f.outbox
            .fail(&a.job.id, &a.lease, (&err).into(), None)
            .await,
    );
    f.outbox
        .complete(&a.job.id, &second[0].lease)
        .await
        .unwrap();
    assert_lease_lost(f.outbox.complete(&a.job.id, &second[0].lease).await);
    assert_eq!(
        f.outbox.job(&a.job.id).await.unwrap().unwrap().state,
        JobState::Done
    );
}

#[tokio::test]
async fn dead_letter_and_replay_round_trip() {
    let m = moto_or_skip!();
    let clock = FixedClock::from_unix(1_700_000_000);
    let f = fixture(&m, Some(clock.clone())).await;
    let id = ids(f
        .outbox
        .record_event("evt_r", vec![job("email").with_max_attempts(2)])
        .await
        .unwrap())
    .remove(0);

    let c = f.outbox.claim("w1", 10, LEASE).await.unwrap().remove(0);
    assert_eq!(
        depth(&f).await,
        (0, 1),
        "claimed through its message, now in flight"
    );
    let retry_at = clock.now() + Duration::from_secs(10);
    let err = Error::rate_limited(Some(Duration::from_secs(10)), "slow down")
        .with_provider("sendgrid")
        .with_code("429");
    let out = f
        .outbox
        .fail(&id, &c.lease, (&err).into(), Some(retry_at))
        .await
        .unwrap();
    assert_eq!(
        out,
        FailOutcome::Retrying {
            attempts: 1,
            retry_at
        }
    );
    assert_eq!(
        depth(&f).await,
        (0, 1),
        "the message waits for the retry time"
    );
    assert!(f.outbox.claim("w1", 10, LEASE).await.unwrap().is_empty());

    clock.advance(Duration::from_secs(10));
    let c = f.outbox.claim("w1", 10, LEASE).await.unwrap().remove(0);
    assert_eq!(c.job.attempt, 2);
    let declined =
        Error::declined(Some("card_declined".into()), None, "no").with_provider("stripe");
    let out = f
        .outbox
        .fail(&id, &c.lease, (&declined).into(), Some(retry_at))
        .await
        .unwrap();
    assert_eq!(
        out,
        FailOutcome::DeadLettered { attempts: 2 },
        "last attempt"
    );
    assert_eq!(depth(&f).await, (0, 0), "a dead job's message is deleted");

    let dead = f.outbox.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.id, id);
    assert_eq!(dead[0].error.kind, ErrorKind::Declined);
    assert_eq!(dead[0].error.code.as_deref(), Some("card_declined"));
    assert_eq!(
        dead[0].job.payload,
        json!({ "order_id": "42", "kind": "email" })
    );
    assert_eq!(f.outbox.counts().await.unwrap().dead, 1);

    f.outbox.replay(&id).await.unwrap();
    let rec = f.outbox.job(&id).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.job.attempt), (JobState::Pending, 0));
    assert_eq!(
        rec.last_error.map(|e| e.kind),
        Some(ErrorKind::Declined),
        "kept for triage"
    );
    assert_eq!(depth(&f).await, (1, 0), "replay re-enqueues the job");
    let c = f.outbox.claim("w2", 10, LEASE).await.unwrap().remove(0);
    assert_eq!((&c.job.id, c.job.attempt), (&id, 1));
    assert_eq!(depth(&f).await, (0, 1));
    f.outbox.complete(&id, &c.lease).await.unwrap();
    assert_eq!(depth(&f).await, (0, 0));
    let e = f.outbox.replay(&id).await.expect_err("a done job");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(f.outbox.dead_letters(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn jobs_whose_messages_were_lost_are_swept_from_dynamodb() {
    let m = moto_or_skip!();
    let f = fixture(&m, None).await;
    // A queue that does not exist: every send fails after the transaction committed.
    let missing = format!("{}/123456789012/{}", m.endpoint, unique("gone"));
    let outbox = DynamoSqsOutbox::new(&m.config(), &f.table, missing);
    let id = ids(outbox
        .record_event("evt_l", vec![job("email")])
        .await
        .unwrap())
    .remove(0);
    let c = outbox.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(c.len(), 1, "claimed from DynamoDB without a message");
    assert_eq!(c[0].job.id, id);
    outbox.complete(&id, &c[0].lease).await.unwrap();
    assert_eq!(
        outbox.job(&id).await.unwrap().unwrap().state,
        JobState::Done
    );
}

#[tokio::test]
async fn stray_and_stale_messages() {
    let m = moto_or_skip!();
    let f = fixture(&m, None).await;
    let id = ids(f
        .outbox
        .record_event("evt_m", vec![job("email")])
        .await
        .unwrap())
    .remove(0);
    let c = f.outbox.claim("w1", 10, LEASE).await.unwrap().remove(0);
    f.outbox.complete(&id, &c.lease).await.unwrap();
    assert_eq!(depth(&f).await, (0, 0));

    // A duplicate delivery of the done job's message, and a message this store never wrote.
    let body = format!("{{\"job_id\":\"{}\"}}", id.as_str());
    f.sqs
        .send(&f.queue.queue_url, &body, &SendOptions::new())
        .await
        .unwrap();
    f.sqs
        .send(&f.queue.queue_url, "poison", &SendOptions::new())
        .await
        .unwrap();
    assert_eq!(depth(&f).await, (2, 0));
    assert!(f.outbox.claim("w1", 10, LEASE).await.unwrap().is_empty());
    // The stale message is deleted; the poison one is left in flight for SQS's redrive to the
    // queue's dead-letter queue.
    assert_eq!(depth(&f).await, (0, 1));
    assert_eq!(
        f.outbox.job(&id).await.unwrap().unwrap().state,
        JobState::Done
    );
}
