//! The data every layer of Weft shares: [`item::Item`], what steps take and
//! give. It depends on nothing of Weft's; everything else builds on it.

pub mod item;

pub use item::{Item, Payload};
