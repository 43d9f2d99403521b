//! The JSON Schema (draft 2020-12) of workflow files, for editors: `weft
//! schema` prints it, and `# yaml-language-server: $schema=...` at the top
//! of a workflow file makes the YAML language server complete and check
//! it. It owns nothing the parser does not: every object's fields are the
//! parser's own field lists (`parse.rs`), so a field cannot be added to one
//! and not the other; what the host knows (built-in plugin names, grant
//! names) is passed in by the caller. The schema is looser than the parser
//! where only the parser can judge (a grant name or a plugin path is any
//! string; every id, needs entry and size is checked for shape only):
//! a file the parser accepts always passes it.

use serde_json::{Map, Value, json};

use crate::parse::{DEFAULTS_FIELDS, INPUT_FIELDS, LIMITS_FIELDS, MAP_FIELDS, RETRY_FIELDS, STEP_FIELDS, TOP_FIELDS};
use crate::sniff::KNOWN_MEDIA_TYPES;
use crate::{DEFAULT_MAP_CONCURRENCY, DEFAULT_MAX_ATTEMPTS, MAX_STEP_ID_LEN};

/// What the host knows that a workflow file may name.
#[derive(Debug, Clone, Default)]
pub struct SchemaFacts {
    /// The built-in plugins (`weft plugins`), offered as completions for `plugin`.
    pub plugins: Vec<String>,
    /// The grant names (`http`, `llm`, ...) with what each allows.
    pub grants: Vec<(String, String)>,
}

/// A JSON object with exactly `fields` (in that order), each described by
/// `describe`; `describe` must know every field (a missing one panics in
/// this module's tests, never at run time: an unknown field gets `{}`).
fn object(fields: &[&str], describe: impl Fn(&str) -> Option<Value>) -> Value {
    let properties: Map<String, Value> =
        fields.iter().map(|field| ((*field).to_owned(), describe(field).unwrap_or_else(|| json!({})))).collect();
    json!({ "type": "object", "additionalProperties": false, "properties": properties })
}

fn with_description(mut value: Value, description: &str) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert("description".into(), Value::String(description.to_owned()));
    }
    value
}

fn reference(name: &str, description: &str) -> Value {
    json!({ "$ref": format!("#/$defs/{name}"), "description": description })
}

