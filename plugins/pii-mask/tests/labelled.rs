//! Precision and recall of the detectors on the small hand-labelled corpus
//! in `tests/labelled.jsonl` (made by `tests/make_labelled.py`). A detection
//! counts only if its type and char offsets match a labelled span exactly.

use std::collections::BTreeMap;

use pii_mask::{Config, mask_text};

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    spans: Vec<Gold>,
}

#[derive(serde::Deserialize, PartialEq, Eq, Clone)]
struct Gold {
    #[serde(rename = "type")]
    kind: String,
    start: usize,
    end: usize,
}

#[test]
fn labelled_corpus_precision_and_recall() {
    let data = include_str!("labelled.jsonl");
    let cfg = match Config::from_json("{}") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    // per type: (true positives, false positives, false negatives)
    let mut stats: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut cases = 0;
    for (line_no, line) in data.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Case = match serde_json::from_str(line) {
            Ok(c) => c,
            Err(e) => panic!("line {}: {e}", line_no + 1),
        };
        cases += 1;
        let found: Vec<Gold> = mask_text(&case.text, &cfg)
            .spans
            .iter()
            .map(|s| Gold { kind: s.entity.name().to_string(), start: s.start, end: s.end })
            .collect();
        for f in &found {
            let e = stats.entry(f.kind.clone()).or_default();
            if case.spans.contains(f) {
                e.0 += 1;
            } else {
                e.1 += 1;
                println!("false positive {} {}..{} in {:?}", f.kind, f.start, f.end, case.text);
            }
        }
        for g in &case.spans {
            if !found.contains(g) {
                stats.entry(g.kind.clone()).or_default().2 += 1;
                println!("missed {} {}..{} in {:?}", g.kind, g.start, g.end, case.text);
            }
        }
    }
    let (mut tp, mut fp, mut fne) = (0, 0, 0);
    for (kind, (t, p, n)) in &stats {
        println!("{kind:14} tp={t:2} fp={p} fn={n}");
        tp += t;
        fp += p;
        fne += n;
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fne).max(1) as f64;
    println!("{cases} sentences, {tp} true positives: precision {precision:.3}, recall {recall:.3}");
    assert!(cases >= 40);
    assert!(precision >= 0.9, "precision {precision}");
    assert!(recall >= 0.9, "recall {recall}");
}
