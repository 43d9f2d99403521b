//! The HTTP API's auth (issue 20): API keys stored hashed in the keys
//! bucket of a real nats-server, created, listed and revoked through the
//! library and the real `weft keys` CLI; bearer JWTs verified against a
//! JWKS served on loopback by a real HTTP server, signed with an EC P-256
//! key generated per test.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::TryStreamExt as _;
use http::{HeaderMap, StatusCode};
use weft::api::auth::{AuthConfig, AuthError, Authenticator, JwtConfig, KeyOrJwt, Scope, require};
use weft::queue::{ApiKeyError, KeyRejected, QueueClient};

use crate::nats::NatsServer;
use crate::queue::{client, queue_config};
use crate::support::weft_cmd;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    headers
}

/// The key id and secret parts of a token (`weft_<id>_<secret>`; the id
/// has no `_`, the secret may).
fn parts(token: &str) -> (&str, &str) {
    token.strip_prefix("weft_").and_then(|rest| rest.split_once('_')).unwrap()
}

/// The token with its secret replaced by another one of the same length.
fn with_other_secret(token: &str) -> String {
    format!("weft_{}_{}", parts(token).0, URL_SAFE_NO_PAD.encode([7u8; 32]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_verifies_until_revoked_and_each_rejection_says_why() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    assert!(queue.api_keys().await.unwrap().is_empty(), "a fresh bucket lists no keys");
    let (record, token) =
        queue.create_api_key("ci uploads", &strings(&["submit", "read"]), None, "ops@test").await.unwrap();
    assert!(token.starts_with(&format!("weft_{}_", record.id)), "{token}");
    assert_eq!(record.scopes, strings(&["read", "submit"]));
    assert_eq!(queue.verify_api_key(&token).await.unwrap(), record);

    // Stored in the keys bucket (no maximum age), hashed: the secret is
    // nowhere in the entry.
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let config = queue_config(&server);
    let keys = js.get_key_value(&config.keys_bucket).await.unwrap();
    let entry = keys.get(format!("apikey.{}", record.id)).await.unwrap().expect("the key's entry");
    let secret = parts(&token).1;
    let stored = String::from_utf8_lossy(&entry);
    assert!(!stored.contains(secret) && stored.contains("secret_sha256"), "{stored}");
    assert!(keys.stream.cached_info().config.max_age.is_zero(), "key records must not expire with job records");
    let state = js.get_key_value(&config.state_bucket).await.unwrap();
    let in_state: Vec<String> = state.keys().await.unwrap().try_collect().await.unwrap();
    assert!(in_state.iter().all(|k| !k.starts_with("apikey.")), "{in_state:?}");

    // Wrong secret, unknown id, malformed: each its own rejection.
    let wrong = with_other_secret(&token);
    assert!(matches!(queue.verify_api_key(&wrong).await, Err(KeyRejected::WrongSecret { ref id }) if *id == record.id));
    let unknown = format!("weft_0000000000000000_{}", parts(&token).1);
    assert!(matches!(queue.verify_api_key(&unknown).await, Err(KeyRejected::Unknown { .. })));
    assert!(matches!(queue.verify_api_key("weft_nonsense").await, Err(KeyRejected::Malformed)));

    // Revoked: rejected, still listed, marked revoked; revoking again keeps
    // the first time.
    let revoked = queue.revoke_api_key(&record.id).await.unwrap();
    let at = revoked.revoked_at_ms.expect("marked revoked");
    assert!(matches!(queue.verify_api_key(&token).await, Err(KeyRejected::Revoked { .. })));
    assert_eq!(queue.revoke_api_key(&record.id).await.unwrap().revoked_at_ms, Some(at));
    let listed = queue.api_keys().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].revoked_at_ms, Some(at));
    assert!(matches!(queue.revoke_api_key("0000000000000000").await, Err(ApiKeyError::Unknown { .. })));

    // Expired: a key with a 1 ms lifetime is soon past it.
    let (short, short_token) =
        queue.create_api_key("short", &strings(&["read"]), Some(Duration::from_millis(1)), "ops@test").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match queue.verify_api_key(&short_token).await {
            Err(KeyRejected::Expired { id, .. }) => {
                assert_eq!(id, short.id);
                break;
            }
            other => assert!(Instant::now() < deadline, "never expired: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Bad requests are refused with the reason, and store nothing.
    let error = queue.create_api_key("", &strings(&["read"]), None, "me").await.unwrap_err();
    assert!(error.to_string().contains("needs a name"), "{error}");
    assert_eq!(queue.api_keys().await.unwrap().len(), 2);
}

/// An authenticator over `queue` with a cache TTL no test outlasts, so
/// only the watch on the keys bucket can make it forget a key.
async fn authenticator(queue: &QueueClient, jwt: Option<JwtConfig>, api_keys: bool) -> Authenticator {
    let config = AuthConfig { api_keys, jwt, key_cache_ttl: Duration::from_secs(3600), ..AuthConfig::default() };
    Authenticator::start(config, queue.clone()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_working_at_once_although_it_was_cached() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let auth = authenticator(&queue, None, true).await;
    let (record, token) = queue.create_api_key("reader", &strings(&["read"]), None, "ops@test").await.unwrap();

    let principal = auth.authenticate(&bearer(&token)).await.unwrap();
    assert_eq!(principal.id, record.id);
    assert_eq!(principal.scopes, BTreeSet::from([Scope::Read]));
    assert_eq!(principal.via, KeyOrJwt::ApiKey);
    let mut x_api_key = HeaderMap::new();
    x_api_key.insert("x-api-key", token.parse().unwrap());
    assert_eq!(auth.authenticate(&x_api_key).await.unwrap(), principal, "served from the cache");
    let error = require(&principal, Scope::Submit).unwrap_err();
    assert_eq!(error.status(), StatusCode::FORBIDDEN);

    let wrong = auth.authenticate(&bearer(&with_other_secret(&token))).await.unwrap_err();
    assert!(matches!(wrong, AuthError::WrongSecret { .. }), "{wrong:?}");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(!wrong.to_string().contains(parts(&token).1));
    assert!(matches!(auth.authenticate(&HeaderMap::new()).await, Err(AuthError::Missing)));

    // The key is cached for an hour; the revocation must still win, through
    // the watch on the bucket.
    queue.revoke_api_key(&record.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match auth.authenticate(&bearer(&token)).await {
            Err(AuthError::Revoked { id }) => {
                assert_eq!(id, record.id);
                break;
            }
            other => assert!(Instant::now() < deadline, "a revoked key kept working: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An authenticator that takes only JWTs refuses keys, saying so.
    let jwt_only = authenticator(&queue, Some(JwtConfig::new("iss", "aud", "http://127.0.0.1:9/jwks")), false).await;
    assert!(matches!(jwt_only.authenticate(&bearer(&token)).await, Err(AuthError::ApiKeysDisabled)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_keys_creates_a_working_token_lists_keys_without_secrets_and_revokes() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let weft = |args: &[&str]| {
        let mut all = args.to_vec();
        let url = server.url();
        all.extend(["--nats", url.as_str()]);
        let out = weft_cmd(&std::env::temp_dir()).args(&all).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        weft(&["keys", "create", "--name", "uploader", "--scope", "submit,read", "--expires", "30d"])
    });
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("shown once"), "{stderr}");
    let token = stdout.trim().to_string();
    let record = queue.verify_api_key(&token).await.unwrap();
    assert_eq!((record.name.as_str(), record.scopes.clone()), ("uploader", strings(&["read", "submit"])));
    let lifetime = record.expires_at_ms.unwrap() - record.created_at_ms;
    assert_eq!(lifetime, 30 * 24 * 3600 * 1000);

    let secret = parts(&token).1.to_string();
    let (code, table, stderr) = tokio::task::block_in_place(|| weft(&["keys", "list"]));
    assert_eq!(code, Some(0), "{stderr}");
    let row = table.lines().find(|l| l.starts_with(&record.id)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("active") && row.contains("read,submit") && row.contains("uploader"), "{table}");
    let (code, json, _) = tokio::task::block_in_place(|| weft(&["keys", "list", "--json"]));
    assert_eq!(code, Some(0));
    assert!(!table.contains(&secret) && !json.contains(&secret), "a listing shows a secret");
    let listed: Vec<weft::queue::ApiKeyRecord> = serde_json::from_str(&json).unwrap();
    assert_eq!(listed, vec![record.clone()]);

    let (code, _, stderr) = tokio::task::block_in_place(|| weft(&["keys", "revoke", &record.id]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(matches!(queue.verify_api_key(&token).await, Err(KeyRejected::Revoked { .. })));
    let (_, table, _) = tokio::task::block_in_place(|| weft(&["keys", "list"]));
    assert!(table.lines().any(|l| l.starts_with(&record.id) && l.contains("revoked")), "{table}");

    let (code, _, stderr) = tokio::task::block_in_place(|| weft(&["keys", "revoke", "0123456789abcdef"]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no API key `0123456789abcdef`"), "{stderr}");
    let (code, _, stderr) =
        tokio::task::block_in_place(|| weft(&["keys", "create", "--name", "x", "--scope", "owner"]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown scope `owner`"), "{stderr}");
    assert_eq!(queue.api_keys().await.unwrap().len(), 1, "a refused create stores nothing");
}

/// A signing key, its algorithm and its JWK.
struct SigningKey {
    kid: String,
    algorithm: jsonwebtoken::Algorithm,
    encoding: jsonwebtoken::EncodingKey,
    jwk: serde_json::Value,
}

fn signing_key(kid: &str) -> SigningKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    SigningKey {
        kid: kid.into(),
        algorithm: jsonwebtoken::Algorithm::ES256,
        encoding: jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()),
        jwk,
    }
}

/// An RSA-2048 key for RS256, made once for these tests (`openssl genrsa
/// 2048`, PKCS#1 DER, base64): ring cannot generate RSA keys. A test key;
/// it protects nothing.
const TEST_RSA_KEY_DER: &str = concat!(
    "MIIEowIBAAKCAQEA13snE4D4oOy2VpJUkFOI+sisT1Vqpov7f7T5qTXoVzJWBamFu3vazrig0LSK6QhPUXYhPlHdu+ViZU3G",
    "Fs8IX68EyeYv4FkgqPH8bnsn5V+BqTvgZbBxiLWjm2d4StW8XVOKvILn+QF9BD1SGHB+f3OCDahkZ/cgSLfKskzwouZLYe54",
    "xhjgs6gBqld4zECGMpLZWz0qGHBaRt7Aw5pRt14U+lrSDmbxV+WZiffF4pu05NnAnscm/+jSVm7AeaUmzPhuyl7Xpzyo3bn6",
    "N5eoYhf23/+++YBpXS2zbDOfNCCiEjkFY8bxsQyCXIuzguhVdqBYIfFxIvInd/gvGpNpgQIDAQABAoIBAAYSN7cidp7eHIMS",
    "62QHnn/mYIh5sSARKJxgBnrAhJPUXL0bGiP+qNsTM6C9vX40WDvE1snxN4ygOWX+S3sACU3c2gcwP6AUEsn/y2t3d9fMGZSh",
    "lcB3uLMv3vS1dRuyqvR8Mpf+HjgTVSjl62a54K6JnBvzZyTQvy2dVA4zAcKtKi1ic2xZxrwlSZAATXYD88T7H6UgoA+BvXja",
    "SzqRnIsK79GN8/xPl/O8S8BV/bUZ806+AYP/y4UMxK0qkEX4LcCXb208M55ibtInlMTFufwT7IVnpmMSI+T940b/72AKCamg",
    "H1Laf8l42GkjcAGz+8p3Kkg3xDhyJ0nJkLYqTWECgYEA65zNx3p9Xxo1UUL7A7JgNYDKHRQmdmVllkxCMPTbSqTF6NcSS1oG",
    "c/ggvF2GkEhOcJvOCzok2A4TjB/30BxvKCWFr0ro+KCjFQAwWVfSwXtn8xZfRjJ/GSXOP/9r6FP27JLuSmvmxYIof7guxTX8",
    "ZpuAK7G66+6AjRsiKaqDxrkCgYEA6iBnokfEZLQiHCgo42o7BBrRusmDF8eWqCsrErQUe+zjDr9JJP7iownqgbjIRQxhlxiv",
    "nYvThe/r6R/m+A3YhSrahJ8NfrpXI+ah1PQ4JWLInButq+e4dmS9ELp1cs5/kaLQUVPRqkflnvYumtG9oL0vdYSn3h0H7SOq",
    "w/emVQkCgYEArzYMUStl0DNNMwD8aeNcaG094CH7+E+vG/XZw05TRU8DXgOSNzbbVaJPtcRXLTSYIGW889xpScIuByY+wyRi",
    "BRjiMVkjpsDOhe9+BPKqZ/e9dahNcYZbvfe/SRhIxpyqI4OgcPeMxZPlShVNsppS+Hrq9ZNVzd2u+0ASR6nmFQECgYBINL5B",
    "ekjDlhp+/JO/r1+MIIlWRhe8Gb4JF2ctWYSHw8MzJSN12XYkOkasw0RgpzTh2Kcwu5L818W2HDSrg/mm+FR0WmlbEDUXyWVX",
    "vAok3ZZpLtAdGFX3jZIRuq/GPJFzZPdCXctn7MyQffRZox4MmMwuPj9XbTSomjtsPNB7oQKBgFZcyPds/DBPZkVuVuM0Hq8T",
    "2VgUrzp7uSwxdtQjGW+7pqGwSjy9dAWFRN7aXUCTtvW1SmVgHgAAR+dJNXFFElVw3TYgTVU3bm7f2n0GK7dEhd4F2V49+nQ7",
    "ODgiOhYW9AIOGE7V98+E3IdBRgzB0dClXt5daQB2sgig2JLH2Jxf",
);

/// Its public modulus and exponent, base64url, as a JWK carries them.
const TEST_RSA_N: &str = concat!(
    "13snE4D4oOy2VpJUkFOI-sisT1Vqpov7f7T5qTXoVzJWBamFu3vazrig0LSK6QhPUXYhPlHdu-ViZU3GFs8IX68EyeYv4Fkg",
    "qPH8bnsn5V-BqTvgZbBxiLWjm2d4StW8XVOKvILn-QF9BD1SGHB-f3OCDahkZ_cgSLfKskzwouZLYe54xhjgs6gBqld4zECG",
    "MpLZWz0qGHBaRt7Aw5pRt14U-lrSDmbxV-WZiffF4pu05NnAnscm_-jSVm7AeaUmzPhuyl7Xpzyo3bn6N5eoYhf23_---YBp",
    "XS2zbDOfNCCiEjkFY8bxsQyCXIuzguhVdqBYIfFxIvInd_gvGpNpgQ",
);
const TEST_RSA_E: &str = "AQAB";

fn rsa_signing_key(kid: &str) -> SigningKey {
    let der = base64::engine::general_purpose::STANDARD.decode(TEST_RSA_KEY_DER).unwrap();
    let jwk =
        serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": TEST_RSA_N, "e": TEST_RSA_E});
    SigningKey {
        kid: kid.into(),
        algorithm: jsonwebtoken::Algorithm::RS256,
        encoding: jsonwebtoken::EncodingKey::from_rsa_der(&der),
        jwk,
    }
}

/// A JWKS endpoint on loopback that counts its fetches; the keys it
/// serves can be changed (a rotation).
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Vec<serde_json::Value>>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(keys: Vec<serde_json::Value>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get({
                let (keys, fetches) = (Arc::clone(&keys), Arc::clone(&fetches));
                move || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({ "keys": *keys.lock().unwrap() }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer { url, keys, fetches, task }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "weft-api";

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A token signed by `key` with these claims over the usual valid ones.
fn jwt(key: &SigningKey, overrides: serde_json::Value) -> String {
    let mut claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice@example.com",
        "exp": now_secs() + 600, "iat": now_secs(), "scope": "openid read submit",
    });
    for (name, value) in overrides.as_object().unwrap() {
        claims[name] = value.clone();
    }
    let mut header = jsonwebtoken::Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_from_the_issuer_is_accepted_with_its_scopes_and_each_bad_one_is_refused_with_its_reason() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let key = signing_key("k1");
    let rsa = rsa_signing_key("rsa1");
    let jwks = JwksServer::start(vec![key.jwk.clone(), rsa.jwk.clone()]).await;
    let auth = authenticator(&queue, Some(JwtConfig::new(ISSUER, AUDIENCE, &jwks.url)), true).await;

    let principal = auth.authenticate(&bearer(&jwt(&key, serde_json::json!({})))).await.unwrap();
    assert_eq!(principal.id, "alice@example.com");
    assert_eq!(principal.via, KeyOrJwt::Jwt);
    assert_eq!(principal.scopes, BTreeSet::from([Scope::Read, Scope::Submit]), "`openid` is not Weft's");
    assert!(Authenticator::require(&principal, Scope::Submit).is_ok());
    let error = Authenticator::require(&principal, Scope::Review).unwrap_err();
    assert!(matches!(error, AuthError::MissingScope { needed: Scope::Review, .. }), "{error:?}");
    assert_eq!(error.status(), StatusCode::FORBIDDEN);

    // RS256 against the issuer's RSA key, as most OIDC issuers sign.
    let principal = auth.authenticate(&bearer(&jwt(&rsa, serde_json::json!({"scope": "review"})))).await.unwrap();
    assert_eq!(principal.scopes, BTreeSet::from([Scope::Review]));
    // A token naming the RSA key but claiming ES256 is refused: the key
    // decides the algorithm, not the token.
    let confused = SigningKey { kid: "rsa1".into(), ..signing_key("unused") };
    let error = auth.authenticate(&bearer(&jwt(&confused, serde_json::json!({})))).await.unwrap_err();
    assert!(matches!(error, AuthError::WrongAlgorithm { .. }), "{error:?}");

    let impostor = signing_key("k1");
    let refused = [
        (jwt(&key, serde_json::json!({"exp": now_secs() - 3600})), "expired"),
        (jwt(&key, serde_json::json!({"aud": "another-api"})), "wrong audience"),
        (jwt(&key, serde_json::json!({"iss": "https://elsewhere.test"})), "wrong issuer"),
        (jwt(&impostor, serde_json::json!({})), "bad signature"),
    ];
    for (token, case) in refused {
        let Err(error) = auth.authenticate(&bearer(&token)).await else { panic!("{case}: accepted") };
        let expected = match case {
            "expired" => matches!(error, AuthError::TokenExpired),
            "wrong audience" => matches!(error, AuthError::WrongAudience { .. }),
            "wrong issuer" => matches!(error, AuthError::WrongIssuer { .. }),
            _ => matches!(error, AuthError::BadSignature),
        };
        assert!(expected, "{case}: {error:?}");
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert!(!error.to_string().contains(&token), "{case}");
    }

    // A scope claim given as an array, under another name.
    let scp = JwtConfig { scope_claim: "scp".into(), ..JwtConfig::new(ISSUER, AUDIENCE, &jwks.url) };
    let auth_scp = authenticator(&queue, Some(scp), false).await;
    let token = jwt(&key, serde_json::json!({"scp": ["review", "admin"]}));
    let principal = auth_scp.authenticate(&bearer(&token)).await.unwrap();
    assert_eq!(principal.scopes, BTreeSet::from([Scope::Review, Scope::Admin]));

    // An issuer that cannot be reached is a 503, not a 401.
    let gone = JwtConfig::new(ISSUER, AUDIENCE, format!("http://{}/jwks", closed_port()));
    let auth_gone = authenticator(&queue, Some(gone), false).await;
    let error = auth_gone.authenticate(&bearer(&jwt(&key, serde_json::json!({})))).await.unwrap_err();
    assert!(matches!(error, AuthError::JwksUnavailable { .. }), "{error:?}");
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A loopback address nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_id_triggers_one_jwks_refetch_and_no_more_within_the_interval() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let (first, second) = (signing_key("first"), signing_key("second"));
    let jwks = JwksServer::start(vec![first.jwk.clone()]).await;

    // Refetches allowed at any time: a rotated-in key is found by exactly
    // one refetch.
    let eager = JwtConfig { jwks_min_refetch: Duration::ZERO, ..JwtConfig::new(ISSUER, AUDIENCE, &jwks.url) };
    let auth = authenticator(&queue, Some(eager), false).await;
    auth.authenticate(&bearer(&jwt(&first, serde_json::json!({})))).await.unwrap();
    assert_eq!(jwks.fetches(), 1);
    auth.authenticate(&bearer(&jwt(&first, serde_json::json!({})))).await.unwrap();
    assert_eq!(jwks.fetches(), 1, "a known key is served from the cache");
    jwks.keys.lock().unwrap().push(second.jwk.clone());
    let principal = auth.authenticate(&bearer(&jwt(&second, serde_json::json!({})))).await.unwrap();
    assert_eq!(principal.id, "alice@example.com");
    assert_eq!(jwks.fetches(), 2, "one refetch for the new key id");

    // The default interval: tokens naming unknown key ids refetch at most
    // once per interval, here not at all after the first fetch.
    let bounded = JwtConfig::new(ISSUER, AUDIENCE, &jwks.url);
    let auth = authenticator(&queue, Some(bounded), false).await;
    auth.authenticate(&bearer(&jwt(&first, serde_json::json!({})))).await.unwrap();
    assert_eq!(jwks.fetches(), 3);
    for i in 0..20 {
        let made_up = signing_key(&format!("made-up-{i}"));
        let error = auth.authenticate(&bearer(&jwt(&made_up, serde_json::json!({})))).await.unwrap_err();
        assert!(
            matches!(error, AuthError::UnknownSigningKey { ref kid } if *kid == format!("made-up-{i}")),
            "{error:?}"
        );
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(jwks.fetches(), 3, "unknown key ids made the API hammer the issuer");
}
