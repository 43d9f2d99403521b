//! Text splitting: chunks of at most `size` characters (Unicode scalar
//! values) — or approximate tokens, counted as four characters each — with
//! `overlap` shared by consecutive chunks, ending at a paragraph break if
//! one is in reach, else a sentence end, else whitespace, else exactly at
//! `size`. Never inside a UTF-8 character.

use serde::Deserialize;

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

/// The config as written, before defaults that depend on other fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    size: Option<usize>,
    overlap: Option<usize>,
    unit: Option<Unit>,
}

impl Config {
    /// Parses and validates the step's JSON config (`{}`, empty or `null`
    /// mean all defaults). The error is a message for a fatal step error.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let json = json.trim();
        let raw: RawConfig = if json.is_empty() || json == "null" {
            RawConfig { size: None, overlap: None, unit: None }
        } else {
            let value: serde_json::Value =
                serde_json::from_str(json).map_err(|e| format!("invalid chunk config: {e}"))?;
            if !value.is_object() {
                return Err("invalid chunk config: expected a JSON object".into());
            }
            serde_json::from_value(value).map_err(|e| format!("invalid chunk config: {e}"))?
        };
        let size = raw.size.unwrap_or(Config::default().size);
        let overlap = raw.overlap.unwrap_or(if size > 100 { 100 } else { size / 10 });
        let cfg = Config { size, overlap, unit: raw.unit.unwrap_or_default() };
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
    let mut out = Vec::new();
    for (text, metadata) in items {
        let base: Vec<(String, String)> =
            metadata.iter().filter(|(k, _)| !OWN_KEYS.contains(&k.as_str())).cloned().collect();
        for (of_item, chunk) in split_text(text, cfg).into_iter().enumerate() {
            let mut meta = base.clone();
            meta.push(("chunk_index".into(), out.len().to_string()));
            meta.push(("chunk_of_item".into(), of_item.to_string()));
            meta.push(("char_start".into(), chunk.char_start.to_string()));
            meta.push(("char_end".into(), chunk.char_end.to_string()));
            let chars = chunk.char_end - chunk.char_start;
            meta.push(("approx_tokens".into(), chars.div_ceil(CHARS_PER_TOKEN).to_string()));
            out.push((chunk.text.to_string(), meta));
        }
    }
    out
}

/// Splits `text` into chunks under `cfg` (which must be valid; an invalid
/// `cfg` is treated as `size = max(size, 1)`, `overlap = min(overlap, size - 1)`).
/// Whitespace-only chunks are dropped, so empty or blank text yields none.
///
/// Works in one pass over the text: each chunk decodes only the chars it
/// can end in (plus a little context before it), so the cost stays linear
/// and no per-char table of the whole text is built (that table was most of
/// the time and memory on large items).
pub fn split_text<'a>(text: &'a str, cfg: &Config) -> Vec<Chunk<'a>> {
    let size = cfg.unit.chars(cfg.size).max(1);
    let overlap = cfg.unit.chars(cfg.overlap).min(size - 1);
    // Earliest end, counted from the chunk's start: no earlier than half a
    // chunk in, and past the overlap so the next chunk starts after this one.
    let earliest_offset = (size / 2).max(overlap + 1).min(size);

    let mut chunks = Vec::new();
    // The chars the current chunk can look at, with their byte offsets:
    // up to CONTEXT chars before its start, then up to `size + 1` from it.
    let mut window: Vec<(usize, char)> = Vec::with_capacity(size + CONTEXT + 2);
    let (mut start_char, mut start_byte) = (0usize, 0usize);
    while start_byte < text.len() {
        window.clear();
        window.extend(text[..start_byte].char_indices().rev().take(CONTEXT));
        window.reverse();
        let base = start_char - window.len(); // char index of window[0]
        window.extend(text[start_byte..].char_indices().take(size + 1).map(|(b, c)| (start_byte + b, c)));
        let at_start = start_char - base;
        let remaining = window.len() - at_start;
        let byte_of = |char_index: usize| window.get(char_index - base).map_or(text.len(), |&(b, _)| b);

        let end = if remaining <= size {
            start_char + remaining
        } else {
            let chars: Vec<char> = window.iter().map(|&(_, c)| c).collect();
            base + break_point(&chars, at_start + earliest_offset, at_start + size)
        };
        let end_byte = byte_of(end);
        let piece = &text[start_byte..end_byte];
        if !piece.trim().is_empty() {
            chunks.push(Chunk { text: piece, char_start: start_char, char_end: end });
        }
        if remaining <= size {
            break;
        }
        start_char = end - overlap;
        start_byte = byte_of(start_char);
    }
    chunks
}

/// Chars before a chunk's start that `break_point` may look at: the
/// paragraph check reaches 64 chars back from a newline one char before the
/// earliest end, which can precede the start.
const CONTEXT: usize = 66;

/// The best end (exclusive char index) in `earliest..=latest`: after the
/// last paragraph break, else after the last sentence end, else after the
/// last whitespace, else `latest`.
fn break_point(chars: &[char], earliest: usize, latest: usize) -> usize {
    let mut sentence = None;
    let mut space = None;
    // `end` is a candidate exclusive end: the chunk would be `..end`.
    for end in (earliest..=latest).rev() {
        let before = chars[end - 1];
        if !before.is_whitespace() {
            continue;
        }
        // A paragraph break: a newline, then only blank characters back to
        // another newline.
        if before == '\n' && is_paragraph_break(chars, end - 1) {
            return end;
        }
        if sentence.is_none() && end >= 2 && is_sentence_end(chars[end - 2]) {
            sentence = Some(end);
        }
        if space.is_none() {
            space = Some(end);
        }
    }
    // A sentence end right at the limit with no whitespace after it yet.
    if sentence.is_none() && is_sentence_end(chars[latest - 1]) && chars.get(latest).is_none_or(|c| c.is_whitespace()) {
        sentence = Some(latest);
    }
    sentence.or(space).unwrap_or(latest)
}

/// Whether the newline at `newline` closes a blank line (`\n` + optional
/// spaces/tabs/`\r` + `\n`).
fn is_paragraph_break(chars: &[char], newline: usize) -> bool {
    chars[..newline].iter().rev().take(64).take_while(|c| c.is_whitespace()).any(|c| *c == '\n')
}

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…')
}

#[cfg(test)]
mod tests;
