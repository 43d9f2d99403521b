//! The HTTP API (`weft serve --http`): submit jobs (uploads or JSON),
//! follow them (state, result, Server-Sent Events), list and cancel them,
//! list and replay dead letters, list workflows, health and readiness, and
//! the OpenAPI document of all of it. It keeps no state of its own: every
//! handler reads or writes the same JetStream state the workers use,
//! through [`crate::queue::QueueClient`], so API nodes scale apart from
//! workers and any of them answers for any job.
//!
//! It owns the wire format (paths, JSON shapes, RFC 9457 errors in
//! `problem`), the limits that keep one client from starving the others
//! (`ApiLimits`), and the server loop (`server`: plain or TLS, header read
//! timeout, graceful shutdown). It never decides how a job runs.

pub mod auth;
mod dead_letters;
mod jobs;
mod meta;
mod openapi;
pub mod problem;
mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use serde::Serialize;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::queue::QueueClient;
use auth::{Principal, Scope};
pub use problem::Problem;
pub use server::{ServeError, TlsFiles, serve};

/// The largest upload [`ApiLimits::max_upload_bytes`] allows by default:
/// the worker's own cap on an input object
/// ([`crate::queue::DEFAULT_MAX_INPUT_BYTES`]).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = crate::queue::DEFAULT_MAX_INPUT_BYTES;

/// What keeps one client from exhausting the server.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// The largest request body of a job submission (an upload); larger
    /// ones get `413` before they are stored. Protects memory and the
    /// object store.
    pub max_upload_bytes: u64,
    /// How long a client may take to send a request's headers
    /// (slow-loris: a client trickling bytes holds a connection).
    pub header_read_timeout: Duration,
    /// How long a request (its body read and its handler, not a response
    /// stream) may take before it is answered `408`/`503`.
    pub request_timeout: Duration,
    /// Requests handled at once; more are refused `503` with `Retry-After`
    /// rather than queued, so a burst cannot build an unbounded backlog.
    pub max_concurrent_requests: usize,
    /// Open event streams (`/v1/jobs/{id}/events`) at once; each holds a
    /// watch on the job-state bucket.
    pub max_event_streams: usize,
    /// How many of the job stream's newest messages a read of a job with no
    /// record yet searches (one read each) to tell "queued" from "unknown".
    pub queued_search: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 512,
            max_event_streams: 1024,
            queued_search: 1_000,
        }
    }
}

/// A workflow as the API lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowInfo {
    /// Its name (the `{workflow}` of submission paths).
    pub name: String,
    /// Its version, as written.
    pub version: String,
    /// The content hash of the file this server loaded.
    pub revision: String,
    /// Its description, when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its steps in file order: the graph.
    pub steps: Vec<StepInfo>,
}

/// One step of a workflow's graph.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepInfo {
    /// The step's id.
    pub id: String,
    /// The plugin it runs.
    pub plugin: String,
    /// The steps whose outputs it takes.
    pub needs: Vec<String>,
}

impl WorkflowInfo {
    /// The listing of a loaded workflow.
    pub fn of(workflow: &crate::LoadedWorkflow) -> Self {
        let spec = workflow.workflow();
        WorkflowInfo {
            name: spec.name.clone(),
            version: spec.version.clone(),
            revision: workflow.revision().to_string(),
            description: spec.description.clone(),
            steps: spec
                .steps
                .iter()
                .map(|s| StepInfo { id: s.id.clone(), plugin: s.plugin.clone(), needs: s.needs.clone() })
                .collect(),
        }
    }
}

/// Everything a handler needs, shared by all requests.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    queue: QueueClient,
    workflows: Vec<WorkflowInfo>,
    limits: ApiLimits,
    event_streams: Arc<Semaphore>,
}

impl ApiState {
    /// The API over `queue`, accepting jobs for `workflows`.
    pub fn new(queue: QueueClient, workflows: Vec<WorkflowInfo>, limits: ApiLimits) -> Self {
        let event_streams = Arc::new(Semaphore::new(limits.max_event_streams.max(1)));
        ApiState { inner: Arc::new(Inner { queue, workflows, limits, event_streams }) }
    }

    fn queue(&self) -> &QueueClient {
        &self.inner.queue
    }

    fn limits(&self) -> &ApiLimits {
        &self.inner.limits
    }

    fn workflow(&self, name: &str) -> Result<&WorkflowInfo, Problem> {
        self.inner.workflows.iter().find(|w| w.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.inner.workflows.iter().map(|w| w.name.as_str()).collect();
            Problem::not_found(format!(
                "no workflow `{}` is served here (served: {})",
                crate::text::printable(name),
                known.join(", ")
            ))
        })
    }
}

/// The caller of a request, as the auth layer identified it.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses the request unless the caller holds `scope`.
    fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.0.scopes.contains(&scope) || self.0.scopes.contains(&Scope::Admin) {
            return Ok(());
        }
        Err(Problem::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!("`{}` lacks the `{}` scope this request needs", self.0.id, scope_name(scope)),
        ))
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Submit => "submit",
        Scope::Read => "read",
        Scope::Review => "review",
        Scope::Admin => "admin",
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            Problem::new(axum::http::StatusCode::UNAUTHORIZED, "unauthenticated", "the request is not authenticated")
        })
    }
}

/// The API's routes over `state`, with its limits applied.
pub fn router(state: ApiState) -> Router {
    let upload_limit = usize::try_from(state.limits().max_upload_bytes).unwrap_or(usize::MAX);
    let v1 = Router::new()
        .route("/workflows", axum::routing::get(meta::list_workflows))
        .route("/workflows/{workflow}", axum::routing::get(meta::get_workflow))
        .route(
            "/workflows/{workflow}/jobs",
            axum::routing::post(jobs::submit).layer(DefaultBodyLimit::max(upload_limit.saturating_add(64 * 1024))),
        )
        .route("/jobs", axum::routing::get(jobs::list))
        .route("/jobs/{job_id}", axum::routing::get(jobs::get))
        .route("/jobs/{job_id}/result", axum::routing::get(jobs::result))
        .route("/jobs/{job_id}/events", axum::routing::get(jobs::events))
        .route("/jobs/{job_id}/cancel", axum::routing::post(jobs::cancel))
        .route("/dead-letters", axum::routing::get(dead_letters::list))
        .route("/dead-letters/{id}/replay", axum::routing::post(dead_letters::replay));
    let app = Router::new()
        .route("/healthz", axum::routing::get(meta::healthz))
        .route("/readyz", axum::routing::get(meta::readyz))
        .route("/openapi.json", axum::routing::get(openapi::document))
        .nest("/v1", v1)
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(axum::middleware::from_fn(anonymous_caller))
        .with_state(state.clone());
    server::with_limits(app, state.limits())
}

/// Without auth configured every caller is `anonymous` with every scope
/// (the server then listens on loopback only).
async fn anonymous_caller(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let scopes = [Scope::Submit, Scope::Read, Scope::Review, Scope::Admin].into_iter().collect();
    request.extensions_mut().insert(Caller(Principal { id: "anonymous".to_string(), scopes }));
    next.run(request).await
}
