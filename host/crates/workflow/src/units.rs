//! Durations (`500ms`, `30s`, `5m`, `1h`) and sizes (`64MiB`, `1GB`, `1024`) as written in
//! workflow files.
//!
//! Only whole numbers are accepted: `1.5s` is rejected with a suggestion (`1500ms`), so that a
//! value always means exactly what it says.

use std::time::Duration;

/// Duration units, in milliseconds, largest first (used for formatting).
const DURATION_UNITS: &[(&str, u64)] = &[("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Binary size units, largest first.
const BINARY_SIZE_UNITS: &[(&str, u64)] = &[("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];

/// Decimal size units, largest first.
const DECIMAL_SIZE_UNITS: &[(&str, u64)] =
    &[("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000)];

const DURATION_FORMAT: &str = "expected a whole number followed by ms, s, m or h, e.g. `30s`";
const SIZE_FORMAT: &str =
    "expected a whole number of bytes, optionally followed by B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, e.g. `64MiB`";

/// Splits `text` into its leading number (digits and at most one `.`) and the unit after it,
/// with blanks around and between them ignored.
fn split_number(text: &str) -> (&str, &str) {
    let text = text.trim();
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == '_'))
        .map_or(text.len(), |(i, _)| i);
    let (number, unit) = text.split_at(end);
    (number, unit.trim())
}

/// Parses a whole number made of ASCII digits (underscores allowed as separators).
fn parse_whole(number: &str) -> Option<u64> {
    let digits: String = number.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Converts a decimal number `int.frac` times `factor` into a whole number, if it is one.
fn decimal_times(number: &str, factor: u64) -> Option<u64> {
    let (int, frac) = number.split_once('.')?;
    let frac = frac.trim_end_matches('0');
    let scale = 10u64.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_value: u64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    let scaled = int.checked_mul(scale)?.checked_add(frac_value)?;
    let total = scaled.checked_mul(factor)?;
    (total % scale == 0).then_some(total / scale)
}

/// Parses a duration such as `500ms`, `30s`, `5m` or `1h` (a whole number and a unit).
///
/// # Errors
///
/// A lowercase message saying what is wrong and what format is expected, e.g. for a bare number
/// (`30` -> suggests `30s`) or a fractional one (`1.5s` -> suggests `1500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty duration; {DURATION_FORMAT}"));
    }
    if trimmed.starts_with('-') {
        return Err(format!("`{trimmed}` is negative; {DURATION_FORMAT}"));
    }
    let (number, unit) = split_number(trimmed);
    if number.is_empty() {
        return Err(format!("`{trimmed}` is not a duration; {DURATION_FORMAT}"));
    }
    if unit.is_empty() {
        return Err(format!("`{trimmed}` has no unit; add one, e.g. `{number}s` or `{number}ms`"));
    }
    let Some(&(_, factor)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!("unknown duration unit `{unit}` in `{trimmed}`; {DURATION_FORMAT}"));
    };
    if number.contains('.') {
        return Err(match decimal_times(number, factor) {
            Some(ms) => format!(
                "`{trimmed}` is not a whole number; write `{}` instead",
                format_duration(Duration::from_millis(ms))
            ),
            None => format!("`{trimmed}` is not a whole number; {DURATION_FORMAT}"),
        });
    }
    let Some(value) = parse_whole(number) else {
        return Err(format!("`{trimmed}` is not a duration; {DURATION_FORMAT}"));
    };
    value.checked_mul(factor).map(Duration::from_millis).ok_or_else(|| format!("`{trimmed}` is too large"))
}

/// Parses a size such as `64MiB`, `1GB` or `1024` (a bare number is bytes).
///
/// Binary units (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024; decimal units (`KB`, `MB`,
/// `GB`, `TB`) are powers of 1000; `B` is bytes. Units are case-sensitive.
///
/// # Errors
///
/// A lowercase message saying what is wrong and what format is expected.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty size; {SIZE_FORMAT}"));
    }
    if trimmed.starts_with('-') {
        return Err(format!("`{trimmed}` is negative; {SIZE_FORMAT}"));
    }
    let (number, unit) = split_number(trimmed);
    if number.is_empty() {
        return Err(format!("`{trimmed}` is not a size; {SIZE_FORMAT}"));
    }
    let factor = if unit.is_empty() || unit == "B" {
        1
    } else if let Some(&(_, factor)) =
        BINARY_SIZE_UNITS.iter().chain(DECIMAL_SIZE_UNITS).find(|(name, _)| *name == unit)
    {
        factor
    } else {
        let hint = BINARY_SIZE_UNITS
            .iter()
            .chain(DECIMAL_SIZE_UNITS)
            .map(|(name, _)| *name)
            .chain(["B"])
            .find(|name| name.eq_ignore_ascii_case(unit))
            .or(match unit {
                "K" | "k" | "Ki" | "ki" => Some("KiB"),
                "M" | "m" | "Mi" | "mi" => Some("MiB"),
                "G" | "g" | "Gi" | "gi" => Some("GiB"),
                "T" | "t" | "Ti" | "ti" => Some("TiB"),
                _ => None,
            });
        return Err(match hint {
            Some(name) => {
                format!("unknown size unit `{unit}` in `{trimmed}`; did you mean `{number}{name}`?")
            }
            None => format!("unknown size unit `{unit}` in `{trimmed}`; {SIZE_FORMAT}"),
        });
    };
    if number.contains('.') {
        return Err(match decimal_times(number, factor) {
            Some(bytes) => format!("`{trimmed}` is not a whole number; write `{}` instead", format_size(bytes)),
            None => format!("`{trimmed}` is not a whole number; {SIZE_FORMAT}"),
        });
    }
    let Some(value) = parse_whole(number) else {
        return Err(format!("`{trimmed}` is not a size; {SIZE_FORMAT}"));
    };
    value.checked_mul(factor).ok_or_else(|| format!("`{trimmed}` is too large"))
}

