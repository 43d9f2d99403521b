//! Fonts for text extraction: how a shown string splits into character
//! codes, what text each code stands for, and how wide its glyph is.
//!
//! Text comes from, in order: the font's `ToUnicode` CMap; for simple fonts
//! the `/Encoding` (a base encoding plus `/Differences` glyph names looked up
//! in a compact Adobe Glyph List subset, `uniXXXX` and `uXXXX` names), or the
//! built-in encoding of an embedded Type 1 or CFF font program; for Type0 fonts a
//! predefined Unicode CMap. Widths come from `/Widths` (simple fonts), `/W`
//! and `/DW` (CID fonts), `/FontMatrix` (Type 3), or, for the standard 14
//! fonts without `/Widths`, Adobe's AFM widths of the ASCII characters
//! (Courier, Helvetica, Times families; other characters, and other
//! non-embedded fonts, use the font's average width — an approximation that
//! only affects where spaces are inferred).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use lopdf::{Dictionary, Document, Object};

use crate::glyph_text::{FastHash, GlyphText};
use crate::tables;

/// A simple font's text for each one-byte code.
type CodeTable = Box<[Option<GlyphText>; 256]>;

mod cff;
#[cfg(test)]
pub(crate) use cff::tests::font as test_cff_font;

/// Most bytes a CMap stream or embedded font program may inflate to here, on
/// top of the caller's own limit.
const MAX_FONT_STREAM: usize = 16 * 1024 * 1024;

/// A loaded font: everything text extraction needs.
#[derive(Debug)]
pub struct Font {
    /// Type0 (composite) fonts use multi-byte codes.
    composite: bool,
    /// Code-space ranges (byte length, low, high) of a composite font's CMap.
    codespace: Vec<(u8, u32, u32)>,
    to_unicode: Option<CMap>,
    /// Simple fonts: text for each single-byte code from the encoding.
    simple: Option<CodeTable>,
    /// A composite font whose codes are Unicode (predefined UCS-2 CMaps).
    codes_are_unicode: bool,
    widths: Widths,
    /// Text-space units per glyph-space unit × 1000 (1 except for Type 3).
    width_scale: f64,
    /// Problems met loading this font, for the page's warning.
    pub problems: Vec<String>,
    /// The glyphs of recently decoded codes, direct-mapped by code (see
    /// [`Font::decode`]); empty until the first decode.
    recent: RefCell<Vec<Option<Glyph>>>,
}

/// Slots of [`Font::recent`].
const RECENT_GLYPHS: usize = 256;

/// The slot of `(len, code)` in [`Font::recent`].
fn recent_slot(code: u32, len: u8) -> usize {
    ((code ^ (code >> 8) ^ (u32::from(len) << 7)) as usize) % RECENT_GLYPHS
}

#[derive(Debug, Default)]
struct Widths {
    first_char: u32,
    simple: Vec<f64>,
    cid_single: BTreeMap<u32, f64>,
    /// (first, last, width) runs of `/W`, keyed by first code.
    cid_ranges: BTreeMap<u32, (u32, f64)>,
    default: f64,
    /// Standard-14 ASCII widths, used when a simple font lacks `/Widths`.
    std14: Option<&'static [u16; 95]>,
}

/// One character code of a shown string.
#[derive(Debug, Clone, PartialEq)]
pub struct Glyph {
    pub code: u32,
    /// Byte length of the code (word spacing applies to the one-byte code 32).
    pub len: u8,
    /// Its text; empty if the code maps to nothing known.
    pub text: GlyphText,
    /// Horizontal advance in thousandths of text space (before `Tfs`/`Tz`).
    pub width: f64,
    /// False if no mapping to Unicode was found for the code.
    pub mapped: bool,
}

impl Font {
    /// A fallback font for a missing or unreadable font resource: one-byte
    /// codes read as Latin-1, average widths.
    pub fn fallback() -> Font {
        Font {
            composite: false,
            codespace: Vec::new(),
            to_unicode: None,
            simple: Some(table_to_strings(&tables::STANDARD)),
            codes_are_unicode: false,
            widths: Widths { default: 500.0, ..Widths::default() },
            width_scale: 1.0,
            problems: Vec::new(),
            recent: RefCell::default(),
        }
    }

