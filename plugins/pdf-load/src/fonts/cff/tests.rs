#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// An INDEX with one-byte offsets.
fn index_bytes(entries: &[&[u8]]) -> Vec<u8> {
    let count = u16::try_from(entries.len()).unwrap();
    let mut out = count.to_be_bytes().to_vec();
    if entries.is_empty() {
        return out;
    }
    out.push(1);
    let mut offset = 1u8;
    out.push(offset);
    for entry in entries {
        offset += u8::try_from(entry.len()).unwrap();
        out.push(offset);
    }
    for entry in entries {
        out.extend_from_slice(entry);
    }
    out
}

/// A 5-byte DICT integer operand.
fn int(value: usize) -> Vec<u8> {
    let mut out = vec![29];
    out.extend_from_slice(&i32::try_from(value).unwrap().to_be_bytes());
    out
}

/// A CFF font with glyphs .notdef, fi (standard SID 109) and f_f (custom
/// SID 391), the given charset and encoding blobs (placed after the
/// CharStrings INDEX), and optionally a CID-keyed top DICT.
pub(crate) fn font(charset: &[u8], encoding: &[u8], cid: bool) -> Vec<u8> {
    let header = [1u8, 0, 4, 1];
    let names = index_bytes(&[b"F"]);
    let strings = index_bytes(&[b"f_f"]);
    let globals = index_bytes(&[]);
    let charstrings = index_bytes(&[&[14], &[14], &[14]]);
    // Top DICT: three 5-byte operands + operators; size is fixed.
    let top_len = 3 * 6 + if cid { 3 * 2 + 2 } else { 0 };
    let top_index_len = 2 + 1 + 2 + top_len;
    let start = header.len() + names.len() + top_index_len + strings.len() + globals.len();
    let charstrings_at = start;
    let charset_at = charstrings_at + charstrings.len();
    let encoding_at = charset_at + charset.len();
    let mut top = Vec::new();
    if cid {
        top.extend_from_slice(&[139, 139, 139, 12, 30]);
        top.extend_from_slice(&[139, 12, 0x22]);
    }
    top.extend(int(charset_at));
    top.push(15);
    top.extend(int(encoding_at));
    top.push(16);
    top.extend(int(charstrings_at));
    top.push(17);
    assert_eq!(top.len(), top_len);
    let mut out = header.to_vec();
    out.extend(names);
    out.extend(index_bytes(&[&top]));
    out.extend(strings);
    out.extend(globals);
    out.extend(charstrings);
    out.extend_from_slice(charset);
    out.extend_from_slice(encoding);
    out
}

#[test]
fn format0_encoding_with_custom_and_standard_names() {
    // Charset format 0: SIDs 109 (fi), 391 (f_f). Encoding format 0 with a
    // supplement: code 12 -> glyph 1, code 11 -> glyph 2, code 65 -> SID 34 (A).
    let data = font(&[0, 0, 109, 1, 135], &[0x80, 2, 12, 11, 1, 65, 0, 34], false);
    let encoding = builtin_encoding(&data).unwrap();
    assert!(!encoding.standard);
    let mut names = encoding.names;
    names.sort();
    assert_eq!(names, vec![(11, "f_f".to_string()), (12, "fi".to_string()), (65, "A".to_string())]);
}

#[test]
fn format1_ranges_and_range_charset() {
    // Charset format 1: SIDs 109.. for 1 + 1 glyphs (fi, fl). Encoding format 1: codes 12..13.
    let data = font(&[1, 0, 109, 1], &[1, 1, 12, 1], false);
    let encoding = builtin_encoding(&data).unwrap();
    assert_eq!(encoding.names, vec![(12, "fi".to_string()), (13, "fl".to_string())]);
}

#[test]
fn standard_cid_and_garbage() {
    let mut data = font(&[0, 0, 109, 1, 135], &[], false);
    // Encoding offset 0 means StandardEncoding: rewrite operand to 0.
    let at = data.windows(6).position(|w| w[0] == 29 && w[5] == 16).unwrap();
    data.splice(at + 1..at + 5, [0, 0, 0, 0]);
    assert!(builtin_encoding(&data).unwrap().standard);
    assert!(builtin_encoding(&font(&[0, 0, 109, 1, 135], &[0, 2, 12, 11], true)).is_none());
    assert!(builtin_encoding(b"OTTO\0\0\0\0").is_none());
    assert!(builtin_encoding(&[1, 0, 4, 1, 0xff, 0xff, 2]).is_none());
    for cut in 0..data.len() {
        let _ = builtin_encoding(&data[..cut]);
    }
}
