//! Hand-written scanners for each kind of personal data.
//!
//! Every detector works on the text as a slice of `char`s, so the spans it
//! returns are char offsets (Unicode scalar values) into the original text,
//! never byte offsets.

use std::fmt;
use std::net::Ipv6Addr;

/// The kinds of personal data the step knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    IpAddress,
    DateOfBirth,
    Person,
}

impl Entity {
    pub const ALL: [Entity; 8] = [
        Entity::Email,
        Entity::Phone,
        Entity::CreditCard,
        Entity::Iban,
        Entity::UsSsn,
        Entity::IpAddress,
        Entity::DateOfBirth,
        Entity::Person,
    ];

    /// The name used in config, tags and findings.
    pub fn name(self) -> &'static str {
        match self {
            Entity::Email => "EMAIL",
            Entity::Phone => "PHONE",
            Entity::CreditCard => "CREDIT_CARD",
            Entity::Iban => "IBAN",
            Entity::UsSsn => "US_SSN",
            Entity::IpAddress => "IP_ADDRESS",
            Entity::DateOfBirth => "DATE_OF_BIRTH",
            Entity::Person => "PERSON",
        }
    }

    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Higher is more specific; used to break ties between equally long
    /// overlapping detections (an SSN-shaped number is an SSN, not a phone).
    fn specificity(self) -> u8 {
        match self {
            Entity::Iban => 8,
            Entity::CreditCard => 7,
            Entity::UsSsn => 6,
            Entity::Email => 5,
            Entity::IpAddress => 4,
            Entity::DateOfBirth => 3,
            Entity::Phone => 2,
            Entity::Person => 1,
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One detection: `start..end` are char offsets into the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub entity: Entity,
    pub start: usize,
    pub end: usize,
}

impl Span {
    fn new(entity: Entity, start: usize, end: usize) -> Self {
        Span { entity, start, end }
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Runs the detectors for `entities` over `text` and returns all raw
/// (possibly overlapping) detections.
pub fn detect_all(text: &[char], entities: &[Entity]) -> Vec<Span> {
    let mut out = Vec::new();
    // Found once for the two cue-driven scanners.
    let mut starts = None;
    for &e in entities {
        let found = match e {
            Entity::Email => emails(text),
            Entity::Phone => phones(text),
            Entity::CreditCard => credit_cards(text),
            Entity::Iban => ibans(text),
            Entity::UsSsn => ssns(text),
            Entity::IpAddress => ip_addresses(text),
            Entity::DateOfBirth => dates_of_birth_at(text, starts.get_or_insert_with(|| word_starts(text))),
            Entity::Person => persons_at(text, starts.get_or_insert_with(|| word_starts(text))),
        };
        out.extend(found);
    }
    out
}

/// Keeps the longest detection among overlapping ones (the most specific on
/// a tie in length, then the earliest) and returns them sorted by start.
pub fn resolve_overlaps(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|s| !s.is_empty());
    spans.sort_by(|a, b| {
        b.len().cmp(&a.len()).then(b.entity.specificity().cmp(&a.entity.specificity())).then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Span> = Vec::new();
    for s in spans {
        if kept.iter().all(|k| s.end <= k.start || s.start >= k.end) {
            kept.push(s);
        }
    }
    kept.sort_by_key(|s| s.start);
    kept
}

// ---------------------------------------------------------------- helpers

fn at(text: &[char], i: usize) -> Option<char> {
    text.get(i).copied()
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// True when the char before `i` is not part of a word (or `i` is 0).
fn word_start(text: &[char], i: usize) -> bool {
    i == 0 || !is_word(text[i - 1])
}

/// True when the char at `i` (one past a match) is not part of a word.
fn word_end(text: &[char], i: usize) -> bool {
    at(text, i).is_none_or(|c| !is_word(c))
}

fn digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn digit_value(c: char) -> u32 {
    c.to_digit(10).unwrap_or(0)
}

/// Case-insensitive match of `word` at `i`. The detectors call this at
/// every word start, so ASCII pairs (nearly all of them) are compared
/// without the Unicode lower-casing iterators.
fn matches_ci(text: &[char], i: usize, word: &str) -> bool {
    word.chars().enumerate().all(|(k, w)| match at(text, i + k) {
        Some(c) if c.is_ascii() && w.is_ascii() => c.eq_ignore_ascii_case(&w),
        Some(c) => c.to_lowercase().eq(w.to_lowercase()),
        None => false,
    })
}

/// The bit of an ASCII letter (either case) in a first-letter set, 0 for
/// any other byte.
const fn letter_bit(b: u8) -> u32 {
    let lower = b.to_ascii_lowercase();
    if lower.is_ascii_lowercase() { 1 << (lower - b'a') } else { 0 }
}

/// The set of first letters of `cues` (each must start with a lower-case
/// ASCII letter; checked when the constant is built).
const fn first_letters(cues: &[&str]) -> u32 {
    let mut set = 0;
    let mut k = 0;
    while k < cues.len() {
        let first = cues[k].as_bytes()[0];
        assert!(first.is_ascii_lowercase(), "a cue must start with a lower-case ASCII letter");
        set |= letter_bit(first);
        k += 1;
    }
    set
}

/// Whether a cue whose first letter is in `set` may match at a char `c`:
/// a cheap test that lets the scanners skip [`matches_ci`] for most words.
/// It never rules out a match: an ASCII char must be one of the letters in
/// either case, and a non-ASCII char (which may lower-case to an ASCII
/// letter, as the Kelvin sign does to `k`) is always left to `matches_ci`.
fn may_start(c: char, set: u32) -> bool {
    !c.is_ascii() || letter_bit(c as u8) & set != 0
}

/// [`may_start`] for the single cue `cue`.
fn may_start_cue(c: char, cue: &str) -> bool {
    !c.is_ascii() || cue.as_bytes().first().is_some_and(|w| (c as u8).to_ascii_lowercase() == *w)
}

/// The positions where a word starts: a word char (see [`is_word`]) at
/// the start of the text or after a char that is not one. Every cue starts
/// with a letter (see [`first_letters`]), and the only non-ASCII chars that
/// lower-case to an ASCII letter (the Kelvin sign) are letters too, so the
/// cue-driven scanners need look nowhere else.
fn word_starts(text: &[char]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut after_word = false;
    for (i, &c) in text.iter().enumerate() {
        let word = is_word(c);
        if word && !after_word {
            out.push(i);
        }
        after_word = word;
    }
    out
}

/// Luhn checksum over the digits.
pub fn luhn_valid(digits: &[u32]) -> bool {
    let mut sum = 0;
    for (k, &d) in digits.iter().rev().enumerate() {
        let v = if k % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
        sum += v;
    }
    !digits.is_empty() && sum % 10 == 0
}

// ---------------------------------------------------------------- EMAIL

fn email_local_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '\'')
}

fn email_domain_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-')
}

pub fn emails(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    for (at_pos, &c) in text.iter().enumerate() {
        if c != '@' {
            continue;
        }
        let mut start = at_pos;
        while start > 0 && email_local_char(text[start - 1]) {
            start -= 1;
        }
        while start < at_pos && matches!(text[start], '.' | '\'' | '-') {
            start += 1;
        }
        if start == at_pos || text[at_pos - 1] == '.' {
            continue;
        }
        let mut end = at_pos + 1;
        while end < text.len() && email_domain_char(text[end]) {
            end += 1;
        }
        while end > at_pos + 1 && matches!(text[end - 1], '.' | '-') {
            end -= 1;
        }
        let domain: String = text[at_pos + 1..end].iter().collect();
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-')) {
            continue;
        }
        let tld = labels[labels.len() - 1];
        if tld.chars().count() < 2 || !tld.chars().all(char::is_alphabetic) {
            continue;
        }
        out.push(Span::new(Entity::Email, start, end));
    }
    out
}

// ---------------------------------------------------------------- SSN

/// `AAA-GG-SSSS` with area not 000/666/9xx, group not 00, serial not 0000.
pub fn ssns(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i + 11 <= n {
        let w = &text[i..i + 11];
        // The shape first: it rules out nearly every position at its first char.
        let shape = w.iter().enumerate().all(|(k, &c)| if k == 3 || k == 6 { c == '-' } else { digit(c) });
        if shape
            && (i == 0 || !(is_word(text[i - 1]) || text[i - 1] == '-'))
            && at(text, i + 11).is_none_or(|c| !(is_word(c) || c == '-' && at(text, i + 12).is_some_and(digit)))
        {
            let num = |r: std::ops::Range<usize>| w[r].iter().fold(0u32, |a, &c| a * 10 + digit_value(c));
            let (area, group, serial) = (num(0..3), num(4..6), num(7..11));
            if area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 {
                out.push(Span::new(Entity::UsSsn, i, i + 11));
                i += 11;
                continue;
            }
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------- CREDIT_CARD

/// 13–19 digits, optionally grouped by single spaces or dashes, starting
/// with 2–6 (the major networks) and passing the Luhn check.
pub fn credit_cards(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    // Reused from one candidate to the next.
    let mut digits = Vec::new();
    let mut group_ends = Vec::new(); // (char end, digit count)
    let mut sizes = Vec::new();
    let mut i = 0;
    while i < n {
        if !digit(text[i]) || !word_start(text, i) {
            i += 1;
            continue;
        }
        // Maximal run of digits with single separators; remember where each
        // group ends so shorter prefixes can be tried.
        digits.clear();
        group_ends.clear();
        let mut j = i;
        loop {
            while j < n && digit(text[j]) {
                digits.push(digit_value(text[j]));
                j += 1;
            }
            group_ends.push((j, digits.len()));
            if j + 1 < n && matches!(text[j], ' ' | '-') && digit(text[j + 1]) {
                j += 1;
            } else {
                break;
            }
        }
        let run_end = j;
        let mut found = None;
        if word_end(text, run_end) || group_ends.len() > 1 {
            for (g, &(end, count)) in group_ends.iter().enumerate().rev() {
                if !(13..=19).contains(&count) || !word_end(text, end) {
                    continue;
                }
                // Grouped numbers must be grouped like a card (4-4-4-4,
                // 4-4-4-4-3, Amex/Diners 4-6-5 and 4-6-4, …), which keeps
                // the digits of a grouped IBAN from passing as a card.
                sizes.clear();
                sizes.extend(group_ends[..=g].iter().scan(0, |prev, &(_, c)| Some(c - std::mem::replace(prev, c))));
                let card_shaped = sizes.len() == 1
                    || matches!(sizes.as_slice(), [4, 6, 5] | [4, 6, 4] | [4, 4, 4, 4, 3])
                    || sizes.len() == 4 && sizes[..3] == [4, 4, 4] && (1..=4).contains(&sizes[3]);
                if !card_shaped {
                    continue;
                }
                if (2..=6).contains(&digits[0]) && luhn_valid(&digits[..count]) {
                    found = Some(end);
                    break;
                }
            }
        }
        if let Some(end) = found
            && !follows_iban_prefix(text, i)
        {
            out.push(Span::new(Entity::CreditCard, i, end));
        }
        i = run_end.max(i + 1);
    }
    out
}

// ---------------------------------------------------------------- IBAN

/// IBAN lengths by country (SEPA and other common IBAN countries).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// The IBAN length of the country whose code is the two chars `code`.
fn iban_length(code: &[char]) -> Option<usize> {
    IBAN_LENGTHS.iter().find(|(c, _)| c.chars().eq(code.iter().copied())).map(|&(_, l)| l)
}

/// ISO 13616 mod-97 check over the compact (space-free, upper-case) IBAN.
pub fn iban_checksum_valid(iban: &[char]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in iban[4..].iter().chain(iban[..4].iter()) {
        let v = match c {
            '0'..='9' => digit_value(c),
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

pub fn ibans(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i + 4 <= n {
        let starts = text[i].is_ascii_uppercase()
            && text[i + 1].is_ascii_uppercase()
            && digit(text[i + 2])
            && digit(text[i + 3])
            && word_start(text, i);
        let Some(len) = starts.then(|| iban_length(&text[i..i + 2])).flatten() else {
            i += 1;
            continue;
        };
        let mut compact = Vec::with_capacity(len);
        let mut j = i;
        while compact.len() < len && j < n {
            let c = text[j];
            if c.is_ascii_digit() || c.is_ascii_uppercase() {
                compact.push(c);
                j += 1;
            } else if c == ' ' && j > i && at(text, j + 1).is_some_and(|d| d.is_ascii_alphanumeric()) {
                j += 1;
            } else {
                break;
            }
        }
        if compact.len() == len && word_end(text, j) && iban_checksum_valid(&compact) {
            out.push(Span::new(Entity::Iban, i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------- IP_ADDRESS

/// Parses a dotted IPv4 address at `i`; returns its end.
fn ipv4_at(text: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    for k in 0..4 {
        let s = j;
        while j < text.len() && digit(text[j]) && j - s < 4 {
            j += 1;
        }
        let len = j - s;
        if len == 0 || len > 3 {
            return None;
        }
        let v = text[s..j].iter().fold(0u32, |a, &c| a * 10 + digit_value(c));
        if v > 255 || (len > 1 && text[s] == '0') {
            return None;
        }
        if k < 3 {
            if at(text, j) != Some('.') {
                return None;
            }
            j += 1;
        }
    }
    Some(j)
}

pub fn ip_addresses(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i < n {
        let c = text[i];
        let boundary = || i == 0 || !(is_word(text[i - 1]) || matches!(text[i - 1], '.' | ':'));
        if !(c.is_ascii_hexdigit() || c == ':') || !boundary() {
            i += 1;
            continue;
        }
        // IPv6 first (it may end in a dotted IPv4 part).
        let mut j = i;
        while j < n && (text[j].is_ascii_hexdigit() || matches!(text[j], ':' | '.')) {
            j += 1;
        }
        let mut found = None;
        // An IPv6 address has two colons or more; without them (a word that
        // starts with a hex letter) there is nothing to parse.
        let mut end = if text[i..j].iter().filter(|&&c| c == ':').count() >= 2 { j } else { i };
        while end > i {
            let cand: String = text[i..end].iter().collect();
            let colons = cand.matches(':').count();
            if colons >= 2
                && cand.chars().any(|c| c.is_ascii_hexdigit())
                && word_end(text, end)
                && cand.parse::<Ipv6Addr>().is_ok()
            {
                found = Some(end);
                break;
            }
            // Only trailing punctuation may be dropped (a sentence's period).
            if matches!(text[end - 1], '.' | ':') {
                end -= 1;
            } else {
                break;
            }
        }
        if let Some(end) = found {
            out.push(Span::new(Entity::IpAddress, i, end));
            i = end;
            continue;
        }
        if digit(c)
            && let Some(end) = ipv4_at(text, i)
        {
            let trailing_ok = match at(text, end) {
                None => true,
                Some('.') => !at(text, end + 1).is_some_and(digit),
                Some(d) => !is_word(d),
            };
            if trailing_ok {
                out.push(Span::new(Entity::IpAddress, i, end));
                i = end;
                continue;
            }
        }
        // Skip the rest of this token so no match starts inside it.
        i = j.max(i + 1);
    }
    out
}

// ---------------------------------------------------------------- PHONE

fn phone_sep(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}')
}

/// Phone numbers: 7–15 digits; either a leading `+` (international), or
/// digit groups joined by separators (national formats). Date-, IPv4-,
/// SSN-, year-range and thousands-shaped numbers are rejected.
pub fn phones(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    // Digit-group lengths and the separators before each group, reused
    // from one candidate to the next.
    let mut groups: Vec<usize> = Vec::new();
    let mut seps: Vec<&[char]> = Vec::new();
    let mut i = 0;
    while i < n {
        let c = text[i];
        let starts = match c {
            '+' => at(text, i + 1).is_some_and(|d| digit(d) || d == ' ' && at(text, i + 2).is_some_and(digit)),
            '(' => at(text, i + 1).is_some_and(digit),
            _ => digit(c),
        };
        let prev_ok = || {
            i == 0 || {
                let p = text[i - 1];
                !(is_word(p) || matches!(p, '.' | ',' | '-' | '/' | '#' | '$' | '€' | '£' | '+' | ':'))
            }
        };
        if !starts || !prev_ok() {
            i += 1;
            continue;
        }
        let plus = c == '+';
        let mut j = if plus { i + 1 } else { i };
        groups.clear();
        seps.clear();
        loop {
            // Separator run (up to 3 chars) before the next group.
            let s = j;
            while j < n && phone_sep(text[j]) && j - s < 3 {
                j += 1;
            }
            if !at(text, j).is_some_and(digit) {
                j = s;
                break;
            }
            if s < j || groups.is_empty() {
                seps.push(&text[s..j]);
            }
            let g = j;
            while j < n && digit(text[j]) {
                j += 1;
            }
            groups.push(j - g);
            if groups.iter().sum::<usize>() > 15 {
                break;
            }
        }
        let mut end = j;
        // A closing parenthesis right after the last group belongs to it
        // only if the number opened one.
        let mut start = i;
        let total: usize = groups.iter().sum();
        let run_end = end;
        if word_end(text, end) {
            if c == '(' && !text[i..end].contains(&')') {
                start += 1;
            }
            // The separators between groups (the first, before any digit, is not one).
            let inner = seps.get(1..).unwrap_or_default();
            let sep_chars = || inner.iter().flat_map(|s| s.iter().copied());
            let has_seps = sep_chars().next().is_some();
            let dotted = has_seps && sep_chars().all(|c| c == '.');
            let slash_dash_dot = has_seps && sep_chars().all(|c| matches!(c, '.' | '-' | '/'));
            let date_shape = slash_dash_dot
                && groups.len() == 3
                && matches!(
                    (groups[0], groups[1], groups[2]),
                    (4, 1..=2, 1..=2) | (1..=2, 1..=2, 4) | (1..=2, 1..=2, 2)
                );
            let ssn_shape = sep_chars().eq(['-', '-']) && groups == [3, 2, 4];
            let ipv4_shape = dotted && groups.len() == 4 && groups.iter().all(|&g| g <= 3);
            let thousands = dotted && groups.len() >= 2 && groups[0] <= 3 && groups[1..].iter().all(|&g| g == 3);
            let years = groups.len() == 2
                && groups == [4, 4]
                && [0, 1].iter().all(|&k| {
                    let g: Vec<char> =
                        text[start..end].iter().filter(|c| digit(**c)).skip(k * 4).take(2).copied().collect();
                    g == ['1', '9'] || g == ['2', '0']
                });
            // A timestamp such as `2025-09-05 17:09:33` starts with a date.
            let starts_with_date = groups.len() > 3
                && inner.len() >= 2
                && inner[0] == inner[1]
                && matches!(inner[0], ['-'] | ['.'] | ['/'])
                && matches!((groups[0], groups[1], groups[2]), (4, 1..=2, 1..=2) | (1..=2, 1..=2, 4));
            // Version numbers (`10.0.19045.2965`): dotted with a one-digit group.
            let version = dotted && groups[1..].contains(&1);
            // `6281-948`: a two-group number is a local phone number only as 3-4.
            let reference = !plus && groups.len() == 2 && total == 7 && groups != [3, 4];
            let is_isbn13 = || {
                let digits: Vec<u32> =
                    text[start..end].iter().filter(|c| digit(**c)).map(|&c| digit_value(c)).collect();
                isbn13(&digits)
            };
            let separated = groups.len() >= 2;
            let ok = (7..=15).contains(&total)
                && (plus || separated)
                && !date_shape
                && !starts_with_date
                && !ssn_shape
                && !ipv4_shape
                && !thousands
                && !years
                && !version
                && !reference
                && !is_isbn13()
                && !follows_iban_prefix(text, start)
                && !(c == '(' && start == i && groups[0] > 4);
            if ok {
                end = end.max(start);
                out.push(Span::new(Entity::Phone, start, end));
            }
        }
        i = run_end.max(i + 1);
    }
    out
}

/// An ISBN-13 (`978-3-16-148410-0`): 13 digits starting 978/979 whose
/// weighted (1, 3, 1, ...) digit sum is a multiple of ten.
fn isbn13(digits: &[u32]) -> bool {
    digits.len() == 13
        && digits[0] == 9
        && digits[1] == 7
        && matches!(digits[2], 8 | 9)
        && digits.iter().enumerate().map(|(k, d)| if k % 2 == 0 { *d } else { 3 * d }).sum::<u32>() % 10 == 0
}

/// True when the number at `start` continues space-separated groups of four
/// letters or digits that begin like an IBAN (`BE32 8483 7261 6751` with a
/// wrong check digit, or `GB71 OQRZ 1878 ...`): the digits are an account
/// number's tail, not a phone number.
fn follows_iban_prefix(text: &[char], start: usize) -> bool {
    let mut k = start;
    for _ in 0..8 {
        if k < 5 || text[k - 1] != ' ' {
            return false;
        }
        let group = &text[k - 5..k - 1];
        if !group.iter().all(|c| c.is_ascii_uppercase() || digit(*c)) || !word_start(text, k - 5) {
            return false;
        }
        if group[0].is_ascii_uppercase() && group[1].is_ascii_uppercase() && digit(group[2]) && digit(group[3]) {
            return true;
        }
        k -= 5;
    }
    false
}

// ---------------------------------------------------------------- DATE_OF_BIRTH

const DOB_LABELS: &[&str] =
    &["date of birth", "birth date", "birthdate", "geburtsdatum", "born on", "d.o.b.", "dob", "born", "geb."];
const DOB_LABEL_FIRST: u32 = first_letters(DOB_LABELS);

const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "januar",
    "februar",
    "märz",
    "maerz",
    "mai",
    "juni",
    "juli",
    "oktober",
    "dezember",
    "sept",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "okt",
    "nov",
    "dec",
    "dez",
];

/// Length of a month name at `i` (with an optional trailing `.`), if any.
fn month_at(text: &[char], i: usize) -> Option<usize> {
    MONTHS.iter().find_map(|m| {
        let l = m.chars().count();
        (matches_ci(text, i, m) && word_end(text, i + l)).then(|| if at(text, i + l) == Some('.') { l + 1 } else { l })
    })
}

/// Number of ASCII digits at `i`.
fn digits_at(text: &[char], i: usize) -> usize {
    text[i.min(text.len())..].iter().take_while(|c| digit(**c)).count()
}

/// Parses a date at `i`; returns its end.
fn date_at(text: &[char], i: usize) -> Option<usize> {
    let d1 = digits_at(text, i);
    if d1 > 0 {
        let j = i + d1;
        // Numeric: 1990-05-17, 17.05.1990, 05/17/90.
        if let Some(sep) = at(text, j).filter(|c| matches!(c, '.' | '/' | '-')) {
            let d2 = digits_at(text, j + 1);
            let k = j + 1 + d2;
            if (1..=2).contains(&d2) && at(text, k) == Some(sep) {
                let d3 = digits_at(text, k + 1);
                let end = k + 1 + d3;
                let ok = (d1 == 4 && (1..=2).contains(&d3)) || (d1 <= 2 && (d3 == 4 || d3 == 2));
                if ok && word_end(text, end) {
                    return Some(end);
                }
            }
        }
        // Textual: 17 May 1990, 17. Mai 1990, 3rd of June 1985.
        if d1 <= 2 {
            let mut k = j;
            for suf in ["st", "nd", "rd", "th", "."] {
                if matches_ci(text, k, suf) {
                    k += suf.chars().count();
                    break;
                }
            }
            while at(text, k) == Some(' ') {
                k += 1;
            }
            if matches_ci(text, k, "of ") {
                k += 3;
            }
            if let Some(m) = month_at(text, k) {
                k += m;
                if at(text, k) == Some(',') {
                    k += 1;
                }
                while at(text, k) == Some(' ') {
                    k += 1;
                }
                let y = digits_at(text, k);
                if y == 4 && word_end(text, k + y) {
                    return Some(k + y);
                }
            }
        }
        return None;
    }
    // Month first: May 17, 1990.
    let m = month_at(text, i)?;
    let mut k = i + m;
    while at(text, k) == Some(' ') {
        k += 1;
    }
    let d = digits_at(text, k);
    if !(1..=2).contains(&d) {
        return None;
    }
    k += d;
    for suf in ["st", "nd", "rd", "th"] {
        if matches_ci(text, k, suf) {
            k += 2;
            break;
        }
    }
    if at(text, k) == Some(',') {
        k += 1;
    }
    while at(text, k) == Some(' ') {
        k += 1;
    }
    let y = digits_at(text, k);
    (y == 4 && word_end(text, k + y)).then_some(k + y)
}

pub fn dates_of_birth(text: &[char]) -> Vec<Span> {
    dates_of_birth_at(text, &word_starts(text))
}

/// [`dates_of_birth`] looking for labels only at `starts` (the text's
/// [`word_starts`]).
fn dates_of_birth_at(text: &[char], starts: &[usize]) -> Vec<Span> {
    let mut out = Vec::new();
    // The first position the next label may start at (after the last date).
    let mut next = 0;
    for &i in starts {
        if i < next || !may_start(text[i], DOB_LABEL_FIRST) {
            continue;
        }
        let label = DOB_LABELS.iter().find(|l| {
            let len = l.len(); // the labels are ASCII (see the `cue_lists_are_ascii` test)
            may_start_cue(text[i], l) && matches_ci(text, i, l) && (l.ends_with('.') || word_end(text, i + len))
        });
        let Some(label) = label else {
            continue;
        };
        let mut k = i + label.chars().count();
        // Skip punctuation and a few filler words between label and date.
        for _ in 0..4 {
            while at(text, k).is_some_and(|c| c.is_whitespace() || matches!(c, ':' | '-' | '–' | ',' | '=' | '(' | ')'))
            {
                k += 1;
            }
            let filler = ["is ", "was ", "on ", "am ", "in "].iter().find(|f| matches_ci(text, k, f));
            match filler {
                Some(f) => k += f.len(),
                None => break,
            }
        }
        if let Some(end) = date_at(text, k) {
            out.push(Span::new(Entity::DateOfBirth, k, end));
            next = end;
        }
    }
    out
}

// ---------------------------------------------------------------- PERSON

const TITLES: &[&str] = &["mrs", "mr", "ms", "miss", "mx", "dr", "prof", "herr", "frau", "sir", "madam"];

/// Greetings before a name; all but "dear" need a comma after the name.
const SALUTATIONS: &[&str] = &["dear", "hello", "hi", "hallo"];

/// Labels followed by `:` and a name ("signed" by " by").
const NAME_LABELS: &[&str] = &["name", "contact person", "patient", "customer", "employee", "applicant", "signed"];

/// Letter closings followed by the writer's name.
const CLOSINGS: &[&str] = &["regards,", "sincerely,", "cheers,", "thanks,", "grüße,", "grüßen,"];

/// First letters of every cue [`persons`] looks for at a word start.
const PERSON_CUE_FIRST: u32 = first_letters(TITLES)
    | first_letters(SALUTATIONS)
    | first_letters(NAME_LABELS)
    | first_letters(CLOSINGS)
    | first_letters(&["contact"]);

/// Capitalised words that follow cues but are not names.
const NOT_NAMES: &[&str] = &[
    "Customer",
    "Customers",
    "Sir",
    "Madam",
    "Team",
    "All",
    "Colleague",
    "Colleagues",
    "Friend",
    "Friends",
    "Support",
    "Valued",
    "Client",
    "User",
    "Users",
    "Member",
    "Members",
    "Hiring",
    "Manager",
    "Applicant",
    "Patient",
    "Sales",
    "Billing",
    "Admin",
    "The",
    "Our",
    "Your",
    "At",
    "On",
    "In",
    "For",
    "And",
    "Or",
    "Or",
    "Regarding",
    "Re",
    "Thanks",
    "Thank",
    "Please",
    "Hello",
    "Hi",
    "Dear",
    "Mr",
    "Mrs",
    "Ms",
    "Dr",
    "Prof",
    "Name",
    "Email",
    "Phone",
    "Address",
    "I",
];

const PARTICLES: &[&str] = &["van", "von", "de", "der", "den", "da", "di", "del", "la", "le", "du", "dos", "bin", "al"];

/// A capitalised name token at `i`: returns its end. Accepts `O'Brien`,
/// `Anne-Marie`, and an initial `J.`.
fn name_token_at(text: &[char], i: usize) -> Option<usize> {
    let first = at(text, i)?;
    if !first.is_uppercase() || !word_start(text, i) {
        return None;
    }
    let mut j = i + 1;
    while j < text.len() {
        let c = text[j];
        if c.is_alphabetic() || matches!(c, '\'' | '’' | '-') && at(text, j + 1).is_some_and(char::is_alphabetic) {
            j += 1;
        } else {
            break;
        }
    }
    if at(text, j).is_some_and(|c| digit(c) || c == '_') {
        return None;
    }
    if j == i + 1 {
        // A single letter is only a name as an initial ("J.").
        return (at(text, j) == Some('.')).then_some(j + 1);
    }
    // All-caps words of 2+ letters are more likely acronyms than names,
    // unless short ("LI")? Keep it simple: reject all-caps of 4+ letters.
    if j - i >= 4 && text[i..j].iter().all(|c| !c.is_lowercase()) {
        return None;
    }
    let word: String = text[i..j].iter().collect();
    if NOT_NAMES.contains(&word.as_str()) {
        return None;
    }
    Some(j)
}

/// Up to `max` name tokens (with particles) starting at `i`, separated by
/// single spaces; returns the end of the last token.
fn name_at(text: &[char], i: usize, max: usize) -> Option<usize> {
    let mut end = name_token_at(text, i)?;
    let mut count = 1;
    let mut j = end;
    while count < max && at(text, j) == Some(' ') {
        let k = j + 1;
        if let Some(e) = name_token_at(text, k) {
            end = e;
            j = e;
            count += 1;
            continue;
        }
        // particles ("van der", "de la") followed by a capitalised token
        match particles_then_name(text, k) {
            Some(last_particle_end) => j = last_particle_end,
            None => break,
        }
    }
    Some(end)
}

/// One or more lower-case name particles at `k`, each followed by a space,
/// then a capitalised name token; returns the end of the last particle.
fn particles_then_name(text: &[char], k: usize) -> Option<usize> {
    let mut j = k;
    for _ in 0..3 {
        let p = PARTICLES.iter().find(|p| {
            let l = p.chars().count();
            text.get(j..j + l).is_some_and(|w| w.iter().copied().eq(p.chars())) && at(text, j + l) == Some(' ')
        })?;
        j += p.chars().count();
        if name_token_at(text, j + 1).is_some() {
            return Some(j);
        }
        j += 1;
    }
    None
}

/// Skips spaces (and at most one newline) from `k`.
fn skip_spaces(text: &[char], mut k: usize) -> usize {
    while at(text, k).is_some_and(|c| c == ' ' || c == '\t' || c == '\u{a0}') {
        k += 1;
    }
    k
}

pub fn persons(text: &[char]) -> Vec<Span> {
    persons_at(text, &word_starts(text))
}

/// [`persons`] looking for cues only at `starts` (the text's
/// [`word_starts`]).
fn persons_at(text: &[char], starts: &[usize]) -> Vec<Span> {
    let mut out = Vec::new();
    // The first position the next cue may start at (after the last name).
    let mut next = 0;
    for &i in starts {
        let first = text[i];
        if i < next || !may_start(first, PERSON_CUE_FIRST) || !first.is_alphabetic() {
            continue;
        }
        let mut found: Option<(usize, usize)> = None;
        // Title: "Dr. Jane Smith", "Mrs Smith".
        if first.is_uppercase() {
            for t in TITLES {
                let l = t.len(); // ASCII
                if may_start_cue(first, t) && matches_ci(text, i, t) && word_end(text, i + l) {
                    let mut k = i + l;
                    if at(text, k) == Some('.') {
                        k += 1;
                    }
                    let k2 = skip_spaces(text, k);
                    if k2 > k
                        && let Some(end) = name_at(text, k2, 3)
                    {
                        found = Some((k2, end));
                    }
                    break;
                }
            }
        }
        // Salutation: "Dear Anna Berg", "Hi Tom," (the latter needs a comma).
        if found.is_none() {
            for cue in SALUTATIONS {
                let need_comma = *cue != "dear";
                let l = cue.len();
                if may_start_cue(first, cue)
                    && matches_ci(text, i, cue)
                    && word_end(text, i + l)
                    && at(text, i + l) == Some(' ')
                {
                    let k = skip_spaces(text, i + l);
                    // "Dear Dr. X" is handled by the title cue on the next pass.
                    if let Some(end) = name_at(text, k, 3)
                        && (!need_comma || matches!(at(text, end), Some(',' | '!')))
                    {
                        let word: String = text[k..end].iter().collect::<String>().to_lowercase();
                        if !TITLES.iter().any(|t| word == *t || word.starts_with(&format!("{t}."))) {
                            found = Some((k, end));
                        }
                    }
                    break;
                }
            }
        }
        // "Name: Jane Smith", "Full name: ...", "Contact person: ..."
        if found.is_none() {
            for cue in NAME_LABELS {
                let l = cue.len(); // ASCII
                if may_start_cue(first, cue) && matches_ci(text, i, cue) && word_end(text, i + l) {
                    let mut k = i + l;
                    if *cue == "signed" && matches_ci(text, k, " by") {
                        k += 3;
                    } else if at(text, k) != Some(':') {
                        continue;
                    } else {
                        k += 1;
                    }
                    let k = skip_spaces(text, k);
                    if let Some(end) = name_at(text, k, 4) {
                        found = Some((k, end));
                    }
                    break;
                }
            }
        }
        // "contact Jane Smith at ...", "ask for Jane Smith", "regards,\nJane Smith"
        if found.is_none() {
            if may_start_cue(first, "contact")
                && matches_ci(text, i, "contact")
                && word_end(text, i + 7)
                && at(text, i + 7) == Some(' ')
            {
                let k = i + 8;
                if let Some(end) = name_at(text, k, 3)
                    && (matches_ci(text, end, " at ")
                        || matches_ci(text, end, " on ")
                        || matches_ci(text, end, " via "))
                {
                    found = Some((k, end));
                }
            } else {
                for cue in CLOSINGS {
                    if may_start_cue(first, cue) && matches_ci(text, i, cue) {
                        let mut k = i + cue.chars().count();
                        while at(text, k).is_some_and(char::is_whitespace) {
                            k += 1;
                        }
                        if let Some(end) = name_at(text, k, 3)
                            && at(text, end).is_none_or(|c| c == '\n' || c == '\r' || c == ',' || c == '.')
                        {
                            found = Some((k, end));
                        }
                        break;
                    }
                }
            }
        }
        if let Some((s, e)) = found {
            out.push(Span::new(Entity::Person, s, e));
            next = e;
        }
    }
    out
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
