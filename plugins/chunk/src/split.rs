//! Text splitting: chunks of at most `size` characters (Unicode scalar
//! values) — or approximate tokens, counted as four characters each — with
//! `overlap` shared by consecutive chunks, ending at a paragraph break if
//! one is in reach, else a sentence end, else whitespace, else exactly at
//! `size`. Never inside a UTF-8 character.

use serde::Deserialize;
use weft_plugin_kit::config::ConfigFields;

/// The step's configuration: the JSON `config` block of the workflow step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Maximum characters per chunk (default 1000, at least 1).
    pub size: usize,
    /// Characters shared by consecutive chunks of one item; less than
    /// `size`. Defaults to 100, or to `size / 10` when `size` is 100 or less
    /// (where 100 would be invalid).
    pub overlap: usize,
    /// What `size` and `overlap` count.
    pub unit: Unit,
}

/// What chunk sizes count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Unicode scalar values.
    #[default]
    Chars,
    /// Approximate tokens of an LLM tokenizer: four characters each, the
    /// usual rule of thumb for English text.
    Tokens,
}

/// Characters per approximate token.
pub const CHARS_PER_TOKEN: usize = 4;

impl Unit {
    fn chars(self, n: usize) -> usize {
        match self {
            Unit::Chars => n,
            Unit::Tokens => n.saturating_mul(CHARS_PER_TOKEN),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { size: 1000, overlap: 100, unit: Unit::Chars }
    }
}

impl Config {
    /// Parses and validates the step's JSON config (`{}`, empty or `null`
    /// mean all defaults). The error is a message for a fatal step error.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let mut fields = ConfigFields::parse("chunk", json)?;
        let size = fields.optional("size")?.unwrap_or(Config::default().size);
        let overlap = fields.optional("overlap")?.unwrap_or(if size > 100 { 100 } else { size / 10 });
        let unit = fields.optional("unit")?.unwrap_or_default();
        fields.finish()?;
        let cfg = Config { size, overlap, unit };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks `size >= 1` and `overlap < size`.
    pub fn validate(&self) -> Result<(), String> {
        if self.size == 0 {
            return Err("invalid chunk config: size must be at least 1".into());
        }
        if self.overlap >= self.size {
            return Err(format!(
                "invalid chunk config: overlap ({}) must be less than size ({})",
                self.overlap, self.size
            ));
        }
        Ok(())
    }
}

/// One chunk of an item's text; `char_start..char_end` are char offsets
/// into that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub text: &'a str,
    pub char_start: usize,
    pub char_end: usize,
}

/// Keys set on every output item (replacing any the input item had).
const OWN_KEYS: [&str; 5] = ["chunk_index", "chunk_of_item", "char_start", "char_end", "approx_tokens"];

/// Chunks every `(text, metadata)` item and returns the chunks as
/// `(text, metadata)` items: the input item's metadata plus `chunk_index`
/// (across the whole input), `chunk_of_item`, `char_start` and `char_end`.
pub fn chunk_items(items: &[(String, Vec<(String, String)>)], cfg: &Config) -> Vec<(String, Vec<(String, String)>)> {
    // Split first, so every vector below is allocated once at its final size.
    let splits: Vec<Vec<Chunk>> = items.iter().map(|(text, _)| split_text(text, cfg)).collect();
    let mut out = Vec::with_capacity(splits.iter().map(Vec::len).sum());
    for ((_, metadata), chunks) in items.iter().zip(splits) {
        let base: Vec<&(String, String)> = metadata.iter().filter(|(k, _)| !OWN_KEYS.contains(&k.as_str())).collect();
        for (of_item, chunk) in chunks.into_iter().enumerate() {
            let mut meta = Vec::with_capacity(base.len() + OWN_KEYS.len());
            meta.extend(base.iter().map(|&pair| pair.clone()));
            let chars = chunk.char_end - chunk.char_start;
            let values = [out.len(), of_item, chunk.char_start, chunk.char_end, chars.div_ceil(CHARS_PER_TOKEN)];
            meta.extend(OWN_KEYS.iter().zip(values).map(|(key, value)| (key.to_string(), value.to_string())));
            out.push((chunk.text.to_string(), meta));
        }
    }
    out
}

