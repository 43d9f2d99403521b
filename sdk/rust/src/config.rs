//! A step's JSON config, read field by field.
//!
//! The host hands a step its workflow `config:` block as a JSON document.
//! [`ConfigFields`] owns turning that document into typed values: it parses
//! it once, gives each field to the step as the type the step asks for (or
//! its default when the field is absent), and at [`ConfigFields::finish`]
//! refuses any field the step never asked for, naming it and the known ones.
//! Checks that relate fields to each other (`overlap < size`) stay with the
//! step, which reports them through [`ConfigFields::error`] so every message
//! starts the same way: `invalid <step> config: ...`.
//!
//! It never panics; every problem is a [`ConfigError`].

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why a step's config was refused: `invalid <step> config: <detail>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    step: String,
    detail: String,
}

impl ConfigError {
    /// An error in `step`'s config.
    pub fn new(step: &str, detail: impl Into<String>) -> Self {
        ConfigError { step: step.to_string(), detail: detail.into() }
    }

    /// What was wrong, without the `invalid <step> config: ` prefix.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} config: {}", self.step, self.detail)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for String {
    fn from(error: ConfigError) -> Self {
        error.to_string()
    }
}

/// The fields of a step's config that the step has not read yet.
#[derive(Debug)]
pub struct ConfigFields {
    step: String,
    fields: Map<String, Value>,
    known: Vec<&'static str>,
}

impl ConfigFields {
    /// Parses `json`, the config of the step called `step`. An empty
    /// document or `null` is an empty config (all defaults).
    ///
    /// # Errors
    ///
    /// Malformed JSON, or a document that is not a JSON object.
    pub fn parse(step: &str, json: &str) -> Result<Self, ConfigError> {
        let json = json.trim();
        let fields = if json.is_empty() || json == "null" {
            Map::new()
        } else {
            match serde_json::from_str(json).map_err(|e| ConfigError::new(step, e.to_string()))? {
                Value::Object(fields) => fields,
                _ => return Err(ConfigError::new(step, "expected a JSON object")),
            }
        };
        Ok(ConfigFields { step: step.to_string(), fields, known: Vec::new() })
    }

    /// The field `name` as a `T`, or `None` when the config does not have
    /// it. An explicit `null` must be a valid `T` (it is a type error for a
    /// number, say); use [`ConfigFields::optional`] where `null` means
    /// "not set".
    ///
    /// # Errors
    ///
    /// The value is not a `T`; the message names the field.
    pub fn get<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<Option<T>, ConfigError> {
        self.known.push(name);
        match self.fields.remove(name) {
            None => Ok(None),
            Some(value) => {
                serde_json::from_value(value).map(Some).map_err(|e| self.error(format!("field `{name}`: {e}")))
            }
        }
    }

    /// The field `name` as a `T`, or `None` when the config does not have it
    /// or sets it to `null` (as an `Option` field of a serde struct reads).
    ///
    /// # Errors
    ///
    /// As [`ConfigFields::get`].
    pub fn optional<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<Option<T>, ConfigError> {
        Ok(self.get::<Option<T>>(name)?.flatten())
    }

    /// The field `name` as a `T`, or `default` when it is absent.
    ///
    /// # Errors
    ///
    /// As [`ConfigFields::get`].
    pub fn get_or<T: DeserializeOwned>(&mut self, name: &'static str, default: T) -> Result<T, ConfigError> {
        Ok(self.get(name)?.unwrap_or(default))
    }

    /// The field `name` as a `T`, or `default()` when it is absent.
    ///
    /// # Errors
    ///
    /// As [`ConfigFields::get`].
    pub fn get_or_else<T: DeserializeOwned>(
        &mut self,
        name: &'static str,
        default: impl FnOnce() -> T,
    ) -> Result<T, ConfigError> {
        Ok(self.get(name)?.unwrap_or_else(default))
    }

    /// The field `name` as a `T`, which the config must have.
    ///
    /// # Errors
    ///
    /// The field is missing, or as [`ConfigFields::get`].
    pub fn require<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<T, ConfigError> {
        self.get(name)?.ok_or_else(|| self.error(format!("missing field `{name}`")))
    }

    /// Checks that every field of the config was read.
    ///
    /// # Errors
    ///
    /// A field the step does not know (the first left, if there are
    /// several), with the fields it does know, worded as serde words it.
    pub fn finish(self) -> Result<(), ConfigError> {
        match self.fields.keys().next() {
            None => Ok(()),
            Some(unknown) => Err(self.error(unknown_field(unknown, &self.known))),
        }
    }

    /// An error of this step's config, for checks the step makes itself.
    pub fn error(&self, detail: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.step, detail)
    }
}

