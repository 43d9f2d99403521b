//! `/v1/workflows/{workflow}/jobs` and `/v1/jobs/...`: submitting a job
//! (multipart upload, raw body or JSON; `Idempotency-Key`), reading it,
//! its result and its events (SSE), listing and cancelling jobs.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::auth::Scope;
use super::{ApiState, Caller, Problem};
use crate::queue::{
    CancelOutcome, IdempotencyClaim, IdempotentSubmission, JobFilter, JobRecord, JobState, JobSummary, MAX_LIST_PAGE,
};

/// How often an event stream reads the record again when no change was
/// reported (a watch can miss one when a cluster node restarts).
const EVENTS_REREAD: Duration = Duration::from_secs(2);

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// A job just accepted.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Accepted {
    /// The job's id.
    job_id: String,
    /// Its workflow.
    workflow: String,
    /// `queued`: no worker has it yet.
    state: String,
    /// True when this request repeated an earlier one (same
    /// `Idempotency-Key`, or the same job id): no second job was made.
    duplicate: bool,
    /// Where to follow it.
    links: JobLinks,
}

/// Where a job's resources are.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobLinks {
    /// The job (`GET`).
    #[serde(rename = "self")]
    this: String,
    /// Its result once it succeeded (`GET`).
    result: String,
    /// Its state changes as Server-Sent Events (`GET`).
    events: String,
    /// Cancels it (`POST`).
    cancel: String,
}

impl JobLinks {
    fn of(job_id: &str) -> Self {
        JobLinks {
            this: format!("/v1/jobs/{job_id}"),
            result: format!("/v1/jobs/{job_id}/result"),
            events: format!("/v1/jobs/{job_id}/events"),
            cancel: format!("/v1/jobs/{job_id}/cancel"),
        }
    }
}

/// A job: where it is, its runs, and the last run's report.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobView {
    /// The job's id.
    job_id: String,
    /// Its workflow (empty while no worker has picked it up and the
    /// server could not tell it).
    workflow: String,
    /// `queued`, `running`, `retrying`, `succeeded`, `dead_lettered` or `cancelled`.
    state: String,
    /// Runs so far.
    attempts: u32,
    /// Every run: worker, start, outcome, error, retry delay.
    #[schema(value_type = Vec<Object>)]
    history: Vec<serde_json::Value>,
    /// Times it was replayed from the dead-letter stream.
    replays: u32,
    /// The revision of the workflow file it runs under.
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<String>,
    /// Who cancelled it, when and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    cancellation: Option<serde_json::Value>,
    /// The last run's report (steps, timings, errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    report: Option<serde_json::Value>,
    /// Where its resources are.
    links: JobLinks,
}

impl JobView {
    fn of(record: JobRecord) -> Self {
        JobView {
            links: JobLinks::of(&record.job_id),
            job_id: record.job_id,
            workflow: record.workflow,
            state: record.state.name().to_string(),
            attempts: record.attempts,
            history: record.history.iter().filter_map(|a| serde_json::to_value(a).ok()).collect(),
            replays: record.replays,
            revision: record.revision,
            cancellation: record.cancellation.and_then(|c| serde_json::to_value(c).ok()),
            report: record.report,
        }
    }

    fn queued(job_id: &str, workflow: String) -> Self {
        let mut view = JobView::of(JobRecord::new(job_id, &workflow));
        view.workflow = workflow;
        view
    }
}