/// Splits `text` into chunks under `cfg` (which must be valid; an invalid
/// `cfg` is treated as `size = max(size, 1)`, `overlap = min(overlap, size - 1)`).
/// Whitespace-only chunks are dropped, so empty or blank text yields none.
///
/// Works in one pass over the bytes: a chunk's end is found by counting
/// UTF-8 lead bytes forward, its break point by decoding backwards only the
/// chars it can end after, and nothing is copied or tabulated (decoding
/// every char into a table was most of the time on large items).
pub fn split_text<'a>(text: &'a str, cfg: &Config) -> Vec<Chunk<'a>> {
    let size = cfg.unit.chars(cfg.size).max(1);
    let overlap = cfg.unit.chars(cfg.overlap).min(size - 1);
    // Earliest end, counted from the chunk's start: no earlier than half a
    // chunk in, and past the overlap so the next chunk starts after this one.
    let earliest_offset = (size / 2).max(overlap + 1).min(size);
    let bytes = text.as_bytes();

    let mut chunks = Vec::new();
    let (mut start_char, mut start_byte) = (0usize, 0usize);
    while start_byte < text.len() {
        // The char before the earliest end, and the latest end.
        let (before_earliest, to_earliest) = advance(bytes, start_byte, earliest_offset - 1);
        let (latest_byte, to_latest) = advance(bytes, before_earliest, size - (earliest_offset - 1));
        // The rest fits in this chunk when the latest end is the text's end.
        let last = latest_byte == text.len();
        let (end_char, end_byte) = if last {
            (start_char + to_earliest + to_latest, text.len())
        } else {
            break_point(text, before_earliest, latest_byte, start_char + size)
        };
        let piece = &text[start_byte..end_byte];
        if !piece.trim().is_empty() {
            chunks.push(Chunk { text: piece, char_start: start_char, char_end: end_char });
        }
        if last {
            break;
        }
        start_char = end_char - overlap;
        start_byte = retreat(bytes, end_byte, overlap);
    }
    chunks
}

/// The byte offset `n` chars after `from` (or the end of the text), and how
/// many chars that was. `from` is a char boundary.
fn advance(bytes: &[u8], from: usize, n: usize) -> (usize, usize) {
    // A char is at least one byte, so the next `remaining` bytes hold at
    // most `remaining` char starts: count them a block at a time (one block
    // for pure ASCII).
    let (mut pos, mut remaining) = (from, n);
    while remaining > 0 && pos < bytes.len() {
        let stop = pos.saturating_add(remaining).min(bytes.len());
        remaining -= count_char_starts(&bytes[pos..stop]);
        pos = stop;
    }
    // The last char counted may end past the block.
    while pos < bytes.len() && is_continuation(bytes[pos]) {
        pos += 1;
    }
    (pos, n - remaining)
}

