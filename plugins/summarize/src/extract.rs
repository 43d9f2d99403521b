//! Offline extractive summarisation: sentence splitting, LexRank (PageRank
//! over TF-IDF cosine similarity between sentences), selection under
//! sentence and character limits, and map-reduce for long input.
//!
//! Everything is deterministic: no hashing with random seeds (`BTreeMap`),
//! ties broken by position.

use std::collections::BTreeMap;

use weft_plugin_kit::config::{ConfigError, ConfigFields};

/// The step's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Most sentences in the summary (default 5, at least 1).
    pub max_sentences: usize,
    /// Most characters in the summary (default 1200, at least 1).
    pub max_chars: usize,
    /// Above this many input characters, summarise in a map phase (per item,
    /// or per window of an oversized item) and then reduce (default 50 000).
    pub map_reduce_threshold_chars: usize,
    /// `extractive` (offline, the default) or `llm`.
    pub mode: Mode,
    /// Settings of the `llm` mode.
    pub llm: crate::llm::Settings,
}

/// How the summary is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Sentence ranking inside the sandbox.
    #[default]
    Extractive,
    /// The host's `llm` capability.
    Llm,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_sentences: 5,
            max_chars: 1200,
            map_reduce_threshold_chars: 50_000,
            mode: Mode::Extractive,
            llm: crate::llm::Settings::default(),
        }
    }
}

impl Config {
    /// Parses the JSON config; the error is a message for a fatal step error.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let mut fields = ConfigFields::parse("summarize", json)?;
        let mode: Option<String> = fields.optional("mode")?;
        let max_sentences = fields.optional("max_sentences")?;
        let max_chars = fields.optional("max_chars")?;
        let map_reduce_threshold_chars = fields.optional("map_reduce_threshold_chars")?;
        let prompt = fields.optional("prompt")?;
        let reduce_prompt = fields.optional("reduce_prompt")?;
        let model = fields.optional("model")?;
        let max_tokens = fields.optional("max_tokens")?;
        let window_chars = fields.optional("window_chars")?;
        fields.finish()?;
        let invalid = |detail: String| -> String { ConfigError::new("summarize", detail).into() };
        let mode = match mode.as_deref() {
            None | Some("extractive") => Mode::Extractive,
            Some("llm") => Mode::Llm,
            Some(other) => {
                return Err(invalid(format!("unknown mode {other:?} (expected \"extractive\" or \"llm\")")));
            }
        };
        let d = Config::default();
        let llm = crate::llm::Settings {
            prompt: prompt.unwrap_or(d.llm.prompt),
            reduce_prompt: reduce_prompt.unwrap_or(d.llm.reduce_prompt),
            model,
            max_tokens: max_tokens.unwrap_or(d.llm.max_tokens),
            window_chars: window_chars.unwrap_or(d.llm.window_chars),
        };
        llm.check().map_err(invalid)?;
        let cfg = Config {
            max_sentences: max_sentences.unwrap_or(d.max_sentences),
            max_chars: max_chars.unwrap_or(d.max_chars),
            map_reduce_threshold_chars: map_reduce_threshold_chars.unwrap_or(d.map_reduce_threshold_chars),
            mode,
            llm,
        };
        for (name, v) in [
            ("max_sentences", cfg.max_sentences),
            ("max_chars", cfg.max_chars),
            ("map_reduce_threshold_chars", cfg.map_reduce_threshold_chars),
        ] {
            if v == 0 {
                return Err(invalid(format!("{name} must be at least 1")));
            }
        }
        Ok(cfg)
    }
}

// ------------------------------------------------------------ sentences

/// Words before a `.` that do not end a sentence (lower-case, no dot).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "eg", "ie", "cf", "al", "inc",
    "ltd", "co", "corp", "no", "nos", "nr", "fig", "figs", "approx", "dept", "est", "ca", "vol", "pp", "p", "ch",
    "sec", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "a.m",
    "p.m", "z.b", "bzw", "usw", "ggf", "vgl", "s", "gen", "gov", "rev", "hon", "capt", "col", "lt",
];

