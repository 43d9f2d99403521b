//! What every layer of Weft shares: [`item::Item`], the data steps take and
//! give, [`errors::error_chain`], how an error reads as one line, and
//! [`new_job_id`], and [`text::printable`] for printing text from outside. It
//! depends on nothing of Weft's; everything else builds on it.

pub mod errors;
pub mod item;
pub mod text;

/// A fresh job id: time-ordered, unique enough for one deployment
/// (`job-<milliseconds in hex>-<32 random bits>`).
pub fn new_job_id() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("job-{millis:x}-{:08x}", rand::random::<u32>())
}

pub use item::{Item, Payload};
