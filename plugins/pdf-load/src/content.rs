//! A zero-copy lexer for PDF content streams (ISO 32000-1, 7.8.2 and 8.9.7).
//!
//! [`Lexer`] walks the decoded bytes of a content stream and yields one
//! [`Operation`] at a time: the operator and its operands, each borrowed from
//! the input. Nothing is decoded until it is asked for: a number is a token
//! until [`Operand::number`] reads it (with a hand-written parser, not
//! `str::parse`), a literal or hexadecimal string until [`Operand::string`]
//! decodes it (only when it has escapes does that copy), a name until
//! [`Operand::name`], an array until [`Operand::items`] walks it. So the
//! operators the text extractor ignores (paths, colours, images) cost a scan
//! of their bytes and no allocation: operands live in a fixed array.
//!
//! It reads what lopdf's content parser reads the same way (numbers are
//! integers or `f32` reals, as there), and is tolerant where lopdf gives up
//! on the rest of the stream, in the manner of poppler and pdf.js: `--2` is
//! -2, a lone sign or dot is 0, a minus inside a fraction is skipped, stray
//! delimiters and unknown keywords are skipped, a bad character in a hex
//! string is ignored, an inline image's data (`BI … ID <binary> EI`) is
//! skipped by its computed size or else up to the next `EI` that follows
//! white space and precedes white space, a delimiter or the end. A stream cut
//! short ends with the operations read so far, and [`Lexer::problem`] says
//! where it stopped.

/// How many operands one operation keeps; later ones are read and dropped
/// (no operator takes more than a handful).
pub const MAX_OPERANDS: usize = 64;

const WHITE: u8 = 1;
const DELIMITER: u8 = 2;

/// Byte classes: white space, delimiters, and regular characters (0).
static CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let white = b" \t\n\r\x00\x0c";
    let mut i = 0;
    while i < white.len() {
        class[white[i] as usize] = WHITE;
        i += 1;
    }
    let delimiters = b"()<>[]{}/%";
    let mut i = 0;
    while i < delimiters.len() {
        class[delimiters[i] as usize] = DELIMITER;
        i += 1;
    }
    class
};

fn is_white(c: u8) -> bool {
    CLASS[c as usize] == WHITE
}

fn is_regular(c: u8) -> bool {
    CLASS[c as usize] == 0
}