/// Formats a duration in the largest unit that represents it exactly (`90s` -> `90s`,
/// `120s` -> `2m`); durations that are not whole milliseconds use Rust's debug format.
pub fn format_duration(duration: Duration) -> String {
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{duration:?}");
    }
    let Ok(ms) = u64::try_from(duration.as_millis()) else {
        return format!("{duration:?}");
    };
    if ms == 0 {
        return "0s".to_owned();
    }
    DURATION_UNITS
        .iter()
        .find(|(_, factor)| ms % factor == 0)
        .map_or_else(|| format!("{ms}ms"), |(unit, factor)| format!("{}{unit}", ms / factor))
}

/// Formats a size with the unit that gives the smallest whole number, preferring binary units
/// on ties (`4294967296` -> `4GiB`, `8000000000` -> `8GB`, `1000001` -> `1000001B`).
pub fn format_size(bytes: u64) -> String {
    let mut best = (bytes, "B");
    for &(unit, factor) in BINARY_SIZE_UNITS.iter().chain(DECIMAL_SIZE_UNITS) {
        if bytes.is_multiple_of(factor) && bytes / factor < best.0 {
            best = (bytes / factor, unit);
        }
    }
    format!("{}{}", best.0, best.1)
}

/// A size for people to read in messages, rounded to one decimal: `256 MiB`, `1.5 GiB`,
/// `512 B`. [`format_size`] is the exact form a workflow file accepts back.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const UNITS: [(&str, u64); 3] = [("GiB", KIB * KIB * KIB), ("MiB", KIB * KIB), ("KiB", KIB)];
    for (unit, size) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} B")
}

/// Parses a whole number written as a string (`5000000000` or `5_000_000_000`).
pub(crate) fn parse_count(text: &str) -> Option<u64> {
    parse_whole(text.trim())
}
