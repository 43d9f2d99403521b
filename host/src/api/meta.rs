//! `/v1/workflows`, `/healthz`, `/readyz`, and the answers for paths and
//! methods the API does not have (problem+json like every other error).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Scope;
use super::{ApiState, Caller, Problem, WorkflowInfo};

/// The workflows this server accepts jobs for.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WorkflowList {
    /// By name.
    workflows: Vec<WorkflowInfo>,
}

/// Lists the workflows jobs may be submitted to, with their graphs.
#[utoipa::path(
    get,
    path = "/v1/workflows",
    tag = "workflows",
    responses((status = 200, description = "The workflows", body = WorkflowList))
)]
pub(super) async fn list_workflows(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<WorkflowList>, Problem> {
    caller.require(Scope::Read)?;
    Ok(Json(WorkflowList { workflows: state.inner.workflows.clone() }))
}

/// One workflow, with its graph.
#[utoipa::path(
    get,
    path = "/v1/workflows/{workflow}",
    tag = "workflows",
    params(("workflow" = String, Path, description = "The workflow's name")),
    responses(
        (status = 200, description = "The workflow", body = WorkflowInfo),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn get_workflow(
    State(state): State<ApiState>,
    caller: Caller,
    Path(workflow): Path<String>,
) -> Result<Json<WorkflowInfo>, Problem> {
    caller.require(Scope::Read)?;
    Ok(Json(state.workflow(&workflow)?.clone()))
}

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok`, or what is wrong.
    status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_string() })
}

/// Readiness: NATS is connected and workflows are loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready (NATS unreachable, or no workflow)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn readyz(State(state): State<ApiState>) -> Result<Json<Health>, Problem> {
    use async_nats::connection::State as Connection;
    if state.queue().nats().connection_state() != Connection::Connected {
        return Err(Problem::unavailable("not connected to NATS; the server reconnects on its own").retry_after(1));
    }
    if state.inner.workflows.is_empty() {
        return Err(Problem::unavailable("no workflow is loaded"));
    }
    Ok(Json(Health { status: "ok".to_string() }))
}

pub(super) async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("`{}` is not a path of this API; see /openapi.json", crate::text::printable(uri.path())))
}

pub(super) async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("`{method}` is not allowed on `{}`; see /openapi.json", crate::text::printable(uri.path())),
    )
}
