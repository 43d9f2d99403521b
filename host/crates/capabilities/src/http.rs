//! The `http` capability: requests the host makes with reqwest on a step's
//! behalf, to granted destinations only (each redirect hop re-checked), with
//! a timeout and a response-size cap. Secret headers are filled in here.
//!
//! Where a request may connect is decided in two places that must agree:
//! [`check_destination`] (the grant, and IP-literal or `localhost` URLs,
//! which reach a private or loopback address only when the grant names them
//! literally) and [`net_policy::CheckedResolver`] (every other name, whose
//! every address must be public). Proxies from `HTTP_PROXY` and friends are
//! ignored: a proxy would resolve names itself, past both checks.
//!
//! A secret header goes only to a destination an entry of the step's grant
//! names (not `true`, not a `*.` wildcard), over https, or over plain http
//! to a loopback address or `localhost` named in the URL. Since a name that
//! resolves to loopback is never connected to, "loopback" is decided by the
//! URL's host before any look-up.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use super::grants::Allow;
use super::net_policy::{self, CheckedResolver};
use super::{CallScope, Summary, error_chain};

/// Host-wide bounds of the `http` capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// The longest a single request may take (a step may ask for less).
    pub max_timeout: Duration,
    /// The largest response body a step may receive.
    pub max_response_bytes: u64,
    /// How many redirects are followed (each checked against the grant).
    pub max_redirects: u32,
    /// Static answers for names (like curl's `--resolve NAME:ADDR`), used
    /// instead of DNS. They pass the same address check as DNS answers: a
    /// name mapped to a private or loopback address is still refused.
    pub resolve: Vec<(String, IpAddr)>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_timeout: Duration::from_secs(30),
            max_response_bytes: 16 << 20,
            max_redirects: 5,
            resolve: Vec::new(),
        }
    }
}

/// A `--http-resolve` entry that is not `NAME:ADDRESS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not NAME:ADDRESS (e.g. `api.example.com:203.0.113.7` or `api.example.com:[2001:db8::7]`)")]
pub struct ResolveEntryError(String);

/// Parses one static resolve entry, `NAME:ADDRESS` (IPv6 in brackets or bare).
///
/// # Errors
///
/// [`ResolveEntryError`] when the entry is not a host name and an IP address.
pub fn parse_resolve_entry(entry: &str) -> Result<(String, IpAddr), ResolveEntryError> {
    let bad = || ResolveEntryError(entry.to_string());
    let (name, address) = entry.split_once(':').ok_or_else(bad)?;
    let address = address.trim_start_matches('[').trim_end_matches(']');
    let address: IpAddr = address.parse().map_err(|_| bad())?;
    let valid_name = !name.is_empty()
        && name.parse::<IpAddr>().is_err()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid_name {
        return Err(bad());
    }
    Ok((name.to_ascii_lowercase(), address))
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

/// The client the host uses for every step's `http` call: redirects are
/// followed by [`send`] itself so each hop is checked against the step's
/// grant, names are resolved by [`CheckedResolver`] only, and no proxy from
/// the environment is used.
///
/// # Errors
///
/// When reqwest cannot build a client (its TLS backend fails to initialise):
/// the host must not fall back to a client without these checks.
pub(crate) fn client(settings: &HttpSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(CheckedResolver::new(&settings.resolve)))
        .build()
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
        check_secret_destination(scope, &url, &wanted.secret)?;
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
    let client = scope.services.client.as_ref().map_err(|why| {
        HttpError::Transport(format!("this host could not set up its HTTP client, so no request is made: {why}"))
    })?;
    let mut body = request.body;
    let origin = url.origin();
    let mut redirected_from: Option<Url> = None;
    for _hop in 0..=settings.max_redirects {
        let mut builder = client.request(method.clone(), url.clone()).headers(headers.clone());
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
            Ok(Err(error)) => {
                return Err(match net_policy::blocked_in(&error) {
                    Some(blocked) => blocked_destination(step, &url, redirected_from.as_ref(), blocked),
                    None => HttpError::Transport(error_chain(&error)),
                });
            }
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
            redirected_from = Some(std::mem::replace(&mut url, next));
            continue;
        }
        return read_body(response, settings.max_response_bytes, deadline, step, &url, timeout).await;
    }
    Err(HttpError::Transport(format!("more than {} redirects starting at {}", settings.max_redirects, request.url)))
}

