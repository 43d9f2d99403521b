#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A readable form of one operand: numbers by value, strings decoded.
fn show(operand: &Operand) -> String {
    let mut scratch = Vec::new();
    if let Some(value) = operand.number() {
        return format!("{value}");
    }
    if let Some(bytes) = operand.string(&mut scratch) {
        return format!("({})", String::from_utf8_lossy(bytes));
    }
    if let Some(name) = operand.name() {
        return format!("/{}", String::from_utf8_lossy(&name));
    }
    if let Some(items) = operand.items() {
        return format!("[{}]", items.map(|i| show(&i)).collect::<Vec<_>>().join(" "));
    }
    match operand {
        Operand::Dictionary(raw) => format!("<<{}>>", String::from_utf8_lossy(raw)),
        Operand::Keyword(word) => String::from_utf8_lossy(word).into_owned(),
        Operand::Number(token) => format!("nan:{}", String::from_utf8_lossy(token)),
        _ => unreachable!(),
    }
}

/// Every operation of `input`, one string each: operands then operator.
fn operations(input: &[u8]) -> (Vec<String>, Option<Problem>) {
    let mut lexer = Lexer::new(input);
    let mut out = Vec::new();
    while let Some(op) = lexer.next() {
        let mut parts: Vec<String> = op.operands.iter().map(show).collect();
        parts.push(String::from_utf8_lossy(op.operator).into_owned());
        out.push(parts.join(" "));
    }
    (out, lexer.problem())
}

fn ops(input: &[u8]) -> Vec<String> {
    let (ops, problem) = operations(input);
    assert_eq!(problem, None, "unexpected problem in {:?}", String::from_utf8_lossy(input));
    ops
}

#[test]
fn operators_and_operands() {
    assert_eq!(
        ops(b"BT /F1 12 Tf 1 0 0 1 72 700 Tm (Hi) Tj T* ET"),
        ["BT", "/F1 12 Tf", "1 0 0 1 72 700 Tm", "(Hi) Tj", "T*", "ET"]
    );
    // No white space between tokens where delimiters separate them.
    assert_eq!(ops(b"/F1 9.5Tf(a)Tj[(b)-20(c)]TJ"), ["/F1 9.5 Tf", "(a) Tj", "[(b) -20 (c)] TJ"]);
    assert_eq!(ops(b"0 g 1 1 m 2 2 l S (x)' 1 2 (y)\""), ["0 g", "1 1 m", "2 2 l", "S", "(x) '", "1 2 (y) \""]);
    assert_eq!(ops(b"0 0 d0 1 0 0 1 0 0 d1"), ["0 0 d0", "1 0 0 1 0 0 d1"]);
    assert_eq!(ops(b"true false null BX"), ["true false null BX"]);
    assert!(ops(b"").is_empty());
    assert!(ops(b"  \r\n\t\x0c\x00 ").is_empty());
}

#[test]
fn comments_are_skipped() {
    assert_eq!(ops(b"% header\n1 0 0 RG % colour\r  (a%b) Tj %end"), ["1 0 0 RG", "(a%b) Tj"]);
    assert_eq!(ops(b"[(a) % inside\n (b)] TJ"), ["[(a) (b)] TJ"]);
}

#[test]
fn numbers_as_producers_write_them() {
    let value = |token: &str| parse_number(token.as_bytes());
    assert_eq!(value("-.5"), -0.5);
    assert_eq!(value("+3"), 3.0);
    assert_eq!(value("4."), 4.0);
    assert_eq!(value("0.00-4142502"), f64::from(0.004142502f32));
    assert_eq!(value("--2"), -2.0);
    assert_eq!(value("-"), 0.0);
    assert_eq!(value("."), 0.0);
    assert_eq!(value("-0"), 0.0);
    assert!(value("-0").is_sign_positive());
    assert_eq!(value("123456789012"), 123456789012.0);
    assert_eq!(value("99999999999999999999999"), 1e23);
    // Reals are f32 values, as lopdf reads them, on the fast path and off it.
    for token in ["0.1", "72.5", "-612.0001", "0.000001", "1.23456789", "3.402823", "16777217.0", "0.3333333333333333"]
    {
        assert_eq!(value(token), f64::from(token.parse::<f32>().unwrap()), "{token}");
    }
    // Tokens end where the number ends, as in lopdf.
    assert_eq!(ops(b"1-2 3.5.5 12Tf"), ["1 -2 3.5 0.5 12 Tf"]);
    assert_eq!(ops(b"-.5 +3 4. --2 m"), ["-0.5 3 4 -2 m"]);
}

#[test]
fn fast_real_parsing_matches_str_parse() {
    // Every decimal with up to 7 digits around the point, over a sample.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let digits = (state % 10_000_000) as u32;
        let decimals = ((state >> 32) % 9) as usize;
        let mut text = format!("{digits:0>9}");
        text.insert(9 - decimals, '.');
        let expected = f64::from(text.parse::<f32>().unwrap());
        assert_eq!(parse_number(text.as_bytes()), expected, "{text}");
    }
}

