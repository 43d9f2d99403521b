//! Dead letters: what the dead-letter stream holds for a job that can never
//! run, how a letter stays small enough to publish whatever the message was,
//! and how a letter proves that a worker wrote it.
//!
//! A body too large (or not UTF-8) to keep inline is stored out of line, in
//! the object store under a name derived from the letter's message id, and
//! the letter keeps its size, SHA-256 and a short preview; every other field
//! is capped, so a letter is at most a few hundred KiB, below any usable
//! `max_payload`. Each letter carries an HMAC-SHA256 of its exact bytes (the
//! `Weft-Dlq-Mac` header) under a key kept in the state bucket, so an entry
//! published straight to the dead-letter subjects is told apart from one a
//! worker wrote, and a changed one fails the check.
//!
//! This module never decides when to dead-letter (`job_run` does) and never
//! touches NATS itself (`store` and `client` move the bytes).

use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use weft_core::hex;

use super::state::{JobAttempt, JobState};

/// Bodies up to this size that are UTF-8 stay inline in the letter (as
/// escaped JSON text, at most six times as long); larger or binary bodies go
/// to the object store.
pub const INLINE_BODY_LIMIT: usize = 16 * 1024;

/// How much of an out-of-line body the letter keeps as text, to show.
const PREVIEW_CHARS: usize = 512;

/// Caps on the letter's other fields (a publisher chose the job id, and a
/// plugin chose its error messages).
const ID_LIMIT: usize = 256;
const REASON_LIMIT: usize = 4 * 1024;
const ERROR_LIMIT: usize = 16 * 1024;
const HISTORY_LIMIT: usize = 32;

/// The header carrying a letter's MAC, as hex.
pub(crate) const MAC_HEADER: &str = "Weft-Dlq-Mac";

/// The key under which the dead-letter key is kept in the keys bucket
/// (older versions kept it in the state bucket, under the same name).
pub(crate) const KEY_NAME: &str = "dlq-key";

/// Domain separation: this key signs dead letters and nothing else.
const MAC_CONTEXT: &[u8] = b"weft dead letter v1\n";

/// What the dead-letter stream holds for a failed job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The job's id (`seq-<n>` for a message without one), cut to 256 bytes.
    pub job_id: String,
    /// Its workflow (from the subject).
    pub workflow: String,
    /// Why it was dead-lettered, in words.
    pub reason: String,
    /// The failing step, kind and message, when a step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// The job's runs (the last 32).
    #[serde(default)]
    pub history: Vec<JobAttempt>,
    /// The original message body as text when [`DeadLetter::body`] is
    /// `None`; otherwise the start of it, to show.
    pub message: String,
    /// Where the original body is when it is not inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<StoredBody>,
    /// The at-rest key the body is encrypted with, when it is: the body is
    /// then kept only encrypted, out of line, and `message` says so (`weft
    /// dlq show` decrypts it with the configured keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_with: Option<String>,
}

/// An original message body kept out of the letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredBody {
    /// Its object in the object store; `None` when it could not be stored
    /// (then only the preview, size and hash are left).
    pub object: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// One entry of the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterEntry {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// Whether a worker wrote it: its MAC checks under the dead-letter key.
    /// Only such entries are replayed.
    pub authenticated: bool,
    /// What it holds.
    #[serde(flatten)]
    pub letter: DeadLetter,
}

impl DeadLetter {
    /// A letter for a message with body `payload`, every field within its
    /// cap. A body that is not kept inline gets a [`StoredBody`] without an
    /// object yet: the store names one when it writes the body.
    pub(crate) fn new(
        job_id: &str,
        workflow: &str,
        reason: String,
        error: Option<serde_json::Value>,
        mut history: Vec<JobAttempt>,
        payload: &[u8],
    ) -> Self {
        let inline = std::str::from_utf8(payload).ok().filter(|_| payload.len() <= INLINE_BODY_LIMIT);
        let (message, body) = match inline {
            Some(text) => (text.to_string(), None),
            None => {
                let preview: String = String::from_utf8_lossy(&payload[..payload.len().min(PREVIEW_CHARS * 4)])
                    .chars()
                    .take(PREVIEW_CHARS)
                    .collect();
                (preview, Some(StoredBody { object: None, size: payload.len() as u64, sha256: sha256_hex(payload) }))
            }
        };
        if history.len() > HISTORY_LIMIT {
            history.drain(..history.len() - HISTORY_LIMIT);
        }
        for attempt in &mut history {
            attempt.error = attempt.error.take().map(cap_value);
        }
        DeadLetter {
            job_id: clip(job_id, ID_LIMIT),
            workflow: clip(workflow, ID_LIMIT),
            reason: clip(&reason, REASON_LIMIT),
            error: error.map(cap_value),
            history,
            message,
            body,
            encrypted_with: None,
        }
    }

    /// Keeps the body only as `sealed` (encrypted with key `key_id`): out
    /// of line, with no plaintext preview; size and SHA-256 are the
    /// encrypted bytes', so they say nothing about the plaintext.
    pub(crate) fn keep_encrypted(&mut self, key_id: &str, sealed: &[u8]) {
        self.message = format!("(encrypted with at-rest key `{key_id}`; `weft dlq show` decrypts it)");
        self.body = Some(StoredBody { object: None, size: sealed.len() as u64, sha256: sha256_hex(sealed) });
        self.encrypted_with = Some(key_id.to_string());
    }
}