/// Splits text into trimmed sentences. A sentence ends at `.`, `!`, `?`
/// or `…` (plus closing quotes/brackets) followed by whitespace, unless the
/// `.` ends a known abbreviation or an initial, or the next word starts in
/// lower case; CJK full stops end a sentence without whitespace; a blank
/// line always ends one.
pub fn split_sentences(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |out: &mut Vec<String>, s: &[char]| {
        let t: String = s.iter().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ");
        if !t.is_empty() {
            out.push(t);
        }
    };
    while i < n {
        let c = chars[i];
        if matches!(c, '。' | '！' | '？') {
            push(&mut out, &chars[start..=i]);
            start = i + 1;
            i += 1;
            continue;
        }
        if c == '\n' {
            let mut j = i + 1;
            while j < n && chars[j] != '\n' && chars[j].is_whitespace() {
                j += 1;
            }
            if j < n && chars[j] == '\n' {
                push(&mut out, &chars[start..i]);
                start = j + 1;
                i = j + 1;
                continue;
            }
        }
        if matches!(c, '.' | '!' | '?' | '…') {
            let mut j = i + 1;
            while j < n && matches!(chars[j], '.' | '!' | '?' | '"' | '\'' | '”' | '’' | ')' | ']' | '»') {
                j += 1;
            }
            if j < n && !chars[j].is_whitespace() {
                i = j;
                continue;
            }
            let mut k = j;
            while k < n && chars[k].is_whitespace() {
                k += 1;
            }
            let mut boundary = true;
            if c == '.' && j == i + 1 {
                let mut w = i;
                while w > start && !chars[w - 1].is_whitespace() && !matches!(chars[w - 1], '(' | '"' | '“') {
                    w -= 1;
                }
                let word: String = chars[w..i].iter().collect::<String>().to_lowercase();
                let initial = i - w == 1 && chars[w].is_uppercase();
                if ABBREVIATIONS.contains(&word.as_str()) || initial {
                    boundary = false;
                }
            }
            if k < n && chars[k].is_lowercase() {
                boundary = false;
            }
            if boundary {
                push(&mut out, &chars[start..j]);
                start = j;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    push(&mut out, &chars[start..]);
    out
}

// ------------------------------------------------------------ ranking

const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "may",
    "me",
    "might",
    "more",
    "most",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "shall",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "one",
    "two",
    "many",
    "much",
    "every",
    "s",
    "t",
    "der",
    "die",
    "das",
    "und",
    "ist",
    "ein",
    "eine",
    "nicht",
    "mit",
    "von",
    "zu",
    "den",
    "im",
    "auf",
    "für",
    "sich",
    "es",
    "dem",
    "des",
];

/// Lower-cased content words of a sentence, stopwords removed, with a
/// light plural/possessive stemming so "reports" meets "report".
pub fn content_words(sentence: &str) -> Vec<String> {
    sentence
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| {
            let n = w.chars().count();
            if n > 4 && w.ends_with("ies") {
                format!("{}y", &w[..w.len() - 3])
            } else if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
                w[..w.len() - 1].to_string()
            } else {
                w
            }
        })
        .collect()
}

