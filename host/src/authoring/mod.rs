//! Plugin authoring tools: inspecting a component file
//! ([`inspect`], `weft plugin inspect`) and scaffolding a new plugin project
//! in Rust, Python or JavaScript ([`scaffold`], `weft plugin new`).
//!
//! This module reads component bytes with `wit-parser` (no wasmtime types)
//! and asks the [`crate::engine`] only what the engine knows: whether a
//! component is already in the compile cache, and whether it really loads.
//! It decides nothing about what a step may reach; the import rules are
//! [`crate::capabilities::classify_import`]'s.

pub mod inspect;
pub mod scaffold;

pub use inspect::{ExportInfo, ImportInfo, ImportKind, InspectError, Inspection, inspect_bytes, inspect_file};
pub use scaffold::{Language, ScaffoldError, scaffold};
