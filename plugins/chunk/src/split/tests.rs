#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn cfg(size: usize, overlap: usize) -> Config {
    Config { size, overlap, unit: Unit::Chars }
}

/// Checks the invariants every split must satisfy and returns the chunks.
fn check<'a>(text: &'a str, c: &Config) -> Vec<Chunk<'a>> {
    let chunks = split_text(text, c);
    let chars: Vec<char> = text.chars().collect();
    let mut previous: Option<&Chunk> = None;
    for chunk in &chunks {
        let n = chunk.char_end - chunk.char_start;
        assert!(n >= 1 && n <= c.size, "chunk of {n} chars, size {}", c.size);
        assert_eq!(chunk.text.chars().count(), n);
        let expected: String = chars[chunk.char_start..chunk.char_end].iter().collect();
        assert_eq!(chunk.text, expected, "offsets do not match the text");
        if let Some(prev) = previous {
            assert!(chunk.char_start > prev.char_start, "no progress");
            if chunk.char_start > prev.char_end {
                // Only whitespace-only chunks are dropped.
                let gap: String = chars[prev.char_end..chunk.char_start].iter().collect();
                assert!(gap.trim().is_empty(), "gap between chunks: {gap:?}");
            }
        }
        previous = Some(chunk);
    }
    if !text.trim().is_empty() {
        // Every non-whitespace char is covered by some chunk.
        let mut covered = vec![false; chars.len()];
        for chunk in &chunks {
            covered[chunk.char_start..chunk.char_end].fill(true);
        }
        for (i, ch) in chars.iter().enumerate() {
            assert!(covered[i] || ch.is_whitespace(), "char {i} {ch:?} not covered");
        }
    }
    chunks
}

#[test]
fn short_text_is_one_chunk() {
    let chunks = check("Hello world.", &Config::default());
    assert_eq!(chunks, vec![Chunk { text: "Hello world.", char_start: 0, char_end: 12 }]);
}

#[test]
fn empty_and_blank_text_yield_nothing() {
    assert!(split_text("", &Config::default()).is_empty());
    assert!(split_text("  \n\n \t ", &cfg(3, 1)).is_empty());
}

#[test]
fn sizes_respected_and_overlap_exact() {
    let text = "word ".repeat(1000);
    for (size, overlap) in [(50, 10), (100, 0), (7, 3), (1, 0), (2, 1), (1000, 999)] {
        let c = cfg(size, overlap);
        let chunks = check(&text, &c);
        if size >= 7 {
            assert!(chunks.len() >= text.chars().count() / size);
            for pair in chunks.windows(2) {
                assert_eq!(pair[0].char_end - pair[1].char_start, overlap, "size {size}");
            }
        }
    }
}

#[test]
fn prefers_paragraph_then_sentence_then_whitespace() {
    let para = "First paragraph is here. It has two sentences.\n\nSecond paragraph goes on and on and on.";
    let chunks = check(para, &cfg(60, 0));
    assert_eq!(chunks[0].text, "First paragraph is here. It has two sentences.\n\n");
    assert!(chunks[1].text.starts_with("Second"));

    let sentences = "One sentence here. Another sentence that runs long enough.";
    let chunks = check(sentences, &cfg(30, 0));
    assert_eq!(chunks[0].text, "One sentence here. ");

    let words = "alpha beta gamma delta epsilon zeta eta theta";
    let chunks = check(words, &cfg(20, 0));
    assert_eq!(chunks[0].text, "alpha beta gamma ");
    assert!(chunks.iter().all(|c| !c.text.starts_with(' ')));
}

#[test]
fn hard_cut_without_whitespace() {
    let text = "x".repeat(25);
    let chunks = check(&text, &cfg(10, 2));
    let spans: Vec<(usize, usize)> = chunks.iter().map(|c| (c.char_start, c.char_end)).collect();
    assert_eq!(spans, vec![(0, 10), (8, 18), (16, 25)]);
}

#[test]
fn multibyte_text_never_splits_a_char() {
    let text = "日本語のテキスト。".repeat(50) + &"😀👍🏽é".repeat(40) + "Ünïcödé ṫëẋṫ. ".repeat(30).as_str();
    for (size, overlap) in [(7, 2), (13, 5), (100, 10), (3, 0)] {
        let chunks = check(&text, &cfg(size, overlap));
        assert!(chunks.len() > 1);
    }
    // CJK sentence ends count as sentence breaks when followed by whitespace.
    let cjk = "これは文です。 これも文です。 最後の文です。";
    let chunks = check(cjk, &cfg(12, 0));
    assert_eq!(chunks[0].text, "これは文です。 ");
}

