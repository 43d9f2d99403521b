//! Who is calling the HTTP API, and may they: reads the credential from a
//! request's headers (`Authorization: Bearer <token>` or `X-Api-Key`),
//! verifies it (an API key against the keys bucket through the queue
//! module, a JWT against the issuer's JWKS) and checks scopes. It never
//! logs or echoes a token: errors and logs name a key by its id and a JWT
//! by its subject.
//!
//! Costs: a verified API key is cached (by the SHA-256 of the whole token)
//! for [`AuthConfig::key_cache_ttl`], so a request costs no KV round trip
//! in the common case. A watch on the keys bucket evicts a key from the
//! cache as soon as it is revoked; while that watch is down (the server
//! away), the TTL bounds how long a revoked key keeps working. JWKS keys
//! are cached and refetched when stale or when a token names an unknown
//! key id, at most once per [`JwtConfig::jwks_min_refetch`], so tokens
//! with made-up key ids cannot make the API hammer the issuer.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use http::{HeaderMap, StatusCode};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

use crate::queue::{API_KEY_TOKEN_PREFIX, ApiKeyRecord, KeyRejected, QueueClient, QueueError, check_key_state};

/// What a caller may do. `Admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Submit jobs.
    Submit,
    /// Read jobs, results, events, workflows.
    Read,
    /// Review: cancel jobs, inspect and replay dead letters.
    Review,
    /// Everything, key management included.
    Admin,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 4] = [Scope::Submit, Scope::Read, Scope::Review, Scope::Admin];

    /// The scope's name, as keys store it and JWT scope claims carry it.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Read => "read",
            Scope::Review => "review",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.name() == name)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A scope name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}`: the scopes are submit, read, review and admin")]
pub struct UnknownScope(pub String);

impl std::str::FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Scope::parse(name.trim()).ok_or_else(|| UnknownScope(name.to_string()))
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrJwt {
    /// An API key (`weft keys create`).
    ApiKey,
    /// A bearer JWT from the configured issuer.
    Jwt,
    /// Nothing: no auth is configured, so the API listens on loopback
    /// only and every caller is `anonymous` with every scope.
    Open,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The API key's id or the JWT's `sub`: safe to log, never a secret.
    pub id: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// How it authenticated.
    pub via: KeyOrJwt,
}

impl Principal {
    /// Whether the caller has `scope` (directly or through `admin`).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// Checks that `principal` has `scope`.
///
/// # Errors
///
/// [`AuthError::MissingScope`] (403) when it has not.
pub fn require(principal: &Principal, scope: Scope) -> Result<(), AuthError> {
    if principal.has(scope) {
        return Ok(());
    }
    Err(AuthError::MissingScope {
        needed: scope,
        principal: principal.id.clone(),
        has: principal.scopes.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
    })
}

/// Default [`AuthConfig::key_cache_ttl`]: how long a verified API key is
/// trusted without reading the bucket again, the bound on how long a
/// revoked key keeps working while the watch on the bucket is down.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Default [`AuthConfig::key_cache_capacity`]: bounds the cache's memory
/// (a few hundred bytes a key).
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 10_000;

/// The longest credential read from a header, in bytes: an API key is 70,
/// a JWT a few KiB at most; longer is refused before any parsing or
/// hashing.
pub const MAX_CREDENTIAL_BYTES: usize = 8 * 1024;

/// Default [`JwtConfig::scope_claim`].
pub const DEFAULT_SCOPE_CLAIM: &str = "scope";

/// Default [`JwtConfig::leeway`]: tolerated clock skew between the issuer
/// and this host when checking `exp` and `nbf`.
pub const DEFAULT_JWT_LEEWAY: Duration = Duration::from_secs(60);

/// Default [`JwtConfig::jwks_timeout`]: how long a JWKS fetch may take,
/// so a slow issuer cannot hold requests.
pub const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`JwtConfig::jwks_max_bytes`]: the largest JWKS document read,
/// so a broken or hostile issuer cannot exhaust memory (real ones are a
/// few KiB).
pub const DEFAULT_JWKS_MAX_BYTES: usize = 256 * 1024;

/// Default [`JwtConfig::jwks_min_refetch`]: the least time between two
/// JWKS fetches, so tokens naming unknown key ids cannot hammer the issuer.
pub const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);

/// Default [`JwtConfig::jwks_max_age`]: how long fetched keys are used
/// before they are fetched again (a key the issuer withdrew stops working
/// after at most this long).
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(600);

/// How soon the watch on API keys is opened again after it ended.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// Bearer JWTs: who issues them and how to check them.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The `iss` a token must carry.
    pub issuer: String,
    /// The `aud` a token must carry (one of, if it has several).
    pub audience: String,
    /// Where the issuer publishes its signing keys (https; http only on
    /// loopback).
    pub jwks_url: String,
    /// The claim holding the scopes: a space-separated string (OAuth 2
    /// `scope`) or an array of strings (e.g. `scp`). Names that are not
    /// Weft scopes are ignored.
    pub scope_claim: String,
    /// Tolerated clock skew for `exp` and `nbf`.
    pub leeway: Duration,
    /// See [`DEFAULT_JWKS_TIMEOUT`].
    pub jwks_timeout: Duration,
    /// See [`DEFAULT_JWKS_MAX_BYTES`].
    pub jwks_max_bytes: usize,
    /// See [`DEFAULT_JWKS_MIN_REFETCH`].
    pub jwks_min_refetch: Duration,
    /// See [`DEFAULT_JWKS_MAX_AGE`].
    pub jwks_max_age: Duration,
}

impl JwtConfig {
    /// Tokens from `issuer` for `audience`, keys at `jwks_url`, the other
    /// settings at their defaults.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks_url: impl Into<String>) -> Self {
        JwtConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: jwks_url.into(),
            scope_claim: DEFAULT_SCOPE_CLAIM.into(),
            leeway: DEFAULT_JWT_LEEWAY,
            jwks_timeout: DEFAULT_JWKS_TIMEOUT,
            jwks_max_bytes: DEFAULT_JWKS_MAX_BYTES,
            jwks_min_refetch: DEFAULT_JWKS_MIN_REFETCH,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
        }
    }
}

/// How the API authenticates callers.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Accept API keys (`weft keys create`).
    pub api_keys: bool,
    /// Accept bearer JWTs from this issuer.
    pub jwt: Option<JwtConfig>,
    /// See [`DEFAULT_KEY_CACHE_TTL`].
    pub key_cache_ttl: Duration,
    /// See [`DEFAULT_KEY_CACHE_CAPACITY`].
    pub key_cache_capacity: usize,
}

impl Default for AuthConfig {
    /// API keys on, no JWT.
    fn default() -> Self {
        AuthConfig {
            api_keys: true,
            jwt: None,
            key_cache_ttl: DEFAULT_KEY_CACHE_TTL,
            key_cache_capacity: DEFAULT_KEY_CACHE_CAPACITY,
        }
    }
}

impl AuthConfig {
    /// Whether any credential is accepted (else the API is open).
    pub fn is_enabled(&self) -> bool {
        self.api_keys || self.jwt.is_some()
    }
}

/// Checks where an API may listen: with no auth configured, only on a
/// loopback address, unless the operator said `--insecure-no-auth`.
///
/// # Errors
///
/// [`AuthSetupError::OpenOnNetwork`] for an open API on another address.
pub fn check_bind(addr: SocketAddr, config: &AuthConfig, insecure_no_auth: bool) -> Result<(), AuthSetupError> {
    if config.is_enabled() || addr.ip().is_loopback() || insecure_no_auth {
        return Ok(());
    }
    Err(AuthSetupError::OpenOnNetwork { addr })
}

/// Why an [`Authenticator`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The JWKS URL is unusable.
    #[error("JWKS URL `{url}`: {reason}")]
    JwksUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client for the JWKS could not be built.
    #[error("cannot build the HTTP client that fetches the JWKS: {0}")]
    Client(String),
    /// The keys bucket could not be watched.
    #[error("cannot watch API keys for revocations: {0}")]
    Watch(#[from] QueueError),
    /// No auth configured and a non-loopback address.
    #[error(
        "refusing to serve the API on {addr} without authentication: anyone who reaches it could submit and read \
         jobs; configure API keys or a JWT issuer, bind to 127.0.0.1, or pass --insecure-no-auth"
    )]
    OpenOnNetwork {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Why a request is not authenticated or not allowed. Messages say what
/// to do and never contain the credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential at all.
    #[error(
        "no credentials: send `Authorization: Bearer <token>` with an API key (`weft keys create`) or a JWT from \
         the configured issuer"
    )]
    Missing,
    /// A credential that cannot be read.
    #[error("unusable credentials: {0}")]
    Malformed(String),
    /// An API key sent to a server that does not accept them.
    #[error("this server does not accept API keys; send a JWT from its issuer")]
    ApiKeysDisabled,
    /// A JWT sent to a server that does not accept them.
    #[error("this server does not accept JWTs; send an API key (`weft_...`, from `weft keys create`)")]
    JwtDisabled,
    /// No API key has this id.
    #[error("API key `{id}` does not exist; ask an admin for a key (`weft keys create`)")]
    UnknownKey {
        /// The key id the token names.
        id: String,
    },
    /// The key exists; the secret is not its secret.
    #[error("the secret of API key `{id}` is wrong; send the whole token `weft keys create` printed")]
    WrongSecret {
        /// The key id.
        id: String,
    },
    /// The API key was revoked.
    #[error("API key `{id}` was revoked; ask an admin for a new key")]
    Revoked {
        /// The key id.
        id: String,
    },
    /// The API key's lifetime is over.
    #[error("API key `{id}` expired; ask an admin for a new key")]
    KeyExpired {
        /// The key id.
        id: String,
    },
    /// The JWT's `exp` has passed.
    #[error("the JWT expired; get a fresh one from the issuer")]
    TokenExpired,
    /// The JWT's `nbf` is still ahead.
    #[error("the JWT is not valid yet (its `nbf` is in the future); check the clocks of the issuer and this host")]
    NotYetValid,
    /// The JWT's signature does not verify.
    #[error("the JWT's signature does not verify against the issuer's key; get a token from the issuer")]
    BadSignature,
    /// The JWT names a key the issuer's JWKS does not list.
    #[error("the JWT is signed with key `{kid}`, which the issuer's JWKS does not list; get a token from the issuer")]
    UnknownSigningKey {
        /// The `kid` of the token's header.
        kid: String,
    },
    /// The JWT uses an algorithm this server does not accept.
    #[error("the JWT is signed with {alg}; this server accepts RS256 and ES256, with the algorithm of the named key")]
    WrongAlgorithm {
        /// The token's `alg`.
        alg: String,
    },
    /// The JWT is from another issuer.
    #[error("the JWT was not issued by `{expected}`; get a token from that issuer")]
    WrongIssuer {
        /// The issuer this server trusts.
        expected: String,
    },
    /// The JWT is for another audience.
    #[error("the JWT is not for audience `{expected}`; ask the issuer for a token for this API")]
    WrongAudience {
        /// The audience this server is.
        expected: String,
    },
    /// A claim the server needs is missing.
    #[error("the JWT has no `{claim}` claim; this server needs exp, iss, aud and sub")]
    MissingClaim {
        /// The claim.
        claim: String,
    },
    /// Authenticated, but without the scope the request needs.
    #[error("this request needs scope `{needed}`; `{principal}` has {has} (ask an admin for a key or token with it)")]
    MissingScope {
        /// The scope required.
        needed: Scope,
        /// Who asked (key id or JWT subject).
        principal: String,
        /// The scopes it has, comma separated.
        has: String,
    },
    /// The issuer's keys cannot be fetched.
    #[error("cannot fetch the JWT issuer's signing keys ({reason}); try again later")]
    JwksUnavailable {
        /// Why (the URL and the error).
        reason: String,
    },
    /// The key store cannot be read.
    #[error("cannot check API keys now ({reason}); try again later")]
    KeyStoreUnavailable {
        /// Why.
        reason: String,
    },
}

impl AuthError {
    /// The HTTP status to answer with: 401 for a missing or bad
    /// credential, 403 for a missing scope, 503 when the credential cannot
    /// be checked now.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingScope { .. } => StatusCode::FORBIDDEN,
            AuthError::JwksUnavailable { .. } | AuthError::KeyStoreUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` value to send with a 401 or 403 (RFC 6750).
    pub fn challenge(&self) -> Option<&'static str> {
        match self.status() {
            StatusCode::UNAUTHORIZED if matches!(self, AuthError::Missing) => Some("Bearer realm=\"weft\""),
            StatusCode::UNAUTHORIZED => Some("Bearer realm=\"weft\", error=\"invalid_token\""),
            StatusCode::FORBIDDEN => Some("Bearer realm=\"weft\", error=\"insufficient_scope\""),
            _ => None,
        }
    }
}

