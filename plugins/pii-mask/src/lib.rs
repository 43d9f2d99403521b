//! `pii-mask`: detects personal data in text items and masks it.
//!
//! Detection lives in [`detect`] (hand-written scanners, char offsets) and
//! masking, config and the findings report in [`mask`]; both are plain Rust
//! tested on the host target. This file only adapts them to the
//! `weft:plugin` `step` world.

pub mod detect;
pub mod mask;

pub use detect::{Entity, Span};
pub use mask::{Config, Masked, Style, mask_items, mask_text};

// The `export_step!` macro expands to `unsafe` ABI glue; the workspace
// denies `unsafe_code`, so it is allowed for this module only. Clippy's
// `too_many_arguments` fires on that glue, which takes every flattened
// field of `run`'s parameters.
#[allow(unsafe_code, clippy::too_many_arguments)]
mod component {
    use weft_plugin_kit::{Context, Guest, Item, StepError, item, secrets};

    use crate::mask::{self, Config};

    struct PiiMaskStep;

    impl Guest for PiiMaskStep {
        fn run(ctx: Context, input: Vec<Item>, config: String) -> Result<Vec<Item>, StepError> {
            let mut cfg = Config::from_json(&config).map_err(StepError::Fatal)?;
            if let Some(secret) = cfg.pseudonym_secret.clone() {
                let key = secrets::hmac_sha256(&secret, &mask::derivation_input(&ctx.job_id))?;
                cfg.use_derived_key(&key);
            }
            let texts = item::text_items(input, "pii-mask", Some("extract the text first"))?;
            let first = ctx.item_index.map_or(0, |i| i as usize);
            Ok(item::from_texts(mask::mask_items(texts, &cfg, first)))
        }
    }

    weft_plugin_kit::export_step!(PiiMaskStep);
}
