//! Encryption at rest: the one place job payloads are sealed before they are
//! written to NATS and opened after they are read back. It owns the
//! [`Keyring`] (the current key writes, every configured key reads), the
//! sealed format and the errors a reader sees when it lacks a key; it never
//! decides what is a payload (the store, checkpoints, client and job run
//! call it for inputs, checkpoint items, outputs and dead-letter bodies) and
//! never touches NATS.
//!
//! Sealed bytes are `MAGIC`, a version byte, the key id (length-prefixed),
//! a 24-byte random nonce and the XChaCha20-Poly1305 ciphertext with its
//! tag. The header and a context naming where the bytes live (the object
//! name, the KV key) are authenticated with the ciphertext, so sealed bytes
//! moved to another key or object do not open. Bytes that do not start with
//! `MAGIC` are plaintext written before encryption was turned on, and are
//! read as they are: `MAGIC` starts with `0xFF`, which no UTF-8 text or JSON
//! begins with.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The secret holding the at-rest keys: `id:base64key,id:base64key`, the
/// first one sealing what is written, every one opening what is read.
pub const AT_REST_KEYS_SECRET: &str = "AT_REST_KEYS";

/// What sealed bytes start with.
const MAGIC: &[u8] = b"\xffWEFT";
/// The format version after `MAGIC`.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
/// The longest key id: it is written into every sealed value.
const MAX_KEY_ID_LEN: usize = 64;

/// Why sealed data cannot be opened, or the keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtRestError {
    /// The data is sealed and this process has no at-rest keys.
    #[error(
        "{what} is encrypted with at-rest key `{key_id}`, but no at-rest keys are configured here; set the secret \
         {AT_REST_KEYS_SECRET} (`--secrets-file` or WEFT_SECRET_{AT_REST_KEYS_SECRET}) to keys that include `{key_id}`"
    )]
    NoKeys {
        /// What was being read.
        what: String,
        /// The key it was sealed with.
        key_id: String,
    },
    /// The data is sealed with a key id this process does not have.
    #[error(
        "{what} is encrypted with at-rest key `{key_id}`, which is not among the configured keys ({known}); add \
         `{key_id}` to {AT_REST_KEYS_SECRET} (keep old keys configured until the data they sealed is gone)"
    )]
    UnknownKey {
        /// What was being read.
        what: String,
        /// The key it was sealed with.
        key_id: String,
        /// The ids this process has.
        known: String,
    },
    /// The key id is known but the bytes do not open: changed, corrupt, or
    /// sealed under other key bytes with the same id.
    #[error(
        "{what} is encrypted with at-rest key `{key_id}` but does not decrypt: it was changed or moved since it was \
         written, or the key configured as `{key_id}` is not the one that encrypted it"
    )]
    Tampered {
        /// What was being read.
        what: String,
        /// The key it was sealed with.
        key_id: String,
    },
    /// The data starts like sealed data but its header is cut or unknown.
    #[error("{what} starts like encrypted data but its header is malformed or of an unknown version")]
    Malformed {
        /// What was being read.
        what: String,
    },
    /// The configured keys are not usable.
    #[error(
        "{AT_REST_KEYS_SECRET}: {0}; expected `id:base64key[,id:base64key...]` with 32-byte keys (make one with \
         `head -c 32 /dev/urandom | base64`), the first one encrypting"
    )]
    Config(String),
}

impl AtRestError {
    /// The key id the data was sealed with, when the error is about one key
    /// this process lacks (not a tampered or malformed value).
    pub fn missing_key(&self) -> Option<&str> {
        match self {
            AtRestError::NoKeys { key_id, .. } | AtRestError::UnknownKey { key_id, .. } => Some(key_id),
            _ => None,
        }
    }
}

struct AtRestKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The at-rest keys: the first seals, every one opens. Cheap to clone; its
/// `Debug` shows only the ids.
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<Vec<AtRestKey>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids()).finish_non_exhaustive()
    }
}

impl Keyring {
    /// Keys from `(id, 32 bytes)` pairs, the first one current.
    ///
    /// # Errors
    ///
    /// [`AtRestError::Config`] for no keys, a repeated or unusable id (1-64
    /// of letters, digits, `-`, `_`).
    pub fn new(keys: Vec<(String, [u8; KEY_LEN])>) -> Result<Self, AtRestError> {
        if keys.is_empty() {
            return Err(AtRestError::Config("no keys given".into()));
        }
        let mut out: Vec<AtRestKey> = Vec::with_capacity(keys.len());
        for (id, key) in keys {
            let usable = !id.is_empty()
                && id.len() <= MAX_KEY_ID_LEN
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !usable {
                return Err(AtRestError::Config(format!(
                    "key id `{}` is not 1-{MAX_KEY_ID_LEN} letters, digits, `-` or `_`",
                    crate::text::printable(&id)
                )));
            }
            if out.iter().any(|k| k.id == id) {
                return Err(AtRestError::Config(format!("key id `{id}` is given twice")));
            }
            out.push(AtRestKey { id, cipher: XChaCha20Poly1305::new(&key.into()) });
        }
        Ok(Keyring { keys: Arc::new(out) })
    }

