use super::*;
use serde_json::json;

fn cfg(json: &str) -> Config {
    match Config::from_json(json) {
        Ok(c) => c,
        Err(e) => panic!("config {json}: {e}"),
    }
}

const SAMPLE: &str = "Mail jane@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111, \
IBAN DE89 3704 0044 0532 0130 00, SSN 536-22-1234, IP 10.0.0.1, DOB: 01.02.1980, Dr. Jane Smith.";

#[test]
fn config_defaults_and_errors() {
    let c = cfg("{}");
    assert_eq!(c.style, Style::Tag);
    assert_eq!(c.entities.len(), 8);
    assert!(c.findings_item);
    assert_eq!(cfg("").style, Style::Tag);
    assert_eq!(cfg("null").style, Style::Tag);
    for bad in [
        r#"{"bogus":1}"#,
        r#"{"style":"shout"}"#,
        r#"{"entities":["EMAIL","SHOE_SIZE"]}"#,
        r#"{"style":"pseudonym"}"#,
        r#"{"style":"pseudonym","pseudonym_key":""}"#,
        "[1]",
        "{",
    ] {
        assert!(Config::from_json(bad).is_err(), "{bad}");
    }
    let e = Config::from_json(r#"{"style":"pseudonym"}"#).err().unwrap_or_default();
    assert!(e.contains("pseudonym_key"), "{e}");
}

#[test]
fn tag_style() {
    let m = mask_text(SAMPLE, &cfg("{}"));
    assert_eq!(
        m.text,
        "Mail [EMAIL] or call [PHONE]; card [CREDIT_CARD], IBAN [IBAN], SSN [US_SSN], IP [IP_ADDRESS], \
DOB: [DATE_OF_BIRTH], Dr. [PERSON]."
    );
    assert_eq!(m.spans.len(), 8);
}

#[test]
fn partial_style() {
    let m = mask_text(SAMPLE, &cfg(r#"{"style":"partial"}"#));
    assert_eq!(
        m.text,
        "Mail j***@example.com or call +** ** **** 0958; card **** **** **** 1111, \
IBAN **** **** **** **** **30 00, SSN ***-**-1234, IP [IP_ADDRESS], DOB: [DATE_OF_BIRTH], Dr. [PERSON]."
    );
}

#[test]
fn pseudonym_style_is_stable_and_keyed() {
    let c = cfg(r#"{"style":"pseudonym","pseudonym_key":"k1"}"#);
    let a = mask_text("a jane@example.com b JANE@example.com c bob@example.com", &c).text;
    let parts: Vec<&str> = a.split_whitespace().collect();
    assert_eq!(parts[1], parts[3], "same value (case-insensitive e-mail) gives the same token");
    assert_ne!(parts[1], parts[5]);
    assert!(parts[1].starts_with("[EMAIL_") && parts[1].len() == "[EMAIL_12345678]".len(), "{}", parts[1]);
    // formatting differences of a card do not matter
    let b = mask_text("4111 1111 1111 1111 / 4111-1111-1111-1111", &c).text;
    let (x, y) = b.split_once(" / ").unwrap_or_default();
    assert_eq!(x, y);
    // another key gives another token
    let other = mask_text("jane@example.com", &cfg(r#"{"style":"pseudonym","pseudonym_key":"k2"}"#)).text;
    assert_ne!(other, parts[1]);
    // deterministic across calls
    assert_eq!(mask_text("jane@example.com", &c).text, parts[1]);
}

#[test]
fn entity_filter() {
    let m = mask_text(SAMPLE, &cfg(r#"{"entities":["EMAIL","US_SSN"]}"#));
    assert!(m.text.contains("[EMAIL]") && m.text.contains("[US_SSN]"));
    assert!(m.text.contains("4111 1111 1111 1111") && m.text.contains("Jane Smith"));
}

#[test]
fn allow_list() {
    let c = cfg(r#"{"allow":["support@weft.example","Jane Smith"]}"#);
    let m = mask_text("Write to support@weft.example or Support@Weft.example, not bob@x.org; Dr. Jane Smith", &c);
    assert_eq!(m.text, "Write to support@weft.example or Support@Weft.example, not [EMAIL]; Dr. Jane Smith");
}

#[test]
fn items_metadata_and_report() {
    let c = cfg("{}");
    let items = vec![
        ("Grüße von jörg@example.de und ann@example.org".to_string(), vec![("page".to_string(), "1".to_string())]),
        ("nothing here".to_string(), vec![("pii_findings".to_string(), "stale".to_string())]),
        ("ruf an: 555-123-4567".to_string(), vec![]),
    ];
    let out = mask_items(items, &c, 0);
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].0, "Grüße von [EMAIL] und [EMAIL]");
    assert_eq!(out[0].1, vec![("page".into(), "1".into()), ("pii_findings".into(), r#"{"EMAIL":2}"#.into())]);
    assert_eq!(out[1].1, vec![("pii_findings".into(), "{}".into())]);
    assert_eq!(out[2].1, vec![("pii_findings".into(), r#"{"PHONE":1}"#.into())]);
    let (report, meta) = &out[3];
    assert_eq!(meta, &vec![("kind".to_string(), "pii-findings".to_string())]);
    let v: serde_json::Value = serde_json::from_str(report).unwrap_or_default();
    assert_eq!(v["total"], 3);
    assert_eq!(v["by_type"], json!({"EMAIL": 2, "PHONE": 1}));
    // char offsets into the original text, multi-byte characters included
    assert_eq!(v["findings"][0], json!({"type": "EMAIL", "item": 0, "start": 10, "end": 25}));
    assert_eq!(v["findings"][2], json!({"type": "PHONE", "item": 2, "start": 8, "end": 20}));
    let original: Vec<char> = "Grüße von jörg@example.de und ann@example.org".chars().collect();
    assert_eq!(original[10..25].iter().collect::<String>(), "jörg@example.de");
    // the map index shifts item numbers; the report can be turned off
    let out = mask_items(vec![("x@y.org".into(), vec![])], &cfg(r#"{"findings_item":false}"#), 7);
    assert_eq!(out.len(), 1);
    let out = mask_items(vec![("x@y.org".into(), vec![])], &c, 7);
    assert!(out[1].0.contains(r#""item":7"#));
}

#[test]
fn report_never_contains_originals() {
    let secrets = ["jane@example.com", "7946", "4111", "DE89", "536-22-1234", "10.0.0.1", "1980", "Smith"];
    for style in [r#"{}"#, r#"{"style":"partial"}"#, r#"{"style":"pseudonym","pseudonym_key":"s3cret"}"#] {
        let out = mask_items(vec![(SAMPLE.to_string(), vec![])], &cfg(style), 0);
        let report = &out[1].0;
        let meta = &out[0].1[0].1;
        for s in secrets {
            assert!(!report.contains(s), "{style}: report leaks {s}: {report}");
            assert!(!meta.contains(s), "{style}: metadata leaks {s}");
        }
        assert!(!report.contains("s3cret"));
        if style == "{}" {
            for s in secrets {
                assert!(!out[0].0.contains(s), "masked text leaks {s}: {}", out[0].0);
            }
        }
    }
}

#[test]
fn a_secret_keyed_pseudonym_needs_the_derived_key_and_is_job_scoped() {
    let mut c = cfg(r#"{"style":"pseudonym","pseudonym_secret":"PII_KEY"}"#);
    assert_eq!(c.pseudonym_secret.as_deref(), Some("PII_KEY"));
    c.use_derived_key(b"derived-for-job-1");
    let a = mask_text("mail jane@example.com or jane@example.com", &c).text;
    let tokens: Vec<&str> = a.split_whitespace().filter(|w| w.starts_with("[EMAIL_")).collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1], "the same value maps to the same token within a job");
    c.use_derived_key(b"derived-for-job-2");
    let b = mask_text("mail jane@example.com", &c).text;
    assert!(!a.contains(b.split_whitespace().nth(1).unwrap_or("?")), "another job's key gives another token");
    assert_ne!(derivation_input("job-1"), derivation_input("job-2"));
    for bad in [
        r#"{"style":"pseudonym"}"#,
        r#"{"style":"pseudonym","pseudonym_secret":""}"#,
        r#"{"style":"pseudonym","pseudonym_secret":"A","pseudonym_key":"k"}"#,
    ] {
        assert!(Config::from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn findings_report_reads_as_the_json_value_it_was_built_as() {
    // The report used to be a `serde_json::Value`; the derived encoding
    // must give the same bytes, here for every record of the corpus.
    let texts: Vec<String> = include_str!("../../eval/corpus.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => v["text"].as_str().unwrap_or_default().to_string(),
            Err(e) => panic!("corpus line: {e}"),
        })
        .collect();
    let config = cfg("{}");
    let out = mask_items(texts.iter().map(|t| (t.clone(), vec![])).collect(), &config, 3);
    let mut findings = Vec::new();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, text) in texts.iter().enumerate() {
        for s in mask_text(text, &config).spans {
            *by_type.entry(s.entity.name()).or_default() += 1;
            findings.push(json!({"type": s.entity.name(), "item": 3 + k, "start": s.start, "end": s.end}));
        }
    }
    assert!(findings.len() > 2000);
    let expected = json!({"total": findings.len(), "by_type": by_type, "findings": findings}).to_string();
    assert_eq!(out.last().map(|(report, _)| report.as_str()), Some(expected.as_str()));
}