/// The JSON Schema of workflow files.
pub fn workflow_file_schema(facts: &SchemaFacts) -> Value {
    let text = json!({ "type": ["string", "number"] });
    let retry = object(RETRY_FIELDS, |field| {
        Some(match field {
            "max_attempts" => reference(
                "count",
                &format!("total attempts, the first included (1: no retry; default {DEFAULT_MAX_ATTEMPTS})"),
            ),
            "initial_backoff" => reference("duration", "delay before the first retry (default 200ms)"),
            "max_backoff" => reference("duration", "upper bound on the delay between attempts (default 30s)"),
            "multiplier" => {
                json!({ "type": "number", "minimum": 1, "description": "factor the delay grows by after each failed attempt (default 2)" })
            }
            "jitter" => {
                json!({ "enum": ["full", "none"], "description": "`full`: each delay drawn between zero and the backoff (default); `none`: exactly the backoff" })
            }
            "max_retry_after" => reference(
                "duration",
                "the longest retry-after a step may ask for; a longer one fails the step (default 5m)",
            ),
            _ => return None,
        })
    });
    let limits = object(LIMITS_FIELDS, |field| {
        Some(match field {
            "memory" => reference("size", "the component's linear memories together (default 256MiB, at most 4GiB)"),
            "fuel" => reference("count", "wasmtime fuel per attempt (needs `--fuel`)"),
            "output" => reference("size", "the step's output per attempt (default 64MiB, at most 1GiB)"),
            _ => return None,
        })
    });
    let map_object = object(MAP_FIELDS, |field| {
        (field == "concurrency").then(|| {
            reference("count", &format!("items processed at once (default {DEFAULT_MAP_CONCURRENCY}, at most 64)"))
        })
    });
    let grant_value = json!({
        "anyOf": [
            { "const": true, "description": "everything the capability offers" },
            { "type": "array", "minItems": 1, "items": { "type": ["string", "number"] }, "description": "only these hosts, recipients, secrets or models" }
        ]
    });
    let grant_properties: Map<String, Value> = facts
        .grants
        .iter()
        .map(|(name, summary)| (name.clone(), with_description(grant_value.clone(), summary)))
        .collect();
    let grants = json!({
        "type": "object",
        "description": "capabilities the step may use; anything not granted is denied",
        "properties": grant_properties,
        "additionalProperties": grant_value,
    });
    let plugin = json!({
        "description": "a built-in plugin (`weft plugins`), or a path to a .wasm component",
        "anyOf": [ { "enum": facts.plugins }, { "type": ["string", "number"] } ]
    });
    let mut step = object(STEP_FIELDS, |field| {
        Some(match field {
            "id" => json!({
                "type": ["string", "integer"],
                "pattern": format!("^[a-z0-9][a-z0-9_-]{{0,{}}}$", MAX_STEP_ID_LEN - 1),
                "description": "unique step id: lowercase letters, digits, `-` and `_`"
            }),
            "plugin" => plugin.clone(),
            "needs" => {
                json!({ "type": "array", "uniqueItems": true, "items": { "type": ["string", "number"] }, "description": "ids of the steps whose outputs this step consumes" })
            }
            "config" => {
                json!({ "type": "object", "description": "the plugin's configuration (see the plugin's documentation)" })
            }
            "map" => json!({
                "description": "run the step once per input item: `true`, or `{ concurrency: N }`",
                "anyOf": [ { "type": "boolean" }, map_object.clone() ]
            }),
            "retry" => reference("retry", "this step's retry policy, field by field over `defaults.retry`"),
            "timeout" => reference("duration", "the longest one attempt may run (at most 1h)"),
            "limits" => reference("limits", "this step's resource limits, field by field over `defaults.limits`"),
            "grants" => grants.clone(),
            _ => return None,
        })
    });
    if let Some(object) = step.as_object_mut() {
        object.insert("required".into(), json!(["id", "plugin"]));
    }
    let defaults = object(DEFAULTS_FIELDS, |field| {
        Some(match field {
            "timeout" => reference("duration", "every step's timeout unless it sets its own"),
            "retry" => reference("retry", "every step's retry policy unless it sets its own"),
            "limits" => reference("limits", "every step's limits unless it sets its own"),
            _ => return None,
        })
    });
    let input = object(INPUT_FIELDS, |field| {
        Some(match field {
            "media_types" => json!({
                "type": "array", "minItems": 1, "uniqueItems": true,
                "items": { "enum": KNOWN_MEDIA_TYPES },
                "description": "what a job's input may be, told from its bytes (a name or a Content-Type is not trusted); `text/plain` includes JSON, `application/zip` Office documents, `application/octet-stream` anything"
            }),
            "max_size" => reference("size", "the largest input a job may have"),
            "json_schema" => json!({
                "type": ["object", "boolean"],
                "description": "a JSON Schema (2020-12 unless `$schema` says) every JSON input must meet; alone, it makes the workflow accept only JSON. References are never fetched"
            }),
            _ => return None,
        })
    });
    let mut top = object(TOP_FIELDS, |field| {
        Some(match field {
            "name" => with_description(text.clone(), "the workflow's name (its jobs' subject on NATS)"),
            "version" => with_description(text.clone(), "the workflow's version, as you write it"),
            "description" => with_description(text.clone(), "what the workflow does"),
            "deadline" => reference("duration", "a job fails for good this long after its submission (default 1h)"),
            "input" => with_description(
                input.clone(),
                "what a job's input must be; checked by `weft run`, `weft submit`, the HTTP API and the worker",
            ),
            "defaults" => with_description(defaults.clone(), "defaults for every step"),
            "steps" => {
                json!({ "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/step" }, "description": "the steps, a graph through their `needs`" })
            }
            _ => return None,
        })
    });
    if let Some(object) = top.as_object_mut() {
        object.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        object.insert("title".into(), json!("Weft workflow file"));
        object.insert("required".into(), json!(["name", "version", "steps"]));
        object.insert(
            "$defs".into(),
            json!({
                "duration": { "type": "string", "pattern": "^\\s*[0-9][0-9_]*\\s*(ms|s|m|h)\\s*$", "description": "a whole number and a unit: `500ms`, `30s`, `5m`, `1h`" },
                "size": { "type": ["string", "integer"], "minimum": 1, "pattern": "^\\s*[0-9][0-9_]*(\\.[0-9]+)?\\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?\\s*$", "description": "bytes, or a number and a unit: `64MiB`, `1GB`" },
                "count": { "type": ["integer", "string"], "minimum": 1, "pattern": "^\\s*[0-9][0-9_]*\\s*$", "description": "a whole number" },
                "retry": retry,
                "limits": limits,
                "step": step,
            }),
        );
    }
    top
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys(value: &Value) -> Vec<String> {
        value["properties"].as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn every_object_lists_exactly_the_parsers_fields_each_described() {
        let schema = workflow_file_schema(&SchemaFacts::default());
        let defs = &schema["$defs"];
        for (value, fields) in [
            (&schema, TOP_FIELDS),
            (&schema["properties"]["input"], INPUT_FIELDS),
            (&schema["properties"]["defaults"], DEFAULTS_FIELDS),
            (&defs["step"], STEP_FIELDS),
            (&defs["retry"], RETRY_FIELDS),
            (&defs["limits"], LIMITS_FIELDS),
            (&defs["step"]["properties"]["map"]["anyOf"][1], MAP_FIELDS),
        ] {
            let mut listed = keys(value);
            let mut wanted: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
            listed.sort();
            wanted.sort();
            assert_eq!(listed, wanted);
            assert_eq!(value["additionalProperties"], false, "unknown keys are refused like the parser does");
            for (field, property) in value["properties"].as_object().unwrap() {
                assert!(property.get("description").is_some_and(Value::is_string), "`{field}` has no description");
            }
        }
    }

    #[test]
    fn the_schema_is_a_valid_2020_12_schema() {
        let facts =
            SchemaFacts { plugins: vec!["pdf-load".into()], grants: vec![("http".into(), "outbound HTTP".into())] };
        let schema = workflow_file_schema(&facts);
        jsonschema::draft202012::meta::validate(&schema).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let good = json!({"name": "w", "version": 1.0, "steps": [{"id": "a", "plugin": "pdf-load", "grants": {"http": ["x"]}}]});
        assert!(validator.is_valid(&good));
        let typo = json!({"name": "w", "version": "1", "steps": [{"id": "a", "plugin": "p", "timout": "1s"}]});
        assert!(!validator.is_valid(&typo));
    }
}
