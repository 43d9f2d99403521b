//! Just enough of the Compact Font Format (CFF, Adobe TN #5176) to read the
//! built-in encoding of an embedded Type1C font program (`/FontFile3`): which
//! glyph name each character code selects. Simple fonts without an
//! `/Encoding` (or without a `/BaseEncoding`) use it as their base encoding.

/// Glyph names of the built-in encoding, by character code, or `None` when
/// the program is not a (non-CID) CFF font whose encoding can be read. A
/// program using the Standard Encoding yields `Some` with `standard` set.
pub struct BuiltinEncoding {
    /// The font uses Adobe's StandardEncoding.
    pub standard: bool,
    /// Glyph names by code (empty when `standard`).
    pub names: Vec<(u8, String)>,
}

/// Reads the built-in encoding of the CFF font program `data`.
pub fn builtin_encoding(data: &[u8]) -> Option<BuiltinEncoding> {
    if *data.first()? != 1 {
        return None; // Not CFF version 1 (e.g. an OpenType program).
    }
    let header_size = usize::from(*data.get(2)?);
    let (_, after_names) = index(data, header_size)?;
    let (top_dicts, after_top) = index(data, after_names)?;
    let (strings, _) = index(data, after_top)?;
    let top = dict(top_dicts.first().copied()?)?;
    if top.iter().any(|(op, _)| *op == ROS) {
        return None; // CID-keyed: codes select CIDs, not glyph names.
    }
    let operand = |op: u16| top.iter().find(|(o, _)| *o == op).and_then(|(_, v)| v.last().copied());
    let encoding = operand(16).unwrap_or(0.0);
    if encoding == 0.0 {
        return Some(BuiltinEncoding { standard: true, names: Vec::new() });
    }
    if encoding == 1.0 {
        return None; // Expert encoding: rare, and not mapped here.
    }
    let glyph_count = index(data, usize_of(operand(17)?)?)?.0.len();
    let sids = charset(data, operand(15).unwrap_or(0.0), glyph_count)?;
    let name = |sid: u16| -> Option<String> {
        let sid = usize::from(sid);
        match STANDARD_STRINGS.get(sid) {
            Some(name) => Some((*name).to_string()),
            None => strings.get(sid - STANDARD_STRINGS.len()).map(|s| String::from_utf8_lossy(s).into_owned()),
        }
    };
    let mut names = Vec::new();
    let mut at = usize_of(encoding)?;
    let format = *data.get(at)?;
    at += 1;
    match format & 0x7f {
        0 => {
            let count = usize::from(*data.get(at)?);
            for (gid, code) in data.get(at + 1..at + 1 + count)?.iter().enumerate() {
                if let Some(name) = sids.get(gid + 1).copied().and_then(name) {
                    names.push((*code, name));
                }
            }
            at += 1 + count;
        }
        1 => {
            let ranges = usize::from(*data.get(at)?);
            let mut gid = 1;
            for range in data.get(at + 1..at + 1 + 2 * ranges)?.chunks_exact(2) {
                if let [first, left] = range {
                    for code in u16::from(*first)..=u16::from(*first) + u16::from(*left) {
                        if let (Ok(code), Some(name)) = (u8::try_from(code), sids.get(gid).copied().and_then(name)) {
                            names.push((code, name));
                        }
                        gid += 1;
                    }
                }
            }
            at += 1 + 2 * ranges;
        }
        _ => return None,
    }
    if format & 0x80 != 0 {
        // Supplements: extra codes for glyphs already encoded, by SID.
        let count = usize::from(*data.get(at)?);
        for sup in data.get(at + 1..at + 1 + 3 * count)?.chunks_exact(3) {
            if let [code, hi, lo] = sup
                && let Some(name) = name(u16::from_be_bytes([*hi, *lo]))
            {
                names.push((*code, name));
            }
        }
    }
    Some(BuiltinEncoding { standard: false, names })
}

/// The `ROS` operator (12 30) that marks a CID-keyed font.
const ROS: u16 = 0x0c00 | 30;