/// LexRank scores (one per sentence) from TF-IDF cosine similarities.
pub fn lexrank(sentences: &[String]) -> Vec<f64> {
    let n = sentences.len();
    if n == 0 {
        return Vec::new();
    }
    let words: Vec<Vec<String>> = sentences.iter().map(|s| content_words(s)).collect();
    // Term ids in first-seen order, document frequencies.
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    let mut df: Vec<usize> = Vec::new();
    let mut docs: Vec<BTreeMap<usize, f64>> = Vec::with_capacity(n);
    for ws in &words {
        let mut tf: BTreeMap<usize, f64> = BTreeMap::new();
        for w in ws {
            let next = ids.len();
            let id = *ids.entry(w.as_str()).or_insert(next);
            if id == df.len() {
                df.push(0);
            }
            *tf.entry(id).or_default() += 1.0;
        }
        for id in tf.keys() {
            df[*id] += 1;
        }
        docs.push(tf);
    }
    // TF-IDF vectors, normalised to unit length.
    let vecs: Vec<Vec<(usize, f64)>> = docs
        .into_iter()
        .map(|tf| {
            let v: Vec<(usize, f64)> = tf
                .into_iter()
                .map(|(id, f)| (id, f * ((1.0 + n as f64) / (1.0 + df[id] as f64)).ln().max(0.0) + f * 1e-3))
                .collect();
            let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
            if norm > 0.0 { v.into_iter().map(|(id, x)| (id, x / norm)).collect() } else { v }
        })
        .collect();
    // Sparse similarity through an inverted index.
    let mut postings: Vec<Vec<(usize, f64)>> = vec![Vec::new(); df.len()];
    for (s, v) in vecs.iter().enumerate() {
        for &(id, x) in v {
            postings[id].push((s, x));
        }
    }
    // One row at a time through a dense accumulator: memory stays
    // proportional to the non-zero similarities.
    let mut acc = vec![0.0f64; n];
    let mut touched: Vec<usize> = Vec::new();
    let mut rows: Vec<Vec<(usize, f64)>> = Vec::with_capacity(n);
    for (sa, v) in vecs.iter().enumerate() {
        for &(id, xa) in v {
            for &(sb, xb) in &postings[id] {
                if sb != sa {
                    if acc[sb] == 0.0 {
                        touched.push(sb);
                    }
                    acc[sb] += xa * xb;
                }
            }
        }
        touched.sort_unstable();
        let row: Vec<(usize, f64)> = touched.iter().map(|&sb| (sb, std::mem::take(&mut acc[sb]))).collect();
        touched.clear();
        rows.push(row);
    }
    let out_weight: Vec<f64> = rows.iter().map(|r| r.iter().map(|(_, w)| w).sum()).collect();
    // PageRank, damping 0.85; dangling rows spread evenly.
    let d = 0.85;
    let mut score = vec![1.0 / n as f64; n];
    for _ in 0..100 {
        let dangling: f64 = (0..n).filter(|&i| out_weight[i] <= 0.0).map(|i| score[i]).sum();
        let base = (1.0 - d) / n as f64 + d * dangling / n as f64;
        let mut next = vec![base; n];
        for (i, row) in rows.iter().enumerate() {
            if out_weight[i] > 0.0 {
                let share = d * score[i] / out_weight[i];
                for &(j, w) in row {
                    next[j] += share * w;
                }
            }
        }
        let delta: f64 = next.iter().zip(&score).map(|(a, b)| (a - b).abs()).sum();
        score = next;
        if delta < 1e-9 {
            break;
        }
    }
    score
}

/// Cosine of two sentences' content-word sets (for redundancy checks).
fn overlap(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let common = a.iter().filter(|w| b.contains(w)).count() as f64;
    common / ((a.len() as f64).sqrt() * (b.len() as f64).sqrt())
}

// ------------------------------------------------------------ selection

/// A source sentence and its position (item, sentence within item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    pub pos: (usize, usize),
    pub text: String,
}

