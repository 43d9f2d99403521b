//! Queue depth per workflow: how many jobs wait in the job stream for each
//! workflow, and what its consumer holds (undelivered, in flight, workers
//! waiting for work). Read-only: `weft status` without a job id prints it,
//! and a workflow nobody serves shows its jobs waiting with no consumer.

use std::collections::BTreeMap;

use async_nats::jetstream::consumer;
use futures::TryStreamExt as _;
use serde::Serialize;

use super::{QueueClient, QueueError};

/// One workflow's share of the job stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowQueue {
    /// The workflow (the last token of its job subject).
    pub workflow: String,
    /// Jobs in the stream for this workflow: waiting and in flight (a job
    /// leaves the stream when its outcome is recorded).
    pub jobs: u64,
    /// Its consumer, once a worker serving the workflow has started; `None`
    /// when no worker ever served it here: its jobs wait.
    pub consumer: Option<ConsumerDepth>,
}

/// What a workflow's consumer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerDepth {
    /// The consumer's name.
    pub name: String,
    /// Jobs not yet delivered to any worker.
    pub undelivered: u64,
    /// Jobs delivered and not yet settled (running, or waiting for a
    /// redelivery after a worker stopped).
    pub in_flight: u64,
    /// Pull requests waiting for jobs: workers idle on this workflow now.
    /// Zero with jobs undelivered means no live worker serves it.
    pub waiting_pulls: u64,
}

/// Queue depth of every workflow with jobs or a consumer, by name.
pub(crate) fn depths(
    subject_prefix: &str,
    consumer_prefix: &str,
    subject_counts: impl IntoIterator<Item = (String, u64)>,
    consumers: &[consumer::Info],
) -> Vec<WorkflowQueue> {
    let mut rows: BTreeMap<String, WorkflowQueue> = BTreeMap::new();
    let prefix = format!("{subject_prefix}.");
    for (subject, count) in subject_counts {
        let Some(workflow) = subject.strip_prefix(&prefix) else { continue };
        row(&mut rows, workflow).jobs += count;
    }
    let name_prefix = format!("{consumer_prefix}-");
    for info in consumers {
        let Some(workflow) = info.name.strip_prefix(&name_prefix) else { continue };
        if info.config.filter_subject != format!("{prefix}{workflow}") {
            continue;
        }
        row(&mut rows, workflow).consumer = Some(ConsumerDepth {
            name: info.name.clone(),
            undelivered: info.num_pending,
            in_flight: info.num_ack_pending as u64,
            waiting_pulls: info.num_waiting as u64,
        });
    }
    rows.into_values().collect()
}

fn row<'a>(rows: &'a mut BTreeMap<String, WorkflowQueue>, workflow: &str) -> &'a mut WorkflowQueue {
    rows.entry(workflow.to_string()).or_insert_with(|| WorkflowQueue {
        workflow: workflow.to_string(),
        jobs: 0,
        consumer: None,
    })
}

impl QueueClient {
    /// Queue depth per workflow: every workflow with jobs in the stream or a
    /// consumer, sorted by name.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the stream or its consumers cannot be read.
    pub async fn queue_depths(&self) -> Result<Vec<WorkflowQueue>, QueueError> {
        let topology = self.topology();
        let config = &topology.config;
        let counts: Vec<(String, usize)> = topology
            .jobs
            .info_with_subjects(format!("{}.>", config.jobs_subject_prefix))
            .await
            .map_err(|e| QueueError::js(format!("reading the subjects of stream `{}`", config.jobs_stream), e))?
            .try_collect()
            .await
            .map_err(|e| QueueError::js(format!("reading the subjects of stream `{}`", config.jobs_stream), e))?;
        let consumers: Vec<consumer::Info> = topology
            .jobs
            .consumers()
            .try_collect()
            .await
            .map_err(|e| QueueError::js(format!("listing the consumers of stream `{}`", config.jobs_stream), e))?;
        Ok(depths(
            &config.jobs_subject_prefix,
            &config.consumer_prefix,
            counts.into_iter().map(|(subject, count)| (subject, count as u64)),
            &consumers,
        ))
    }
}
