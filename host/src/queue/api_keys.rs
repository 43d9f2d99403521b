//! API keys of the HTTP API, stored in the keys bucket (`weft-keys`, which
//! has no maximum age, unlike the job-state bucket whose records expire
//! after `record_max_age`: a key must not vanish a week after it was made).
//! One entry per key, `apikey.<id>`, holding its [`ApiKeyRecord`] and the
//! SHA-256 of its secret; the secret itself is never stored or logged, and
//! is shown once, in the token [`QueueClient::create_api_key`] returns.
//!
//! The secret is 32 random bytes, so a fast hash is the right one: a slow
//! password hash (argon2, bcrypt) protects guessable secrets, and 256
//! random bits cannot be guessed; SHA-256 keeps a verification at a few
//! microseconds. Hashes are compared in constant time.
//!
//! This module stores and verifies keys; what a scope allows, caching and
//! the HTTP headers are `api::auth`'s.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::QueueError;
use super::client::QueueClient;
use super::state::now_ms;

/// What every API key token starts with, so that a leaked one is easy to
/// spot (secret scanners) and the API tells it from a JWT.
pub const API_KEY_TOKEN_PREFIX: &str = "weft_";

/// The key prefix of API key entries in the keys bucket.
const ENTRY_PREFIX: &str = "apikey.";

/// Random bytes in a key's secret: 256 bits, beyond guessing, so one
/// SHA-256 is enough to store it (see the module docs).
pub const API_KEY_SECRET_BYTES: usize = 32;

/// Random bytes in a key's id (16 hex digits): ids are public (logged,
/// listed), they only need to be unique.
const ID_BYTES: usize = 8;

/// The longest name a key may have, in bytes: names are listed and logged.
pub const MAX_API_KEY_NAME_BYTES: usize = 128;

/// The longest `created_by` a key may carry, in bytes.
pub const MAX_API_KEY_CREATED_BY_BYTES: usize = 256;

/// The most scopes one key may carry (there are four; this bounds what a
/// record written around the client can make every verifier hold).
pub const MAX_API_KEY_SCOPES: usize = 16;

/// The longest scope name, in bytes.
const MAX_SCOPE_BYTES: usize = 32;

/// The largest stored entry a verifier reads: the caps above and room for
/// the JSON around them. A bigger one (written straight into the bucket)
/// is refused rather than parsed.
const MAX_ENTRY_BYTES: usize = 4096;

/// How often a revoke is tried again when the entry changed between its
/// read and its conditional write.
const REVOKE_TRIES: usize = 5;

/// An API key as stored and listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiKeyRecord {
    /// Public id: 16 hex digits, part of the token, safe to log.
    pub id: String,
    /// A name for people (what the key is for).
    pub name: String,
    /// Scope names (`submit`, `read`, `review`, `admin`); their meaning is
    /// the API's.
    pub scopes: Vec<String>,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it stops working, if ever.
    pub expires_at_ms: Option<u64>,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<u64>,
    /// Who created it.
    pub created_by: String,
}

/// The entry in the keys bucket: the record and its secret's hash.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredApiKey {
    #[serde(flatten)]
    record: ApiKeyRecord,
    /// SHA-256 of the secret's 32 bytes, standard base64.
    secret_sha256: String,
}

/// Why an API key could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// The request is unusable (an empty or too long name, a bad scope).
    #[error("{0}")]
    Invalid(String),
    /// No key has this id.
    #[error("no API key `{id}` exists; `weft keys list` shows the keys")]
    Unknown {
        /// The id asked for.
        id: String,
    },
    /// The keys bucket could not be read or written.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Why a token is not a valid API key. Each case is distinct so the API