/// One operand, borrowed from the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operand<'a> {
    /// A number token, as written (`-.5`, `3`, `0.00-41`).
    Number(&'a [u8]),
    /// A name, without its `/`, `#xx` escapes not yet decoded.
    Name(&'a [u8]),
    /// A literal string between its outer parentheses, escapes not yet
    /// decoded; `plain` when it has none (and no carriage return), so its
    /// bytes are its value.
    Literal { raw: &'a [u8], plain: bool },
    /// A hexadecimal string between `<` and `>`.
    Hex(&'a [u8]),
    /// An array between `[` and `]`.
    Array(&'a [u8]),
    /// A dictionary between `<<` and `>>` (marked-content properties).
    Dictionary(&'a [u8]),
    /// `true`, `false` or `null`.
    Keyword(&'a [u8]),
}

impl<'a> Operand<'a> {
    /// The value of a number operand, if it is one and finite.
    pub fn number(&self) -> Option<f64> {
        match self {
            Operand::Number(token) => Some(parse_number(token)).filter(|v| v.is_finite()),
            _ => None,
        }
    }

    /// The bytes of a string operand: borrowed when the string needs no
    /// decoding, else decoded into `scratch`.
    pub fn string<'s>(&self, scratch: &'s mut Vec<u8>) -> Option<&'s [u8]>
    where
        'a: 's,
    {
        match *self {
            Operand::Literal { raw, plain: true } => Some(raw),
            Operand::Literal { raw, plain: false } => {
                scratch.clear();
                decode_literal(raw, scratch);
                Some(scratch)
            }
            Operand::Hex(raw) => {
                scratch.clear();
                decode_hex(raw, scratch);
                Some(scratch)
            }
            _ => None,
        }
    }

    /// The bytes of a name operand, `#xx` escapes decoded (borrowed when it
    /// has none).
    pub fn name(&self) -> Option<std::borrow::Cow<'a, [u8]>> {
        match *self {
            Operand::Name(raw) if !raw.contains(&b'#') => Some(std::borrow::Cow::Borrowed(raw)),
            Operand::Name(raw) => Some(std::borrow::Cow::Owned(decode_name(raw))),
            _ => None,
        }
    }

    /// The elements of an array operand.
    pub fn items(&self) -> Option<Items<'a>> {
        match *self {
            Operand::Array(raw) => Some(Items { input: raw, pos: 0 }),
            _ => None,
        }
    }
}

/// One operation: an operator and the operands before it.
#[derive(Debug)]
pub struct Operation<'l, 'a> {
    pub operator: &'a [u8],
    pub operands: &'l [Operand<'a>],
}

impl Operation<'_, '_> {
    /// The first six finite numeric operands (zero where there are fewer)
    /// and how many numeric operands there are.
    pub fn numbers(&self) -> ([f64; 6], usize) {
        let mut first = [0.0f64; 6];
        let mut count = 0;
        for value in self.operands.iter().filter_map(Operand::number) {
            if let Some(slot) = first.get_mut(count) {
                *slot = value;
            }
            count += 1;
        }
        (first, count)
    }
}

/// Where a content stream stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    UnterminatedString,
    UnterminatedArray,
    UnterminatedDictionary,
    InlineImageWithoutData,
    InlineImageWithoutEnd,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Problem::UnterminatedString => "a content stream ends inside a string; text after it is missing",
            Problem::UnterminatedArray => "a content stream ends inside an array; text after it is missing",
            Problem::UnterminatedDictionary => "a content stream ends inside a dictionary; text after it is missing",
            Problem::InlineImageWithoutData => "a content stream ends inside an inline image dictionary (no ID)",
            Problem::InlineImageWithoutEnd => {
                "an inline image in a content stream has no EI marker; text after it is missing"
            }
        })
    }
}

/// Walks a content stream's operations; see the module docs.
pub struct Lexer<'a> {
    input: &'a [u8],
    pos: usize,
    operands: [Operand<'a>; MAX_OPERANDS],
    count: usize,
    problem: Option<Problem>,
}