fn usize_of(value: f64) -> Option<usize> {
    (value.is_finite() && value >= 0.0 && value < u32::MAX as f64).then_some(value as usize)
}

/// The SID of each glyph, by glyph index (glyph 0 is `.notdef`, SID 0).
fn charset(data: &[u8], offset: f64, glyph_count: usize) -> Option<Vec<u16>> {
    if offset == 0.0 {
        // ISOAdobe: glyph i has SID i.
        return Some((0..glyph_count.min(229)).filter_map(|i| u16::try_from(i).ok()).collect());
    }
    if offset == 1.0 || offset == 2.0 {
        return None; // Expert charsets: not mapped here.
    }
    let mut at = usize_of(offset)?;
    let format = *data.get(at)?;
    at += 1;
    let mut sids = vec![0u16];
    while sids.len() < glyph_count {
        match format {
            0 => {
                sids.push(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]));
                at += 2;
            }
            1 | 2 => {
                let first = u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]);
                let left = if format == 1 {
                    at += 3;
                    u16::from(*data.get(at - 1)?)
                } else {
                    at += 4;
                    u16::from_be_bytes([*data.get(at - 2)?, *data.get(at - 1)?])
                };
                for sid in (first..=first.saturating_add(left)).take(glyph_count - sids.len()) {
                    sids.push(sid);
                }
            }
            _ => return None,
        }
    }
    Some(sids)
}

/// The entries of the INDEX at `at`, and the offset just past it.
fn index(data: &[u8], at: usize) -> Option<(Vec<&[u8]>, usize)> {
    let count = usize::from(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]));
    if count == 0 {
        return Some((Vec::new(), at + 2));
    }
    let off_size = usize::from(*data.get(at + 2)?);
    if !(1..=4).contains(&off_size) {
        return None;
    }
    let offsets_at = at + 3;
    let offset = |i: usize| -> Option<usize> {
        let bytes = data.get(offsets_at + i * off_size..offsets_at + (i + 1) * off_size)?;
        Some(bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
    };
    // Offsets count from 1, relative to the byte before the data.
    let base = (offsets_at + (count + 1) * off_size).checked_sub(1)?;
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let (start, end) = (offset(i)?, offset(i + 1)?);
        entries.push(data.get(base.checked_add(start)?..base.checked_add(end)?)?);
    }
    let end = base.checked_add(offset(count)?)?;
    Some((entries, end))
}

