//! `/v1/dead-letters`: the jobs that failed for good, and replaying one.
//! A letter's body (the original job message, which can hold unmasked
//! input) is never returned; `weft dlq show` reads it for an operator.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Scope;
use super::{ApiState, Caller, Problem};
use crate::queue::DeadLetterEntry;

/// A dead letter, without the job's input.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeadLetterView {
    /// Its sequence in the dead-letter stream (an id for replay).
    sequence: u64,
    /// The job's id.
    job_id: String,
    /// Its workflow.
    workflow: String,
    /// Why it failed for good.
    reason: String,
    /// The failing step and error, when a step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    error: Option<serde_json::Value>,
    /// Every run of the job.
    #[schema(value_type = Vec<Object>)]
    history: Vec<serde_json::Value>,
    /// Whether a worker wrote it (only those are replayed).
    authenticated: bool,
}

impl DeadLetterView {
    fn of(entry: DeadLetterEntry) -> Self {
        let letter = entry.letter;
        DeadLetterView {
            sequence: entry.sequence,
            job_id: letter.job_id,
            workflow: letter.workflow,
            reason: letter.reason,
            error: letter.error,
            history: letter.history.iter().filter_map(|a| serde_json::to_value(a).ok()).collect(),
            authenticated: entry.authenticated,
        }
    }
}

/// Which dead letters to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeadLetterQuery {
    /// Only letters of this workflow.
    workflow: Option<String>,
}

/// Dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeadLetterList {
    /// Oldest first.
    dead_letters: Vec<DeadLetterView>,
}

/// Lists the dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "dead letters",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "The dead letters", body = DeadLetterList),
        (status = 400, description = "A malformed filter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadLetterList>, Problem> {
    caller.require(Scope::Read)?;
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let entries = state.queue().dead_letters().await?;
    let dead_letters = entries
        .into_iter()
        .filter(|e| query.workflow.as_deref().is_none_or(|w| w == e.letter.workflow))
        .map(DeadLetterView::of)
        .collect();
    Ok(Json(DeadLetterList { dead_letters }))
}

/// Whether to replay a job that succeeded or runs again since.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReplayQuery {
    /// Replay even a job that has since succeeded or is running.
    force: Option<bool>,
}

/// A replayed job.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Replayed {
    /// The job's id (the same as before).
    job_id: String,
    /// The job (`GET`).
    job: String,
}

/// Replays a dead letter (by job id or sequence): its job runs again.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/{id}/replay",
    tag = "dead letters",
    params(("id" = String, Path, description = "The job id or the letter's sequence"), ReplayQuery),
    responses(
        (status = 202, description = "Queued again", body = Replayed),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The letter is not replayed (unauthenticated, or the job ran since)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn replay(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ReplayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(axum::http::StatusCode, Json<Replayed>), Problem> {
    caller.require(Scope::Admin)?;
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let Some(entry) = state.queue().find_dead_letter(&id).await? else {
        return Err(Problem::not_found(format!(
            "no dead letter for `{}` (a job id or a sequence number from the list)",
            crate::text::printable(&id)
        )));
    };
    let job_id = state.queue().replay_with(&entry, query.force.unwrap_or(false)).await?;
    let job = format!("/v1/jobs/{job_id}");
    Ok((axum::http::StatusCode::ACCEPTED, Json(Replayed { job_id, job })))
}
