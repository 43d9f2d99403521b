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
    ),
    modifiers(&CommonResponses)
)]
pub(super) struct ApiDoc;

/// Answers every `/v1` operation may give whatever it does: refused
/// credentials or scope, a rate limit, a slow request, an overloaded server.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    super::problem::PROBLEM_JSON,
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                )
                .build()
        };
        let common = [
            ("401", "No credentials, or credentials that are not accepted"),
            ("403", "The caller lacks the scope this operation needs"),
            ("408", "The request took longer than the server allows"),
            ("429", "Too many requests from this caller or address; see Retry-After"),
            ("503", "The server is overloaded or the queue cannot be reached; see Retry-After"),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for (status, description) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem(description).into());
                }
            }
        }
    }
}

/// The document as JSON.
pub fn document_json() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

pub(super) async fn document() -> Json<serde_json::Value> {
    Json(document_json())
}
