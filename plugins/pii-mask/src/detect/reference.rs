//! The detectors as they were before the speed work (main at 10785b7),
//! kept only as the oracle of the equivalence tests in `tests.rs`: the
//! faster scanners must find exactly what these found. Only the scanners
//! that work changed are kept here; the helpers, tables and scanners it
//! left as they were are the module's own (`super::`).

use std::net::Ipv6Addr;

use super::{
    Entity, IBAN_LENGTHS, Span, TITLES, at, date_at, digit, digit_value, emails, follows_iban_prefix,
    iban_checksum_valid, ipv4_at, is_word, isbn13, luhn_valid, matches_ci, name_at, phone_sep, skip_spaces, word_end,
    word_start,
};

/// Runs the detectors for `entities` over `text` and returns all raw
/// (possibly overlapping) detections.
pub fn detect_all(text: &[char], entities: &[Entity]) -> Vec<Span> {
    let mut out = Vec::new();
    for &e in entities {
        let found = match e {
            Entity::Email => emails(text),
            Entity::Phone => phones(text),
            Entity::CreditCard => credit_cards(text),
            Entity::Iban => ibans(text),
            Entity::UsSsn => ssns(text),
            Entity::IpAddress => ip_addresses(text),
            Entity::DateOfBirth => dates_of_birth(text),
            Entity::Person => persons(text),
        };
        out.extend(found);
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
        let shape = w.iter().enumerate().all(|(k, &c)| if k == 3 || k == 6 { c == '-' } else { digit(c) });
        let before_ok = i == 0 || !(is_word(text[i - 1]) || text[i - 1] == '-');
        let after_ok =
            at(text, i + 11).is_none_or(|c| !(is_word(c) || c == '-' && at(text, i + 12).is_some_and(digit)));
        if shape && before_ok && after_ok {
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
    let mut i = 0;
    while i < n {
        if !digit(text[i]) || !word_start(text, i) {
            i += 1;
            continue;
        }
        // Maximal run of digits with single separators; remember where each
        // group ends so shorter prefixes can be tried.
        let mut digits = Vec::new();
        let mut group_ends = Vec::new(); // (char end, digit count)
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
                let sizes: Vec<usize> =
                    group_ends[..=g].iter().scan(0, |prev, &(_, c)| Some(c - std::mem::replace(prev, c))).collect();
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

fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS.iter().find(|(c, _)| *c == country).map(|&(_, l)| l)
}

pub fn ibans(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i + 4 <= n {
        let starts = word_start(text, i)
            && text[i].is_ascii_uppercase()
            && text[i + 1].is_ascii_uppercase()
            && digit(text[i + 2])
            && digit(text[i + 3]);
        let Some(len) = starts.then(|| iban_length(&text[i..i + 2].iter().collect::<String>())).flatten() else {
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

pub fn ip_addresses(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i < n {
        let c = text[i];
        let boundary = i == 0 || !(is_word(text[i - 1]) || matches!(text[i - 1], '.' | ':'));
        if !boundary || !(c.is_ascii_hexdigit() || c == ':') {
            i += 1;
            continue;
        }
        // IPv6 first (it may end in a dotted IPv4 part).
        let mut j = i;
        while j < n && (text[j].is_ascii_hexdigit() || matches!(text[j], ':' | '.')) {
            j += 1;
        }
        let mut found = None;
        let mut end = j;
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

/// Phone numbers: 7–15 digits; either a leading `+` (international), or
/// digit groups joined by separators (national formats). Date-, IPv4-,
/// SSN-, year-range and thousands-shaped numbers are rejected.
pub fn phones(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i < n {
        let c = text[i];
        let starts = match c {
            '+' => at(text, i + 1).is_some_and(|d| digit(d) || d == ' ' && at(text, i + 2).is_some_and(digit)),
            '(' => at(text, i + 1).is_some_and(digit),
            _ => digit(c),
        };
        let prev_ok = i == 0 || {
            let p = text[i - 1];
            !(is_word(p) || matches!(p, '.' | ',' | '-' | '/' | '#' | '$' | '€' | '£' | '+' | ':'))
        };
        if !starts || !prev_ok {
            i += 1;
            continue;
        }
        let plus = c == '+';
        let mut j = if plus { i + 1 } else { i };
        let mut groups: Vec<usize> = Vec::new();
        let mut seps: Vec<String> = Vec::new();
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
                seps.push(text[s..j].iter().collect());
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
            let inner: Vec<&String> = seps.iter().skip(1).collect();
            let sep_chars: String = inner.iter().map(|s| s.as_str()).collect();
            let dotted = !sep_chars.is_empty() && sep_chars.chars().all(|c| c == '.');
            let slash_dash_dot = !sep_chars.is_empty() && sep_chars.chars().all(|c| matches!(c, '.' | '-' | '/'));
            let date_shape = slash_dash_dot
                && groups.len() == 3
                && matches!(
                    (groups[0], groups[1], groups[2]),
                    (4, 1..=2, 1..=2) | (1..=2, 1..=2, 4) | (1..=2, 1..=2, 2)
                );
            let ssn_shape = sep_chars == "--" && groups == [3, 2, 4];
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
                && matches!(inner[0].as_str(), "-" | "." | "/")
                && matches!((groups[0], groups[1], groups[2]), (4, 1..=2, 1..=2) | (1..=2, 1..=2, 4));
            // Version numbers (`10.0.19045.2965`): dotted with a one-digit group.
            let version = dotted && groups[1..].contains(&1);
            // `6281-948`: a two-group number is a local phone number only as 3-4.
            let reference = !plus && groups.len() == 2 && total == 7 && groups != [3, 4];
            let digits: Vec<u32> = text[start..end].iter().filter(|c| digit(**c)).map(|&c| digit_value(c)).collect();
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
                && !isbn13(&digits)
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

// ---------------------------------------------------------------- DATE_OF_BIRTH

const DOB_LABELS: &[&str] =
    &["date of birth", "birth date", "birthdate", "geburtsdatum", "born on", "d.o.b.", "dob", "born", "geb."];

pub fn dates_of_birth(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i < n {
        if !word_start(text, i) {
            i += 1;
            continue;
        }
        let label = DOB_LABELS.iter().find(|l| {
            let len = l.len(); // the labels are ASCII (see the `cue_lists_are_ascii` test)
            matches_ci(text, i, l) && (l.ends_with('.') || word_end(text, i + len))
        });
        let Some(label) = label else {
            i += 1;
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
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

pub fn persons(text: &[char]) -> Vec<Span> {
    let mut out = Vec::new();
    let n = text.len();
    let mut i = 0;
    while i < n {
        if !word_start(text, i) || !text[i].is_alphabetic() {
            i += 1;
            continue;
        }
        let mut found: Option<(usize, usize)> = None;
        // Title: "Dr. Jane Smith", "Mrs Smith".
        if text[i].is_uppercase() {
            for t in TITLES {
                let l = t.len(); // ASCII
                if matches_ci(text, i, t) && word_end(text, i + l) {
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
            for (cue, need_comma) in [("dear", false), ("hello", true), ("hi", true), ("hallo", true)] {
                let l = cue.len();
                if matches_ci(text, i, cue) && word_end(text, i + l) && at(text, i + l) == Some(' ') {
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
            for cue in ["name", "contact person", "patient", "customer", "employee", "applicant", "signed"] {
                let l = cue.len(); // ASCII
                if matches_ci(text, i, cue) && word_end(text, i + l) {
                    let mut k = i + l;
                    if cue == "signed" && matches_ci(text, k, " by") {
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
            if matches_ci(text, i, "contact") && word_end(text, i + 7) && at(text, i + 7) == Some(' ') {
                let k = i + 8;
                if let Some(end) = name_at(text, k, 3)
                    && (matches_ci(text, end, " at ")
                        || matches_ci(text, end, " on ")
                        || matches_ci(text, end, " via "))
                {
                    found = Some((k, end));
                }
            } else {
                for cue in ["regards,", "sincerely,", "cheers,", "thanks,", "grüße,", "grüßen,"] {
                    if matches_ci(text, i, cue) {
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
        match found {
            Some((s, e)) => {
                out.push(Span::new(Entity::Person, s, e));
                i = e;
            }
            None => i += 1,
        }
    }
    out
}