#[test]
fn pathological_inputs_terminate() {
    let newlines = "\n".repeat(10_000) + "x";
    check(&newlines, &cfg(10, 9));
    let spaces = " ".repeat(10_000) + "end";
    check(&spaces, &cfg(100, 50));
    let dots = ". ".repeat(5_000);
    check(&dots, &cfg(33, 32));
}

#[test]
fn metadata_kept_and_indices_added() {
    let items = vec![
        (
            "a ".repeat(30),
            vec![("page".to_string(), "1".to_string()), ("chunk_index".to_string(), "stale".to_string())],
        ),
        ("bbb".to_string(), vec![("page".to_string(), "2".to_string())]),
        (String::new(), vec![("page".to_string(), "3".to_string())]),
    ];
    let out = chunk_items(&items, &cfg(20, 4));
    let get = |meta: &[(String, String)], key: &str| -> String {
        let values: Vec<&String> = meta.iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect();
        assert_eq!(values.len(), 1, "key {key} present {} times", values.len());
        values[0].clone()
    };
    assert!(out.len() >= 4);
    for (i, (text, meta)) in out.iter().enumerate() {
        assert_eq!(get(meta, "chunk_index"), i.to_string());
        let start: usize = get(meta, "char_start").parse().unwrap();
        let end: usize = get(meta, "char_end").parse().unwrap();
        assert_eq!(text.chars().count(), end - start);
    }
    let last = &out[out.len() - 1];
    assert_eq!(last.0, "bbb");
    assert_eq!(get(&last.1, "page"), "2");
    assert_eq!(get(&last.1, "chunk_of_item"), "0");
    assert_eq!(get(&last.1, "char_start"), "0");
    assert_eq!(get(&last.1, "char_end"), "3");
    assert_eq!(get(&out[1].1, "chunk_of_item"), "1");
    assert_eq!(get(&out[0].1, "page"), "1");
    assert_eq!(get(&out[0].1, "chunk_of_item"), "0");
}

