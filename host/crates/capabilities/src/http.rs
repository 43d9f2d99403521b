//! The `http` capability: requests the host makes with reqwest on a step's
//! behalf, to granted destinations only (each redirect hop re-checked), with
//! a timeout and a response-size cap. Secret headers are filled in here.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use super::grants::Allow;
use super::{CallScope, Summary, error_chain};

/// Host-wide bounds of the `http` capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// The longest a single request may take (a step may ask for less).
    pub max_timeout: Duration,
    /// The largest response body a step may receive.
    pub max_response_bytes: u64,
    /// How many redirects are followed (each checked against the grant).
    pub max_redirects: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { max_timeout: Duration::from_secs(30), max_response_bytes: 16 << 20, max_redirects: 5 }
    }
}

/// A header filled from a granted secret.
#[derive(Debug, Clone)]
pub struct SecretHeader {
    /// Header name.
    pub name: String,
    /// The secret's name.
    pub secret: String,
    /// Text put before the value (`Bearer `).
    pub prefix: String,
}

/// A request a step asks the host to make.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// HTTP method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers set by the step.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<Vec<u8>>,
    /// Headers the host fills from secrets.
    pub secret_headers: Vec<SecretHeader>,
    /// The step's own timeout, if any.
    pub timeout: Option<Duration>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body, at most the host's cap.
    pub body: Vec<u8>,
}

/// Why a request failed; mirrors `http-error` in the WIT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Not granted; nothing was sent there.
    #[error("denied: {0}")]
    Denied(String),
    /// Malformed request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No answer in time.
    #[error("timeout: {0}")]
    Timeout(String),
    /// Answer above the cap.
    #[error("response too large: {0}")]
    TooLarge(String),
    /// Connection, DNS or TLS failure.
    #[error("transport: {0}")]
    Transport(String),
}

impl Summary for HttpResponse {
    fn summary(&self) -> String {
        format!("status {}, {} bytes", self.status, self.body.len())
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// The client the host uses for every step: redirects are followed by
/// [`send`] itself so each hop is checked against the step's grant.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Makes `request` for the step of `scope`.
pub(crate) async fn send(scope: &CallScope, request: HttpRequest) -> Result<HttpResponse, HttpError> {
    let step = scope.step.as_ref();
    let method_name = request.method.to_ascii_uppercase();
    if !METHODS.contains(&method_name.as_str()) {
        return Err(HttpError::InvalidRequest(format!(
            "method `{}` is not supported; use one of {}",
            request.method,
            METHODS.join(", ")
        )));
    }
    let mut method =
        Method::from_bytes(method_name.as_bytes()).map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
    let mut url = Url::parse(&request.url)
        .map_err(|e| HttpError::InvalidRequest(format!("`{}` is not an absolute URL: {e}", request.url)))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(HttpError::InvalidRequest(format!("`{}`: only http and https URLs are supported", request.url)));
    }
    check_destination(scope, &url, None)?;

    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("`{name}` is not a valid header name")))?;
        if name == reqwest::header::HOST {
            return Err(HttpError::InvalidRequest("the `host` header is set by the host from the URL".into()));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::InvalidRequest(format!("the value of header `{name}` is not valid")))?;
        headers.append(name, value);
    }
    let mut secret_headers = HeaderMap::new();
    for wanted in &request.secret_headers {
        let value = scope.secret(&wanted.secret).map_err(|e| HttpError::Denied(e.to_string()))?;
        let name = HeaderName::from_bytes(wanted.name.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("`{}` is not a valid header name", wanted.name)))?;
        let mut value = HeaderValue::from_str(&format!("{}{value}", wanted.prefix))
            .map_err(|_| HttpError::InvalidRequest(format!("secret `{}` cannot be sent in a header", wanted.secret)))?;
        value.set_sensitive(true);
        secret_headers.insert(name, value);
    }

    let settings = &scope.services.config.http;
    let timeout = request.timeout.unwrap_or(settings.max_timeout).min(settings.max_timeout).min(scope.remaining());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = request.body;
    let origin = url.origin();
    for _hop in 0..=settings.max_redirects {
        let mut builder = scope.services.client.request(method.clone(), url.clone()).headers(headers.clone());
        if url.origin() == origin {
            builder = builder.headers(secret_headers.clone());
        }
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let response = match tokio::time::timeout(remaining, builder.timeout(remaining).send()).await {
            Err(_) => return Err(timed_out(step, &url, timeout)),
            Ok(Err(error)) if error.is_timeout() => return Err(timed_out(step, &url, timeout)),
            Ok(Err(error)) => return Err(HttpError::Transport(error_chain(&error))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response.headers().get(LOCATION)
        {
            let location = location.to_str().unwrap_or_default();
            let next = url.join(location).map_err(|_| {
                HttpError::Transport(format!("{url} redirected to `{location}`, which is not a valid URL"))
            })?;
            check_destination(scope, &next, Some(&url))?;
            if status == StatusCode::SEE_OTHER
                || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND) && method == Method::POST)
            {
                method = Method::GET;
                body = None;
            }
            url = next;
            continue;
        }
        return read_body(response, settings.max_response_bytes, deadline, step, &url, timeout).await;
    }
    Err(HttpError::Transport(format!("more than {} redirects starting at {}", settings.max_redirects, request.url)))
}

fn check_destination(scope: &CallScope, url: &Url, redirected_from: Option<&Url>) -> Result<(), HttpError> {
    if scope.grants.allows_url(url) {
        return Ok(());
    }
    let step = scope.step.as_ref();
    let destination = format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    );
    let via = redirected_from.map(|from| format!(" (a redirect from {from})")).unwrap_or_default();
    let granted = match &scope.grants.http {
        None => "it has no `http` grant".to_string(),
        Some(Allow::All) => "its grant allows everything".to_string(),
        Some(Allow::Only(list)) => {
            format!("its `http` grant allows {}", list.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "))
        }
    };
    Err(HttpError::Denied(format!(
        "step `{step}` may not reach {destination}{via}: {granted}; nothing was sent there. \
         Add the host to the step's `grants: {{ http: [...] }}` to allow it"
    )))
}

async fn read_body(
    mut response: reqwest::Response,
    cap: u64,
    deadline: tokio::time::Instant,
    step: &str,
    url: &Url,
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    let too_large = |size: u64| {
        HttpError::TooLarge(format!(
            "the answer from {url} to step `{step}` is {} or more, above the host's cap of {}",
            weft_workflow::human_size(size),
            weft_workflow::human_size(cap)
        ))
    };
    if let Some(length) = response.content_length()
        && length > cap
    {
        return Err(too_large(length));
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let mut body = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, response.chunk()).await {
            Err(_) => return Err(timed_out(step, url, timeout)),
            Ok(Err(error)) => return Err(HttpError::Transport(error_chain(&error))),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                if body.len() as u64 + chunk.len() as u64 > cap {
                    return Err(too_large(body.len() as u64 + chunk.len() as u64));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    Ok(HttpResponse { status, headers, body })
}

fn timed_out(step: &str, url: &Url, timeout: Duration) -> HttpError {
    HttpError::Timeout(format!("{url} did not answer step `{step}` within {timeout:?}"))
}