#[test]
fn literal_strings_nest_and_escape() {
    assert_eq!(ops(b"(a (nested (deep)) b) Tj"), ["(a (nested (deep)) b) Tj"]);
    assert_eq!(ops(b"(\\(unbalanced\\)) Tj"), ["((unbalanced)) Tj"]);
    let mut scratch = Vec::new();
    let decoded = |raw: &[u8], scratch: &mut Vec<u8>| -> Vec<u8> {
        let mut lexer = Lexer::new(raw);
        let op = lexer.next().unwrap();
        op.operands[0].string(scratch).unwrap().to_vec()
    };
    assert_eq!(decoded(b"(a\\nb\\rc\\td\\be\\ff) Tj", &mut scratch), b"a\nb\rc\td\x08e\x0cf");
    // Octal: one to three digits, overflow dropped; 8 is not octal.
    assert_eq!(decoded(b"(\\101\\60\\0\\0053\\777\\8) Tj", &mut scratch), b"A0\x00\x053\xff8");
    // A backslash before an end of line continues the line.
    assert_eq!(decoded(b"(one\\\ntwo\\\r\nthree\\\rfour) Tj", &mut scratch), b"onetwothreefour");
    // Unescaped ends of line are one LF each.
    assert_eq!(decoded(b"(a\r\nb\rc\nd) Tj", &mut scratch), b"a\nb\nc\nd");
    // Unknown escapes stand for the byte.
    assert_eq!(decoded(b"(\\\\\\q\\)) Tj", &mut scratch), b"\\q)");
    // A plain string is borrowed, not copied.
    let input = b"(plain) Tj";
    let mut lexer = Lexer::new(input);
    let op = lexer.next().unwrap();
    assert!(matches!(op.operands[0], Operand::Literal { plain: true, .. }));
    let bytes = op.operands[0].string(&mut scratch).unwrap();
    assert_eq!(bytes.as_ptr(), input[1..].as_ptr());
}

#[test]
fn hex_strings() {
    let decoded = |raw: &[u8]| -> Vec<u8> {
        let mut scratch = Vec::new();
        let mut lexer = Lexer::new(raw);
        let op = lexer.next().unwrap();
        op.operands[0].string(&mut scratch).unwrap().to_vec()
    };
    assert_eq!(decoded(b"<48656C6c6F> Tj"), b"Hello");
    assert_eq!(decoded(b"<48 65\n6C\t6c 6F> Tj"), b"Hello");
    // An odd last digit is padded with 0; junk is ignored.
    assert_eq!(decoded(b"<4142 4> Tj"), b"AB\x40");
    assert_eq!(decoded(b"<41z42> Tj"), b"AB");
    assert_eq!(decoded(b"<> Tj"), b"");
}

#[test]
fn names_decode_escapes() {
    let mut lexer = Lexer::new(b"/F#231 12 Tf /A#2 Do / BMC");
    let op = lexer.next().unwrap();
    assert_eq!(op.operands[0].name().unwrap().as_ref(), b"F#1");
    let op = lexer.next().unwrap();
    assert_eq!(op.operands[0].name().unwrap().as_ref(), b"A#2");
    let op = lexer.next().unwrap();
    assert_eq!(op.operands[0].name().unwrap().as_ref(), b"");
}

#[test]
fn arrays_and_dictionaries_as_operands() {
    assert_eq!(
        ops(b"/Span <</ActualText (\\(x\\)) /MCID 3 /Nested << /A [1 (]) <3e>] >> >> BDC (t) Tj EMC"),
        ["/Span <</ActualText (\\(x\\)) /MCID 3 /Nested << /A [1 (]) <3e>] >> >> BDC", "(t) Tj", "EMC"]
    );
    assert_eq!(ops(b"/P <<>> DP [] TJ"), ["/P <<>> DP", "[] TJ"]);
    // Nested arrays are one element; operators inside are items, not operations.
    assert_eq!(ops(b"[(a) [1 2] <41> bad -5] TJ"), ["[(a) [1 2] (A) bad -5] TJ"]);
}