impl From<KeyRejected> for AuthError {
    fn from(rejected: KeyRejected) -> Self {
        match rejected {
            KeyRejected::Malformed => AuthError::Malformed(rejected.to_string()),
            KeyRejected::Unknown { id } => AuthError::UnknownKey { id },
            KeyRejected::WrongSecret { id } => AuthError::WrongSecret { id },
            KeyRejected::Revoked { id, .. } => AuthError::Revoked { id },
            KeyRejected::Expired { id, .. } => AuthError::KeyExpired { id },
            KeyRejected::Store(error) => AuthError::KeyStoreUnavailable { reason: error.to_string() },
        }
    }
}

/// A credential as a request carries it.
enum Credential<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
}

/// Reads the one credential of a request.
fn credential(headers: &HeaderMap) -> Result<Credential<'_>, AuthError> {
    let one = |name: http::HeaderName| -> Result<Option<&str>, AuthError> {
        let mut values = headers.get_all(&name).iter();
        let Some(value) = values.next() else { return Ok(None) };
        if values.next().is_some() {
            return Err(AuthError::Malformed(format!("send one `{name}` header, not several")));
        }
        if value.len() > MAX_CREDENTIAL_BYTES {
            return Err(AuthError::Malformed(format!(
                "the `{name}` header is {} bytes; a credential has at most {MAX_CREDENTIAL_BYTES}",
                value.len()
            )));
        }
        let text =
            value.to_str().map_err(|_| AuthError::Malformed(format!("the `{name}` header is not visible ASCII")))?;
        Ok(Some(text.trim()))
    };
    let authorization = one(http::header::AUTHORIZATION)?;
    let api_key = one(http::HeaderName::from_static("x-api-key"))?;
    match (authorization, api_key) {
        (None, None) => Err(AuthError::Missing),
        (Some(_), Some(_)) => Err(AuthError::Malformed(
            "send the credential in one header, `Authorization` or `X-Api-Key`, not both".into(),
        )),
        (None, Some(key)) if key.starts_with(API_KEY_TOKEN_PREFIX) => Ok(Credential::ApiKey(key)),
        (None, Some(_)) => Err(AuthError::Malformed(
            "`X-Api-Key` takes an API key (`weft_...`, from `weft keys create`); send a JWT as `Authorization: Bearer`"
                .into(),
        )),
        (Some(value), None) => {
            let token = value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .filter(|token| !token.is_empty())
                .ok_or_else(|| AuthError::Malformed("the `Authorization` header must be `Bearer <token>`".into()))?;
            Ok(if token.starts_with(API_KEY_TOKEN_PREFIX) { Credential::ApiKey(token) } else { Credential::Jwt(token) })
        }
    }
}