/// What one token of the stream is.
enum Token<'a> {
    Operand(Operand<'a>),
    /// A keyword: an operator (or `BI`, `ID`, or junk).
    Keyword(&'a [u8]),
    /// A delimiter that starts nothing (`)`, `>`, `]`, `{`, `}`): skipped.
    Stray,
    End,
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Lexer { input, pos: 0, operands: [Operand::Keyword(b""); MAX_OPERANDS], count: 0, problem: None }
    }

    /// Why the stream ended before its last byte, if it did.
    pub fn problem(&self) -> Option<Problem> {
        self.problem
    }

    /// The next operation, or `None` at the end of the stream (operands with
    /// no operator after them are dropped).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Operation<'_, 'a>> {
        self.count = 0;
        loop {
            match next_token(self.input, &mut self.pos, &mut self.problem) {
                Token::End => return None,
                Token::Operand(operand) => {
                    if let Some(slot) = self.operands.get_mut(self.count) {
                        *slot = operand;
                        self.count += 1;
                    }
                }
                Token::Stray => self.count = 0,
                Token::Keyword(b"BI") => {
                    self.count = 0;
                    if !self.skip_inline_image() {
                        return None;
                    }
                }
                Token::Keyword(operator) => {
                    return Some(Operation { operator, operands: &self.operands[..self.count] });
                }
            }
        }
    }

    /// Skips an inline image after its `BI`: the dictionary, `ID`, the data
    /// and `EI`. False when the stream ends inside it.
    fn skip_inline_image(&mut self) -> bool {
        loop {
            match next_token(self.input, &mut self.pos, &mut self.problem) {
                Token::End => {
                    self.problem.get_or_insert(Problem::InlineImageWithoutData);
                    return false;
                }
                Token::Keyword(b"ID") => break,
                Token::Operand(operand) => {
                    if let Some(slot) = self.operands.get_mut(self.count) {
                        *slot = operand;
                        self.count += 1;
                    }
                }
                Token::Keyword(_) | Token::Stray => {}
            }
        }
        // One white-space character (CR LF counts as one) separates ID from
        // the data.
        let input = self.input;
        match input.get(self.pos..self.pos + 2) {
            Some(b"\r\n") => self.pos += 2,
            _ if input.get(self.pos).is_some_and(|&c| is_white(c)) => self.pos += 1,
            _ => {}
        }
        let data = self.pos;
        let dictionary = &self.operands[..self.count];
        self.count = 0;
        // The data's size, when the dictionary gives it, and EI after it.
        if let Some(length) = inline_image_length(dictionary)
            && let Some(after) = data.checked_add(length)
            && let Some(rest) = input.get(after..)
        {
            let blanks = rest.iter().take_while(|&&c| is_white(c)).count();
            if rest.get(blanks..blanks + 2) == Some(b"EI") {
                self.pos = after + blanks + 2;
                return true;
            }
        }
        // Else the first EI after white space and before white space, a
        // delimiter or the end.
        let rest = input.get(data..).unwrap_or_default();
        let mut from = 0;
        let found = loop {
            let Some(at) = rest.get(from..).and_then(|r| r.windows(3).position(|w| is_white(w[0]) && w[1..] == *b"EI"))
            else {
                break None;
            };
            let end = data + from + at + 3;
            if input.get(end).is_none_or(|&c| !is_regular(c)) {
                break Some(end);
            }
            from += at + 1;
        };
        match found {
            Some(end) => {
                self.pos = end;
                true
            }
            None => {
                self.pos = input.len();
                self.problem.get_or_insert(Problem::InlineImageWithoutEnd);
                false
            }
        }
    }
}

/// The number of bytes of an inline image's data, from its dictionary's
/// `(key, value)` operands, when it is unfiltered and its colour space
/// known (as lopdf computes it).
fn inline_image_length(dictionary: &[Operand]) -> Option<usize> {
    let get = |short: &[u8], long: &[u8]| {
        dictionary
            .chunks_exact(2)
            .find(|pair| matches!(pair[0], Operand::Name(key) if key == short || key == long))
            .map(|pair| pair[1])
    };
    let size = |short: &[u8], long: &[u8]| match get(short, long)? {
        Operand::Number(token) if !token.contains(&b'.') => usize::try_from(parse_number(token) as i64).ok(),
        _ => None,
    };
    if get(b"F", b"Filter").is_some() {
        return None;
    }
    let mask = matches!(get(b"IM", b"ImageMask"), Some(Operand::Keyword(b"true")));
    let bits = match get(b"BPC", b"BitsPerComponent") {
        None if mask => 1,
        _ => size(b"BPC", b"BitsPerComponent")?,
    };
    let colours = if mask {
        1
    } else {
        match get(b"CS", b"ColorSpace")? {
            Operand::Array(_) => {
                let first = get(b"CS", b"ColorSpace")?.items()?.next()?;
                match first {
                    Operand::Name(b"I" | b"Indexed") => 1,
                    _ => return None,
                }
            }
            Operand::Name(b"G" | b"DeviceGray" | b"Gray") => 1,
            Operand::Name(b"RGB" | b"DeviceRGB") => 3,
            Operand::Name(b"RGBA" | b"DeviceRGBA" | b"CMYK" | b"DeviceCMYK") => 4,
            _ => return None,
        }
    };
    let width = size(b"W", b"Width")?;
    let height = size(b"H", b"Height")?;
    bits.checked_mul(colours)?.checked_mul(width)?.div_ceil(8).checked_mul(height)
}