/// A DICT's operators with their operands (escaped operators as `0x0cXX`).
fn dict(data: &[u8]) -> Option<Vec<(u16, Vec<f64>)>> {
    let mut out = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while let Some(&b0) = data.get(i) {
        i += 1;
        match b0 {
            12 => {
                let op = 0x0c00 | u16::from(*data.get(i)?);
                i += 1;
                out.push((op, std::mem::take(&mut operands)));
            }
            0..=21 => out.push((u16::from(b0), std::mem::take(&mut operands))),
            28 => {
                operands.push(f64::from(i16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?])));
                i += 2;
            }
            29 => {
                let bytes = data.get(i..i + 4)?;
                operands.push(f64::from(i32::from_be_bytes([
                    *bytes.first()?,
                    *bytes.get(1)?,
                    *bytes.get(2)?,
                    *bytes.get(3)?,
                ])));
                i += 4;
            }
            30 => {
                // Real: nibbles up to an 0xf; the value is not needed here.
                while let Some(&b) = data.get(i) {
                    i += 1;
                    if b & 0x0f == 0x0f || b >> 4 == 0x0f {
                        break;
                    }
                }
                operands.push(0.0);
            }
            32..=246 => operands.push(f64::from(i32::from(b0) - 139)),
            247..=250 => {
                operands.push(f64::from((i32::from(b0) - 247) * 256 + i32::from(*data.get(i)?) + 108));
                i += 1;
            }
            251..=254 => {
                operands.push(f64::from(-(i32::from(b0) - 251) * 256 - i32::from(*data.get(i)?) - 108));
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The 391 standard strings every CFF font can refer to by SID.
const STANDARD_STRINGS: [&str; 391] = [
    ".notdef",
    "space",
    "exclam",
    "quotedbl",
    "numbersign",
    "dollar",
    "percent",
    "ampersand",
    "quoteright",
    "parenleft",
    "parenright",
    "asterisk",
    "plus",
    "comma",
    "hyphen",
    "period",
    "slash",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "colon",
    "semicolon",
    "less",
    "equal",
    "greater",
    "question",
    "at",
    "A",
    "B",
    "C",
    "D",
    "E",
    "F",
    "G",
    "H",
    "I",
    "J",
    "K",
    "L",
    "M",
    "N",
    "O",
    "P",
    "Q",
    "R",
    "S",
    "T",
    "U",
    "V",
    "W",
    "X",
    "Y",
    "Z",
    "bracketleft",
    "backslash",
    "bracketright",
    "asciicircum",
    "underscore",
    "quoteleft",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "n",
    "o",
    "p",
    "q",
    "r",
    "s",
    "t",
    "u",
    "v",
    "w",
    "x",
    "y",
    "z",
    "braceleft",
    "bar",
    "braceright",
    "asciitilde",
    "exclamdown",
    "cent",
    "sterling",
    "fraction",
    "yen",
    "florin",
    "section",
    "currency",
    "quotesingle",
    "quotedblleft",
    "guillemotleft",
    "guilsinglleft",
    "guilsinglright",
    "fi",
    "fl",
    "endash",
    "dagger",
    "daggerdbl",
    "periodcentered",
    "paragraph",
    "bullet",
    "quotesinglbase",
    "quotedblbase",
    "quotedblright",
    "guillemotright",
    "ellipsis",
    "perthousand",
    "questiondown",
    "grave",
    "acute",
    "circumflex",
    "tilde",
    "macron",
    "breve",
    "dotaccent",
    "dieresis",
    "ring",
    "cedilla",
    "hungarumlaut",
    "ogonek",
    "caron",
    "emdash",
    "AE",
    "ordfeminine",
    "Lslash",
    "Oslash",
    "OE",
    "ordmasculine",
    "ae",
    "dotlessi",
    "lslash",
    "oslash",
    "oe",
    "germandbls",
    "onesuperior",
    "logicalnot",
    "mu",
    "trademark",
    "Eth",
    "onehalf",
    "plusminus",
    "Thorn",
    "onequarter",
    "divide",
    "brokenbar",
    "degree",
    "thorn",
    "threequarters",
    "twosuperior",
    "registered",
    "minus",
    "eth",
    "multiply",
    "threesuperior",
    "copyright",
    "Aacute",
    "Acircumflex",
    "Adieresis",
    "Agrave",
    "Aring",
    "Atilde",
    "Ccedilla",
    "Eacute",
    "Ecircumflex",
    "Edieresis",
    "Egrave",
    "Iacute",
    "Icircumflex",
    "Idieresis",
    "Igrave",
    "Ntilde",
    "Oacute",
    "Ocircumflex",
    "Odieresis",
    "Ograve",
    "Otilde",
    "Scaron",
    "Uacute",
    "Ucircumflex",
    "Udieresis",
    "Ugrave",
    "Yacute",
    "Ydieresis",
    "Zcaron",
    "aacute",
    "acircumflex",
    "adieresis",
    "agrave",
    "aring",
    "atilde",
    "ccedilla",
    "eacute",
    "ecircumflex",
    "edieresis",
    "egrave",
    "iacute",
    "icircumflex",
    "idieresis",
    "igrave",
    "ntilde",
    "oacute",
    "ocircumflex",
    "odieresis",
    "ograve",
    "otilde",
    "scaron",
    "uacute",
    "ucircumflex",
    "udieresis",
    "ugrave",
    "yacute",
    "ydieresis",
    "zcaron",
    "exclamsmall",
    "Hungarumlautsmall",
    "dollaroldstyle",
    "dollarsuperior",
    "ampersandsmall",
    "Acutesmall",
    "parenleftsuperior",
    "parenrightsuperior",
    "twodotenleader",
    "onedotenleader",
    "zerooldstyle",
    "oneoldstyle",
    "twooldstyle",
    "threeoldstyle",
    "fouroldstyle",
    "fiveoldstyle",
    "sixoldstyle",
    "sevenoldstyle",
    "eightoldstyle",
    "nineoldstyle",
    "commasuperior",
    "threequartersemdash",
    "periodsuperior",
    "questionsmall",
    "asuperior",
    "bsuperior",
    "centsuperior",
    "dsuperior",
    "esuperior",
    "isuperior",
    "lsuperior",
    "msuperior",
    "nsuperior",
    "osuperior",
    "rsuperior",
    "ssuperior",
    "tsuperior",
    "ff",
    "ffi",
    "ffl",
    "parenleftinferior",
    "parenrightinferior",
    "Circumflexsmall",
    "hyphensuperior",
    "Gravesmall",
    "Asmall",
    "Bsmall",
    "Csmall",
    "Dsmall",
    "Esmall",
    "Fsmall",
    "Gsmall",
    "Hsmall",
    "Ismall",
    "Jsmall",
    "Ksmall",
    "Lsmall",
    "Msmall",
    "Nsmall",
    "Osmall",
    "Psmall",
    "Qsmall",
    "Rsmall",
    "Ssmall",
    "Tsmall",
    "Usmall",
    "Vsmall",
    "Wsmall",
    "Xsmall",
    "Ysmall",
    "Zsmall",
    "colonmonetary",
    "onefitted",
    "rupiah",
    "Tildesmall",
    "exclamdownsmall",
    "centoldstyle",
    "Lslashsmall",
    "Scaronsmall",
    "Zcaronsmall",
    "Dieresissmall",
    "Brevesmall",
    "Caronsmall",
    "Dotaccentsmall",
    "Macronsmall",
    "figuredash",
    "hypheninferior",
    "Ogoneksmall",
    "Ringsmall",
    "Cedillasmall",
    "questiondownsmall",
    "oneeighth",
    "threeeighths",
    "fiveeighths",
    "seveneighths",
    "onethird",
    "twothirds",
    "zerosuperior",
    "foursuperior",
    "fivesuperior",
    "sixsuperior",
    "sevensuperior",
    "eightsuperior",
    "ninesuperior",
    "zeroinferior",
    "oneinferior",
    "twoinferior",
    "threeinferior",
    "fourinferior",
    "fiveinferior",
    "sixinferior",
    "seveninferior",
    "eightinferior",
    "nineinferior",
    "centinferior",
    "dollarinferior",
    "periodinferior",
    "commainferior",
    "Agravesmall",
    "Aacutesmall",
    "Acircumflexsmall",
    "Atildesmall",
    "Adieresissmall",
    "Aringsmall",
    "AEsmall",
    "Ccedillasmall",
    "Egravesmall",
    "Eacutesmall",
    "Ecircumflexsmall",
    "Edieresissmall",
    "Igravesmall",
    "Iacutesmall",
    "Icircumflexsmall",
    "Idieresissmall",
    "Ethsmall",
    "Ntildesmall",
    "Ogravesmall",
    "Oacutesmall",
    "Ocircumflexsmall",
    "Otildesmall",
    "Odieresissmall",
    "OEsmall",
    "Oslashsmall",
    "Ugravesmall",
    "Uacutesmall",
    "Ucircumflexsmall",
    "Udieresissmall",
    "Yacutesmall",
    "Thornsmall",
    "Ydieresissmall",
    "001.000",
    "001.001",
    "001.002",
    "001.003",
    "Black",
    "Bold",
    "Book",
    "Light",
    "Medium",
    "Regular",
    "Roman",
    "Semibold",
];

#[cfg(test)]
pub(crate) mod tests;
