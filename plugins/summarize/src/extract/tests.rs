use super::*;

fn cfg(json: &str) -> Config {
    match Config::from_json(json) {
        Ok(c) => c,
        Err(e) => panic!("config {json}: {e}"),
    }
}

#[test]
fn config_defaults_and_errors() {
    assert_eq!(cfg("{}"), Config::default());
    assert_eq!(cfg(r#"{"mode":"extractive","max_sentences":2}"#).max_sentences, 2);
    let llm = cfg(r#"{"mode":"llm","prompt":"Sum up: {{text}}","window_chars":5000}"#);
    assert_eq!((llm.mode, llm.llm.window_chars, llm.llm.prompt.as_str()), (Mode::Llm, 5000, "Sum up: {{text}}"));
    assert!(Config::from_json(r#"{"mode":"llm","prompt":"no placeholder"}"#).is_err_and(|e| e.contains("{{text}}")));
    for bad in [r#"{"mode":"magic"}"#, r#"{"max_sentences":0}"#, r#"{"max_chars":-1}"#, r#"{"typo":1}"#, "[]", "{"] {
        assert!(Config::from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn splits_sentences_with_abbreviations_and_decimals() {
    let s = split_sentences(
        "Dr. Smith paid 3.50 dollars, e.g. for coffee. It was fine! Was it? Mr. J. R. Doe agreed.\n\nHeading without stop\nNext line. 東京は大きい。大阪も。",
    );
    assert_eq!(
        s,
        vec![
            "Dr. Smith paid 3.50 dollars, e.g. for coffee.",
            "It was fine!",
            "Was it?",
            "Mr. J. R. Doe agreed.",
            "Heading without stop Next line.",
            "東京は大きい。",
            "大阪も。",
        ]
    );
    assert_eq!(split_sentences("He said \"stop.\" Then he left."), vec!["He said \"stop.\"", "Then he left."]);
    assert!(split_sentences("   \n\n ").is_empty());
}

const TEXT: &str = "The city council approved the new budget for public transport on Monday. \
The budget adds new bus lines and more frequent trains for the city. \
Public transport ridership in the city has grown for five years. \
My neighbour's cat likes to sleep on warm windowsills. \
Council members said the transport budget will reduce traffic in the city centre. \
Pizza toppings remain a matter of personal taste. \
Critics of the budget argued that trains and buses need better maintenance first.";

#[test]
fn picks_central_sentences_in_order() {
    let (summary, n) = summarize(&[TEXT.to_string()], &cfg(r#"{"max_sentences":3}"#));
    assert_eq!(n, 3);
    assert!(!summary.contains("cat") && !summary.contains("Pizza"), "{summary}");
    assert!(summary.contains("budget"), "{summary}");
    // sentences of the source, in source order
    let source = split_sentences(TEXT);
    let picked = split_sentences(&summary);
    let positions: Vec<usize> =
        picked.iter().map(|p| source.iter().position(|s| s == p).unwrap_or(usize::MAX)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn respects_limits() {
    let (s, n) = summarize(&[TEXT.to_string()], &cfg(r#"{"max_sentences":1}"#));
    assert_eq!(n, 1);
    assert_eq!(split_sentences(&s).len(), 1);
    let (s, _) = summarize(&[TEXT.to_string()], &cfg(r#"{"max_chars":160}"#));
    assert!(s.chars().count() <= 160, "{s}");
    assert!(!s.is_empty());
    // nothing fits: the best sentence cut at a word boundary
    let (s, n) = summarize(&[TEXT.to_string()], &cfg(r#"{"max_chars":20}"#));
    assert_eq!(n, 1);
    assert!(s.chars().count() <= 20 && s.ends_with('…'), "{s}");
}

#[test]
fn empty_input_gives_empty_summary() {
    assert_eq!(summarize(&[], &Config::default()), (String::new(), 0));
    assert_eq!(summarize(&["".into(), "  \n ".into()], &Config::default()), (String::new(), 0));
    assert_eq!(
        metadata(0, 2),
        vec![
            ("summary_sentences".to_string(), "0".to_string()),
            ("source_items".to_string(), "2".to_string()),
            ("mode".to_string(), "extractive".to_string())
        ]
    );
}

#[test]
fn unicode_text() {
    let text = "Die Stadt baut neue Straßenbahnlinien für den Verkehr. Die Straßenbahnlinien verbinden den Verkehr der Stadt. \
Ein Café verkauft Kuchen. Ελληνικά κείμενα δουλεύουν επίσης καλά εδώ. Die Stadt plant den Verkehr neu.";
    let (s, n) = summarize(&[text.to_string()], &cfg(r#"{"max_sentences":2}"#));
    assert_eq!(n, 2);
    assert!(s.contains("Straßenbahnlinien"), "{s}");
    assert!(!s.contains("Café"), "{s}");
}

#[test]
fn duplicate_sentences_from_chunk_overlap_are_dropped() {
    let a = "Solar panels were installed on every school roof. The panels cover half of the schools' power needs.";
    let b = "The panels cover half of the schools' power needs. Teachers use the solar data in physics lessons.";
    let (s, n) = summarize(&[a.into(), b.into()], &cfg(r#"{"max_sentences":5}"#));
    assert_eq!(n, 3, "{s}");
    assert_eq!(s.matches("half of the").count(), 1);
}

#[test]
fn deterministic() {
    let items = vec![TEXT.to_string(), "Another item about buses and trains in the city.".to_string()];
    let a = summarize(&items, &Config::default());
    for _ in 0..3 {
        assert_eq!(summarize(&items, &Config::default()), a);
    }
}

#[test]
fn map_reduce_over_many_items() {
    // 40 items of filler and one topic that recurs everywhere.
    let items: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "Item {i} notes that the river flood defences were strengthened this year. \
Unrelated remark number {i} concerns the colour of lamp posts in district {i}. \
The flood defences along the river protect homes in district {i}."
            )
        })
        .collect();
    let c = cfg(r#"{"max_sentences":3,"map_reduce_threshold_chars":2000}"#);
    let (s, n) = summarize(&items, &c);
    assert_eq!(n, 3);
    assert!(s.contains("flood"), "{s}");
    assert!(s.chars().count() <= c.max_chars);
}

#[test]
fn very_long_input_finishes() {
    // ~100k words in one item (a pseudo-random text over a 2 000-word
    // vocabulary): windows of the threshold, then reduce.
    let vocab: Vec<String> = (0..2000).map(|i| format!("w{}x{}", i * 7 % 13, i)).collect();
    let mut state: u64 = 42;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut text = String::new();
    for _ in 0..8_000 {
        text.push_str("Sentence");
        for _ in 0..(8 + next() % 10) {
            text.push(' ');
            text.push_str(&vocab[next() % vocab.len()]);
        }
        text.push_str(". ");
    }
    assert!(text.split_whitespace().count() >= 100_000);
    let started = std::time::Instant::now();
    let (s, n) = summarize(&[text], &Config::default());
    println!("100k words summarised in {:?}", started.elapsed());
    assert!((1..=5).contains(&n));
    assert!(s.chars().count() <= 1200);
}