/// The elements of an array operand (nested arrays are one element each).
#[derive(Debug, Clone)]
pub struct Items<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Operand<'a>;

    fn next(&mut self) -> Option<Operand<'a>> {
        let mut ignored = None;
        loop {
            match next_token(self.input, &mut self.pos, &mut ignored) {
                Token::End => return None,
                Token::Operand(operand) => return Some(operand),
                // An operator inside an array is not valid; skip it.
                Token::Keyword(keyword) => return Some(Operand::Keyword(keyword)),
                Token::Stray => {}
            }
        }
    }
}

/// Skips white space and comments from `pos`.
fn skip_space(input: &[u8], mut pos: usize) -> usize {
    while let Some(&c) = input.get(pos) {
        if is_white(c) {
            pos += 1;
        } else if c == b'%' {
            pos += 1;
            while input.get(pos).is_some_and(|&c| c != b'\n' && c != b'\r') {
                pos += 1;
            }
        } else {
            break;
        }
    }
    pos
}

/// The next token at or after `*pos`, moving `*pos` past it. At an
/// unterminated string, array or dictionary, records the problem and ends.
fn next_token<'a>(input: &'a [u8], pos: &mut usize, problem: &mut Option<Problem>) -> Token<'a> {
    let start = skip_space(input, *pos);
    let Some(&c) = input.get(start) else {
        *pos = start;
        return Token::End;
    };
    let fail = |pos: &mut usize, problem: &mut Option<Problem>, what: Problem| {
        *pos = input.len();
        problem.get_or_insert(what);
        Token::End
    };
    match c {
        b'0'..=b'9' | b'+' | b'-' | b'.' => {
            let end = number_end(input, start);
            *pos = end;
            Token::Operand(Operand::Number(&input[start..end]))
        }
        b'/' => {
            let end = regular_end(input, start + 1);
            *pos = end;
            Token::Operand(Operand::Name(&input[start + 1..end]))
        }
        b'(' => match literal_end(input, start + 1) {
            Some((end, plain)) => {
                *pos = end + 1;
                Token::Operand(Operand::Literal { raw: &input[start + 1..end], plain })
            }
            None => fail(pos, problem, Problem::UnterminatedString),
        },
        b'<' if input.get(start + 1) == Some(&b'<') => match dictionary_end(input, start + 2) {
            Some(end) => {
                *pos = end + 2;
                Token::Operand(Operand::Dictionary(&input[start + 2..end]))
            }
            None => fail(pos, problem, Problem::UnterminatedDictionary),
        },
        b'<' => match input[start + 1..].iter().position(|&c| c == b'>') {
            Some(len) => {
                *pos = start + 1 + len + 1;
                Token::Operand(Operand::Hex(&input[start + 1..start + 1 + len]))
            }
            None => fail(pos, problem, Problem::UnterminatedString),
        },
        b'[' => match array_end(input, start + 1) {
            Some(end) => {
                *pos = end + 1;
                Token::Operand(Operand::Array(&input[start + 1..end]))
            }
            None => fail(pos, problem, Problem::UnterminatedArray),
        },
        b')' | b'>' | b']' | b'{' | b'}' => {
            *pos = start + 1;
            Token::Stray
        }
        _ => {
            // An operator is letters, digits, `*`, `'` and `"` (as lopdf
            // reads it, so `Tj-5` is `Tj` then -5); a run of other regular
            // characters is junk, one keyword.
            let mut end = start;
            while input.get(end).is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'*' | b'\'' | b'"')) {
                end += 1;
            }
            if end == start {
                end = regular_end(input, start);
            }
            *pos = end;
            let word = &input[start..end];
            match word {
                b"true" | b"false" | b"null" => Token::Operand(Operand::Keyword(word)),
                _ => Token::Keyword(word),
            }
        }
    }
}