/// Picks the best sentences under the limits and returns them in source
/// order. Sentences of fewer than 4 words are candidates only if nothing
/// longer exists; near-duplicates of picked sentences (chunk overlap) are
/// skipped.
pub fn select(sentences: &[Sentence], max_sentences: usize, max_chars: usize) -> Vec<Sentence> {
    // Exact duplicates (overlapping chunks) collapse onto the first one.
    let mut seen: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let uniq: Vec<&Sentence> = sentences.iter().filter(|s| seen.insert(s.text.as_str())).collect();
    if uniq.is_empty() {
        return Vec::new();
    }
    let texts: Vec<String> = uniq.iter().map(|s| s.text.clone()).collect();
    let scores = lexrank(&texts);
    let words: Vec<Vec<String>> = texts.iter().map(|t| content_words(t)).collect();
    let long_enough = |i: usize| texts[i].split_whitespace().count() >= 4;
    let any_long = (0..texts.len()).any(long_enough);
    let mut order: Vec<usize> = (0..texts.len()).filter(|&i| !any_long || long_enough(i)).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut picked: Vec<usize> = Vec::new();
    let mut chars = 0;
    for &i in &order {
        if picked.len() >= max_sentences {
            break;
        }
        let len = texts[i].chars().count() + usize::from(!picked.is_empty());
        if chars + len > max_chars {
            continue;
        }
        if picked.iter().any(|&p| overlap(&words[p], &words[i]) > 0.8) {
            continue;
        }
        chars += len;
        picked.push(i);
    }
    if picked.is_empty() {
        // Nothing fits: the best sentence, cut at a word boundary.
        let Some(&best) = order.first() else { return Vec::new() };
        let mut text = String::new();
        for w in texts[best].split_whitespace() {
            let extra = w.chars().count() + usize::from(!text.is_empty()) + 1;
            if text.chars().count() + extra > max_chars {
                break;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(w);
        }
        text.push('…');
        let text: String = text.chars().take(max_chars).collect();
        return vec![Sentence { pos: uniq[best].pos, text }];
    }
    let mut result: Vec<Sentence> = picked.into_iter().map(|i| uniq[i].clone()).collect();
    result.sort_by_key(|s| s.pos);
    result
}

/// The summary of `items` (each item's text) and how many sentences it has.
pub fn summarize(items: &[String], cfg: &Config) -> (String, usize) {
    let total: usize = items.iter().map(|t| t.chars().count()).sum();
    let mut sentences: Vec<Sentence> = Vec::new();
    let mut groups: Vec<Vec<Sentence>> = Vec::new();
    for (item, text) in items.iter().enumerate() {
        let mut window: Vec<Sentence> = Vec::new();
        let mut window_chars = 0;
        for (k, s) in split_sentences(text).into_iter().enumerate() {
            let len = s.chars().count();
            if window_chars + len > cfg.map_reduce_threshold_chars && !window.is_empty() {
                groups.push(std::mem::take(&mut window));
                window_chars = 0;
            }
            window_chars += len;
            let s = Sentence { pos: (item, k), text: s };
            sentences.push(s.clone());
            window.push(s);
        }
        if !window.is_empty() {
            groups.push(window);
        }
    }
    let picked = if total > cfg.map_reduce_threshold_chars {
        reduce(groups, cfg)
    } else {
        select(&sentences, cfg.max_sentences, cfg.max_chars)
    };
    let text = picked.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
    (text, picked.len())
}

/// Map-reduce: summarise each group (an item, or a window of a long item),
/// then regroup the partial summaries and repeat until one group is left.
fn reduce(mut groups: Vec<Vec<Sentence>>, cfg: &Config) -> Vec<Sentence> {
    loop {
        let partial: Vec<Sentence> =
            groups.iter().flat_map(|g| select(g, cfg.max_sentences, cfg.max_chars.saturating_mul(2))).collect();
        let partial_chars: usize = partial.iter().map(|s| s.text.chars().count()).sum();
        let before: usize = groups.iter().map(Vec::len).sum();
        if groups.len() <= 1 || partial_chars <= cfg.map_reduce_threshold_chars || partial.len() >= before {
            return select(&partial, cfg.max_sentences, cfg.max_chars);
        }
        // Regroup the partial summaries into windows of the threshold size.
        let mut next: Vec<Vec<Sentence>> = Vec::new();
        let mut window: Vec<Sentence> = Vec::new();
        let mut chars = 0;
        for s in partial {
            let len = s.text.chars().count();
            if chars + len > cfg.map_reduce_threshold_chars && !window.is_empty() {
                next.push(std::mem::take(&mut window));
                chars = 0;
            }
            chars += len;
            window.push(s);
        }
        if !window.is_empty() {
            next.push(window);
        }
        groups = next;
    }
}

/// Metadata of the summary item.
pub fn metadata(sentences: usize, source_items: usize) -> Vec<(String, String)> {
    vec![
        ("summary_sentences".into(), sentences.to_string()),
        ("source_items".into(), source_items.to_string()),
        ("mode".into(), "extractive".into()),
    ]
}

#[cfg(test)]
mod tests;