/// A verified API key, cached.
struct CachedKey {
    record: ApiKeyRecord,
    verified_at: Instant,
}

/// Verified API keys by the SHA-256 of their whole token.
#[derive(Default)]
struct KeyCache {
    entries: HashMap<[u8; 32], CachedKey>,
    /// Bumped on every change the watch reports: a verification that
    /// started before a change does not cache what it read.
    generation: u64,
}

impl KeyCache {
    fn evict(&mut self, id: &str) {
        self.entries.retain(|_, cached| cached.record.id != id);
        self.generation = self.generation.wrapping_add(1);
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.generation = self.generation.wrapping_add(1);
    }

    fn insert(&mut self, digest: [u8; 32], record: ApiKeyRecord, ttl: Duration, capacity: usize) {
        if self.entries.len() >= capacity {
            self.entries.retain(|_, cached| cached.verified_at.elapsed() < ttl);
        }
        if self.entries.len() >= capacity {
            let oldest = self.entries.iter().min_by_key(|(_, cached)| cached.verified_at).map(|(digest, _)| *digest);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(digest, CachedKey { record, verified_at: Instant::now() });
    }
}

/// A signing key from the JWKS.
#[derive(Clone)]
struct JwtKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The keys of the last successful fetch, by `kid` (`""` for a key
/// without one).
struct KeySet {
    keys: HashMap<String, JwtKey>,
    fetched_at: Instant,
}

#[derive(Default)]
struct FetchState {
    /// When the last fetch (successful or not) started.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
}

/// The issuer's signing keys, fetched and cached.
struct Jwks {
    config: JwtConfig,
    client: reqwest::Client,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<FetchState>,
}

impl Jwks {
    fn new(config: JwtConfig) -> Result<Self, AuthSetupError> {
        let bad = |reason: &str| AuthSetupError::JwksUrl { url: config.jwks_url.clone(), reason: reason.into() };
        let url = url::Url::parse(&config.jwks_url).map_err(|e| bad(&e.to_string()))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(bad(
                    "plain http lets anyone on the path swap the issuer's keys for theirs; use https (http is \
                     accepted on loopback only)",
                ));
            }
            other => return Err(bad(&format!("scheme `{other}` is not https"))),
        }
        if config.jwks_max_bytes == 0 || config.jwks_timeout.is_zero() {
            return Err(AuthSetupError::Invalid("the JWKS size cap and timeout must be above zero".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(config.jwks_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .https_only(!loopback)
            .build()
            .map_err(|e| AuthSetupError::Client(e.to_string()))?;
        Ok(Jwks { config, client, keys: RwLock::new(None), fetching: tokio::sync::Mutex::new(FetchState::default()) })
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The key `kid` names: from the cache, else after a fetch (when one is
    /// allowed now).
    async fn key(&self, kid: &str) -> Result<JwtKey, AuthError> {
        let fresh = |set: &KeySet| set.fetched_at.elapsed() < self.config.jwks_max_age;
        if let Some(set) = self.snapshot()
            && fresh(&set)
            && let Some(key) = set.keys.get(kid)
        {
            return Ok(key.clone());
        }
        let mut state = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let current = self.snapshot();
        if let Some(set) = &current
            && fresh(set)
            && let Some(key) = set.keys.get(kid)
        {
            return Ok(key.clone());
        }
        let may_fetch = state.last_attempt.is_none_or(|at| at.elapsed() >= self.config.jwks_min_refetch);
        let mut current = current;
        if may_fetch {
            state.last_attempt = Some(Instant::now());
            match self.fetch().await {
                Ok(set) => {
                    state.last_error = None;
                    let set = Arc::new(set);
                    *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&set));
                    current = Some(set);
                }
                Err(reason) => {
                    tracing::warn!(url = %self.config.jwks_url, %reason, "cannot fetch the JWKS");
                    state.last_error = Some(reason);
                }
            }
        }
        match current {
            // A stale set is still used when the refetch failed: better
            // than refusing every token while the issuer is away.
            Some(set) => set.keys.get(kid).cloned().ok_or_else(|| AuthError::UnknownSigningKey { kid: kid.into() }),
            None => Err(AuthError::JwksUnavailable {
                reason: format!(
                    "{}: {}",
                    self.config.jwks_url,
                    state.last_error.as_deref().unwrap_or("not fetched yet")
                ),
            }),
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let mut response = self.client.get(&self.config.jwks_url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the issuer answered {}", response.status()));
        }
        let cap = self.config.jwks_max_bytes;
        let too_big = || format!("the JWKS is larger than {cap} bytes");
        if response.content_length().is_some_and(|length| length > cap as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > cap {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(&body).map_err(|e| format!("the JWKS is not a JSON key set: {e}"))?;
        let mut keys = HashMap::new();
        for value in document.keys {
            // One key of a type this server does not use (an Ed25519 or a
            // symmetric one) must not make the whole set unusable.
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
            let Some(key) = usable_key(&jwk) else { continue };
            keys.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
        }
        if keys.is_empty() {
            return Err("the JWKS has no RS256 or ES256 (P-256) key".into());
        }
        Ok(KeySet { keys, fetched_at: Instant::now() })
    }
}

/// The key and algorithm of a JWK, when it is one this server accepts:
/// RSA for RS256, EC P-256 for ES256 (and the JWK's `alg`, if it has one,
/// agrees).
fn usable_key(jwk: &Jwk) -> Option<JwtKey> {
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    if let Some(declared) = jwk.common.key_algorithm
        && declared.to_string() != format!("{algorithm:?}")
    {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwtKey { algorithm, key })
}

/// What the cache watch task shares with requests.
struct Shared {
    config: AuthConfig,
    queue: QueueClient,
    cache: Arc<Mutex<KeyCache>>,
    jwks: Option<Jwks>,
    watch: Option<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.abort();
        }
    }
}

/// Authenticates API requests. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Authenticator {
    shared: Arc<Shared>,
}

impl Authenticator {
    /// Starts authenticating as `config` says, keys read through `queue`:
    /// opens the watch on API keys (so revocations evict at once) and
    /// checks the JWT settings. Needs a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`AuthSetupError`] for an unusable JWKS URL or limit, or when the
    /// keys bucket cannot be watched.
    pub async fn start(config: AuthConfig, queue: QueueClient) -> Result<Self, AuthSetupError> {
        if config.key_cache_capacity == 0 {
            return Err(AuthSetupError::Invalid("the API key cache needs a capacity of at least 1".into()));
        }
        let jwks = config.jwt.clone().map(Jwks::new).transpose()?;
        let cache = Arc::new(Mutex::new(KeyCache::default()));
        let watch = if config.api_keys {
            let first = queue.watch_api_keys().await?;
            Some(tokio::spawn(evict_on_change(queue.clone(), Arc::clone(&cache), first)))
        } else {
            None
        };
        Ok(Authenticator { shared: Arc::new(Shared { config, queue, cache, jwks, watch }) })
    }

    /// The configuration in use.
    pub fn config(&self) -> &AuthConfig {
        &self.shared.config
    }

    /// Who sent a request with these headers.
    ///
    /// # Errors
    ///
    /// An [`AuthError`] saying what is wrong with the credential (401), or
    /// that it cannot be checked now (503).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let result = match credential(headers)? {
            Credential::ApiKey(token) => self.api_key(token).await,
            Credential::Jwt(token) => self.jwt(token).await,
        };
        match &result {
            Ok(principal) => tracing::debug!(principal = %principal.id, via = ?principal.via, "authenticated"),
            Err(error) => tracing::info!(%error, "authentication failed"),
        }
        result
    }

    /// Checks that `principal` has `scope` (see [`require`]).
    ///
    /// # Errors
    ///
    /// [`AuthError::MissingScope`].
    pub fn require(principal: &Principal, scope: Scope) -> Result<(), AuthError> {
        require(principal, scope)
    }

    async fn api_key(&self, token: &str) -> Result<Principal, AuthError> {
        let shared = &self.shared;
        if !shared.config.api_keys {
            return Err(AuthError::ApiKeysDisabled);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let ttl = shared.config.key_cache_ttl;
        let (cached, generation) = {
            let cache = shared.cache.lock().unwrap_or_else(PoisonError::into_inner);
            let cached = cache
                .entries
                .get(&digest)
                .filter(|cached| cached.verified_at.elapsed() < ttl)
                .map(|cached| cached.record.clone());
            (cached, cache.generation)
        };
        let record = match cached {
            Some(record) => {
                // A cached key may have expired since it was verified.
                check_key_state(&record, now_ms())?;
                record
            }
            None => {
                let record = shared.queue.verify_api_key(token).await?;
                let mut cache = shared.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.generation == generation && !ttl.is_zero() {
                    cache.insert(digest, record.clone(), ttl, shared.config.key_cache_capacity);
                }
                record
            }
        };
        Ok(Principal {
            scopes: scopes_of(&record.id, record.scopes.iter().map(String::as_str)),
            id: record.id,
            via: KeyOrJwt::ApiKey,
        })
    }

    async fn jwt(&self, token: &str) -> Result<Principal, AuthError> {
        let jwks = self.shared.jwks.as_ref().ok_or(AuthError::JwtDisabled)?;
        let config = &jwks.config;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Malformed("the bearer token is neither an API key nor a readable JWT".into()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::WrongAlgorithm { alg: format!("{:?}", header.alg) });
        }
        let kid = header.kid.unwrap_or_default();
        let key = jwks.key(&kid).await?;
        if key.algorithm != header.alg {
            return Err(AuthError::WrongAlgorithm { alg: format!("{:?}", header.alg) });
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation)
            .map_err(|error| jwt_error(error, config))?;
        let claims = data.claims;
        let subject = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| AuthError::MissingClaim { claim: "sub".into() })?;
        let names: Vec<&str> = match claims.get(&config.scope_claim) {
            Some(serde_json::Value::String(text)) => text.split_whitespace().collect(),
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(serde_json::Value::as_str).collect(),
            _ => Vec::new(),
        };
        Ok(Principal { scopes: scopes_of(subject, names.into_iter()), id: subject.to_string(), via: KeyOrJwt::Jwt })
    }
}

/// Milliseconds since the Unix epoch (key records' times are so).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The Weft scopes among `names` (a JWT's scope claim carries others too,
/// e.g. `openid`; a key record written around the CLI may too).
fn scopes_of<'a>(who: &str, names: impl Iterator<Item = &'a str>) -> BTreeSet<Scope> {
    names
        .filter_map(|name| {
            let scope = Scope::parse(name);
            if scope.is_none() {
                tracing::debug!(principal = %who, scope = name, "ignoring a scope that is not Weft's");
            }
            scope
        })
        .collect()
}

