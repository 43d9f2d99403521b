//! NATS JetStream: the only module that touches async-nats. It owns the
//! topology (job stream, a durable pull consumer per workflow, dead-letter stream,
//! job-state KV bucket, object store), the job message format, the worker
//! (`weft serve`: the pull loop in `worker`, one job's run and the one place
//! its message is settled in `job_run`, the job record's state machine in
//! `record`, checkpoints in `checkpoints`, the state store in `store`, the
//! cancel requests it watches in `cancel`) and the client side (`weft
//! submit`, `status`, `cancel`, `dlq`), the workflow registry workers
//! write and clients read (`registry`: what each served workflow is, its
//! input contract and step graph), with the dead-letter
//! format (bodies out of line, entries authenticated) in `dead_letter`.
//! Nothing is kept forever: records, checkpoints, objects and dead letters
//! have maximum ages (`topology`), and a finished job's checkpoints are
//! removed as soon as its outcome is durable (`checkpoints`).
//! Payloads (inputs, checkpoint items, outputs, dead-letter bodies) are
//! encrypted at rest when keys are configured, in `at_rest`. The HTTP
//! API's keys are stored and verified in `api_keys` (hashed, in the keys
//! bucket).
//!
//! Architecture invariant: a job message leaves the work queue only after
//! its outcome is durable elsewhere: a success in the job-state bucket, a
//! failure in the dead-letter stream. Everything else is redelivered.

mod api_keys;
mod at_rest;
mod cancel;
mod checkpoints;
mod client;
mod dead_letter;
mod depth;
mod job_run;
mod listing;
mod message;
mod record;
mod registry;
mod state;
mod store;
mod topology;
mod worker;

pub use api_keys::{
    API_KEY_SECRET_BYTES, API_KEY_TOKEN_PREFIX, ApiKeyChanged, ApiKeyError, ApiKeyRecord, KeyRejected,
    MAX_API_KEY_CREATED_BY_BYTES, MAX_API_KEY_NAME_BYTES, MAX_API_KEY_SCOPES, check_key_state, valid_key_id,
};
pub use at_rest::{AT_REST_KEYS_SECRET, AtRestError, Keyring};
pub use cancel::{CANCEL_SNAPSHOT_WAIT, MAX_CANCEL_REASON_BYTES, MAX_CANCELLED_BY_BYTES};
pub use client::{CancelError, CancelOutcome, MAX_CANCEL_SEARCH, QueueClient, SubmitOutcome};
pub use dead_letter::{DeadLetter, DeadLetterEntry, DeadLetterError, DeadLetterProblem, StoredBody};
pub use depth::{ConsumerDepth, WorkflowQueue};
pub use listing::{
    IdempotencyClaim, IdempotentSubmission, JobFilter, JobPage, JobSummary, MAX_LIST_PAGE, MAX_LIST_SCAN,
};
pub use message::{JobInput, JobMessage};
pub use registry::{DEFAULT_WORKFLOWS_BUCKET, StepInfo, WorkflowInfo};
pub use state::{Cancellation, JobRecord, JobState};
pub use topology::{
    DEFAULT_DEAD_LETTER_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_OBJECT_MAX_AGE, DEFAULT_RECORD_MAX_AGE, QueueConfig,
    connect,
};
pub use worker::{DEFAULT_CHECKPOINT_DELAY, DEFAULT_MAX_INPUT_BYTES, Worker, WorkerConfig, WorkerSummary};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Could not connect to NATS.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The server URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A stream, consumer or bucket exists with settings this host cannot use.
    #[error(
        "{what} `{name}` already exists with {setting} = {found}, but this host needs {wanted}; delete it or configure the same value"
    )]
    Incompatible {
        /// Kind of object (`consumer`, `stream`).
        what: &'static str,
        /// Its name.
        name: String,
        /// The differing setting.
        setting: &'static str,
        /// The existing value.
        found: String,
        /// The value this host wants.
        wanted: String,
    },
    /// A JetStream request failed.
    #[error("{action}: {reason}")]
    JetStream {
        /// What the host was doing.
        action: String,
        /// The server's or client's error.
        reason: String,
    },
    /// Another consumer on the job stream would take jobs of a workflow this
    /// worker serves (a work-queue stream gives each job to one consumer).
    #[error(
        "consumer `{consumer}` on stream `{stream}` (filter {filter}) would also take jobs of workflow `{workflow}`; \
         a work-queue stream gives each job to one consumer only, so delete it (`nats consumer rm {stream} {consumer}`) \
         or give Weft its own subject prefix"
    )]
    OverlappingConsumer {
        /// The job stream.
        stream: String,
        /// The other consumer.
        consumer: String,
        /// Its filter subjects.
        filter: String,
        /// A workflow whose jobs it would take.
        workflow: String,
    },
    /// A job id or workflow name is not usable as a key or subject token.
    #[error("{0}")]
    Invalid(String),
    /// Stored data is encrypted with a key this process lacks, or does not
    /// decrypt.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    /// A dead letter cannot be replayed, or its body cannot be read back.
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    /// Two workflows to serve have the same name: their jobs share one
    /// subject, so one would silently shadow the other.
    #[error(
        "workflows {first} and {second} are both named `{name}`; jobs on `weft.jobs.{name}` could only reach one, so rename one of them"
    )]
    DuplicateWorkflow {
        /// The shared name.
        name: String,
        /// Where the first one came from.
        first: String,
        /// Where the second one came from.
        second: String,
    },
}

impl QueueError {
    pub(crate) fn js(action: impl Into<String>, error: impl std::fmt::Display) -> Self {
        QueueError::JetStream { action: action.into(), reason: error.to_string() }
    }
}

/// Whether `id` is usable as a job id: 1-128 of `A-Z a-z 0-9 _ -`.
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `name` is usable as a workflow subject token.
pub fn valid_workflow_name(name: &str) -> bool {
    valid_job_id(name)
}