/// The end of the run of regular characters from `pos`.
fn regular_end(input: &[u8], mut pos: usize) -> usize {
    while input.get(pos).is_some_and(|&c| is_regular(c)) {
        pos += 1;
    }
    pos
}

/// The end of the number token at `start`: signs, digits, then a `.` and
/// digits (and stray minus signs) for a real, as lopdf reads it.
fn number_end(input: &[u8], start: usize) -> usize {
    let mut pos = start;
    while input.get(pos).is_some_and(|&c| c == b'+' || c == b'-') {
        pos += 1;
    }
    while input.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    if input.get(pos) == Some(&b'.') {
        pos += 1;
        while input.get(pos).is_some_and(|&c| c.is_ascii_digit() || c == b'-') {
            pos += 1;
        }
    }
    pos
}

/// The position of the `)` closing a literal string whose content starts at
/// `pos`, and whether the content needs no decoding.
fn literal_end(input: &[u8], mut pos: usize) -> Option<(usize, bool)> {
    let mut depth = 0usize;
    let mut plain = true;
    loop {
        let offset = input.get(pos..)?.iter().position(|&c| matches!(c, b'(' | b')' | b'\\' | b'\r'))?;
        pos += offset;
        match input[pos] {
            b'(' => depth += 1,
            b')' if depth == 0 => return Some((pos, plain)),
            b')' => depth -= 1,
            b'\\' => {
                plain = false;
                pos += 1;
            }
            _ => plain = false,
        }
        pos += 1;
    }
}

/// The position of the `]` closing an array whose content starts at `pos`.
fn array_end(input: &[u8], pos: usize) -> Option<usize> {
    container_end(input, pos, b'[', b']')
}

/// The position of the `>>` closing a dictionary whose content starts at
/// `pos`.
fn dictionary_end(input: &[u8], pos: usize) -> Option<usize> {
    container_end(input, pos, b'<', b'>')
}

/// The end of a nested array (`[`, `]`) or dictionary (`<<`, `>>`):
/// strings, hex strings and comments are skipped whole.
fn container_end(input: &[u8], mut pos: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        let c = *input.get(pos)?;
        match c {
            b'(' => pos = literal_end(input, pos + 1)?.0 + 1,
            b'%' => pos = skip_space(input, pos),
            b'<' if input.get(pos + 1) == Some(&b'<') => {
                if open == b'<' {
                    depth += 1;
                }
                pos += 2;
            }
            b'<' => pos += 1 + input[pos + 1..].iter().position(|&c| c == b'>')? + 1,
            b'>' if open == b'<' && input.get(pos + 1) == Some(&b'>') => {
                if depth == 0 {
                    return Some(pos);
                }
                depth -= 1;
                pos += 2;
            }
            _ if c == open && open == b'[' => {
                depth += 1;
                pos += 1;
            }
            _ if c == close && close == b']' => {
                if depth == 0 {
                    return Some(pos);
                }
                depth -= 1;
                pos += 1;
            }
            _ => pos += 1,
        }
    }
}