fn jwt_error(error: jsonwebtoken::errors::Error, config: &JwtConfig) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match error.into_kind() {
        ErrorKind::ExpiredSignature => AuthError::TokenExpired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer { expected: config.issuer.clone() },
        ErrorKind::InvalidAudience => AuthError::WrongAudience { expected: config.audience.clone() },
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim { claim },
        ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm { alg: "another algorithm".into() },
        other => AuthError::Malformed(format!("the JWT cannot be read ({other:?})")),
    }
}

/// Evicts cached keys as the bucket reports changes; when the watch ends
/// (the server went away) the cache is cleared, since changes may have
/// been missed, and the watch opened again.
async fn evict_on_change(
    queue: QueueClient,
    cache: Arc<Mutex<KeyCache>>,
    first: impl futures::Stream<Item = crate::queue::ApiKeyChanged> + Send,
) {
    let mut changes = Some(first.boxed());
    loop {
        if let Some(mut stream) = changes.take() {
            while let Some(change) = stream.next().await {
                cache.lock().unwrap_or_else(PoisonError::into_inner).evict(&change.id);
            }
            tracing::warn!("the watch on API keys ended; watching again");
        }
        cache.lock().unwrap_or_else(PoisonError::into_inner).clear();
        tokio::time::sleep(REWATCH_DELAY).await;
        match queue.watch_api_keys().await {
            Ok(stream) => changes = Some(stream.boxed()),
            Err(error) => tracing::warn!(%error, "cannot watch API keys; cached keys expire after their TTL"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_credential_is_read_from_one_header_and_never_echoed() {
        assert!(matches!(credential(&headers(&[])), Err(AuthError::Missing)));
        assert!(matches!(
            credential(&headers(&[("authorization", "Bearer weft_abc_def")])),
            Ok(Credential::ApiKey("weft_abc_def"))
        ));
        assert!(matches!(credential(&headers(&[("authorization", "bearer a.b.c")])), Ok(Credential::Jwt("a.b.c"))));
        assert!(matches!(credential(&headers(&[("x-api-key", "weft_abc_def")])), Ok(Credential::ApiKey(_))));
        for (pairs, words) in [
            (vec![("authorization", "Basic c2VjcmV0LXZhbHVl")], "Bearer <token>"),
            (vec![("authorization", "Bearer ")], "Bearer <token>"),
            (vec![("x-api-key", "secret-value")], "X-Api-Key"),
            (vec![("authorization", "Bearer weft_x"), ("x-api-key", "weft_y")], "not both"),
            (vec![("x-api-key", "weft_secret-value"), ("x-api-key", "weft_y")], "not several"),
        ] {
            let error = match credential(&headers(&pairs)) {
                Err(error) => error,
                Ok(_) => panic!("{pairs:?} accepted"),
            };
            let message = error.to_string();
            assert!(message.contains(words), "{message}");
            assert!(!message.contains("secret-value") && !message.contains("c2VjcmV0"), "{message}");
            assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        }
        let long = format!("Bearer {}", "a".repeat(MAX_CREDENTIAL_BYTES));
        assert!(matches!(credential(&headers(&[("authorization", &long)])), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn admin_implies_every_scope_and_a_missing_scope_is_a_403() {
        let principal = |scopes: &[Scope]| Principal {
            id: "k1".into(),
            scopes: scopes.iter().copied().collect(),
            via: KeyOrJwt::ApiKey,
        };
        for scope in Scope::ALL {
            assert!(require(&principal(&[Scope::Admin]), scope).is_ok());
        }
        let reader = principal(&[Scope::Read]);
        assert!(require(&reader, Scope::Read).is_ok());
        let error = require(&reader, Scope::Submit).unwrap_err();
        assert_eq!(error.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            error.to_string(),
            "this request needs scope `submit`; `k1` has read (ask an admin for a key or token with it)"
        );
        assert_eq!("review".parse::<Scope>(), Ok(Scope::Review));
        assert!("owner".parse::<Scope>().unwrap_err().to_string().contains("submit, read, review and admin"));
    }

    #[test]
    fn an_open_api_binds_to_loopback_only_unless_told_otherwise() {
        let open = AuthConfig { api_keys: false, ..AuthConfig::default() };
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(check_bind(local, &open, false).is_ok());
        let error = check_bind(public, &open, false).unwrap_err();
        assert!(error.to_string().contains("--insecure-no-auth"), "{error}");
        assert!(check_bind(public, &open, true).is_ok());
        assert!(check_bind(public, &AuthConfig::default(), false).is_ok());
    }

    #[test]
    fn a_jwks_over_plain_http_is_refused_off_loopback() {
        let error = Jwks::new(JwtConfig::new("iss", "aud", "http://issuer.example/jwks")).err().unwrap();
        assert!(error.to_string().contains("use https"), "{error}");
        assert!(Jwks::new(JwtConfig::new("iss", "aud", "http://127.0.0.1:9/jwks")).is_ok());
        assert!(Jwks::new(JwtConfig::new("iss", "aud", "https://issuer.example/jwks")).is_ok());
    }
}
