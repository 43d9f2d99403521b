//! `{{name}}`: a Weft step. It upper-cases each text item, puts the config's
//! `prefix` in front and adds a `words` metadata entry.

// The generated bindings contain `unsafe` ABI glue.
#![allow(unsafe_code)]

wit_bindgen::generate!({ path: "wit", world: "step" });

use weft::plugin::logging::{Level, log};
use weft::plugin::types::Payload;

struct Step;

impl Guest for Step {
    fn run(ctx: Context, input: Vec<Item>, config: String) -> Result<Vec<Item>, StepError> {
        let prefix = prefix_from(&config)?;
        let mut output = Vec::with_capacity(input.len());
        for (index, item) in input.into_iter().enumerate() {
            let Payload::Text(text) = item.payload else {
                return Err(StepError::Fatal(format!("{{name}} expects text items, got bytes (input item {index})")));
            };
            let mut metadata = item.metadata;
            metadata.push(("words".to_string(), text.split_whitespace().count().to_string()));
            output.push(Item { payload: Payload::Text(format!("{prefix}{}", text.trim().to_uppercase())), metadata });
        }
        log(Level::Info, &format!("job {}: handled {} item(s)", ctx.job_id, output.len()));
        Ok(output)
    }
}

/// The `prefix` field of the JSON config (`""` when absent). A real step
/// would use serde_json; this keeps the template free of dependencies.
fn prefix_from(config: &str) -> Result<String, StepError> {
    let Some(start) = config.find("\"prefix\"") else { return Ok(String::new()) };
    let rest = config[start + "\"prefix\"".len()..].trim_start();
    let value = rest.strip_prefix(':').map(str::trim_start).and_then(|v| v.strip_prefix('"'));
    match value.and_then(|v| v.split_once('"')) {
        Some((prefix, _)) => Ok(prefix.to_string()),
        None => Err(StepError::Fatal(format!("`prefix` must be a string in the config {config}"))),
    }
}

export!(Step);