/// can say what to do; none of them carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyRejected {
    /// Not of the form `weft_<id>_<secret>`.
    #[error("not an API key: a key looks like `weft_<id>_<secret>`, as `weft keys create` printed it")]
    Malformed,
    /// No key has this id (never created, or deleted from the bucket).
    #[error("API key `{id}` does not exist; create one with `weft keys create`")]
    Unknown {
        /// The token's key id.
        id: String,
    },
    /// The key exists but the secret is not its secret.
    #[error("the secret of API key `{id}` is wrong; send the whole token `weft keys create` printed")]
    WrongSecret {
        /// The token's key id.
        id: String,
    },
    /// The key was revoked.
    #[error("API key `{id}` was revoked; ask an admin for a new key")]
    Revoked {
        /// The key id.
        id: String,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// The key's lifetime is over.
    #[error("API key `{id}` expired; ask an admin for a new key")]
    Expired {
        /// The key id.
        id: String,
        /// When (ms since the Unix epoch).
        at_ms: u64,
    },
    /// The keys bucket could not be read, or holds an unreadable entry.
    #[error("cannot check API keys now: {0}")]
    Store(#[from] QueueError),
}

/// A token split into its id and secret (not yet checked against a record).
struct ParsedToken {
    id: String,
    secret: [u8; API_KEY_SECRET_BYTES],
}

/// Splits `weft_<id>_<secret>`. The id is hex, so the first `_` after the
/// prefix ends it (the secret's base64url may itself contain `_`).
fn parse_token(token: &str) -> Result<ParsedToken, KeyRejected> {
    let rest = token.strip_prefix(API_KEY_TOKEN_PREFIX).ok_or(KeyRejected::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(KeyRejected::Malformed)?;
    if !valid_key_id(id) {
        return Err(KeyRejected::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(secret).map_err(|_| KeyRejected::Malformed)?;
    let secret = <[u8; API_KEY_SECRET_BYTES]>::try_from(bytes.as_slice()).map_err(|_| KeyRejected::Malformed)?;
    Ok(ParsedToken { id: id.to_string(), secret })
}

/// Whether `id` has the form of a key id: 16 lowercase hex digits.
pub fn valid_key_id(id: &str) -> bool {
    id.len() == ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn secret_hash(secret: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(secret))
}

fn entry_key(id: &str) -> String {
    format!("{ENTRY_PREFIX}{id}")
}

fn check_request(name: &str, scopes: &[String], created_by: &str) -> Result<(), ApiKeyError> {
    let invalid = |message: String| Err(ApiKeyError::Invalid(message));
    if name.trim().is_empty() {
        return invalid("an API key needs a name saying what it is for (--name)".into());
    }
    if name.len() > MAX_API_KEY_NAME_BYTES {
        return invalid(format!("the key's name is {} bytes; at most {MAX_API_KEY_NAME_BYTES} are kept", name.len()));
    }
    if name.chars().any(char::is_control) {
        return invalid("the key's name has control characters; use printable text".into());
    }
    if created_by.len() > MAX_API_KEY_CREATED_BY_BYTES {
        return invalid(format!(
            "`created_by` is {} bytes; at most {MAX_API_KEY_CREATED_BY_BYTES} are kept",
            created_by.len()
        ));
    }
    if scopes.is_empty() {
        return invalid("an API key needs at least one scope (--scope submit,read,review,admin)".into());
    }
    if scopes.len() > MAX_API_KEY_SCOPES {
        return invalid(format!("{} scopes given; a key carries at most {MAX_API_KEY_SCOPES}", scopes.len()));
    }
    for scope in scopes {
        if scope.is_empty() || scope.len() > MAX_SCOPE_BYTES || !scope.bytes().all(|b| b.is_ascii_lowercase()) {
            return invalid(format!("scope `{scope}` is not a scope name (lowercase letters, e.g. `submit`)"));
        }
    }
    Ok(())
}

fn decode_entry(id: &str, value: &[u8]) -> Result<StoredApiKey, QueueError> {
    if value.len() > MAX_ENTRY_BYTES {
        return Err(QueueError::Invalid(format!(
            "the stored entry of API key `{id}` is {} bytes, more than any `weft keys create` writes; it was \
             written around Weft, so it is refused (revoke it or delete `{}`)",
            value.len(),
            entry_key(id)
        )));
    }
    serde_json::from_slice(value)
        .map_err(|error| QueueError::Invalid(format!("the stored entry of API key `{id}` is unreadable: {error}")))
}

/// A change to the stored API keys, as [`QueueClient::watch_api_keys`]
/// reports it: the id of the key that was created, revoked or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyChanged {
    /// The key's id.
    pub id: String,
}

impl QueueClient {
    /// Creates an API key with `scopes`, valid for `expires_in` (forever
    /// if `None`). Returns its record and its token, `weft_<id>_<secret>`:
    /// the only time the secret is seen, since only its hash is stored.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::Invalid`] for an empty or oversized name, no scopes or
    /// a malformed scope name, a zero lifetime; [`ApiKeyError::Queue`] when
    /// the keys bucket cannot be written.
    pub async fn create_api_key(
        &self,
        name: &str,
        scopes: &[String],
        expires_in: Option<Duration>,
        created_by: &str,
    ) -> Result<(ApiKeyRecord, String), ApiKeyError> {
        check_request(name, scopes, created_by)?;
        if expires_in.is_some_and(|d| d.is_zero()) {
            return Err(ApiKeyError::Invalid("an API key's lifetime must be longer than zero".into()));
        }
        let mut id_bytes = [0u8; ID_BYTES];
        let mut secret = [0u8; API_KEY_SECRET_BYTES];
        {
            let mut rng = rand::rng();
            rng.fill_bytes(&mut id_bytes);
            rng.fill_bytes(&mut secret);
        }
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let created_at_ms = now_ms();
        let expires_at_ms =
            expires_in.map(|d| created_at_ms.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let record = ApiKeyRecord {
            id: id.clone(),
            name: name.to_string(),
            scopes,
            created_at_ms,
            expires_at_ms,
            revoked_at_ms: None,
            created_by: created_by.to_string(),
        };
        let stored = StoredApiKey { record: record.clone(), secret_sha256: secret_hash(&secret) };
        let value = serde_json::to_vec(&stored).map_err(|e| QueueError::Invalid(e.to_string()))?;
        let topology = self.topology();
        // `create`, not `put`: a colliding id (64 random bits) fails rather
        // than replacing another key.
        topology.keys.create(entry_key(&id), Bytes::from(value)).await.map_err(|e| {
            QueueError::js(format!("storing API key `{id}` in bucket `{}`", topology.config.keys_bucket), e)
        })?;
        tracing::info!(key.id = %id, name, "created an API key");
        let token = format!("{API_KEY_TOKEN_PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
        Ok((record, token))
    }

    /// Every API key, revoked and expired ones included, oldest first.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the keys bucket cannot be read,
    /// [`QueueError::Invalid`] for an unreadable entry.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, QueueError> {
        let topology = self.topology();
        let bucket = &topology.config.keys_bucket;
        let names: Vec<String> = topology
            .keys
            .keys()
            .await
            .map_err(|e| QueueError::js(format!("listing bucket `{bucket}`"), e))?
            .try_collect()
            .await
            .map_err(|e| QueueError::js(format!("listing bucket `{bucket}`"), e))?;
        let mut records = Vec::new();
        for name in names {
            let Some(id) = name.strip_prefix(ENTRY_PREFIX) else { continue };
            if let Some(stored) = self.stored_api_key(id).await? {
                records.push(stored.record);
            }
        }
        records.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(records)
    }

    /// One API key's record, if it exists.
    ///
    /// # Errors
    ///
    /// As [`QueueClient::api_keys`].
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, QueueError> {
        if !valid_key_id(id) {
            return Ok(None);
        }
        Ok(self.stored_api_key(id).await?.map(|stored| stored.record))
    }

    async fn stored_api_key(&self, id: &str) -> Result<Option<StoredApiKey>, QueueError> {
        Ok(self.api_key_entry(id).await?.map(|(stored, _)| stored))
    }

    async fn api_key_entry(&self, id: &str) -> Result<Option<(StoredApiKey, u64)>, QueueError> {
        let topology = self.topology();
        let entry = topology.keys.entry(entry_key(id)).await.map_err(|e| {
            QueueError::js(format!("reading API key `{id}` from bucket `{}`", topology.config.keys_bucket), e)
        })?;
        match entry {
            Some(entry) if entry.operation == async_nats::jetstream::kv::Operation::Put => {
                Ok(Some((decode_entry(id, &entry.value)?, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Revokes API key `id`: it stays listed, marked revoked, and no longer
    /// verifies. Revoking a revoked key changes nothing and returns its
    /// record (with the first revocation's time).
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::Unknown`] when no key has this id,
    /// [`ApiKeyError::Queue`] when the bucket cannot be read or written.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKeyRecord, ApiKeyError> {
        let unknown = || ApiKeyError::Unknown { id: id.to_string() };
        if !valid_key_id(id) {
            return Err(unknown());
        }
        let topology = self.topology();
        for _ in 0..REVOKE_TRIES {
            let (mut stored, revision) = self.api_key_entry(id).await?.ok_or_else(unknown)?;
            if stored.record.revoked_at_ms.is_some() {
                return Ok(stored.record);
            }
            stored.record.revoked_at_ms = Some(now_ms());
            let value = serde_json::to_vec(&stored).map_err(|e| QueueError::Invalid(e.to_string()))?;
            match topology.keys.update(entry_key(id), Bytes::from(value), revision).await {
                Ok(_) => {
                    tracing::info!(key.id = %id, "revoked an API key");
                    return Ok(stored.record);
                }
                Err(error) if error.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {}
                Err(error) => {
                    return Err(QueueError::js(
                        format!("revoking API key `{id}` in bucket `{}`", topology.config.keys_bucket),
                        error,
                    )
                    .into());
                }
            }
        }
        Err(QueueError::js(
            format!("revoking API key `{id}`"),
            format!("its entry changed {REVOKE_TRIES} times while it was being revoked; try again"),
        )
        .into())
    }

    /// Checks `token` against the stored key: one KV read. The secret is
    /// checked before the key's state, so a caller without the secret
    /// learns nothing about a key but that its id exists.
    ///
    /// # Errors
    ///
    /// A [`KeyRejected`] saying why: malformed, unknown, wrong secret,
    /// revoked, expired, or the store unreadable.
    pub async fn verify_api_key(&self, token: &str) -> Result<ApiKeyRecord, KeyRejected> {
        let parsed = parse_token(token)?;
        let stored =
            self.stored_api_key(&parsed.id).await?.ok_or_else(|| KeyRejected::Unknown { id: parsed.id.clone() })?;
        let hash = Sha256::digest(parsed.secret);
        let stored_hash = STANDARD.decode(&stored.secret_sha256).unwrap_or_default();
        if stored_hash.len() != hash.len() || !bool::from(hash.as_slice().ct_eq(&stored_hash)) {
            return Err(KeyRejected::WrongSecret { id: parsed.id });
        }
        let record = stored.record;
        check_key_state(&record, now_ms())?;
        Ok(record)
    }

    /// A stream of changes to the stored API keys from now on (not the
    /// keys already stored): a cache of verified keys evicts on it, so a
    /// revocation takes effect at once. The stream ends when the watch
    /// does (the server went away); watch again then.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the bucket cannot be watched.
    pub async fn watch_api_keys(&self) -> Result<impl Stream<Item = ApiKeyChanged> + Send + use<>, QueueError> {
        let topology = self.topology();
        let watch = topology
            .keys
            .watch(format!("{ENTRY_PREFIX}>"))
            .await
            .map_err(|e| QueueError::js("watching API keys", e))?;
        Ok(watch.filter_map(|entry| async move {
            match entry {
                Ok(entry) => entry.key.strip_prefix(ENTRY_PREFIX).map(|id| ApiKeyChanged { id: id.to_string() }),
                Err(error) => {
                    tracing::warn!(%error, "error while watching API keys");
                    None
                }
            }
        }))
    }
}

/// Whether `record` is usable at `now_ms`: not revoked, not expired.
///
/// # Errors
///
/// [`KeyRejected::Revoked`] or [`KeyRejected::Expired`].
pub fn check_key_state(record: &ApiKeyRecord, now_ms: u64) -> Result<(), KeyRejected> {
    if let Some(at_ms) = record.revoked_at_ms {
        return Err(KeyRejected::Revoked { id: record.id.clone(), at_ms });
    }
    if let Some(at_ms) = record.expires_at_ms
        && now_ms >= at_ms
    {
        return Err(KeyRejected::Expired { id: record.id.clone(), at_ms });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_token_splits_at_the_first_underscore_after_its_hex_id() {
        let secret = [0xffu8; API_KEY_SECRET_BYTES];
        // 0xff.. encodes to `_` characters in base64url.
        let token = format!("weft_0123456789abcdef_{}", URL_SAFE_NO_PAD.encode(secret));
        assert!(token.matches('_').count() > 2);
        let parsed = parse_token(&token).unwrap();
        assert_eq!((parsed.id.as_str(), parsed.secret), ("0123456789abcdef", secret));
        for bad in [
            "weft_0123456789abcdef",
            "weft_0123456789ABCDEF_AAAA",
            "other_0123456789abcdef_AAAA",
            "weft_0123456789abcdef_too-short",
            "",
        ] {
            assert!(matches!(parse_token(bad), Err(KeyRejected::Malformed)), "{bad}");
        }
    }

    #[test]
    fn requests_with_bad_names_or_scopes_are_refused_with_the_reason() {
        let scopes = vec!["read".to_string()];
        assert!(check_request("ci", &scopes, "me").is_ok());
        let message = |r: Result<(), ApiKeyError>| r.unwrap_err().to_string();
        assert!(message(check_request(" ", &scopes, "me")).contains("needs a name"));
        assert!(message(check_request("ci", &[], "me")).contains("at least one scope"));
        assert!(message(check_request("ci", &["Read".into()], "me")).contains("`Read`"));
        assert!(message(check_request(&"n".repeat(200), &scopes, "me")).contains("at most 128"));
    }
}