/// Submits a job to a workflow.
///
/// The input is the request body: a `multipart/form-data` upload (its
/// `file` part, or its first part), a JSON document (`application/json`),
/// or any other body as it is (`application/pdf`, `text/plain`). The body
/// is capped (`413`) and its bytes must be what it claims (`415`: a
/// Windows executable sent as `application/pdf` is refused).
#[utoipa::path(
    post,
    path = "/v1/workflows/{workflow}/jobs",
    tag = "jobs",
    params(
        ("workflow" = String, Path, description = "The workflow's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request return the same job (1-255 visible ASCII characters)"),
    ),
    request_body(content(
        (Vec<u8> = "application/pdf"),
        (Object = "application/json"),
        (String = "text/plain"),
        (Object = "multipart/form-data"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 202, description = "Accepted: the job is queued", body = Accepted),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the upload cap", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not what it claims to be", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The input breaks the workflow's contract (its JSON Schema), or the Idempotency-Key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn submit(
    State(state): State<ApiState>,
    caller: Caller,
    Path(workflow): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    caller.require(Scope::Submit)?;
    let info = state.workflow(&workflow)?;
    let (workflow, contract) = (info.name.clone(), info.input.clone());
    let idempotency_key = idempotency_key(request.headers())?;
    let input = read_input(&state, request).await?;
    if let Some(contract) = &contract {
        contract.check(&input.bytes, input.declared.as_deref()).map_err(contract_problem)?;
    }
    check_type(&input)?;
    let mut job_id = None;
    if let Some(key) = &idempotency_key {
        let scoped = scoped_key(&caller.0.id, key);
        let submission = IdempotentSubmission {
            job_id: format!("idem-{}", &scoped[..32]),
            workflow: workflow.clone(),
            input_sha256: weft_core::hex(&Sha256::digest(&input.bytes)),
        };
        match state.queue().claim_idempotency_key(&scoped, &submission).await? {
            IdempotencyClaim::New => job_id = Some(submission.job_id),
            IdempotencyClaim::Repeat(first) => {
                // Published already, unless the first request failed
                // between its claim and its publish: publish again under
                // the same id (the stream drops a duplicate).
                if state.queue().status(&first.job_id).await?.is_some() {
                    return Ok(accepted(&first.job_id, &workflow, true));
                }
                job_id = Some(first.job_id);
            }
            IdempotencyClaim::Conflict(first) => {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    format!(
                        "Idempotency-Key `{}` was used for another request (job `{}` of workflow `{}` with other \
                         input); use a new key for a new job",
                        crate::text::printable(key),
                        first.job_id,
                        first.workflow
                    ),
                ));
            }
        }
    }
    let outcome = state.queue().submit(&workflow, input.bytes.to_vec(), job_id).await?;
    Ok(accepted(&outcome.job_id, &workflow, outcome.duplicate))
}

fn accepted(job_id: &str, workflow: &str, duplicate: bool) -> Response {
    let body = Accepted {
        job_id: job_id.to_string(),
        workflow: workflow.to_string(),
        state: "queued".to_string(),
        duplicate,
        links: JobLinks::of(job_id),
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{job_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The `Idempotency-Key` header, checked.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_BYTES && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "the Idempotency-Key header must be 1-{MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_string()))
}

/// An idempotency key scoped to its caller (two callers' equal keys are
/// different keys), as hex: usable as a KV key and a job id.
fn scoped_key(caller: &str, key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(caller.as_bytes());
    hasher.update(b"\0");
    hasher.update(key.as_bytes());
    weft_core::hex(&hasher.finalize())
}

/// A submission's input and what the client said it is.
struct Input {
    bytes: Bytes,
    /// The media type the request (or its multipart part) declared.
    declared: Option<String>,
    /// The file name a multipart part gave.
    file_name: Option<String>,
}

async fn read_input(state: &ApiState, request: Request) -> Result<Input, Problem> {
    let cap = state.limits().max_upload_bytes;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if content_type.as_deref() == Some("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| Problem::bad_request(format!("the multipart body is malformed: {e}")))?;
        return read_multipart(&mut multipart, cap).await;
    }
    let limit = usize::try_from(cap).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| too_large(cap))?;
    if bytes.is_empty() {
        return Err(Problem::bad_request("the request has no body: send the job's input as the body"));
    }
    if content_type.as_deref() == Some("application/json")
        && let Err(error) = serde_json::from_slice::<serde_json::Value>(&bytes)
    {
        return Err(Problem::bad_request(format!("the body is not valid JSON: {error}")));
    }
    Ok(Input { bytes, declared: content_type, file_name: None })
}

async fn read_multipart(multipart: &mut Multipart, cap: u64) -> Result<Input, Problem> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return too_large(u64::MAX);
        }
        Problem::bad_request(format!("the multipart body is malformed: {}", e.body_text()))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        // The `file` part, or the first part that carries a file name.
        if field.name() != Some("file") && field.file_name().is_none() {
            continue;
        }
        let declared = field.content_type().map(|t| t.to_ascii_lowercase());
        let file_name = field.file_name().map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if (bytes.len() + chunk.len()) as u64 > cap {
                return Err(too_large(cap));
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Err(Problem::bad_request("the uploaded file is empty"));
        }
        return Ok(Input { bytes: bytes.into(), declared, file_name });
    }
    Err(Problem::bad_request("the multipart body has no file: send the input as a part named `file`"))
}

