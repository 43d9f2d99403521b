//! Input contracts: what a job's input must be for a workflow (its `input:`
//! section): the media types it accepts (sniffed from the bytes by
//! [`crate::sniff`], never taken from a name or a header), a size bound, and
//! a JSON Schema every JSON input must meet. It owns checking an input
//! against a contract and saying in user words what is wrong
//! ([`InputViolation`]), with the field path for JSON. It is pure: the
//! callers (`weft run`, `weft submit`, the worker, the HTTP API) hold the
//! bytes and decide what a refusal does.
//!
//! A contract is serialisable on its own ([`InputContract`] round-trips
//! through JSON, its schema compiled again when read), so a client can check
//! an input against the contract a worker registered without the workflow
//! file. JSON Schemas are compiled with `jsonschema`'s default features off:
//! a `$ref` to a remote or file URL is never fetched, and such a schema is
//! refused when the workflow loads.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sniff::{KNOWN_MEDIA_TYPES, MediaKind, sniff, sniff_head};
use crate::units::human_size;

/// The longest a violation's detail (a JSON Schema message, a JSON parse
/// error) may be, in characters: such messages quote the offending value,
/// which a hostile input can make as large as the input itself, and the
/// message travels into dead letters, logs and HTTP responses.
pub const MAX_VIOLATION_DETAIL_CHARS: usize = 200;

/// How many JSON Schema errors past the first are counted (and reported as
/// "and N more problems"): an input with a million bad array entries would
/// otherwise be walked to its end.
pub const MAX_SCHEMA_ERRORS_COUNTED: usize = 100;

/// What a workflow's input must be. Built by the parser from `input:`, or
/// read back from JSON (`{"workflow": ..., "media_types": [...],
/// "max_size": ..., "json_schema": {...}}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ContractSpec", into = "ContractSpec")]
pub struct InputContract {
    workflow: String,
    media_types: Vec<String>,
    max_size: Option<u64>,
    json_schema: Option<JsonSchema>,
}

/// The serialised form of an [`InputContract`].
#[derive(Serialize, Deserialize)]
struct ContractSpec {
    workflow: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    media_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    json_schema: Option<Value>,
}

impl TryFrom<ContractSpec> for InputContract {
    type Error = ContractError;

    fn try_from(spec: ContractSpec) -> Result<Self, ContractError> {
        InputContract::new(spec.workflow, spec.media_types, spec.max_size, spec.json_schema)
    }
}

impl From<InputContract> for ContractSpec {
    fn from(contract: InputContract) -> Self {
        ContractSpec {
            workflow: contract.workflow,
            media_types: contract.media_types,
            max_size: contract.max_size,
            json_schema: contract.json_schema.map(|schema| schema.value),
        }
    }
}

/// A compiled JSON Schema and the JSON it was compiled from.
#[derive(Clone)]
struct JsonSchema {
    value: Value,
    validator: Arc<jsonschema::Validator>,
}

impl PartialEq for JsonSchema {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonSchema").field(&self.value).finish()
    }
}

/// Why a contract cannot be built (a workflow file reports these with the
/// position of the offending value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// A media type Weft cannot recognise from an input's bytes.
    #[error("unknown media type `{media_type}`{hint} Weft recognises {}", KNOWN_MEDIA_TYPES.join(", "))]
    UnknownMediaType {
        /// As written.
        media_type: String,
        /// `; did you mean `x`?`, or `;`.
        hint: String,
    },
    /// `max_size: 0` would refuse every input.
    #[error("`input.max_size` must be greater than zero")]
    ZeroMaxSize,
    /// A JSON Schema is declared but no accepted media type is JSON.
    #[error(
        "`input.json_schema` applies to JSON input, but `input.media_types` ({media_types}) accepts no JSON; \
         add application/json"
    )]
    SchemaWithoutJson {
        /// The accepted media types, joined.
        media_types: String,
    },
    /// The JSON Schema does not compile (not a valid schema, or a `$ref`
    /// that cannot be resolved without fetching).
    #[error("`input.json_schema` is not a usable JSON Schema: {0}")]
    InvalidSchema(String),
}

