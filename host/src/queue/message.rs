//! The job message other systems publish on `weft.jobs.<workflow>`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::item::Item;

/// A job as published to NATS (JSON).
///
/// ```json
/// {"job_id": "invoice-42", "input": {"text": "hello"}, "metadata": {"source": "crm"}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    /// The job's id; doubles as `Nats-Msg-Id`. Assigned when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The input.
    pub input: JobInput,
    /// Metadata attached to the input item.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// Where a job's input is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobInput {
    /// Inline text.
    Text(String),
    /// Inline JSON, passed to the first steps as its text.
    Json(serde_json::Value),
    /// Inline bytes, base64-encoded.
    Base64(String),
    /// An object in the object store (large inputs), passed as bytes.
    Object(String),
}

impl JobMessage {
    /// Parses a message body; the error says what is wrong in words.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(payload).map_err(|e| format!("the job message is not valid job JSON: {e}"))
    }

    /// The input as an item, except for object references (which need the store).
    pub(crate) fn inline_item(&self) -> Result<Option<Item>, String> {
        let item = match &self.input {
            JobInput::Text(text) => Item::text(text.clone()),
            JobInput::Json(value) => Item::text(value.to_string()),
            JobInput::Base64(encoded) => Item::bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|e| format!("input.base64 is not valid base64: {e}"))?,
            ),
            JobInput::Object(_) => return Ok(None),
        };
        Ok(Some(self.with_metadata(item)))
    }

    /// Checks that an object reference names this job's own input:
    /// `input.<job id>` or `input.<job id>.<suffix>` (what
    /// [`super::QueueClient::submit`] writes, with a random suffix). Outputs,
    /// checkpoints and other jobs' inputs are never readable through a job
    /// message (job ids hold no `.`, so no other job's objects share the prefix).
    pub(crate) fn check_object_reference(&self, job_id: &str) -> Result<(), String> {
        let JobInput::Object(name) = &self.input else { return Ok(()) };
        let own = name.strip_prefix("input.").and_then(|rest| rest.strip_prefix(job_id)).is_some_and(|rest| {
            rest.is_empty()
                || rest.strip_prefix('.').is_some_and(|suffix| {
                    (1..=64).contains(&suffix.len())
                        && suffix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        });
        if own {
            return Ok(());
        }
        Err(format!(
            "input.object `{}` is not this job's input: a job may read only the object `input.{job_id}` or \
             `input.{job_id}.<suffix>` (1-64 letters, digits, `-` or `_`); upload the input under such a name \
             (`weft submit` does) or send it inline",
            crate::text::printable(name)
        ))
    }

    pub(crate) fn with_metadata(&self, mut item: Item) -> Item {
        for (key, value) in &self.metadata {
            item = item.with_metadata(key.clone(), value.clone());
        }
        item
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_input_form_and_rejects_unknown_fields() {
        let m = JobMessage::parse(br#"{"job_id":"a","input":{"text":"hi"},"metadata":{"k":"v"}}"#).unwrap();
        assert_eq!(m.inline_item().unwrap().unwrap(), Item::text("hi").with_metadata("k", "v"));
        let m = JobMessage::parse(br#"{"input":{"json":{"x":1}}}"#).unwrap();
        assert_eq!(m.inline_item().unwrap().unwrap().as_text(), Some(r#"{"x":1}"#));
        let m = JobMessage::parse(br#"{"input":{"base64":"AAE="}}"#).unwrap();
        assert_eq!(m.inline_item().unwrap().unwrap(), Item::bytes(vec![0, 1]));
        assert!(JobMessage::parse(br#"{"input":{"object":"o"}}"#).unwrap().inline_item().unwrap().is_none());
        assert!(JobMessage::parse(br#"{"input":{"text":"x"},"extra":1}"#).unwrap_err().contains("unknown field"));
        assert!(JobMessage::parse(b"not json").is_err());
        assert!(JobMessage::parse(br#"{"job_id":"a"}"#).unwrap_err().contains("input"));
    }

    #[test]
    fn a_job_may_name_only_its_own_input_object() {
        let job =
            |object: &str| JobMessage::parse(format!(r#"{{"input":{{"object":"{object}"}}}}"#).as_bytes()).unwrap();
        for own in ["input.j-1", "input.j-1.abc", "input.j-1.job-18f-0a1b2c3d"] {
            assert_eq!(job(own).check_object_reference("j-1"), Ok(()), "{own}");
        }
        for foreign in [
            "input.j-2",
            "input.j-10",
            "input.j-1x",
            "output.j-1",
            "checkpoint.j-1.step",
            "input.j-1.",
            "input.j-1.a.b",
            "input.j-1./../x",
            "j-1",
            "input.",
        ] {
            let error = job(foreign).check_object_reference("j-1").unwrap_err();
            assert!(error.contains("is not this job's input"), "{foreign}: {error}");
        }
        let inline = JobMessage::parse(br#"{"input":{"text":"input.j-2"}}"#).unwrap();
        assert_eq!(inline.check_object_reference("j-1"), Ok(()));
    }
}