#[test]
fn inline_images_are_skipped() {
    // By the computed size: 2x2 RGB at 8 bits is 12 bytes, which may hold
    // "EI" and anything else.
    let mut image = b"q BI /W 2 /H 2 /CS /RGB /BPC 8 ID ".to_vec();
    image.extend_from_slice(b" EI (\x00\xff)EI()");
    image.extend_from_slice(b"\nEI Q (after) Tj");
    assert_eq!(ops(&image), ["q", "Q", "(after) Tj"]);
    // Filtered: up to the first EI between white space and white space or
    // a delimiter; an EI inside binary data does not end it.
    let mut image = b"BI /W 10 /H 10 /BPC 8 /CS /G /F /AHx ID\r\n".to_vec();
    image.extend_from_slice(b"\x00EIx\x01 EIB\xff\n");
    image.extend_from_slice(b" EI/F1 9 Tf (t) Tj");
    assert_eq!(ops(&image), ["/F1 9 Tf", "(t) Tj"]);
    // Full key names, an image mask without BPC, an indexed colour space.
    assert_eq!(ops(b"BI /Width 8 /Height 1 /ImageMask true ID \xffEI (m) Tj"), ["(m) Tj"]);
    assert_eq!(ops(b"BI /W 3 /H 1 /BPC 8 /CS [/I /RGB 1 <000000ffffff>] ID \x01 \x00EI (i) Tj"), ["(i) Tj"]);
    // A wrong size falls back to the search.
    assert_eq!(ops(b"BI /W 50 /H 50 /BPC 8 /CS /G ID abc EI (w) Tj"), ["(w) Tj"]);
    // No EI: the stream ends there, with what came before.
    let (ops, problem) = operations(b"(before) Tj BI /W 1 /H 1 /F /DCT ID \x00\x01EIx");
    assert_eq!(ops, ["(before) Tj"]);
    assert_eq!(problem, Some(Problem::InlineImageWithoutEnd));
    let (ops, problem) = operations(b"(before) Tj BI /W 1 /H 1");
    assert_eq!(ops, ["(before) Tj"]);
    assert_eq!(problem, Some(Problem::InlineImageWithoutData));
}

#[test]
fn junk_is_skipped_not_fatal() {
    // Stray delimiters drop the operands before them; unknown keywords are
    // operations the extractor ignores.
    assert_eq!(ops(b"1 2 } (a) Tj ) ] > { 3 4 Td"), ["(a) Tj", "3 4 Td"]);
    assert_eq!(ops(b"@foo (b) Tj"), ["@foo", "(b) Tj"]);
    // An operator ends where lopdf ends it: at a character that cannot be in one.
    assert_eq!(ops(b"(a)Tj-5 Tw T*'(b)'"), ["(a) Tj", "-5 Tw", "T*'", "(b) '"]);
}

#[test]
fn truncated_streams_keep_what_came_before() {
    for (input, expected) in [
        (&b"(a) Tj (unterminated"[..], Problem::UnterminatedString),
        (b"(a) Tj <4142", Problem::UnterminatedString),
        (b"(a) Tj [(b) 3", Problem::UnterminatedArray),
        (b"(a) Tj [(b) (c", Problem::UnterminatedArray),
        (b"(a) Tj /P <</A 1", Problem::UnterminatedDictionary),
    ] {
        let (ops, problem) = operations(input);
        assert_eq!(ops, ["(a) Tj"], "{:?}", String::from_utf8_lossy(input));
        assert_eq!(problem, Some(expected));
    }
    // Operands with no operator after them are dropped without a problem.
    assert_eq!(ops(b"(a) Tj 1 2"), ["(a) Tj"]);
}

#[test]
fn operands_beyond_the_limit_are_dropped() {
    let mut input = Vec::new();
    for i in 0..MAX_OPERANDS + 10 {
        input.extend_from_slice(format!("{i} ").as_bytes());
    }
    input.extend_from_slice(b"sc");
    let mut lexer = Lexer::new(&input);
    let op = lexer.next().unwrap();
    assert_eq!(op.operator, b"sc");
    assert_eq!(op.operands.len(), MAX_OPERANDS);
    assert_eq!(op.numbers(), ([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], MAX_OPERANDS));
}

/// A small deterministic generator, so the next test needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn arbitrary_bytes_never_panic_and_always_finish() {
    // Syntax-heavy noise reaches the lexer's corners (nested and unbalanced
    // strings, escapes, hex, names with #, inline images, comments) far more
    // often than uniform bytes would; every accessor is exercised by `show`.
    const ALPHABET: &[u8] = b"()<>[]{}/%\\#+-.0123456789 \n\r\tBIDETjTJ'\"ab\x00\xff";
    let sample: &[u8] = b"BT /F1 12 Tf 1 0 0 1 72 720 Tm [(Hel\\)lo) -250 <576f726c64>] TJ T* (a\\\nb\\101) ' \
                          /P <</MCID 3>> BDC EMC BI /W 2 /H 1 /BPC 8 /CS /G ID \x00\xffEI EI -.5 --2 4. Td ET";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut inputs: Vec<Vec<u8>> = (0..=sample.len()).map(|end| sample[..end].to_vec()).collect();
    for _ in 0..3000 {
        let len = (rng.next() % 200) as usize;
        inputs.push((0..len).map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize]).collect());
    }
    for input in &inputs {
        let (ops, _problem) = operations(input);
        // Every operation consumes at least one byte of the input.
        assert!(ops.len() <= input.len() + 1, "{} operations from {} bytes", ops.len(), input.len());
    }
}