    /// Loads the font dictionary `dict`.
    pub fn load(doc: &Document, dict: &Dictionary, limit: usize) -> Font {
        let limit = limit.min(MAX_FONT_STREAM);
        let mut problems = Vec::new();
        let subtype = name_of(dict.get(b"Subtype").ok()).unwrap_or_default();
        let composite = subtype == b"Type0";
        let base_font = name_of(deref(doc, dict.get(b"BaseFont").ok())).unwrap_or_default();
        let base_font = strip_subset(&base_font);

        let to_unicode = match deref(doc, dict.get(b"ToUnicode").ok()) {
            Some(Object::Stream(stream)) => match stream.decompressed_content_with_limit(limit) {
                Ok(data) => Some(CMap::parse(&data)),
                Err(_) => match stream.content.is_empty() {
                    true => None,
                    false => {
                        problems.push("a font's ToUnicode map could not be decompressed".to_string());
                        None
                    }
                },
            },
            _ => None,
        };

        let mut font = Font {
            composite,
            codespace: Vec::new(),
            to_unicode,
            simple: None,
            codes_are_unicode: false,
            widths: Widths { default: 500.0, ..Widths::default() },
            width_scale: 1.0,
            problems: Vec::new(),
            recent: RefCell::default(),
        };

        if composite {
            font.load_composite(doc, dict, limit, &mut problems);
        } else {
            font.load_simple(doc, dict, subtype, base_font, limit);
        }
        font.problems = problems;
        font
    }

    fn load_composite(&mut self, doc: &Document, dict: &Dictionary, limit: usize, problems: &mut Vec<String>) {
        match deref(doc, dict.get(b"Encoding").ok()) {
            Some(Object::Name(name)) => {
                let name = name.as_slice();
                if name.starts_with(b"Uni")
                    && (name.windows(4).any(|w| w == b"UCS2") || name.windows(5).any(|w| w == b"UTF16"))
                {
                    self.codes_are_unicode = true;
                }
                self.codespace = vec![(2, 0, 0xFFFF)];
            }
            Some(Object::Stream(stream)) => {
                if let Ok(data) = stream.decompressed_content_with_limit(limit) {
                    self.codespace = CMap::parse(&data).codespace;
                }
            }
            _ => {}
        }
        if self.codespace.is_empty() {
            self.codespace = vec![(2, 0, 0xFFFF)];
        }
        if self.to_unicode.is_none() && !self.codes_are_unicode {
            problems.push("a composite font has no ToUnicode map; its text is left out".to_string());
        }
        let descendant = match deref(doc, dict.get(b"DescendantFonts").ok()) {
            Some(Object::Array(array)) => match deref(doc, array.first()) {
                Some(Object::Dictionary(d)) => Some(d),
                _ => None,
            },
            _ => None,
        };
        self.widths.default = 1000.0;
        if let Some(descendant) = descendant {
            if let Some(dw) = number(deref(doc, descendant.get(b"DW").ok())) {
                self.widths.default = dw;
            }
            if let Some(Object::Array(w)) = deref(doc, descendant.get(b"W").ok()) {
                let mut i = 0;
                while let Some(first) = w.get(i).and_then(|o| number(deref(doc, Some(o)))) {
                    let first = first.max(0.0) as u32;
                    match deref(doc, w.get(i + 1)) {
                        Some(Object::Array(list)) => {
                            for (k, width) in list.iter().enumerate() {
                                if let Some(width) = number(deref(doc, Some(width))) {
                                    self.widths.cid_single.insert(first.saturating_add(k as u32), width);
                                }
                            }
                            i += 2;
                        }
                        Some(other) => {
                            let last = number(Some(other)).unwrap_or(0.0).max(0.0) as u32;
                            if let Some(width) = w.get(i + 2).and_then(|o| number(deref(doc, Some(o)))) {
                                self.widths.cid_ranges.insert(first, (last, width));
                            }
                            i += 3;
                        }
                        None => break,
                    }
                }
            }
        }
    }

