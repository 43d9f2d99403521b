//! RFC 9457 problem details: every error the API returns is one
//! `application/problem+json` object whose `detail` uses the same words
//! the CLI prints for the same failure.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::queue::{CancelError, QueueError};

/// The media type of an error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error as the API returns it (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` with the status
    /// title, or `urn:weft:problem:<kind>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in words a user can act on.
    pub detail: String,
    /// Seconds to wait before trying again (rate limits, overload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge of a 401 or 403.
    #[serde(skip)]
    pub challenge: Option<&'static str>,
}

impl Problem {
    /// A problem of kind `kind` (the `urn:weft:problem:` suffix) with this
    /// status and detail.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:weft:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 503: the queue cannot be reached.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// This problem, telling the client to wait `seconds` before trying again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let (retry_after, challenge) = (self.retry_after, self.challenge);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

impl From<QueueError> for Problem {
    fn from(error: QueueError) -> Self {
        let detail = crate::errors::error_chain(&error);
        match error {
            QueueError::Invalid(_) => Problem::bad_request(detail),
            QueueError::DeadLetter(_) => Problem::new(StatusCode::CONFLICT, "dead-letter-refused", detail),
            QueueError::AtRest(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "at-rest-key", detail),
            QueueError::Connect { .. } | QueueError::JetStream { .. } => Problem::unavailable(detail).retry_after(1),
            _ => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "queue", detail),
        }
    }
}

impl From<super::auth::AuthError> for Problem {
    fn from(error: super::auth::AuthError) -> Self {
        let kind = if error.status() == StatusCode::FORBIDDEN { "forbidden" } else { "unauthenticated" };
        let mut problem = Problem::new(error.status(), kind, error.to_string());
        problem.challenge = error.challenge();
        problem
    }
}

impl From<CancelError> for Problem {
    fn from(error: CancelError) -> Self {
        let detail = crate::errors::error_chain(&error);
        match error {
            CancelError::Unknown { .. } => Problem::not_found(detail),
            CancelError::Finished { .. } => Problem::new(StatusCode::CONFLICT, "finished", detail),
            CancelError::Invalid(_) => Problem::bad_request(detail),
            CancelError::Queue(queue) => Problem::from(queue),
        }
    }
}
