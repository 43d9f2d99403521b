//! What every layer of Weft shares: [`item::Item`], the data steps take and
//! give, and [`errors::error_chain`], how an error reads as one line. It
//! depends on nothing of Weft's; everything else builds on it.

pub mod errors;
pub mod item;

pub use item::{Item, Payload};