/// The byte offset `n` chars before `from` (or 0). `from` is a char boundary.
fn retreat(bytes: &[u8], from: usize, n: usize) -> usize {
    let (mut pos, mut remaining) = (from, n);
    while remaining > 0 && pos > 0 {
        let start = pos.saturating_sub(remaining);
        remaining -= count_char_starts(&bytes[start..pos]);
        pos = start;
    }
    // The block may begin inside the char before the last one counted.
    while pos < from && is_continuation(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// Bytes of `block` that start a char, i.e. are not UTF-8 continuation
/// bytes (`10xxxxxx`), counted eight at a time.
fn count_char_starts(block: &[u8]) -> usize {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let (words, rest) = block.as_chunks::<8>();
    let mut continuations = 0;
    for word in words {
        let word = u64::from_le_bytes(*word);
        // Bit 7 of a byte set and its bit 6 (moved up by the shift) clear.
        continuations += (word & !(word << 1) & HIGH_BITS).count_ones() as usize;
    }
    continuations += rest.iter().filter(|&&b| is_continuation(b)).count();
    block.len() - continuations
}

/// The index of the last `\n` in `bytes`, eight bytes at a time.
fn last_newline(bytes: &[u8]) -> Option<usize> {
    const LOW_7_BITS: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const NEWLINES: u64 = 0x0A0A_0A0A_0A0A_0A0A;
    let (head, words) = bytes.as_rchunks::<8>();
    for (index, word) in words.iter().enumerate().rev() {
        // Zero bytes of `diff` are the newlines; the high bit of each byte
        // of `found` says whether that byte is zero (exactly: no carry
        // crosses bytes, unlike the shorter `(x - 0x01..) & !x` test).
        let diff = u64::from_le_bytes(*word) ^ NEWLINES;
        let found = !(((diff & LOW_7_BITS) + LOW_7_BITS) | diff | LOW_7_BITS);
        if found != 0 {
            let byte_in_word = (63 - found.leading_zeros() as usize) / 8;
            return Some(head.len() + index * 8 + byte_in_word);
        }
    }
    head.iter().rposition(|&b| b == b'\n')
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// The best end, as (char index, byte offset), among the ends after each
/// char of `text[from..latest_byte]` (`latest` is the char index at
/// `latest_byte`): after the last paragraph break, else after the last
/// sentence end, else after the last whitespace, else `latest`.
fn break_point(text: &str, from: usize, latest_byte: usize, latest: usize) -> (usize, usize) {
    // A paragraph break anywhere in reach wins: look at the newlines only,
    // from the back (a newline is one byte in UTF-8 and never part of another char).
    let window = &text.as_bytes()[from..latest_byte];
    let mut search_end = window.len();
    while let Some(newline) = last_newline(&window[..search_end]) {
        let before_byte = from + newline;
        if is_paragraph_break(&text[..before_byte]) {
            let end_byte = before_byte + 1;
            let after = text.as_bytes()[end_byte..latest_byte].iter().filter(|&&b| !is_continuation(b)).count();
            return (latest - after, end_byte);
        }
        search_end = newline;
    }
    let mut sentence = None;
    let mut space = None;
    // `(end, end_byte)` is a candidate exclusive end; `before` the char just
    // before it. The last whitespace and the last sentence end are usually
    // close to the limit, so the scan stops once both are found.
    let (mut end, mut end_byte) = (latest, latest_byte);
    for (offset, before) in text[from..latest_byte].char_indices().rev() {
        let before_byte = from + offset;
        if before.is_whitespace() {
            if sentence.is_none() && text[..before_byte].chars().next_back().is_some_and(is_sentence_end) {
                sentence = Some((end, end_byte));
            }
            if space.is_none() {
                space = Some((end, end_byte));
            }
            if sentence.is_some() {
                break;
            }
        }
        end -= 1;
        end_byte = before_byte;
    }
    // A sentence end right at the limit with no whitespace after it yet.
    if sentence.is_none()
        && text[..latest_byte].chars().next_back().is_some_and(is_sentence_end)
        && text[latest_byte..].chars().next().is_none_or(char::is_whitespace)
    {
        sentence = Some((latest, latest_byte));
    }
    sentence.or(space).unwrap_or((latest, latest_byte))
}

/// Whether a newline preceded by `before` closes a blank line (`\n` +
/// optional spaces/tabs/`\r` + `\n`), looking at most 64 chars back.
fn is_paragraph_break(before: &str) -> bool {
    before.chars().rev().take(64).take_while(|c| c.is_whitespace()).any(|c| c == '\n')
}

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…')
}

#[cfg(test)]
mod tests;