fn too_large(cap: u64) -> Problem {
    let limit = if cap == u64::MAX { "the upload cap".to_string() } else { crate::workflow::human_size(cap) };
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!("the input is larger than this server accepts ({limit}); send a smaller file or raise --max-upload"),
    )
}

/// The answer to an input that breaks its workflow's contract: the
/// violation's words, the status saying which kind.
fn contract_problem(violation: crate::workflow::InputViolation) -> Problem {
    use crate::workflow::InputViolation;
    let (status, kind) = match &violation {
        InputViolation::MediaType { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "wrong-type"),
        InputViolation::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-input"),
    };
    Problem::new(status, kind, violation.to_string())
}

/// Refuses an input whose bytes are not what its declared media type or
/// file name says (a Windows executable sent as a PDF).
fn check_type(input: &Input) -> Result<(), Problem> {
    let claims_pdf = input.declared.as_deref() == Some("application/pdf")
        || input.file_name.as_deref().is_some_and(|n| n.to_ascii_lowercase().ends_with(".pdf"));
    let found = crate::workflow::sniff::sniff_head(&input.bytes);
    if claims_pdf && found != crate::workflow::sniff::MediaKind::Pdf {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong-type",
            format!("the upload says it is a PDF, but it is {}; send the PDF itself", found.describe()),
        ));
    }
    Ok(())
}

/// Reads a job: its state, runs and last report.
#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}",
    tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Not a job id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Json<JobView>, Problem> {
    caller.require(Scope::Read)?;
    Ok(Json(find(&state, &job_id).await?))
}

/// The job's record, or a queued job's placeholder, or 404.
async fn find(state: &ApiState, job_id: &str) -> Result<JobView, Problem> {
    if let Some(record) = state.queue().status(job_id).await? {
        return Ok(JobView::of(record));
    }
    if let Some(workflow) = state.queue().queued_workflow(job_id, state.limits().queued_search).await? {
        return Ok(JobView::queued(job_id, workflow));
    }
    // A worker writes a job's record before it acks the message: a job that
    // finished between the two reads above has its record now.
    match state.queue().status(job_id).await? {
        Some(record) => Ok(JobView::of(record)),
        None => Err(Problem::not_found(format!(
            "no job `{job_id}` is known: it has no record and is not among the {} newest messages waiting in the job \
             stream; check the id",
            state.limits().queued_search
        ))),
    }
}

/// A succeeded job's outputs: the final steps' items by step id.
#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}/result",
    tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The outputs, by step id", body = Object),
        (status = 400, description = "Not a job id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has not succeeded (yet)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn result(
    State(state): State<ApiState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require(Scope::Read)?;
    let Some(record) = state.queue().status(&job_id).await? else {
        let view = find(&state, &job_id).await?;
        return Err(not_yet(&job_id, &view.state));
    };
    if record.state != JobState::Succeeded {
        return Err(not_yet(&job_id, record.state.name()));
    }
    let outputs = state.queue().outputs(&record).await?.unwrap_or_else(|| serde_json::json!({}));
    Ok(Json(outputs))
}