/// `unknown field `x`, expected one of `a`, `b`, `c``, exactly as serde's
/// `deny_unknown_fields` says it.
fn unknown_field(name: &str, known: &[&str]) -> String {
    let quoted: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    match quoted.as_slice() {
        [] => format!("unknown field `{name}`, there are no fields"),
        [one] => format!("unknown field `{name}`, expected {one}"),
        [a, b] => format!("unknown field `{name}`, expected {a} or {b}"),
        all => format!("unknown field `{name}`, expected one of {}", all.join(", ")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[test]
    fn absent_fields_take_their_defaults_and_present_ones_their_values() {
        for empty in ["", "  ", "null", "{}"] {
            let mut fields = ConfigFields::parse("demo", empty).unwrap();
            assert_eq!(fields.get_or("size", 1000_usize).unwrap(), 1000, "{empty:?}");
            assert_eq!(fields.get::<String>("name").unwrap(), None);
            fields.finish().unwrap();
        }
        let mut fields = ConfigFields::parse("demo", r#"{"size": 7, "tags": ["a"]}"#).unwrap();
        assert_eq!(fields.get_or("size", 1000_usize).unwrap(), 7);
        assert_eq!(fields.get_or_else("tags", Vec::<String>::new).unwrap(), vec!["a".to_string()]);
        fields.finish().unwrap();
    }

    #[test]
    fn an_unknown_field_is_named_with_the_known_ones() {
        let mut fields = ConfigFields::parse("chunk", r#"{"sise": 10}"#).unwrap();
        for name in ["size", "overlap", "unit"] {
            assert_eq!(fields.get::<usize>(name).unwrap(), None);
        }
        let error = fields.finish().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid chunk config: unknown field `sise`, expected one of `size`, `overlap`, `unit`"
        );
        assert_eq!(unknown_field("x", &[]), "unknown field `x`, there are no fields");
        assert_eq!(unknown_field("x", &["a"]), "unknown field `x`, expected `a`");
        assert_eq!(unknown_field("x", &["a", "b"]), "unknown field `x`, expected `a` or `b`");
    }

    #[test]
    fn the_unknown_field_message_is_serdes_own() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Raw {
            size: Option<usize>,
            overlap: Option<usize>,
            unit: Option<String>,
        }
        for (json, known) in [
            (r#"{"sise": 1}"#, &["size", "overlap", "unit"][..]),
            (r#"{"b": 1}"#, &["size", "overlap"][..]),
            (r#"{"b": 1}"#, &["size"][..]),
        ] {
            let mut fields = ConfigFields::parse("x", json).unwrap();
            for name in known {
                let _ = fields.get::<Value>(name).unwrap();
            }
            let ours = fields.finish().unwrap_err();
            if known.len() == 3 {
                let serdes = serde_json::from_str::<Raw>(json).unwrap_err().to_string();
                assert!(serdes.starts_with(ours.detail()), "{serdes} / {ours}");
            } else {
                assert!(ours.detail().starts_with("unknown field `b`, expected `size`"), "{ours}");
            }
        }
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let mut fields = ConfigFields::parse("pdf-load", r#"{"max_pages": "ten"}"#).unwrap();
        let error = fields.get::<usize>("max_pages").unwrap_err().to_string();
        assert!(error.starts_with("invalid pdf-load config: field `max_pages`: invalid type: string"), "{error}");
        let mut fields = ConfigFields::parse("x", r#"{"size": -1}"#).unwrap();
        assert!(fields.get_or("size", 1_usize).unwrap_err().detail().contains("`size`"));
        let mut fields = ConfigFields::parse("x", r#"{"name": null}"#).unwrap();
        assert!(fields.get::<String>("name").is_err(), "null is not a string");
        let mut fields = ConfigFields::parse("x", r#"{"name": null, "size": null}"#).unwrap();
        assert_eq!(fields.optional::<String>("name").unwrap(), None, "null is not set");
        assert!(fields.get_or("size", 1_usize).is_err(), "null is not a number");
    }

    #[test]
    fn required_fields_and_bad_documents_are_refused() {
        let mut fields = ConfigFields::parse("notify", "{}").unwrap();
        let error = fields.require::<Vec<String>>("channels").unwrap_err();
        assert_eq!(error.to_string(), "invalid notify config: missing field `channels`");
        for bad in ["[1]", "42", "\"x\""] {
            let error = ConfigFields::parse("x", bad).unwrap_err();
            assert_eq!(error.to_string(), "invalid x config: expected a JSON object", "{bad}");
        }
        let error = ConfigFields::parse("x", "{").unwrap_err();
        assert!(error.to_string().starts_with("invalid x config: EOF"), "{error}");
        let fields = ConfigFields::parse("x", "{}").unwrap();
        assert_eq!(String::from(fields.error("size must be at least 1")), "invalid x config: size must be at least 1");
    }
}