    fn load_simple(&mut self, doc: &Document, dict: &Dictionary, subtype: Vec<u8>, base_font: &[u8], limit: usize) {
        let descriptor = match deref(doc, dict.get(b"FontDescriptor").ok()) {
            Some(Object::Dictionary(d)) => Some(d),
            _ => None,
        };
        // Widths.
        self.widths.first_char = number(deref(doc, dict.get(b"FirstChar").ok())).unwrap_or(0.0).max(0.0) as u32;
        if let Some(Object::Array(widths)) = deref(doc, dict.get(b"Widths").ok()) {
            self.widths.simple = widths.iter().map(|w| number(deref(doc, Some(w))).unwrap_or(0.0)).collect();
        }
        let missing = descriptor.and_then(|d| number(deref(doc, d.get(b"MissingWidth").ok())));
        let average = descriptor.and_then(|d| number(deref(doc, d.get(b"AvgWidth").ok())));
        self.widths.std14 = if self.widths.simple.is_empty() { std14_widths(base_font) } else { None };
        let known: Vec<f64> = self.widths.simple.iter().copied().filter(|w| *w > 0.0).collect();
        let mean = if known.is_empty() { 500.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
        self.widths.default = missing.filter(|w| *w > 0.0).or(average.filter(|w| *w > 0.0)).unwrap_or(mean);
        if subtype == b"Type3" {
            if let Some(Object::Array(m)) = deref(doc, dict.get(b"FontMatrix").ok())
                && let Some(a) = m.first().and_then(|o| number(Some(o)))
                && a.is_finite()
                && a != 0.0
            {
                self.width_scale = (a * 1000.0).abs();
            } else {
                self.width_scale = 1.0;
            }
        }

        // Encoding.
        let symbolic_name = base_font.starts_with(b"Symbol");
        let flags = descriptor.and_then(|d| number(deref(doc, d.get(b"Flags").ok()))).unwrap_or(0.0) as u32;
        let mut table: Option<CodeTable> = None;
        let mut differences: Option<&Vec<Object>> = None;
        match deref(doc, dict.get(b"Encoding").ok()) {
            Some(Object::Name(name)) => table = named_encoding(name),
            Some(Object::Dictionary(enc)) => {
                if let Some(Object::Name(name)) = deref(doc, enc.get(b"BaseEncoding").ok()) {
                    table = named_encoding(name);
                }
                if let Some(Object::Array(d)) = deref(doc, enc.get(b"Differences").ok()) {
                    differences = Some(d);
                }
            }
            _ => {}
        }
        if table.is_none() {
            // The font program's own encoding (Type 1), else a default.
            table = descriptor
                .and_then(|d| builtin_type1_encoding(doc, d, limit).or_else(|| builtin_cff_encoding(doc, d, limit)));
            if table.is_none() {
                table = Some(if symbolic_name {
                    table_to_strings(&tables::SYMBOL)
                } else if subtype == b"TrueType" && flags & 4 != 0 {
                    // Symbolic TrueType: codes usually are the characters.
                    table_to_strings(&tables::WIN_ANSI)
                } else {
                    table_to_strings(&tables::STANDARD)
                });
            }
        }
        if let (Some(table), Some(differences)) = (table.as_mut(), differences) {
            let mut code: usize = 0;
            for entry in differences {
                match entry {
                    Object::Integer(i) => code = (*i).clamp(0, 256) as usize,
                    Object::Name(name) => {
                        if let Some(slot) = table.get_mut(code) {
                            *slot = glyph_name_to_text(name).map(GlyphText::from);
                        }
                        code += 1;
                    }
                    _ => {}
                }
            }
        }
        self.simple = table;
    }

    /// Splits `bytes` into glyphs.
    ///
    /// A glyph depends only on its code, and a page shows the same few
    /// codes over and over: each is looked up (ToUnicode CMap, encoding,
    /// widths) once and then kept in a small direct-mapped table, a cheaper
    /// probe than the maps behind it (most of all in the Wasm build).
    pub fn decode<'a>(&'a self, bytes: &'a [u8]) -> impl Iterator<Item = Glyph> + 'a {
        let mut i = 0;
        std::iter::from_fn(move || {
            let rest = bytes.get(i..).filter(|rest| !rest.is_empty())?;
            let len = if self.composite { self.code_len(rest).min(rest.len()) } else { 1 };
            let code = rest[..len].iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            i += len;
            let len = len as u8;
            let mut recent = self.recent.borrow_mut();
            if recent.is_empty() {
                recent.resize(RECENT_GLYPHS, None);
            }
            let slot = recent.get_mut(recent_slot(code, len))?;
            if let Some(glyph) = slot.as_ref().filter(|g| g.code == code && g.len == len) {
                return Some(glyph.clone());
            }
            let glyph = self.lookup(code, len);
            *slot = Some(glyph.clone());
            Some(glyph)
        })
    }

    /// The glyph of `code`, `len` bytes long.
    fn lookup(&self, code: u32, len: u8) -> Glyph {
        let mut text = self.to_unicode.as_ref().and_then(|cmap| cmap.lookup(code, len));
        if text.is_none() {
            if let Some(simple) = &self.simple {
                text = simple.get(code as usize).cloned().flatten();
            } else if self.codes_are_unicode {
                text = char::from_u32(code).map(GlyphText::from_char);
            }
        }
        let mapped = text.is_some();
        Glyph { code, len, text: text.unwrap_or_default(), width: self.width(code), mapped }
    }

    fn code_len(&self, bytes: &[u8]) -> usize {
        for len in 1..=4usize {
            if bytes.len() < len {
                break;
            }
            let fits = self.codespace.iter().any(|&(l, lo, hi)| {
                usize::from(l) == len
                    && (0..len).all(|k| {
                        let shift = 8 * (len - 1 - k);
                        let b = bytes.get(k).copied().unwrap_or(0);
                        ((lo >> shift) & 0xFF) as u8 <= b && b <= ((hi >> shift) & 0xFF) as u8
                    })
            });
            if fits {
                return len;
            }
        }
        self.codespace.iter().map(|&(l, _, _)| usize::from(l)).min().unwrap_or(2).max(1)
    }

    fn width(&self, code: u32) -> f64 {
        let w = &self.widths;
        let width = if self.composite {
            if let Some(width) = w.cid_single.get(&code) {
                *width
            } else if let Some((_, (last, width))) = w.cid_ranges.range(..=code).next_back()
                && code <= *last
            {
                *width
            } else {
                w.default
            }
        } else if let Some(width) = code.checked_sub(w.first_char).and_then(|k| w.simple.get(k as usize)) {
            *width
        } else if let Some(std14) = w.std14 {
            let text = self.simple.as_ref().and_then(|t| t.get(code as usize)).and_then(Option::as_ref);
            match text.and_then(|t| t.chars().next()) {
                Some(c) if (' '..='~').contains(&c) => {
                    std14.get(c as usize - 32).map(|v| f64::from(*v)).unwrap_or(w.default)
                }
                _ => w.default,
            }
        } else {
            w.default
        };
        let width = width * self.width_scale;
        if width.is_finite() { width } else { 0.0 }
    }
}

/// A `ToUnicode` CMap: code → text.
#[derive(Debug, Default)]
pub struct CMap {
    pub codespace: Vec<(u8, u32, u32)>,
    chars: HashMap<(u8, u32), GlyphText, FastHash>,
    /// Keyed by (byte length, first code): (last code, target).
    ranges: BTreeMap<(u8, u32), (u32, RangeTarget)>,
}

#[derive(Debug)]
enum RangeTarget {
    /// UTF-16 units of the first code's text; the last unit increments.
    Offset(Vec<u16>),
    /// One text per code.
    Array(Vec<GlyphText>),
}

impl CMap {
    /// Parses a CMap leniently: whatever cannot be read is skipped.
    pub fn parse(data: &[u8]) -> CMap {
        let tokens = tokenize(data);
        let mut cmap = CMap::default();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                Token::Keyword(k) if k == b"begincodespacerange" => {
                    i += 1;
                    while let (Some(Token::Hex(lo)), Some(Token::Hex(hi))) = (tokens.get(i), tokens.get(i + 1)) {
                        if (1..=4).contains(&lo.len()) {
                            cmap.codespace.push((lo.len() as u8, be(lo), be(hi)));
                        }
                        i += 2;
                    }
                }
                Token::Keyword(k) if k == b"beginbfchar" => {
                    i += 1;
                    while let (Some(Token::Hex(src)), Some(dst)) = (tokens.get(i), tokens.get(i + 1)) {
                        let text = match dst {
                            Token::Hex(dst) => Some(utf16be(dst)),
                            Token::Name(name) => glyph_name_to_text(name),
                            _ => None,
                        };
                        if let Some(text) = text
                            && (1..=4).contains(&src.len())
                        {
                            cmap.chars.insert((src.len() as u8, be(src)), GlyphText::from(text));
                        }
                        i += 2;
                    }
                }
                Token::Keyword(k) if k == b"beginbfrange" => {
                    i += 1;
                    while let (Some(Token::Hex(lo)), Some(Token::Hex(hi))) = (tokens.get(i), tokens.get(i + 1)) {
                        let (first, last) = (be(lo), be(hi));
                        let ok = (1..=4).contains(&lo.len()) && first <= last;
                        match tokens.get(i + 2) {
                            Some(Token::Hex(dst)) => {
                                let units: Vec<u16> = dst
                                    .chunks(2)
                                    .map(|c| c.iter().fold(0u16, |a, b| (a << 8) | u16::from(*b)))
                                    .collect();
                                if ok && !units.is_empty() {
                                    cmap.ranges.insert((lo.len() as u8, first), (last, RangeTarget::Offset(units)));
                                }
                                i += 3;
                            }
                            Some(Token::ArrayStart) => {
                                let mut list = Vec::new();
                                let mut j = i + 3;
                                while let Some(Token::Hex(dst)) = tokens.get(j) {
                                    list.push(GlyphText::from(utf16be(dst)));
                                    j += 1;
                                }
                                if matches!(tokens.get(j), Some(Token::ArrayEnd)) {
                                    j += 1;
                                }
                                if ok {
                                    cmap.ranges.insert((lo.len() as u8, first), (last, RangeTarget::Array(list)));
                                }
                                i = j;
                            }
                            _ => {
                                i += 2;
                                break;
                            }
                        }
                    }
                }
                _ => i += 1,
            }
        }
        cmap
    }

    /// The text of `code` (`len` bytes long), if mapped.
    pub fn lookup(&self, code: u32, len: u8) -> Option<GlyphText> {
        if let Some(text) = self.chars.get(&(len, code)) {
            return Some(text.clone());
        }
        let (&(_, first), (last, target)) = self.ranges.range((len, 0)..=(len, code)).next_back()?;
        if code > *last {
            return None;
        }
        let offset = code - first;
        match target {
            RangeTarget::Offset(units) => {
                let (last_unit, head) = units.split_last()?;
                let last_unit = u16::try_from(u32::from(*last_unit) + offset).ok()?;
                let units = head.iter().copied().chain(std::iter::once(last_unit));
                if head.is_empty() {
                    let c = char::decode_utf16(units).next()?.unwrap_or('\u{FFFD}');
                    return Some(GlyphText::from_char(c));
                }
                let text: String = char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect();
                Some(GlyphText::from(text))
            }
            RangeTarget::Array(list) => list.get(offset as usize).cloned(),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Hex(Vec<u8>),
    Name(Vec<u8>),
    Keyword(Vec<u8>),
    ArrayStart,
    ArrayEnd,
    Other,
}

fn tokenize(data: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let is_delim = |b: u8| b.is_ascii_whitespace() || b"[]<>()/%{}".contains(&b);
    while i < data.len() {
        let b = data[i];
        match b {
            b'%' => {
                while i < data.len() && data[i] != b'\n' && data[i] != b'\r' {
                    i += 1;
                }
            }
            b'[' => {
                tokens.push(Token::ArrayStart);
                i += 1;
            }
            b']' => {
                tokens.push(Token::ArrayEnd);
                i += 1;
            }
            b'<' if data.get(i + 1) == Some(&b'<') => {
                tokens.push(Token::Other);
                i += 2;
            }
            b'>' => {
                i += 1;
            }
            b'<' => {
                i += 1;
                let mut nibbles = Vec::new();
                while i < data.len() && data[i] != b'>' {
                    if let Some(v) = (data[i] as char).to_digit(16) {
                        nibbles.push(v as u8);
                    }
                    i += 1;
                }
                i += 1;
                if nibbles.len() % 2 == 1 {
                    nibbles.push(0);
                }
                tokens.push(Token::Hex(
                    nibbles.chunks(2).map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0)).collect(),
                ));
            }
            b'(' => {
                // Literal strings do not occur in the sections read here.
                let mut depth = 0;
                while i < data.len() {
                    match data[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Other);
            }
            b'/' => {
                let start = i + 1;
                i += 1;
                while i < data.len() && !is_delim(data[i]) {
                    i += 1;
                }
                tokens.push(Token::Name(data.get(start..i).unwrap_or_default().to_vec()));
            }
            _ if b.is_ascii_whitespace() || is_delim(b) => i += 1,
            _ => {
                let start = i;
                while i < data.len() && !is_delim(data[i]) {
                    i += 1;
                }
                let word = data.get(start..i).unwrap_or_default();
                if word.first().is_some_and(|c| c.is_ascii_alphabetic()) {
                    tokens.push(Token::Keyword(word.to_vec()));
                } else {
                    tokens.push(Token::Other);
                }
            }
        }
    }
    tokens
}

