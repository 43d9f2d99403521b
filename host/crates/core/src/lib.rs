//! What every layer of Weft shares: [`item::Item`], the data steps take and
//! give, [`errors::error_chain`], how an error reads as one line, and
//! [`new_job_id`], [`text::printable`] for printing text from outside, and
//! [`hex`] for digests and keys. It depends on nothing of Weft's; everything
//! else builds on it.

pub mod errors;
pub mod item;
pub mod text;

/// A fresh job id: time-ordered, unique enough for one deployment
/// (`job-<milliseconds in hex>-<32 random bits>`).
pub fn new_job_id() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("job-{millis:x}-{:08x}", rand::random::<u32>())
}

/// `bytes` as lower-case hexadecimal, two digits a byte (digests, MACs and
/// cache keys).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

pub use item::{Item, Payload};

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }
}