    /// Keys from the secret's text: `id:base64key,id:base64key` (spaces
    /// and newlines around entries are ignored).
    ///
    /// # Errors
    ///
    /// [`AtRestError::Config`] naming the entry that is wrong (never its key).
    pub fn parse(spec: &str) -> Result<Self, AtRestError> {
        let mut keys = Vec::new();
        for (index, entry) in spec.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(AtRestError::Config(format!("entry {} has no `:` between its id and key", index + 1)));
            };
            let id = id.trim();
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| {
                AtRestError::Config(format!("the key of `{}` is not valid base64", crate::text::printable(id)))
            })?;
            let key: [u8; KEY_LEN] = bytes.try_into().map_err(|bytes: Vec<u8>| {
                AtRestError::Config(format!(
                    "the key of `{}` is {} bytes, not {KEY_LEN}",
                    crate::text::printable(id),
                    bytes.len()
                ))
            })?;
            keys.push((id.to_string(), key));
        }
        Keyring::new(keys)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Every id, the current one first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// `plaintext` sealed under the current key, bound to `context` (where
    /// the bytes will live: reading them anywhere else fails).
    pub(crate) fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let Some(key) = self.keys.first() else { return plaintext.to_vec() };
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(MAGIC.len() + 2 + key.id.len() + NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        // Ids are at most 64 bytes (checked when the keyring is made).
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        let header_len = out.len();
        let aad = [&out[..header_len], context].concat();
        // Encryption with a valid key and nonce fails only for plaintexts
        // beyond 256 GiB, which no NATS message or object here reaches.
        let Ok(ciphertext) = key.cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
        else {
            return Vec::new();
        };
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }
}

/// Whether `bytes` are sealed (start with the sealed format's prefix).
pub(crate) fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The key id sealed `bytes` name, when they are sealed and well formed.
pub(crate) fn sealed_key_id(bytes: &[u8]) -> Option<&str> {
    parse(bytes).map(|sealed| sealed.key_id)
}

struct Sealed<'a> {
    header: &'a [u8],
    key_id: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse(bytes: &[u8]) -> Option<Sealed<'_>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (&version, rest) = rest.split_first()?;
    if version != VERSION {
        return None;
    }
    let (&id_len, rest) = rest.split_first()?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN {
        return None;
    }
    let (id, rest) = rest.split_at(id_len);
    let key_id = std::str::from_utf8(id).ok()?;
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let header = &bytes[..MAGIC.len() + 2 + id_len];
    Some(Sealed { header, key_id, nonce, ciphertext })
}

/// The plaintext of `bytes`: opened with `keys` when sealed (bound to
/// `context`, as sealed), as they are when not (written before encryption
/// was turned on). `what` names the data in an error.
///
/// # Errors
///
/// [`AtRestError`] naming the key id when the bytes are sealed and this
/// process lacks its key, or they do not open.
pub(crate) fn open<'a>(
    keys: Option<&Keyring>,
    context: &[u8],
    bytes: &'a [u8],
    what: impl FnOnce() -> String,
) -> Result<Cow<'a, [u8]>, AtRestError> {
    if !is_sealed(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let Some(sealed) = parse(bytes) else { return Err(AtRestError::Malformed { what: what() }) };
    let key_id = sealed.key_id.to_string();
    let Some(keys) = keys else { return Err(AtRestError::NoKeys { what: what(), key_id }) };
    let Some(key) = keys.keys.iter().find(|k| k.id == key_id) else {
        return Err(AtRestError::UnknownKey { what: what(), key_id, known: keys.ids().join(", ") });
    };
    let aad = [sealed.header, context].concat();
    key.cipher
        .decrypt(XNonce::from_slice(sealed.nonce), Payload { msg: sealed.ciphertext, aad: &aad })
        .map(Cow::Owned)
        .map_err(|_| AtRestError::Tampered { what: what(), key_id })
}

/// `plaintext` sealed when `keys` are configured, else as it is.
pub(crate) fn seal_if<'a>(keys: Option<&Keyring>, context: &[u8], plaintext: &'a [u8]) -> Cow<'a, [u8]> {
    match keys {
        Some(keys) => Cow::Owned(keys.seal(context, plaintext)),
        None => Cow::Borrowed(plaintext),
    }
}

/// The context a job message body is sealed under (bodies are replayed
/// under other message ids, so it names no id).
pub(crate) const JOB_MESSAGE: &[u8] = b"job-message";

/// The context of an object named `name`.
pub(crate) fn object_context(name: &str) -> Vec<u8> {
    [b"object:".as_slice(), name.as_bytes()].concat()
}

/// The context of a value under `key` in the job-state bucket.
pub(crate) fn kv_context(key: &str) -> Vec<u8> {
    [b"kv:".as_slice(), key.as_bytes()].concat()
}