/// Why an input breaks its workflow's contract, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputViolation {
    /// The input's bytes are of a type the workflow does not accept.
    #[error("input is {}{}, but workflow `{workflow}` accepts {}", found.describe(), sent_as(declared.as_deref()), accepted.join(", "))]
    MediaType {
        /// The workflow.
        workflow: String,
        /// What the bytes are.
        found: MediaKind,
        /// The media type the client declared, if any (not trusted).
        declared: Option<String>,
        /// What the workflow accepts.
        accepted: Vec<String>,
    },
    /// The input is larger than the workflow's `max_size`.
    #[error("input is {}, over this workflow's {} limit", size_words(*size, *limit), human_size(*limit))]
    TooLarge {
        /// The workflow.
        workflow: String,
        /// The input's size in bytes.
        size: u64,
        /// The workflow's `max_size`.
        limit: u64,
    },
    /// The input looks like JSON (it starts with `{` or `[`) but does not
    /// parse, and the workflow accepts only JSON.
    #[error("input is not valid JSON ({detail}), but workflow `{workflow}` accepts {}", accepted.join(", "))]
    NotJson {
        /// The workflow.
        workflow: String,
        /// The parser's message.
        detail: String,
        /// What the workflow accepts.
        accepted: Vec<String>,
    },
    /// The input is JSON that breaks the workflow's JSON Schema.
    #[error("{path}: {message}{}", more_problems(*others))]
    Schema {
        /// The workflow.
        workflow: String,
        /// The offending field as a path from the input: `input.body`,
        /// `input.items[2].name`, `input` for the whole document.
        path: String,
        /// The same field as a JSON pointer (`/body`, RFC 6901), for
        /// machine-readable errors.
        pointer: String,
        /// What is wrong with it.
        message: String,
        /// How many other problems the input has (at most
        /// [`MAX_SCHEMA_ERRORS_COUNTED`]).
        others: usize,
    },
}

impl InputViolation {
    /// The workflow whose contract the input breaks.
    pub fn workflow(&self) -> &str {
        match self {
            Self::MediaType { workflow, .. }
            | Self::TooLarge { workflow, .. }
            | Self::NotJson { workflow, .. }
            | Self::Schema { workflow, .. } => workflow,
        }
    }
}

fn sent_as(declared: Option<&str>) -> String {
    declared.map(|d| format!(" (sent as {})", truncate(d, 100))).unwrap_or_default()
}

/// The input's size in words, exact when rounding would make it look no larger than the limit.
fn size_words(size: u64, limit: u64) -> String {
    let rounded = |bytes: u64| human_size(bytes).replace(".0 ", " ");
    if rounded(size) == rounded(limit) { format!("{size} bytes") } else { human_size(size) }
}

fn more_problems(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " (and 1 more problem)".to_owned(),
        n if n >= MAX_SCHEMA_ERRORS_COUNTED => format!(" (and {n} or more problems)"),
        n => format!(" (and {n} more problems)"),
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Checks that `media_type` is one Weft recognises.
///
/// # Errors
///
/// [`ContractError::UnknownMediaType`], with a suggestion when one is close.
pub(crate) fn check_media_type(media_type: &str) -> Result<(), ContractError> {
    if KNOWN_MEDIA_TYPES.contains(&media_type) {
        return Ok(());
    }
    let hint = crate::did_you_mean(media_type, KNOWN_MEDIA_TYPES.iter().copied());
    let hint = if hint.is_empty() { ";".to_owned() } else { hint };
    Err(ContractError::UnknownMediaType { media_type: media_type.to_owned(), hint })
}

/// Compiles a JSON Schema (its draft from `$schema`, 2020-12 when absent),
/// validating it against its meta-schema. No reference is fetched.
fn compile_schema(value: Value) -> Result<JsonSchema, ContractError> {
    let validator = jsonschema::options()
        .build(&value)
        .map_err(|error| ContractError::InvalidSchema(schema_error_words(&error)))?;
    Ok(JsonSchema { value, validator: Arc::new(validator) })
}

/// A schema compile error with where in the schema it is.
fn schema_error_words(error: &jsonschema::ValidationError<'_>) -> String {
    let at = error.instance_path().as_str();
    let message = truncate(&lowercase_first(&error.to_string()), MAX_VIOLATION_DETAIL_CHARS);
    if at.is_empty() { message } else { format!("at {at}: {message}") }
}

/// `Additional properties ...` -> `additional properties ...` (the house style), but not `JSON`.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_ascii_uppercase() && !second.is_ascii_uppercase() => {
            let mut out = String::with_capacity(text.len());
            out.push(first.to_ascii_lowercase());
            out.push_str(&text[1..]);
            out
        }
        _ => text.to_owned(),
    }
}