fn be(bytes: &[u8]) -> u32 {
    bytes.iter().take(4).fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

fn utf16be(bytes: &[u8]) -> String {
    let units = bytes.chunks(2).map(|c| c.iter().fold(0u16, |a, b| (a << 8) | u16::from(*b)));
    char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect()
}

/// Glyph names of the TeX (Computer Modern, AMS) fonts missing from the
/// Adobe Glyph List.
const TEX_GLYPH_NAMES: [(&str, &str); 10] = [
    ("angbracketleft", "\u{27E8}"),
    ("angbracketright", "\u{27E9}"),
    ("arrowdblboth", "\u{21D4}"),
    ("arrowdblleft", "\u{21D0}"),
    ("arrowdblright", "\u{21D2}"),
    ("mapsto", "\u{21A6}"),
    ("openbullet", "\u{25E6}"),
    ("phi1", "\u{03D5}"),
    ("rho1", "\u{03F1}"),
    ("squaresolid", "\u{25A0}"),
];

/// Text for a glyph name: the Adobe Glyph List subset, `uniXXXX[XXXX…]`,
/// `uXXXX[XX]`, a few TeX font names, ligature names joined by `_`, and
/// suffixes after `.` dropped.
pub fn glyph_name_to_text(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let base = name.split('.').next().unwrap_or(name);
    if base.is_empty() {
        return None;
    }
    if base.contains('_') {
        let parts: Option<Vec<String>> = base.split('_').map(|p| glyph_name_to_text(p.as_bytes())).collect();
        return parts.map(|p| p.concat());
    }
    if let Ok(index) = tables::GLYPH_NAMES.binary_search_by(|(n, _)| n.as_bytes().cmp(base.as_bytes())) {
        return tables::GLYPH_NAMES.get(index).map(|(_, text)| (*text).to_string());
    }
    if let Some((_, text)) = TEX_GLYPH_NAMES.iter().find(|(n, _)| *n == base) {
        return Some((*text).to_string());
    }
    if let Some(hex) = base.strip_prefix("uni")
        && hex.len() >= 4
        && hex.len() % 4 == 0
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        let units = hex.as_bytes().chunks(4).filter_map(|c| u16::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok());
        let text: String = char::decode_utf16(units).filter_map(Result::ok).collect();
        return (!text.is_empty()).then_some(text);
    }
    if let Some(hex) = base.strip_prefix('u')
        && (4..=6).contains(&hex.len())
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).map(String::from);
    }
    None
}