/// Sealed bytes as text, for a JSON field (a record's outputs).
pub(crate) fn to_text(sealed: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

/// Sealed bytes back from [`to_text`]'s text.
pub(crate) fn from_text(text: &str, what: impl FnOnce() -> String) -> Result<Vec<u8>, AtRestError> {
    base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| AtRestError::Malformed { what: what() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ring(spec: &[(&str, u8)]) -> Keyring {
        Keyring::new(spec.iter().map(|(id, byte)| (id.to_string(), [*byte; KEY_LEN])).collect()).unwrap()
    }

    fn what() -> String {
        "object `o`".into()
    }

    #[test]
    fn sealed_bytes_round_trip_and_hide_the_plaintext() {
        let keys = ring(&[("k1", 1)]);
        let sealed = keys.seal(b"ctx", b"secret invoice text");
        assert!(is_sealed(&sealed));
        assert_eq!(sealed_key_id(&sealed), Some("k1"));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(open(Some(&keys), b"ctx", &sealed, what).unwrap().as_ref(), b"secret invoice text");
        // Two seals of the same text differ (a fresh nonce each time).
        assert_ne!(keys.seal(b"ctx", b"x"), keys.seal(b"ctx", b"x"));
    }

    #[test]
    fn an_old_key_still_opens_and_the_first_key_seals() {
        let old = ring(&[("a", 1)]);
        let rotated = ring(&[("b", 2), ("a", 1)]);
        let sealed_by_old = old.seal(b"c", b"payload");
        assert_eq!(open(Some(&rotated), b"c", &sealed_by_old, what).unwrap().as_ref(), b"payload");
        assert_eq!(sealed_key_id(&rotated.seal(b"c", b"p")), Some("b"));
    }

    #[test]
    fn a_missing_key_is_an_error_naming_its_id() {
        let sealed = ring(&[("a", 1)]).seal(b"c", b"payload");
        let error = open(Some(&ring(&[("b", 2)])), b"c", &sealed, what).unwrap_err();
        assert_eq!(error.missing_key(), Some("a"));
        assert!(error.to_string().contains("at-rest key `a`, which is not among the configured keys (b)"), "{error}");
        let error = open(None, b"c", &sealed, what).unwrap_err();
        assert_eq!(error.missing_key(), Some("a"));
        assert!(error.to_string().contains("no at-rest keys are configured"), "{error}");
    }

    #[test]
    fn changed_or_moved_bytes_do_not_open() {
        let keys = ring(&[("a", 1)]);
        let sealed = keys.seal(b"c", b"payload");
        for at in [sealed.len() - 1, sealed.len() - 20, 8] {
            let mut changed = sealed.clone();
            changed[at] ^= 1;
            let error = open(Some(&keys), b"c", &changed, what).unwrap_err();
            assert!(matches!(error, AtRestError::Tampered { .. }), "byte {at}: {error}");
            assert_eq!(error.missing_key(), None);
        }
        // Another context (another object's name) does not open it.
        assert!(matches!(open(Some(&keys), b"d", &sealed, what), Err(AtRestError::Tampered { .. })));
        // The same id with other key bytes does not open it either.
        assert!(matches!(open(Some(&ring(&[("a", 9)])), b"c", &sealed, what), Err(AtRestError::Tampered { .. })));
        // A cut header is malformed, not garbage.
        assert!(matches!(open(Some(&keys), b"c", &sealed[..7], what), Err(AtRestError::Malformed { .. })));
    }

    #[test]
    fn plaintext_passes_through_with_or_without_keys() {
        let keys = ring(&[("a", 1)]);
        for plain in [&b"{\"input\":{\"text\":\"hi\"}}"[..], b"", b"%PDF-1.7", "é".as_bytes()] {
            assert!(matches!(open(Some(&keys), b"c", plain, what).unwrap(), Cow::Borrowed(p) if p == plain));
            assert!(matches!(open(None, b"c", plain, what).unwrap(), Cow::Borrowed(p) if p == plain));
        }
        assert!(matches!(seal_if(None, b"c", b"x"), Cow::Borrowed(b"x")));
    }

    #[test]
    fn the_secret_parses_and_bad_entries_are_named_without_their_keys() {
        let a = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let b = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
        let keys = Keyring::parse(&format!(" new:{b} ,\nold:{a}\n")).unwrap();
        assert_eq!(keys.ids(), ["new", "old"]);
        assert_eq!(keys.current_id(), "new");
        assert!(!format!("{keys:?}").contains(&a));
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        for (spec, says) in [
            ("", "no keys given"),
            ("k1", "no `:`"),
            ("k1:!!!", "not valid base64"),
            (&format!("k1:{short}"), "16 bytes, not 32"),
            (&format!("k1:{a},k1:{b}"), "given twice"),
            (&format!("a.b:{a}"), "is not 1-64 letters"),
        ] {
            let error = Keyring::parse(spec).unwrap_err().to_string();
            assert!(error.contains(says), "{spec}: {error}");
            assert!(!error.contains(&a) && !error.contains(&b), "{error}");
        }
    }
}