/// `/items/0/first name` -> `input.items[0]["first name"]`.
fn field_path(pointer: &str) -> String {
    let mut path = "input".to_owned();
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        push_segment(&mut path, &segment);
    }
    path
}

fn push_segment(path: &mut String, segment: &str) {
    let plain = segment.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
        path.push_str(&format!("[{segment}]"));
    } else if plain {
        path.push('.');
        path.push_str(segment);
    } else {
        path.push_str(&format!("[{}]", Value::String(truncate(segment, 60))));
    }
}

impl InputContract {
    /// A contract for `workflow`: the media types it accepts (empty: any,
    /// or only JSON when `json_schema` is given), at most `max_size` bytes,
    /// and a JSON Schema every JSON input must meet.
    ///
    /// # Errors
    ///
    /// [`ContractError`] for an unknown media type, a zero size, a schema
    /// that does not compile, or a schema no accepted type could reach.
    pub fn new(
        workflow: impl Into<String>,
        media_types: Vec<String>,
        max_size: Option<u64>,
        json_schema: Option<Value>,
    ) -> Result<Self, ContractError> {
        for media_type in &media_types {
            check_media_type(media_type)?;
        }
        if max_size == Some(0) {
            return Err(ContractError::ZeroMaxSize);
        }
        check_schema_reachable(&media_types, json_schema.is_some())?;
        let json_schema = json_schema.map(compile_schema).transpose()?;
        Ok(InputContract { workflow: workflow.into(), media_types, max_size, json_schema })
    }

    /// The workflow this contract is for.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The media types as written (empty when none were).
    pub fn media_types(&self) -> &[String] {
        &self.media_types
    }

    /// The media types an input may have: as written, or `application/json`
    /// when only a JSON Schema was given; empty means any.
    pub fn accepted_media_types(&self) -> Vec<String> {
        if self.media_types.is_empty() && self.json_schema.is_some() {
            return vec![MediaKind::Json.media_type().to_owned()];
        }
        self.media_types.clone()
    }

    /// The largest input accepted, in bytes, if bounded.
    pub fn max_size(&self) -> Option<u64> {
        self.max_size
    }

    /// The JSON Schema JSON inputs must meet, if any.
    pub fn json_schema(&self) -> Option<&Value> {
        self.json_schema.as_ref().map(|schema| &schema.value)
    }

    /// Checks a whole input: its size, what its bytes are, and (when it is
    /// JSON and the contract has a schema) its fields. `declared_media_type`
    /// (a `Content-Type`) is only quoted in the message, never trusted.
    ///
    /// # Errors
    ///
    /// The first [`InputViolation`] found: size, then type, then schema.
    pub fn check(&self, input: &[u8], declared_media_type: Option<&str>) -> Result<(), InputViolation> {
        self.check_size(u64::try_from(input.len()).unwrap_or(u64::MAX))?;
        let accepted = self.accepted_media_types();
        // Nothing to learn from the bytes when any input goes.
        if self.json_schema.is_none()
            && (accepted.is_empty() || accepted.iter().any(|a| a == "application/octet-stream"))
        {
            return Ok(());
        }
        let (kind, json) = sniff(input);
        if !accepted.is_empty() && !accepted.iter().any(|a| kind.is_accepted_by(a)) {
            return Err(self.type_violation(kind, input, declared_media_type, accepted));
        }
        match (&self.json_schema, &json) {
            (Some(schema), Some(json)) => self.check_schema(schema, json),
            _ => Ok(()),
        }
    }

