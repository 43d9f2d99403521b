//! `pdf-load`: turns PDF bytes into one text item per page.
//!
//! The PDF handling lives in [`load`] and is plain Rust, testable on the host
//! target; this file only adapts it to the `weft:plugin` `step` world.

pub mod content;
pub mod extract;
pub mod fonts;
pub mod glyph_text;
pub mod layout;
pub mod load;
#[allow(clippy::unreadable_literal)]
mod tables;

pub use load::{Config, LoadError, Page, load_pdf};

// The `export_step!` macro expands to `unsafe` ABI glue; the workspace
// denies `unsafe_code`, so it is allowed for this module only. Clippy's
// `too_many_arguments` fires on that glue, which takes every flattened
// field of `run`'s parameters.
#[allow(unsafe_code, clippy::too_many_arguments)]
mod component {
    use weft_plugin_kit::logging::{Level, log};
    use weft_plugin_kit::{Context, Guest, Item, Payload, StepError};

    use crate::load::{self, Config};

    struct PdfLoad;

    impl Guest for PdfLoad {
        fn run(_ctx: Context, input: Vec<Item>, config: String) -> Result<Vec<Item>, StepError> {
            let cfg = Config::from_json(&config).map_err(StepError::Fatal)?;
            let many = input.len() > 1;
            let mut budget = cfg.max_output_bytes;
            let mut out = Vec::new();
            for (index, item) in input.into_iter().enumerate() {
                let fail = |message: String| {
                    if many {
                        StepError::fatal(format!("input item {index}: {message}"))
                    } else {
                        StepError::fatal(message)
                    }
                };
                let bytes = match item.payload {
                    Payload::Bytes(bytes) => bytes,
                    Payload::Text(_) => {
                        return Err(fail("pdf-load expects PDF bytes, got text".to_string()));
                    }
                };
                let pages = load::load_pdf_with_budget(&bytes, &item.metadata, &cfg, budget)
                    .map_err(|e| fail(e.to_string()))?;
                for page in pages {
                    budget = budget.saturating_sub(page.text.len());
                    if let Some(warning) = page.warning() {
                        log(Level::Warn, warning);
                    }
                    out.push(Item::text(page.text, page.metadata));
                }
            }
            Ok(out)
        }
    }

    weft_plugin_kit::export_step!(PdfLoad);
}