fn not_yet(job_id: &str, state: &str) -> Problem {
    let hint = match state {
        "dead_lettered" => "it failed for good; see its history at /v1/jobs/{id} and the dead letters".to_string(),
        "cancelled" => "it was cancelled".to_string(),
        _ => format!("follow /v1/jobs/{job_id}/events until it succeeds"),
    };
    Problem::new(StatusCode::CONFLICT, "no-result", format!("job `{job_id}` has no result: it is {state}; {hint}"))
}

/// The job's state changes as Server-Sent Events (`event: state`, the job
/// as data), from its current state until it is finished.
#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}/events",
    tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "A stream of `state` events, each a job", content_type = "text/event-stream", body = StateEvent),
        (status = 400, description = "Not a job id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many open event streams, or the queue cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Read)?;
    let permit = state.inner.event_streams.clone().try_acquire_owned().map_err(|_| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-streams",
            format!(
                "{} event streams are open, the most this server keeps; try again later",
                state.limits().max_event_streams
            ),
        )
        .retry_after(5)
    })?;
    // 404 for an id that is neither recorded nor queued.
    let first = find(&state, &job_id).await?;
    let first_json = serde_json::to_string(&first).unwrap_or_default();
    let finished = ["succeeded", "dead_lettered", "cancelled"].contains(&first.state.as_str());
    let updates = state.queue().follow(&job_id, EVENTS_REREAD).await?;
    let first_event = futures::stream::once(async move { Ok::<_, Infallible>(state_event(&first)) });
    let rest = updates
        // A finished job's stream is its one event.
        .take_while(move |_| futures::future::ready(!finished))
        .filter_map(move |update| {
            let first_json = first_json.clone();
            async move {
                match update {
                    // The placeholder `follow` sends for a job with no
                    // record, and the record `first` already showed.
                    Ok(record) if record.workflow.is_empty() => None,
                    Ok(record) => {
                        let view = JobView::of(record);
                        (serde_json::to_string(&view).unwrap_or_default() != first_json).then(|| state_event(&view))
                    }
                    Err(error) => Some(Event::default().event("error").data(crate::errors::error_chain(&error))),
                }
            }
        })
        .map(Ok::<_, Infallible>);
    let stream = first_event.chain(rest).map(move |event| {
        let _held = &permit;
        event
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// One Server-Sent Event of `/v1/jobs/{job_id}/events`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StateEvent {
    /// `state` (the job changed) or `error` (following it failed; the
    /// stream ends).
    event: String,
    /// For `state`, the job (as `GET /v1/jobs/{job_id}` returns it) as
    /// JSON text; for `error`, what went wrong.
    data: String,
}

fn state_event(view: &JobView) -> Event {
    Event::default().event("state").data(serde_json::to_string(view).unwrap_or_default())
}

/// Which jobs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only jobs of this workflow.
    workflow: Option<String>,
    /// Only jobs in this state (`queued`, `running`, `retrying`,
    /// `succeeded`, `dead_lettered`, `cancelled`).
    state: Option<String>,
    /// Only jobs changed at or after this time (RFC 3339).
    since: Option<String>,
    /// Only jobs changed before this time (RFC 3339).
    before: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<u64>,
    /// Jobs per page (1-500, default 50).
    limit: Option<usize>,
}

/// One page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobList {
    /// The jobs, oldest change first.
    #[schema(value_type = Vec<Object>)]
    jobs: Vec<JobSummary>,
    /// Pass as `cursor` for the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<u64>,
}

