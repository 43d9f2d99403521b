//! The HTTP API (`weft serve --http`): submit jobs (uploads or JSON),
//! follow them (state, result, Server-Sent Events), list and cancel them,
//! list and replay dead letters, list workflows, health and readiness, and
//! the OpenAPI document of all of it. It keeps no state of its own: every
//! handler reads or writes the same JetStream state the workers use,
//! through [`crate::queue::QueueClient`], so API nodes scale apart from
//! workers and any of them answers for any job.
//!
//! It owns the wire format (paths, JSON shapes, RFC 9457 errors in
//! `problem`), who a caller is and what it may do (`auth`: API keys and
//! JWTs, scopes), how often it may call (`rate_limit`: token buckets by key
//! and by address), the limits that keep one client from starving the
//! others (`ApiLimits`), and the server loop (`server`: plain or TLS,
//! header read timeout, graceful shutdown). It never decides how a job
//! runs; API keys are stored by the queue module.

pub mod auth;
mod dead_letters;
mod jobs;
mod meta;
mod openapi;
pub mod problem;
pub mod rate_limit;
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
use auth::{Authenticator, KeyOrJwt, Principal, Scope};
pub use problem::Problem;
use rate_limit::{RateLimit, RateLimiter};
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
    /// Requests per authenticated caller (API key or JWT subject); past it
    /// `429` with `Retry-After`.
    pub per_key: RateLimit,
    /// Requests per client address, before authentication (so guessing
    /// keys is slow too); health probes are not counted.
    pub per_address: RateLimit,
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
            per_key: rate_limit::DEFAULT_PER_KEY_LIMIT,
            per_address: rate_limit::DEFAULT_PER_ADDRESS_LIMIT,
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
    /// What a job's input must be (media types, size, JSON Schema), when
    /// the workflow says; submissions that break it are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<crate::workflow::InputContract>,
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
            input: spec.input.clone(),
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
    /// `None`: no auth configured (every caller is anonymous).
    auth: Option<Authenticator>,
    per_key: RateLimiter,
    per_address: RateLimiter,
}

impl ApiState {
    /// The API over `queue`, accepting jobs for `workflows`, open to every
    /// caller (serve it on loopback only).
    ///
    /// # Errors
    ///
    /// [`rate_limit::RateLimitError`] for an unusable rate limit.
    pub fn new(
        queue: QueueClient,
        workflows: Vec<WorkflowInfo>,
        limits: ApiLimits,
    ) -> Result<Self, rate_limit::RateLimitError> {
        Self::with_auth(queue, workflows, limits, None)
    }

    /// [`ApiState::new`] with callers authenticated by `auth` (API keys,
    /// JWTs); `None` leaves the API open.
    ///
    /// # Errors
    ///
    /// [`rate_limit::RateLimitError`] for an unusable rate limit.
    pub fn with_auth(
        queue: QueueClient,
        workflows: Vec<WorkflowInfo>,
        limits: ApiLimits,
        auth: Option<Authenticator>,
    ) -> Result<Self, rate_limit::RateLimitError> {
        let event_streams = Arc::new(Semaphore::new(limits.max_event_streams.max(1)));
        let per_key = RateLimiter::new(limits.per_key, rate_limit::DEFAULT_MAX_TRACKED_KEYS)?;
        let per_address = RateLimiter::new(limits.per_address, rate_limit::DEFAULT_MAX_TRACKED_KEYS)?;
        let inner = Inner { queue, workflows, limits, event_streams, auth, per_key, per_address };
        Ok(ApiState { inner: Arc::new(inner) })
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
        auth::require(&self.0, scope).map_err(Problem::from)
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
        .layer(axum::middleware::from_fn_with_state(state.clone(), admit))
        .with_state(state.clone());
    server::with_limits(app, state.limits())
}

/// Paths anyone may read without credentials or rate limits: probes and
/// the API's description.
const PUBLIC_PATHS: [&str; 3] = ["/healthz", "/readyz", "/openapi.json"];

/// Admits a request: the per-address rate limit, then who the caller is
/// (anonymous without auth), then the per-caller rate limit. The request is
/// logged with the caller's id, never its credential.
async fn admit(
    axum::extract::State(state): axum::extract::State<ApiState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = request.uri().path().to_string();
    if PUBLIC_PATHS.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let inner = &state.inner;
    if let Some(peer) = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        && let Err(wait) = inner.per_address.check(&peer.0.ip().to_string())
    {
        return rate_limited("this address", wait).into_response();
    }
    let principal = match &inner.auth {
        None => {
            Principal { id: "anonymous".to_string(), scopes: Scope::ALL.into_iter().collect(), via: KeyOrJwt::Open }
        }
        Some(auth) => match auth.authenticate(request.headers()).await {
            Ok(principal) => principal,
            Err(error) => {
                tracing::info!(method = %request.method(), %path, status = error.status().as_u16(), "request refused");
                return Problem::from(error).into_response();
            }
        },
    };
    if let Err(wait) = inner.per_key.check(&principal.id) {
        return rate_limited(&format!("`{}`", principal.id), wait).into_response();
    }
    tracing::info!(method = %request.method(), %path, caller = %principal.id, "request");
    request.extensions_mut().insert(Caller(principal));
    next.run(request).await
}

fn rate_limited(who: &str, wait: Duration) -> Problem {
    let seconds = wait.as_secs_f64().ceil() as u64;
    Problem::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!("too many requests from {who}; wait {seconds} s and try again"),
    )
    .retry_after(seconds)
}