fn table_to_strings(table: &[u16; 256]) -> CodeTable {
    let mut out: CodeTable = Box::new(std::array::from_fn(|_| None));
    for (slot, unit) in out.iter_mut().zip(table.iter()) {
        if *unit != 0 {
            *slot = char::from_u32(u32::from(*unit)).map(GlyphText::from_char);
        }
    }
    out
}

fn named_encoding(name: &[u8]) -> Option<CodeTable> {
    match name {
        b"WinAnsiEncoding" => Some(table_to_strings(&tables::WIN_ANSI)),
        b"MacRomanEncoding" => Some(table_to_strings(&tables::MAC_ROMAN)),
        b"StandardEncoding" => Some(table_to_strings(&tables::STANDARD)),
        _ => None,
    }
}

/// The encoding built into an embedded Type 1 font program (`/FontFile`):
/// its clear-text `dup <code> /<name> put` entries.
fn builtin_type1_encoding(doc: &Document, descriptor: &Dictionary, limit: usize) -> Option<CodeTable> {
    let Some(Object::Stream(stream)) = deref(doc, descriptor.get(b"FontFile").ok()) else {
        return None;
    };
    let data = stream.decompressed_content_with_limit(limit).ok()?;
    let length1 = number(deref(doc, stream.dict.get(b"Length1").ok())).unwrap_or(data.len() as f64).max(0.0) as usize;
    let clear = data.get(..length1.min(data.len()))?;
    let start = clear.windows(9).position(|w| w == b"/Encoding")?;
    let rest = clear.get(start..)?;
    if rest.get(9..).is_some_and(|r| r.trim_ascii_start().starts_with(b"StandardEncoding")) {
        return Some(table_to_strings(&tables::STANDARD));
    }
    // The array ends at the first `def` token (not the `def` inside `/.notdef`).
    let mut table: CodeTable = Box::new(std::array::from_fn(|_| None));
    let words: Vec<&[u8]> =
        rest.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).take_while(|w| *w != b"def").collect();
    let mut found = false;
    for window in words.windows(4) {
        if let [b"dup", code, name, b"put"] = window
            && let Some(name) = name.strip_prefix(b"/")
            && let Some(code) = std::str::from_utf8(code).ok().and_then(|c| c.parse::<usize>().ok())
            && let Some(slot) = table.get_mut(code)
        {
            *slot = glyph_name_to_text(name).map(GlyphText::from);
            found = true;
        }
    }
    found.then_some(table)
}