/// Lists jobs, oldest change first, with filters and cursor paging.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 400, description = "A malformed filter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, Problem> {
    caller.require(Scope::Read)?;
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let job_state = match query.state.as_deref() {
        None => None,
        Some(name) => {
            Some(serde_json::from_value::<JobState>(serde_json::Value::String(name.to_string())).map_err(|_| {
                Problem::bad_request(format!(
                    "`{}` is not a job state (queued, running, retrying, succeeded, dead_lettered, cancelled)",
                    crate::text::printable(name)
                ))
            })?)
        }
    };
    let filter = JobFilter {
        workflow: query.workflow,
        state: job_state,
        updated_since_ms: query.since.as_deref().map(|t| parse_time("since", t)).transpose()?,
        updated_before_ms: query.before.as_deref().map(|t| parse_time("before", t)).transpose()?,
        cursor: query.cursor,
        limit: query.limit.unwrap_or(50),
    };
    if !(1..=MAX_LIST_PAGE).contains(&filter.limit) {
        return Err(Problem::bad_request(format!("limit must be 1-{MAX_LIST_PAGE}")));
    }
    let page = state.queue().list_jobs(&filter).await?;
    Ok(Json(JobList { jobs: page.jobs, next_cursor: page.next_cursor }))
}

fn parse_time(name: &str, text: &str) -> Result<u64, Problem> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
        Problem::bad_request(format!(
            "`{name}` must be an RFC 3339 time such as 2026-12-08T09:30:00Z, not `{}`",
            crate::text::printable(text)
        ))
    })?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| Problem::bad_request(format!("`{name}` is before 1970")))
}

/// Why a job is cancelled.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelRequest {
    /// Why, kept in the job's record.
    reason: Option<String>,
}

/// What a cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Cancelled {
    /// `cancelled`: the job will not run (again); `requested`: a worker is
    /// running it and stops it (follow its events).
    outcome: String,
    /// The job as it is now.
    job: JobView,
}

/// Cancels a job: a queued or retrying job never runs (again); a running
/// one is stopped by its worker.
#[utoipa::path(
    post,
    path = "/v1/jobs/{job_id}/cancel",
    tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id")),
    request_body(content = Option<CancelRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "Cancelled", body = Cancelled),
        (status = 202, description = "Its worker was asked to stop it", body = Cancelled),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job already finished", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(job_id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    caller.require(Scope::Submit)?;
    let request: CancelRequest = if body.is_empty() {
        CancelRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the body is not a cancel request: {e}")))?
    };
    let by = format!("api:{}", caller.0.id);
    match state.queue().cancel(&job_id, &by, request.reason.as_deref()).await? {
        CancelOutcome::Cancelled(record) => {
            let body = Cancelled { outcome: "cancelled".to_string(), job: JobView::of(*record) };
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        CancelOutcome::Requested => {
            let job = find(&state, &job_id).await?;
            Ok((StatusCode::ACCEPTED, Json(Cancelled { outcome: "requested".to_string(), job })).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_is_scoped_to_its_caller() {
        assert_ne!(scoped_key("key-a", "k1"), scoped_key("key-b", "k1"));
        assert_eq!(scoped_key("key-a", "k1"), scoped_key("key-a", "k1"));
        // No ambiguity between the caller and the key.
        assert_ne!(scoped_key("a", "bc"), scoped_key("ab", "c"));
    }

    #[test]
    fn an_executable_sent_as_a_pdf_is_named() {
        let input =
            Input { bytes: Bytes::from_static(b"MZ\x90\0"), declared: Some("application/pdf".into()), file_name: None };
        let problem = check_type(&input).err().map(|p| (p.status, p.detail));
        assert_eq!(
            problem,
            Some((
                415,
                "the upload says it is a PDF, but it is a Windows executable (MZ header); send the PDF itself".into()
            ))
        );
        let pdf = Input { bytes: Bytes::from_static(b"%PDF-1.7"), declared: None, file_name: Some("a.PDF".into()) };
        assert!(check_type(&pdf).is_ok());
    }
}