/// Decodes a literal string's escapes (ISO 32000-1, 7.3.4.2) into `out`:
/// `\n \r \t \b \f`, `\ddd` octal (overflow ignored), a backslash before an
/// end of line is dropped with it, any other escaped byte stands for
/// itself; an unescaped CR, LF or CR LF is one LF.
pub fn decode_literal(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        i += 1;
        match c {
            b'\\' => {
                let Some(&e) = raw.get(i) else {
                    break;
                };
                i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'0'..=b'7' => {
                        let mut value = u32::from(e - b'0');
                        for _ in 0..2 {
                            match raw.get(i) {
                                Some(&d @ b'0'..=b'7') => {
                                    value = value * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(value as u8);
                    }
                    b'\r' => {
                        if raw.get(i) == Some(&b'\n') {
                            i += 1;
                        }
                    }
                    b'\n' => {}
                    other => out.push(other),
                }
            }
            b'\r' => {
                if raw.get(i) == Some(&b'\n') {
                    i += 1;
                }
                out.push(b'\n');
            }
            other => out.push(other),
        }
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes a hexadecimal string into `out`: white space and other non-hex
/// bytes are skipped, an odd last digit is padded with 0.
pub fn decode_hex(raw: &[u8], out: &mut Vec<u8>) {
    let mut high: Option<u8> = None;
    for value in raw.iter().filter_map(|&c| hex_value(c)) {
        match high.take() {
            Some(h) => out.push(h << 4 | value),
            None => high = Some(value),
        }
    }
    if let Some(h) = high {
        out.push(h << 4);
    }
}

/// A name's bytes with `#xx` decoded; a `#` without two hex digits stays.
fn decode_name(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        if c == b'#'
            && let (Some(h), Some(l)) =
                (raw.get(i + 1).and_then(|&c| hex_value(c)), raw.get(i + 2).and_then(|&c| hex_value(c)))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Powers of ten exact in `f64`, for the fast path of [`parse_number`].
const POW10: [f64; 9] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

/// The value of a number token: an integer (as `i64` would hold it) or a
/// real rounded to `f32`, as lopdf reads them. Tolerant: leading signs
/// after the first are ignored (`--2` is -2), minus signs in the fraction
/// are skipped, no digits at all is 0.
///
/// Reals with at most 15 significant digits and 8 decimals (all that
/// producers write) are `m / 10^k` in `f64`, both exact, so one correctly
/// rounded division, then rounded to `f32`; that second rounding cannot
/// differ from rounding the decimal directly, because such a decimal is
/// never within half an `f64` ulp of an `f32` rounding boundary without
/// being on it. Longer ones go through `str::parse`.
pub fn parse_number(token: &[u8]) -> f64 {
    let (negative, body) = match token.first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    let body = &body[body.iter().take_while(|&&c| c == b'+' || c == b'-').count()..];
    let mut mantissa = 0u64;
    let mut digits = 0u32;
    let mut decimals = 0u32;
    let mut real = false;
    for &c in body {
        match c {
            b'0'..=b'9' => {
                if mantissa == 0 && c == b'0' {
                    if real {
                        decimals += 1;
                    }
                    continue;
                }
                if digits >= 19 {
                    return parse_slow(negative, body, real);
                }
                mantissa = mantissa * 10 + u64::from(c - b'0');
                digits += 1;
                if real {
                    decimals += 1;
                }
            }
            b'.' => real = true,
            _ => {}
        }
    }
    if !real {
        // As lopdf: an i64, then f64 (so -0 is 0).
        let value = if negative { 0i64.checked_sub_unsigned(mantissa) } else { i64::try_from(mantissa).ok() };
        return match value {
            Some(value) => value as f64,
            None => parse_slow(negative, body, real),
        };
    }
    while decimals > 8 && mantissa.is_multiple_of(10) && mantissa != 0 {
        mantissa /= 10;
        decimals -= 1;
    }
    if mantissa == 0 {
        return if negative { -0.0 } else { 0.0 };
    }
    let (Some(&scale), true) = (POW10.get(decimals as usize), digits <= 15) else {
        return parse_slow(negative, body, real);
    };
    let value = f64::from((mantissa as f64 / scale) as f32);
    if negative { -value } else { value }
}

/// [`parse_number`] for long tokens: through `str::parse`.
#[cold]
fn parse_slow(negative: bool, body: &[u8], real: bool) -> f64 {
    let mut text = String::with_capacity(body.len() + 2);
    if negative {
        text.push('-');
    }
    text.extend(body.iter().filter(|c| c.is_ascii_digit() || **c == b'.').map(|&c| char::from(c)));
    if text.ends_with('.') {
        text.push('0');
    }
    if real { text.parse::<f32>().map(f64::from).unwrap_or(0.0) } else { text.parse::<f64>().unwrap_or(0.0) }
}

#[cfg(test)]
mod tests;