/// `scheme://host:port` of `url`, as errors name a destination.
fn destination(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

fn via(redirected_from: Option<&Url>) -> String {
    redirected_from.map(|from| format!(" (a redirect from {from})")).unwrap_or_default()
}

/// The address of an IP-literal URL, whose connection no resolver checks.
fn literal_address(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(v4.into()),
        url::Host::Ipv6(v6) => Some(v6.into()),
        url::Host::Domain(_) => None,
    }
}

fn is_localhost(url: &Url) -> bool {
    matches!(url.host(), Some(url::Host::Domain(name)) if name.eq_ignore_ascii_case("localhost"))
}

const HOW_TO_REACH_SPECIAL: &str = "a step reaches a loopback, private or other special address only when \
     its `http` grant names that address itself (e.g. `http: [\"127.0.0.1:8080\"]`) or `localhost`, \
     never through a name, a `*.` wildcard or `http: true`";

fn check_destination(scope: &CallScope, url: &Url, redirected_from: Option<&Url>) -> Result<(), HttpError> {
    let step = scope.step.as_ref();
    let destination = destination(url);
    let via = via(redirected_from);
    if scope.grants.allows_url(url) {
        if scope.grants.names_url(url) {
            return Ok(());
        }
        let special = if let Some(address) = literal_address(url) {
            net_policy::special_range(address).map(|range| format!("{address} is in {range}"))
        } else if is_localhost(url) {
            Some("`localhost` is loopback".to_string())
        } else {
            None
        };
        return match special {
            None => Ok(()),
            Some(why) => Err(HttpError::Denied(format!(
                "step `{step}` may not reach {destination}{via}: {why}, and {HOW_TO_REACH_SPECIAL}; \
                 nothing was sent there"
            ))),
        };
    }
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

fn blocked_destination(
    step: &str,
    url: &Url,
    redirected_from: Option<&Url>,
    blocked: &net_policy::BlockedAddress,
) -> HttpError {
    HttpError::Denied(format!(
        "step `{step}` may not reach {}{}: {blocked}, and {HOW_TO_REACH_SPECIAL}; nothing was sent there",
        destination(url),
        via(redirected_from)
    ))
}

/// Whether secret `secret` may travel to `url`: only to a host an entry of
/// the step's grant names, and over https unless the URL names a loopback
/// address or `localhost`.
fn check_secret_destination(scope: &CallScope, url: &Url, secret: &str) -> Result<(), HttpError> {
    let step = scope.step.as_ref();
    let refuse = |why: String| {
        Err(HttpError::Denied(format!(
            "step `{step}` may not send secret `{secret}` to {}: {why}; nothing was sent",
            destination(url)
        )))
    };
    if !scope.grants.names_url(url) {
        let host = url.host_str().unwrap_or_default();
        return refuse(format!(
            "a secret goes only to a host the step's `http` grant names, and this one is allowed only through \
             `true` or a `*.` wildcard (or not at all); add `{host}` to the step's `grants: {{ http: [...] }}`"
        ));
    }
    let loopback = is_localhost(url) || literal_address(url).is_some_and(net_policy::is_loopback);
    if url.scheme() != "https" && !loopback {
        return refuse(
            "a secret travels only over https (or plain http to a loopback address or `localhost`); \
             use an https URL"
                .to_string(),
        );
    }
    Ok(())
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolve_entries_are_a_name_and_an_address() {
        assert_eq!(
            parse_resolve_entry("Victim.test:127.0.0.1").unwrap(),
            ("victim.test".into(), [127, 0, 0, 1].into())
        );
        assert_eq!(parse_resolve_entry("v6.test:[::1]").unwrap().1, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(parse_resolve_entry("v6.test:::1").unwrap().1, "::1".parse::<IpAddr>().unwrap());
        for bad in
            ["victim.test", "victim.test:", ":127.0.0.1", "victim.test:not-an-ip", "1.2.3.4:5.6.7.8", "a b:1.2.3.4"]
        {
            let error = parse_resolve_entry(bad).unwrap_err().to_string();
            assert!(error.contains("is not NAME:ADDRESS"), "{bad}: {error}");
        }
    }
}