#[test]
fn config_parsing() {
    assert_eq!(Config::from_json("{}").unwrap(), Config::default());
    assert_eq!(Config::from_json("").unwrap(), Config::default());
    assert_eq!(Config::from_json(r#"{"size": 200}"#).unwrap(), cfg(200, 100));
    assert_eq!(Config::from_json(r#"{"size": 50, "overlap": 0}"#).unwrap(), cfg(50, 0));
    let err = Config::from_json(r#"{"size": 100, "overlap": 100}"#).unwrap_err();
    assert!(err.contains("overlap"), "{err}");
    // Without an explicit overlap, a small size gets a tenth of it.
    assert_eq!(Config::from_json(r#"{"size": 100}"#).unwrap(), cfg(100, 10));
    assert_eq!(Config::from_json(r#"{"size": 101}"#).unwrap(), cfg(101, 100));
    assert_eq!(Config::from_json(r#"{"size": 5}"#).unwrap(), cfg(5, 0));
    assert!(Config::from_json(r#"{"size": 100, "overlap": 150}"#).is_err());
    assert!(Config::from_json(r#"{"size": 0, "overlap": 0}"#).is_err());
    let err = Config::from_json(r#"{"sise": 10}"#).unwrap_err();
    assert!(err.contains("sise"), "{err}");
    assert!(Config::from_json(r#"{"size": -1}"#).is_err());
    assert!(Config::from_json("[10, 1]").is_err());
    assert!(Config::from_json("42").is_err());
}

#[test]
fn sizes_in_approximate_tokens_count_four_characters_each() {
    let config = Config::from_json(r#"{"size": 10, "overlap": 2, "unit": "tokens"}"#).unwrap_or_default();
    assert_eq!(config.unit, Unit::Tokens);
    let text = "word ".repeat(40);
    let chunks = split_text(&text, &config);
    assert!(chunks.iter().all(|c| c.char_end - c.char_start <= 40), "{chunks:?}");
    assert!(chunks.len() >= 5);
    let items = chunk_items(&[(text.clone(), vec![])], &config);
    let tokens = items[0].1.iter().find(|(k, _)| k == "approx_tokens").map(|(_, v)| v.clone());
    assert_eq!(tokens.as_deref(), Some("10"));
    assert!(Config::from_json(r#"{"unit": "bytes"}"#).is_err());
}

/// The first implementation (a char table of the whole text), kept as the
/// reference the byte-level `split_text` must agree with exactly.
fn reference_split<'a>(text: &'a str, cfg: &Config) -> Vec<Chunk<'a>> {
    let size = cfg.unit.chars(cfg.size).max(1);
    let overlap = cfg.unit.chars(cfg.overlap).min(size - 1);
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).collect();
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < n {
        let end = if n - start <= size {
            n
        } else {
            let earliest = start + (size / 2).max(overlap + 1).min(size);
            reference_break_point(&chars, earliest, start + size)
        };
        let piece = &text[bounds[start]..bounds[end]];
        if !piece.trim().is_empty() {
            chunks.push(Chunk { text: piece, char_start: start, char_end: end });
        }
        if end == n {
            break;
        }
        start = end - overlap;
    }
    chunks
}

#[test]
fn single_pass_split_matches_the_reference() {
    // Deterministic pseudo-random texts mixing words, sentence ends,
    // paragraph breaks, blank runs and multi-byte chars.
    let pieces = [
        "word",
        "Wört",
        "日本語",
        "é",
        ".",
        "!",
        " ",
        " ",
        "\n",
        "\n\n",
        "\n \t\n",
        "    ",
        "…",
        "a.b",
        "🙂",
        "。",
        "\u{3000}",
        "\u{a0}",
        "\n\u{3000}\n",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for case in 0..120 {
        let len = (next() % 1200) as usize;
        let text: String = (0..len).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect();
        for (size, overlap) in [(1, 0), (2, 1), (7, 3), (10, 0), (50, 10), (64, 63), (100, 20), (333, 100), (1000, 100)]
        {
            let c = cfg(size, overlap);
            assert_eq!(
                split_text(&text, &c),
                reference_split(&text, &c),
                "case {case}, size {size}, overlap {overlap}"
            );
        }
    }
}

/// The reference's break point over a char table: the best end
/// (exclusive char index) in `earliest..=latest`.
fn reference_break_point(chars: &[char], earliest: usize, latest: usize) -> usize {
    let mut sentence = None;
    let mut space = None;
    for end in (earliest..=latest).rev() {
        let before = chars[end - 1];
        if !before.is_whitespace() {
            continue;
        }
        let paragraph = chars[..end - 1].iter().rev().take(64).take_while(|c| c.is_whitespace()).any(|c| *c == '\n');
        if before == '\n' && paragraph {
            return end;
        }
        if sentence.is_none() && end >= 2 && is_sentence_end(chars[end - 2]) {
            sentence = Some(end);
        }
        if space.is_none() {
            space = Some(end);
        }
    }
    if sentence.is_none() && is_sentence_end(chars[latest - 1]) && chars.get(latest).is_none_or(|c| c.is_whitespace()) {
        sentence = Some(latest);
    }
    sentence.or(space).unwrap_or(latest)
}

#[test]
fn block_scans_match_char_by_char_scans() {
    // Texts with ASCII, two- to four-byte chars, and bytes one bit away
    // from a newline or a continuation byte (vertical tab, U+008A, U+00CA),
    // at every alignment.
    let pieces = ["a", "\n", "\u{b}", "\u{8a}", "\u{ca}", "é", "日", "🙂", "\n\n", "xyz"];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for case in 0..300 {
        let len = (next() % 60) as usize;
        let text: String = (0..len).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect();
        let bytes = text.as_bytes();
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).collect();
        for from in 0..=bytes.len() {
            for to in from..=bytes.len() {
                let block = &bytes[from..to];
                let starts = block.iter().filter(|&&b| !is_continuation(b)).count();
                assert_eq!(count_char_starts(block), starts, "case {case}, {from}..{to}");
                assert_eq!(last_newline(block), block.iter().rposition(|&b| b == b'\n'), "case {case}, {from}..{to}");
            }
        }
        let chars = bounds.len() - 1;
        for (index, &from) in bounds.iter().enumerate() {
            for n in 0..=chars + 2 {
                let ahead = (chars - index).min(n);
                assert_eq!(advance(bytes, from, n), (bounds[index + ahead], ahead), "case {case}, from {from}, n {n}");
                assert_eq!(retreat(bytes, from, n), bounds[index.saturating_sub(n)], "case {case}, from {from}, n {n}");
            }
        }
    }
}