/// The encoding built into an embedded CFF font program (`/FontFile3`).
fn builtin_cff_encoding(doc: &Document, descriptor: &Dictionary, limit: usize) -> Option<CodeTable> {
    let Some(Object::Stream(stream)) = deref(doc, descriptor.get(b"FontFile3").ok()) else {
        return None;
    };
    let data = stream.decompressed_content_with_limit(limit).ok()?;
    let encoding = cff::builtin_encoding(&data)?;
    if encoding.standard {
        return Some(table_to_strings(&tables::STANDARD));
    }
    let mut table: CodeTable = Box::new(std::array::from_fn(|_| None));
    for (code, name) in encoding.names {
        if let Some(slot) = table.get_mut(usize::from(code)) {
            *slot = glyph_name_to_text(name.as_bytes()).map(GlyphText::from);
        }
    }
    table.iter().any(Option::is_some).then_some(table)
}

fn std14_widths(base_font: &[u8]) -> Option<&'static [u16; 95]> {
    let name = String::from_utf8_lossy(base_font).to_ascii_lowercase().replace(['-', ',', ' '], "");
    let bold = name.contains("bold");
    let italic = name.contains("italic") || name.contains("oblique");
    if name.starts_with("courier") {
        Some(&tables::COURIER)
    } else if name.starts_with("helvetica") || name.starts_with("arial") {
        Some(if bold { &tables::HELVETICA_BOLD } else { &tables::HELVETICA })
    } else if name.starts_with("times") {
        Some(match (bold, italic) {
            (false, false) => &tables::TIMES_ROMAN,
            (true, false) => &tables::TIMES_BOLD,
            (false, true) => &tables::TIMES_ITALIC,
            (true, true) => &tables::TIMES_BOLDITALIC,
        })
    } else {
        None
    }
}

