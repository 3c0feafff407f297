//! Service tests against the `moto` emulator in server mode with SigV4 checking on (every request
//! after the harness's bootstrap must be signed with the IAM key it created).
//! Start it with `.ci/moto.sh start`.

mod moto {
    pub(crate) mod auth;
    pub(crate) mod cloudwatch;
    pub(crate) mod dynamodb;
    #[cfg(feature = "outbox")]
    pub(crate) mod outbox;
    pub(crate) mod ses;
    pub(crate) mod sns;
    pub(crate) mod sqs;
    #[cfg(feature = "opentelemetry")]
    pub(crate) mod trace;
}
#[path = "moto/support.rs"]
mod support;
