//! The workflow registry: which workflows the fleet serves, for clients
//! that do not have the workflow files (`weft submit`, the HTTP API). Each
//! worker, when it starts, writes a [`WorkflowInfo`] for every workflow it
//! serves (name, version, revision, description, input contract, step
//! graph) into a KV bucket without a maximum age (`weft-workflows`, one key
//! per workflow name); [`super::QueueClient::workflow`] and
//! [`super::QueueClient::workflows`] read it. It never holds job data, and
//! nothing on a job's path reads it: a worker checks inputs against its own
//! loaded workflow.
//!
//! The record is the last starting worker's: during a rolling upgrade it
//! may describe the newer or the older revision for a while. A workflow no
//! worker serves any more stays listed (no maximum age: an idle fleet must
//! not forget its workflows); its jobs wait, as they would without the
//! registry.

use async_nats::jetstream::{self, kv};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::QueueError;
use super::state::now_ms;
use super::topology::Topology;
use crate::LoadedWorkflow;
use crate::workflow::{InputContract, InputViolation};

/// [`super::QueueConfig::workflows_bucket`] unless configured.
pub const DEFAULT_WORKFLOWS_BUCKET: &str = "weft-workflows";

/// What the registry says about one workflow: enough to check an input
/// and to show the workflow's graph, without its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowInfo {
    /// The workflow's name (its jobs' subject token).
    pub name: String,
    /// Its `version` as written.
    pub version: String,
    /// Which text of the file it is (see [`LoadedWorkflow::revision`]).
    pub revision: String,
    /// Its description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What a job's input must be, if the workflow says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputContract>,
    /// The steps in file order, with what each needs.
    pub steps: Vec<StepInfo>,
    /// The worker that wrote this record.
    pub registered_by: String,
    /// When, in milliseconds since the Unix epoch.
    pub registered_at_ms: u64,
}

/// One step of a registered workflow's graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInfo {
    /// The step's id.
    pub id: String,
    /// The plugin it runs, as the file names it.
    pub plugin: String,
    /// The ids of the steps whose outputs it consumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
}

impl WorkflowInfo {
    /// The record a worker named `worker` writes for `workflow`.
    pub fn of(workflow: &LoadedWorkflow, worker: &str) -> Self {
        let spec = workflow.workflow();
        WorkflowInfo {
            name: spec.name.clone(),
            version: spec.version.clone(),
            revision: workflow.revision().to_owned(),
            description: spec.description.clone(),
            input: spec.input.clone(),
            steps: spec
                .steps
                .iter()
                .map(|step| StepInfo { id: step.id.clone(), plugin: step.plugin.clone(), needs: step.needs.clone() })
                .collect(),
            registered_by: worker.to_owned(),
            registered_at_ms: now_ms(),
        }
    }

    /// Checks `input` against the workflow's contract (any input passes
    /// when it has none); see [`InputContract::check`].
    ///
    /// # Errors
    ///
    /// The [`InputViolation`], in words for the user.
    pub fn check_input(&self, input: &[u8], declared_media_type: Option<&str>) -> Result<(), InputViolation> {
        match &self.input {
            Some(contract) => contract.check(input, declared_media_type),
            None => Ok(()),
        }
    }
}

/// Opens the registry bucket, creating it when missing (workers only).
async fn open_or_create(topology: &Topology) -> Result<kv::Store, QueueError> {
    let js = &topology.js;
    let bucket = &topology.config.workflows_bucket;
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: bucket.clone(),
            history: 1,
            storage: jetstream::stream::StorageType::File,
            num_replicas: topology.config.replicas,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another worker created it meanwhile.
        Err(error) => {
            js.get_key_value(bucket).await.map_err(|_| QueueError::js(format!("creating bucket `{bucket}`"), error))
        }
    }
}

/// Writes a record for every workflow in `workflows` (one KV put each, at
/// start-up only).
///
/// # Errors
///
/// [`QueueError::JetStream`] when the bucket cannot be opened or written.
pub(crate) async fn register(topology: &Topology, records: &[WorkflowInfo]) -> Result<(), QueueError> {
    let store = open_or_create(topology).await?;
    for record in records {
        let bytes = serde_json::to_vec(record).map_err(|e| QueueError::js("encoding a workflow record", e))?;
        store
            .put(&record.name, bytes.into())
            .await
            .map_err(|e| QueueError::js(format!("registering workflow `{}`", record.name), e))?;
    }
    Ok(())
}

/// The registry bucket, or `None` when no worker has created it yet.
async fn open(topology: &Topology) -> Result<Option<kv::Store>, QueueError> {
    let bucket = &topology.config.workflows_bucket;
    let action = || format!("opening bucket `{bucket}`");
    // Its stream first, to tell "no such bucket" from an unreachable server.
    match topology.js.get_stream(format!("KV_{bucket}")).await {
        Ok(_) => {}
        Err(error) => {
            return match error.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(inner)
                    if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(QueueError::js(action(), error)),
            };
        }
    }
    topology.js.get_key_value(bucket).await.map(Some).map_err(|e| QueueError::js(action(), e))
}

fn decode(name: &str, bytes: &[u8]) -> Result<WorkflowInfo, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::js(format!("decoding the registry's record of `{name}`"), e))
}

/// The record of workflow `name`, if a worker registered it.
///
/// # Errors
///
/// [`QueueError::JetStream`] when the bucket cannot be read or a record
/// does not decode.
pub(crate) async fn read(topology: &Topology, name: &str) -> Result<Option<WorkflowInfo>, QueueError> {
    if !super::valid_workflow_name(name) {
        return Ok(None);
    }
    let Some(store) = open(topology).await? else { return Ok(None) };
    let entry = store.get(name).await.map_err(|e| QueueError::js(format!("reading the registry's `{name}`"), e))?;
    entry.map(|bytes| decode(name, &bytes)).transpose()
}

/// Every registered workflow, sorted by name.
///
/// # Errors
///
/// As [`read`].
pub(crate) async fn list(topology: &Topology) -> Result<Vec<WorkflowInfo>, QueueError> {
    let Some(store) = open(topology).await? else { return Ok(Vec::new()) };
    let mut names = Vec::new();
    match store.keys().await {
        Ok(mut keys) => {
            while let Some(key) = keys.next().await {
                names.push(key.map_err(|e| QueueError::js("listing the registry", e))?);
            }
        }
        Err(error) => return Err(QueueError::js("listing the registry", error)),
    }
    names.sort();
    let mut records = Vec::with_capacity(names.len());
    for name in names {
        let entry =
            store.get(&name).await.map_err(|e| QueueError::js(format!("reading the registry's `{name}`"), e))?;
        if let Some(bytes) = entry {
            records.push(decode(&name, &bytes)?);
        }
    }
    Ok(records)
}