fn strip_subset(name: &[u8]) -> &[u8] {
    match name.get(6) {
        Some(b'+') if name.iter().take(6).all(u8::is_ascii_uppercase) => name.get(7..).unwrap_or_default(),
        _ => name,
    }
}

/// Follows references (a bounded number of times).
pub fn deref<'a>(doc: &'a Document, mut object: Option<&'a Object>) -> Option<&'a Object> {
    for _ in 0..16 {
        match object {
            Some(Object::Reference(id)) => object = doc.get_object(*id).ok(),
            other => return other,
        }
    }
    None
}

pub fn number(object: Option<&Object>) -> Option<f64> {
    match object {
        Some(Object::Integer(i)) => Some(*i as f64),
        Some(Object::Real(r)) => Some(f64::from(*r)),
        _ => None,
    }
    .filter(|v| v.is_finite())
}

fn name_of(object: Option<&Object>) -> Option<Vec<u8>> {
    match object {
        Some(Object::Name(name)) => Some(name.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod recent_tests {
    use super::*;

    #[test]
    fn cached_glyphs_are_the_glyphs_of_their_codes() {
        // Every one-byte code, in an order that makes codes share slots and
        // evict each other, decoded twice: the same glyphs as uncached.
        let font = Font::fallback();
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).chain((0..=255u8).step_by(7)).collect();
        let decoded: Vec<Glyph> = font.decode(&bytes).collect();
        let direct: Vec<Glyph> = bytes.iter().map(|&b| font.lookup(u32::from(b), 1)).collect();
        assert_eq!(decoded, direct);
        assert_eq!(font.decode(b"Hi").map(|g| g.text.to_string()).collect::<String>(), "Hi");
        assert!(recent_slot(0x0102, 2) < RECENT_GLYPHS && recent_slot(u32::MAX, 4) < RECENT_GLYPHS);
    }
}