    /// Checks an input's size alone (an upload's `Content-Length`, or the
    /// bytes received so far), before reading it.
    ///
    /// # Errors
    ///
    /// [`InputViolation::TooLarge`].
    pub fn check_size(&self, len: u64) -> Result<(), InputViolation> {
        match self.max_size {
            Some(limit) if len > limit => {
                Err(InputViolation::TooLarge { workflow: self.workflow.clone(), size: len, limit })
            }
            _ => Ok(()),
        }
    }

    /// Checks an input's first bytes (at least [`crate::sniff::SNIFF_HEAD_BYTES`] of
    /// them, or all of a shorter input), so a streamed upload of the wrong
    /// type is refused early. Refuses only what the head proves wrong: an
    /// input it lets through still needs [`InputContract::check`].
    ///
    /// # Errors
    ///
    /// [`InputViolation::MediaType`].
    pub fn check_head(&self, head: &[u8], declared_media_type: Option<&str>) -> Result<(), InputViolation> {
        let accepted = self.accepted_media_types();
        if accepted.is_empty() {
            return Ok(());
        }
        let kind = sniff_head(head);
        if accepted.iter().any(|a| kind.head_may_be_accepted_by(a)) {
            return Ok(());
        }
        Err(InputViolation::MediaType {
            workflow: self.workflow.clone(),
            found: kind,
            declared: declared_media_type.map(str::to_owned),
            accepted,
        })
    }

    fn type_violation(
        &self,
        kind: MediaKind,
        input: &[u8],
        declared: Option<&str>,
        accepted: Vec<String>,
    ) -> InputViolation {
        // Text that tried to be JSON, for a workflow that takes only JSON:
        // the parser's message says where it breaks.
        let json_only = accepted.iter().all(|a| a == "application/json");
        if kind == MediaKind::Text
            && json_only
            && let Ok(text) = std::str::from_utf8(input)
            && text.trim_start().starts_with(['{', '['])
            && let Err(error) = serde_json::from_str::<Value>(text)
        {
            return InputViolation::NotJson {
                workflow: self.workflow.clone(),
                detail: truncate(&error.to_string(), MAX_VIOLATION_DETAIL_CHARS),
                accepted,
            };
        }
        InputViolation::MediaType {
            workflow: self.workflow.clone(),
            found: kind,
            declared: declared.map(str::to_owned),
            accepted,
        }
    }

    fn check_schema(&self, schema: &JsonSchema, json: &Value) -> Result<(), InputViolation> {
        let mut errors = schema.validator.iter_errors(json);
        let Some(first) = errors.next() else { return Ok(()) };
        let others = errors.take(MAX_SCHEMA_ERRORS_COUNTED).count();
        let mut pointer = first.instance_path().as_str().to_owned();
        let message = match first.kind() {
            // The missing field is the one to name, not its parent.
            jsonschema::error::ValidationErrorKind::Required { property } => {
                let name = property.as_str().map_or_else(|| property.to_string(), str::to_owned);
                pointer.push('/');
                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                "required field missing".to_owned()
            }
            _ => lowercase_first(&first.to_string()),
        };
        Err(InputViolation::Schema {
            workflow: self.workflow.clone(),
            path: field_path(&pointer),
            pointer,
            message: truncate(&message, MAX_VIOLATION_DETAIL_CHARS),
            others,
        })
    }
}

