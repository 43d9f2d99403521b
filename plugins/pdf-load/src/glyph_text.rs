//! [`GlyphText`], the text one glyph stands for, and [`FastHasher`] for the
//! small integer keys of font maps.
//!
//! A page places thousands of glyphs, each with the text of its character
//! code: almost always one character. Kept as a `String` that was one heap
//! allocation (and one free) per glyph, copied again for every cache hit; in
//! the Wasm build, where the guest's allocator is slower than the native
//! one, it was a large share of the step's time. `GlyphText` keeps short
//! texts inline and shares long ones, so cloning never allocates.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Deref;
use std::rc::Rc;

/// Bytes kept inline (with the length, the same size as a `String`).
const INLINE: usize = 22;

/// Every ASCII byte, in order.
const ASCII_BYTES: [u8; 128] = {
    let mut bytes = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        bytes[i] = i as u8;
        i += 1;
    }
    bytes
};

/// Every ASCII character, in order: one-character texts are slices of it.
const ASCII: &str = match std::str::from_utf8(&ASCII_BYTES) {
    Ok(text) => text,
    Err(_) => "",
};

/// The text of one glyph: a short string stored inline, or a shared one.
#[derive(Clone, PartialEq, Eq)]
pub struct GlyphText(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Rc<str>),
}

impl GlyphText {
    /// The empty text (a code that maps to nothing).
    pub const EMPTY: GlyphText = GlyphText(Repr::Inline { len: 0, bytes: [0; INLINE] });

    /// The text of a single character.
    pub fn from_char(c: char) -> GlyphText {
        let mut bytes = [0; INLINE];
        let len = c.encode_utf8(&mut bytes).len() as u8;
        GlyphText(Repr::Inline { len, bytes })
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // One ASCII character, the usual glyph: a slice of a constant,
            // without `from_utf8` (a call per glyph in the Wasm build).
            Repr::Inline { len: 1, bytes } if bytes[0].is_ascii() => {
                let at = usize::from(bytes[0]);
                ASCII.get(at..at + 1).unwrap_or_default()
            }
            // Only ever filled from a `str` cut at a character boundary, so
            // the check cannot fail; it costs a few instructions on 1-4 bytes.
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Repr::Shared(text) => text,
        }
    }
}

impl Default for GlyphText {
    fn default() -> Self {
        GlyphText::EMPTY
    }
}

impl From<&str> for GlyphText {
    fn from(text: &str) -> Self {
        if text.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            GlyphText(Repr::Inline { len: text.len() as u8, bytes })
        } else {
            GlyphText(Repr::Shared(Rc::from(text)))
        }
    }
}

impl From<String> for GlyphText {
    fn from(text: String) -> Self {
        GlyphText::from(text.as_str())
    }
}

impl Deref for GlyphText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for GlyphText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for GlyphText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for GlyphText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for GlyphText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A multiply-rotate hasher (the one rustc uses for its own maps) for keys
/// that are a few small integers, such as character codes. The standard
/// SipHash resists crafted collisions, which matters for keys an attacker
/// picks in bulk; here a hostile font can only pick codes among at most
/// 2^32 per CMap, and every map is bounded by the CMap's parsed size, so
/// the worst case is a slower lookup, not unbounded work.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

/// [`FastHasher`] as a `HashMap`'s `S` parameter.
pub type FastHash = BuildHasherDefault<FastHasher>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::GlyphText;

    #[test]
    fn short_and_long_texts_round_trip() {
        for text in ["", "a", "é", "ﬁ", "\u{1F600}", "exactly twenty-two b!!", "a text longer than the inline part"]
        {
            let glyph = GlyphText::from(text);
            assert_eq!(glyph.as_str(), text);
            assert_eq!(glyph.clone(), glyph);
            assert_eq!(format!("{glyph}"), text);
        }
        assert_eq!(GlyphText::from_char('ß').as_str(), "ß");
        assert_eq!(GlyphText::default().as_str(), "");
        assert_ne!(GlyphText::from("ab"), GlyphText::from("a"));
    }
}
