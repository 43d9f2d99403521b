//! The OpenAPI 3.1 document, generated from the handlers' annotations so it
//! cannot drift from the code, served at `/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Weft", description = "Submit jobs to Weft workflows, follow them and control them."),
    paths(
        super::jobs::submit,
        super::jobs::list,
        super::jobs::get,
        super::jobs::result,
        super::jobs::events,
        super::jobs::cancel,
        super::dead_letters::list,
        super::dead_letters::replay,
        super::meta::list_workflows,
        super::meta::get_workflow,
        super::meta::healthz,
        super::meta::readyz,
    )
)]
pub(super) struct ApiDoc;

/// The document as JSON.
pub fn document_json() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

pub(super) async fn document() -> Json<serde_json::Value> {
    Json(document_json())
}