/// A schema with media types none of which is JSON could never apply.
pub(crate) fn check_schema_reachable(media_types: &[String], has_schema: bool) -> Result<(), ContractError> {
    if has_schema && !media_types.is_empty() && !media_types.iter().any(|m| MediaKind::Json.is_accepted_by(m)) {
        return Err(ContractError::SchemaWithoutJson { media_types: media_types.join(", ") });
    }
    Ok(())
}

/// Compiles a schema for the parser, which reports the error at its position.
pub(crate) fn schema_problem(value: &Value) -> Option<String> {
    compile_schema(value.clone()).err().map(|error| error.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pdf_contract() -> InputContract {
        InputContract::new("pdf-digest", vec!["application/pdf".into()], Some(20 << 20), None).unwrap()
    }

    fn ticket_contract() -> InputContract {
        let schema = json!({
            "type": "object",
            "required": ["subject", "body"],
            "properties": {
                "subject": {"type": "string", "maxLength": 200},
                "body": {"type": "string", "minLength": 10},
                "tags": {"type": "array", "items": {"type": "string"}}
            }
        });
        InputContract::new("ticket-triage", vec![], Some(1 << 20), Some(schema)).unwrap()
    }

    #[test]
    fn an_executable_sent_as_a_pdf_is_refused_in_words() {
        let error = pdf_contract().check(b"MZ\x90\x00\x03\x00\x00\x00", Some("application/pdf")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "input is a Windows executable (MZ header) (sent as application/pdf), but workflow `pdf-digest` \
             accepts application/pdf"
        );
        let error = pdf_contract().check(b"MZ\x90\x00", None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "input is a Windows executable (MZ header), but workflow `pdf-digest` accepts application/pdf"
        );
        assert_eq!(pdf_contract().check(b"%PDF-1.7\n...", None), Ok(()));
    }

    #[test]
    fn oversized_input_is_refused_with_both_sizes() {
        let contract = pdf_contract();
        let size = 31 * (1 << 20) + 200 * 1024;
        assert_eq!(
            contract.check_size(size).unwrap_err().to_string(),
            "input is 31.2 MiB, over this workflow's 20 MiB limit"
        );
        // Just over: the rounded sizes would look equal, so the exact one is shown.
        assert_eq!(
            contract.check_size((20 << 20) + 1).unwrap_err().to_string(),
            "input is 20971521 bytes, over this workflow's 20 MiB limit"
        );
        assert_eq!(contract.check_size(20 << 20), Ok(()));
        let mut big = b"%PDF-".to_vec();
        big.resize((20 << 20) + 1, b' ');
        assert!(matches!(contract.check(&big, None), Err(InputViolation::TooLarge { .. })));
    }

    #[test]
    fn json_breaking_the_schema_names_the_field() {
        let contract = ticket_contract();
        let error = contract.check(br#"{"subject": "Refund"}"#, None).unwrap_err();
        assert_eq!(error.to_string(), "input.body: required field missing");
        assert!(matches!(&error, InputViolation::Schema { pointer, .. } if pointer == "/body"));
        let error = contract.check(br#"{"subject": "Refund", "body": "x"}"#, None).unwrap_err();
        assert_eq!(error.to_string(), r#"input.body: "x" is shorter than 10 characters"#);
        let error = contract.check(br#"{"subject": "s", "body": "long enough body", "tags": ["a", 7]}"#, None);
        assert_eq!(error.unwrap_err().to_string(), r#"input.tags[1]: 7 is not of type "string""#);
        let error = contract.check(br#"{"subject": 1, "body": 2}"#, None).unwrap_err();
        assert!(error.to_string().ends_with("(and 1 more problem)"), "{error}");
        assert_eq!(contract.check(br#"{"subject": "Refund", "body": "I was charged twice"}"#, None), Ok(()));
    }

    #[test]
    fn a_schema_alone_means_json_only_and_broken_json_says_where() {
        let contract = ticket_contract();
        assert_eq!(contract.accepted_media_types(), ["application/json"]);
        let error = contract.check(b"Subject: refund\nplease", None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "input is plain UTF-8 text, but workflow `ticket-triage` accepts application/json"
        );
        let error = contract.check(br#"{"subject": "x", "body": }"#, None).unwrap_err();
        assert!(
            error.to_string().starts_with("input is not valid JSON (expected value at line 1 column 26)"),
            "{error}"
        );
    }

    #[test]
    fn text_accepted_beside_json_skips_the_schema_for_text_only() {
        let schema = json!({"type": "object", "required": ["subject"]});
        let contract =
            InputContract::new("t", vec!["application/json".into(), "text/plain".into()], None, Some(schema)).unwrap();
        assert_eq!(contract.check(b"Subject: refund\nplease", None), Ok(()));
        assert!(matches!(contract.check(b"{}", None), Err(InputViolation::Schema { .. })));
    }

    #[test]
    fn the_head_refuses_only_what_it_proves() {
        let contract = pdf_contract();
        assert!(matches!(contract.check_head(b"MZ\x90\x00", None), Err(InputViolation::MediaType { .. })));
        assert!(matches!(contract.check_head(b"hello", None), Err(InputViolation::MediaType { .. })));
        assert_eq!(contract.check_head(b"%PDF-1.4", None), Ok(()));
        let json = ticket_contract();
        // A text head may still become JSON.
        assert_eq!(json.check_head(b"{\"subject\": \"a very long", None), Ok(()));
        assert!(json.check_head(b"%PDF-1.4", None).is_err());
        let zip = InputContract::new("z", vec![MediaKind::Docx.media_type().into()], None, None).unwrap();
        assert_eq!(zip.check_head(b"PK\x03\x04", None), Ok(()), "a ZIP head may be a docx");
    }

    #[test]
    fn bad_contracts_are_refused_when_built() {
        let error = InputContract::new("w", vec!["application/pdff".into()], None, None).unwrap_err();
        assert!(error.to_string().starts_with("unknown media type `application/pdff`; did you mean"), "{error}");
        assert_eq!(InputContract::new("w", vec![], Some(0), None), Err(ContractError::ZeroMaxSize));
        let schema = Some(json!({"type": "object"}));
        assert!(matches!(
            InputContract::new("w", vec!["application/pdf".into()], None, schema),
            Err(ContractError::SchemaWithoutJson { .. })
        ));
        let error = InputContract::new("w", vec![], None, Some(json!({"type": "objekt"}))).unwrap_err();
        assert!(matches!(error, ContractError::InvalidSchema(_)), "{error}");
        // No fetching: a remote reference does not resolve.
        let remote = json!({"$ref": "https://example.com/ticket.schema.json"});
        assert!(matches!(InputContract::new("w", vec![], None, Some(remote)), Err(ContractError::InvalidSchema(_))));
    }

    #[test]
    fn a_contract_round_trips_through_json_and_still_checks() {
        let contract = ticket_contract();
        let text = serde_json::to_string(&contract).unwrap();
        let back: InputContract = serde_json::from_str(&text).unwrap();
        assert_eq!(back, contract);
        assert!(back.check(br#"{"subject": "Refund"}"#, None).is_err());
        let bad = r#"{"workflow": "w", "media_types": ["application/exe"]}"#;
        assert!(serde_json::from_str::<InputContract>(bad).is_err());
    }

    #[test]
    fn hostile_values_are_cut_in_messages() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let contract = InputContract::new("w", vec![], None, Some(schema)).unwrap();
        let long = format!(r#"{{"n": "{}"}}"#, "a".repeat(10_000));
        let message = contract.check(long.as_bytes(), None).unwrap_err().to_string();
        assert!(message.chars().count() < MAX_VIOLATION_DETAIL_CHARS + 40, "{message}");
        assert!(message.starts_with("input.n: \"aaa") && message.contains('…'), "{message}");
    }
}
