//! `chunk`: splits text items into overlapping chunks.
//!
//! The splitting lives in [`split`] and is plain Rust, testable on the host
//! target; this file only adapts it to the `weft:plugin` `step` world.

#[cfg(target_arch = "wasm32")]
mod arena;
pub mod split;

pub use split::{Chunk, Config, chunk_items, split_text};

/// Every attempt runs in a fresh instance, so the component never frees
/// (see [`arena`]).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: arena::BumpAllocator = arena::BumpAllocator::new();

// The `export_step!` macro expands to `unsafe` ABI glue; the workspace
// denies `unsafe_code`, so it is allowed for this module only. Clippy's
// `too_many_arguments` fires on that glue, which takes every flattened
// field of `run`'s parameters.
#[allow(unsafe_code, clippy::too_many_arguments)]
mod component {
    use weft_plugin_kit::{Context, Guest, Item, StepError, item};

    use crate::split::{self, Config};

    struct ChunkStep;

    impl Guest for ChunkStep {
        fn run(_ctx: Context, input: Vec<Item>, config: String) -> Result<Vec<Item>, StepError> {
            let cfg = Config::from_json(&config).map_err(StepError::Fatal)?;
            let texts = item::text_items(input, "chunk", None)?;
            Ok(item::from_texts(split::chunk_items(&texts, &cfg)))
        }
    }

    weft_plugin_kit::export_step!(ChunkStep);
}