/// A body as `weft dlq show` shows it in `message`: the text when it is
/// UTF-8 and short enough to be kept inline, else its start.
pub(crate) fn shown(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if payload.len() <= INLINE_BODY_LIMIT => text.to_string(),
        _ => String::from_utf8_lossy(&payload[..payload.len().min(PREVIEW_CHARS * 4)])
            .chars()
            .take(PREVIEW_CHARS)
            .collect(),
    }
}

/// `text` cut at a character boundary to at most `max` bytes, saying how
/// long it was.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// An error value as it is, or as clipped text when its JSON is too long.
fn cap_value(value: serde_json::Value) -> serde_json::Value {
    let text = value.to_string();
    if text.len() <= ERROR_LIMIT { value } else { serde_json::Value::String(clip(&text, ERROR_LIMIT)) }
}

/// The SHA-256 of `bytes`, hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The dead-letter key, 32 random bytes.
pub(crate) type DlqKey = [u8; 32];

/// A fresh random key.
pub(crate) fn new_key() -> DlqKey {
    rand::random()
}

fn keyed(key: &DlqKey) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(MAC_CONTEXT);
    mac
}

/// The MAC of a letter's exact bytes, hex (the `Weft-Dlq-Mac` header).
pub(crate) fn mac_hex(key: &DlqKey, letter_bytes: &[u8]) -> String {
    let mut mac = keyed(key);
    mac.update(letter_bytes);
    hex(&mac.finalize().into_bytes())
}

/// Whether `header` is the MAC of `letter_bytes` under `key` (compared in
/// constant time).
pub(crate) fn verify(key: &DlqKey, letter_bytes: &[u8], header: Option<&str>) -> bool {
    let Some(tag) = header.and_then(unhex) else { return false };
    let mut mac = keyed(key);
    mac.update(letter_bytes);
    mac.verify_slice(&tag).is_ok()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Why a dead letter is not replayed, or its body cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterProblem {
    /// Its MAC is missing or wrong: a worker did not write it, or it was
    /// changed since.
    #[error(
        "it was not written by a Weft worker (no valid MAC under the dead-letter key): it was published straight to \
         the dead-letter subject or changed since, so it is not replayed; inspect it with `weft dlq show`, and let \
         only workers publish to the dead-letter subjects"
    )]
    Unauthenticated,
    /// Its original message is not a job that could ever run.
    #[error("its original message cannot run ({0}); submit a corrected job instead")]
    NotAJob(String),
    /// The job succeeded after it was dead-lettered.
    #[error(
        "the job already succeeded since it was dead-lettered; replaying would run it again: pass --force to do so"
    )]
    Succeeded,
    /// The job was submitted again and is not finished.
    #[error("the job is {0:?} (submitted again since it was dead-lettered); wait until it finishes, or pass --force")]
    InProgress(JobState),
    /// The original body could not be stored when the letter was written.
    #[error(
        "its original body ({size} bytes, SHA-256 {sha256}) could not be stored when it was dead-lettered; only its \
         start is kept in the letter"
    )]
    BodyNotKept {
        /// The body's size.
        size: u64,
        /// The body's SHA-256.
        sha256: String,
    },
    /// The stored body is not the one the letter names.
    #[error("object `{object}` no longer holds the original body (its size or SHA-256 differs from the letter's)")]
    BodyChanged {
        /// The object.
        object: String,
    },
}

/// A problem with one dead letter, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dead letter {sequence} (job `{job_id}`): {problem}")]
pub struct DeadLetterError {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// Its job id, printable.
    pub job_id: String,
    /// What is wrong.
    pub problem: DeadLetterProblem,
}

impl DeadLetterError {
    pub(crate) fn new(entry: &DeadLetterEntry, problem: DeadLetterProblem) -> Self {
        DeadLetterError {
            sequence: entry.sequence,
            job_id: crate::text::printable(&entry.letter.job_id).to_string(),
            problem,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_large_or_binary_body_is_kept_out_of_line_and_every_field_is_capped() {
        let small = DeadLetter::new("a", "w", "r".into(), None, Vec::new(), b"{\"x\":1}");
        assert_eq!((small.message.as_str(), small.body.as_ref()), ("{\"x\":1}", None));
        let nuls = vec![0u8; 300 * 1024];
        let big = DeadLetter::new(&"i".repeat(10_000), "w", "r".repeat(100_000), None, Vec::new(), &nuls);
        let body = big.body.as_ref().unwrap();
        assert_eq!((body.size, body.object.as_ref()), (nuls.len() as u64, None));
        assert_eq!(body.sha256, sha256_hex(&nuls));
        assert!(serde_json::to_vec(&big).unwrap().len() < 32 * 1024);
        assert!(big.job_id.ends_with("(10000 bytes in all)") && big.reason.len() < REASON_LIMIT + 64);
        let binary = DeadLetter::new("a", "w", "r".into(), None, Vec::new(), &[0xff, 0xfe]);
        assert!(binary.body.is_some(), "a body that is not UTF-8 is kept byte for byte");
    }

    #[test]
    fn the_mac_checks_only_the_same_bytes_under_the_same_key() {
        let key = new_key();
        let tag = mac_hex(&key, b"letter");
        assert!(verify(&key, b"letter", Some(&tag)));
        assert!(!verify(&key, b"letteR", Some(&tag)));
        assert!(!verify(&new_key(), b"letter", Some(&tag)));
        assert!(!verify(&key, b"letter", None));
        assert!(!verify(&key, b"letter", Some("zz")));
        assert!(!verify(&key, b"letter", Some(&tag[..10])));
    }
}
