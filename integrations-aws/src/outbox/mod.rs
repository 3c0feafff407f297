//! Core's durable outbox for services on many machines (feature `outbox`): events and jobs in
//! DynamoDB with conditional writes, the work queue in SQS with its dead-letter queue.
//!
//! [`DynamoSqsOutbox`] implements [`OutboxStore`](integrations_outbox::OutboxStore) and
//! passes core's shared behaviour suite; core's `Dispatcher` runs on it unchanged.
//!
//! # DynamoDB is the record, SQS is the doorbell
//! Every decision — is this event new, who holds this job, may it be claimed, is it dead — is a
//! conditional write on the DynamoDB item, evaluated on the store's injectable clock. An SQS
//! message only says "job X may be claimable now"; a message that is lost, duplicated, early or
//! late changes nothing but latency. That is what makes the two-system design correct without
//! a distributed transaction between them.
//!
//! ## Table (`pk` / `sk`, plus the index `status-due-index` on `status` / `due`, keys only)
//! | item | `pk` | `sk` | `status` | `due` (index sort key) |
//! |---|---|---|---|---|
//! | event (the dedup record) | `EVT#{event_id}` | `EVENT` | `event` | recorded at |
//! | job | `EVT#{event_id}` | `JOB#{nn}` | `pending` | `available_at` (retry time) |
//! | | | | `leased` | `lease_expires_at` |
//! | | | | `done` | `updated_at` (for purge) |
//! | | | | `dead` | `created_at` (oldest job first) |
//!
//! `due` is `{millis:016}#{event_id}#{nn}`, so string order is time order and "claimable now"
//! is one key-range query per state. A job's [`JobId`](integrations_outbox::JobId) is
//! `{event_id}#{n}` (`evt_1#0`); an event and its jobs share a partition. Job items also hold
//! kind, payload (JSON text), idempotency key, attempts, lease token and holder, the last
//! [`ErrorRecord`](integrations_outbox::ErrorRecord) (JSON text), the receipt handle
//! of the SQS message last received for the job, the W3C `traceparent` of the span that recorded
//! it (when there was one), and the random id of the `complete`/`fail`
//! call that last settled it (a call whose write was applied but whose answer was lost is
//! retried by the policy; the retry's condition fails, and the id tells the call it was its own
//! write rather than a lost lease; a claim recognises its own lease token the same way).
//!
//! ## Operations
//! * **`record_event`** is one `TransactWriteItems`: the event record and every job, each `Put`
//!   conditioned on `attribute_not_exists(pk)`. A redelivered event fails the event's condition,
//!   the whole transaction is cancelled (`TransactionCanceledException`, reason
//!   `ConditionalCheckFailed`) and nothing is written:
//!   [`RecordOutcome::Duplicate`](integrations_outbox::RecordOutcome::Duplicate). A
//!   `ClientRequestToken` makes a retried attempt whose first answer was lost a success, not a
//!   false duplicate. *After* the commit, one message per job goes to the queue
//!   (`SendMessageBatch`); if that fails the jobs are still recorded and the sweep below claims
//!   them.
//! * **`claim`** first receives up to `min(max, 10)` messages (a short poll by default,
//!   [`DynamoSqsOutbox::with_receive_wait`] to long-poll) with the lease as their visibility
//!   timeout, and claims each named job with one conditional `UpdateItem`:
//!   `(pending AND available_at <= now) OR (leased AND lease_expires_at <= now AND attempts <
//!   max_attempts)` → `leased`, a fresh random lease token, `attempts + 1`. A message whose job
//!   is done, dead or gone is deleted; one whose job is not due yet (a later retry, another
//!   worker's live lease) is hidden until then (`ChangeMessageVisibility`). If that yields fewer
//!   than `max`, the **sweep** queries the index for `pending` and `leased` jobs whose `due` has
//!   passed, oldest first, and claims them the same way. The sweep makes the clock, not SQS's
//!   timers, the source of truth: it covers messages lost after a commit, messages SQS redrove
//!   early, retry times and lease expiries, and stores whose clock is not the wall clock. A job
//!   whose last allowed attempt's lease expired is dead-lettered (error code `lease_expired`)
//!   instead of claimed. Two workers can never both hold a job: only one conditional update
//!   wins.
//! * **`complete`** / **`fail`** are conditional on `status = leased AND lease_token = :token`
//!   (fencing: a worker whose lease passed to another gets `LEASE_LOST`). `complete` marks the
//!   job done and deletes its message; `fail` makes it pending from `retry_at` and hides the
//!   message until then (at most 12 hours, SQS's limit; the sweep covers longer delays), or, for
//!   a permanent failure or the last attempt, dead-letters it and deletes the message.
//! * **`replay`** moves a dead job back to pending (attempts reset, conditional on `dead`) and
//!   sends a new message. **`dead_letters`** queries the index's `dead` entries and reads each
//!   back consistently. **`purge`** deletes done jobs updated before the cut-off, then event
//!   records older than it whose partition holds no job.
//!
//! ## The two dead-letter queues
//! DynamoDB's `dead` status is **the** dead-letter queue: it is what
//! [`dead_letters`](integrations_outbox::OutboxStore::dead_letters),
//! [`dead_letter`](integrations_outbox::OutboxStore::dead_letter) and
//! [`replay`](integrations_outbox::OutboxStore::replay) read and change, and it holds
//! the job with its error. The SQS queue's own dead-letter queue (`<queue>-dlq`, from
//! [`DynamoSqsOutbox::create_resources`]) catches *messages* no worker ever settles within
//! `max_receive_count` receives: poison messages this store did not write (left alone by
//! `claim`), and messages whose job kept killing its worker. A message redriven there never
//! loses a job — its job is still in DynamoDB and the sweep claims it, or the lease-expiry
//! rule dead-letters it in DynamoDB — so the SQS DLQ is for diagnosing stray messages only;
//! drain it with [`SqsClient`](crate::sqs::SqsClient) when it fills.
//!
//! ## Consistency, cost and limits
//! * The index is eventually consistent (usually well under a second on AWS): a sweep may miss
//!   a job written a moment ago (the next claim finds it) or try one that just changed (its
//!   conditional write fails harmlessly). [`counts`](integrations_outbox::OutboxStore::counts)
//!   is five `Select: COUNT` queries on the index: eventually consistent, and its read cost
//!   grows with the number of jobs — an admin call, not one for every request. Purge done jobs
//!   regularly to keep it cheap.
//! * An idle claim costs one `ReceiveMessage` and two index queries; under load the queue fills
//!   each claim and the sweep does not run. Each job costs one transaction share at record time
//!   and about two writes per attempt.
//! * Order: the sweep takes the oldest due jobs first and a claim's result is sorted oldest job
//!   first, but SQS standard queues order messages only on a best-effort basis, so under load
//!   "oldest first" holds approximately. Use a standard queue (not FIFO: one message group
//!   would hold back every later job).
//! * All jobs of the outbox share four index partition-key values (`pending`, `leased`, …),
//!   and every state change writes the index. DynamoDB's per-partition limit (about 1,000
//!   writes per second; adaptive capacity can split a hot key by sort key) therefore bounds
//!   the outbox at several hundred job state changes per second. Sharding the status value
//!   would lift it; that is not built.
//! * At most [`DynamoSqsOutbox::MAX_JOBS_PER_EVENT`] (99) jobs per event — a transaction holds
//!   100 items; event ids up to [`DynamoSqsOutbox::MAX_EVENT_ID_BYTES`] (512) bytes; a job's item
//!   (payload included) must stay under DynamoDB's 400 KB item limit. Workers' clocks must be
//!   synchronised: leases are compared across machines.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> integrations_core::Result<()> {
//! use std::sync::Arc;
//! use integrations_aws::AwsBuilder;
//! use integrations_aws::outbox::DynamoSqsOutbox;
//! use integrations_outbox::{Dispatcher, handler_fn};
//!
//! let config = AwsBuilder::from_env().build()?;
//! let queue = std::env::var("OUTBOX_QUEUE_URL").unwrap_or_default();
//! let outbox = Arc::new(DynamoSqsOutbox::new(&config, "outbox", queue));
//! let dispatcher = Dispatcher::builder(outbox)
//!     .handler("email.confirmation", handler_fn(|_job| async { Ok(()) }))
//!     .build()?;
//! dispatcher.run_until_idle().await?;
//! # Ok(()) }
//! ```

mod claim;
mod item;
mod queue;
mod store;
mod table;
#[cfg(test)]
mod tests;

pub use store::DynamoSqsOutbox;

/// Name of the status index.
const INDEX: &str = "status-due-index";
