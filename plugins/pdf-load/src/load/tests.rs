#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

use super::*;

/// The shared PDF corpus: `$WEFT_PDF_CORPUS`, else `../shared/corpus/pdf`
/// beside the repository, else this machine's `/work/shared/corpus/pdf` (for
/// a clone made elsewhere, such as a temporary directory).
fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_PDF_CORPUS") {
        return PathBuf::from(dir);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pdf");
    if beside.is_dir() { beside } else { PathBuf::from("/work/shared/corpus/pdf") }
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {} unreadable (set WEFT_PDF_CORPUS): {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf")))
        .collect();
    files.sort();
    files
}

fn meta(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn get<'a>(page: &'a Page, key: &str) -> Option<&'a str> {
    page.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A small valid PDF with one line of Courier text per page.
fn make_pdf(page_texts: &[&str], content_filter: Option<&dyn Fn(&mut Stream)>) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Courier",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::new();
    for text in page_texts {
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
                Operation::new("Tj", vec![Object::string_literal(*text)]),
                Operation::new("ET", vec![]),
            ],
        };
        let mut stream = Stream::new(dictionary! {}, content.encode().unwrap());
        if let Some(f) = content_filter {
            f(&mut stream);
        }
        let content_id = doc.add_object(stream);
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(Object::from(page_id));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    let info_id = doc.add_object(dictionary! {
        "Title" => Object::string_literal("Test Title"),
        "Producer" => Object::string_literal("weft tests"),
    });
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn corpus_dir_resolves() {
    let files = corpus_files();
    assert!(files.len() >= 30, "expected the 31-file corpus, found {}", files.len());
}

/// Every corpus file yields text on at least one page, or a typed error.
#[test]
fn corpus_every_file_yields_text_or_typed_error() {
    let cfg = Config::default();
    let mut report = Vec::new();
    for path in corpus_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let input_meta = meta(&[("filename", &name)]);
        let started = std::time::Instant::now();
        let outcome = load_pdf(&bytes, &input_meta, &cfg);
        let elapsed = started.elapsed();
        match &outcome {
            Ok(pages) => {
                assert!(!pages.is_empty(), "{name}: Ok with no pages");
                let with_text = pages.iter().filter(|p| !p.text.trim().is_empty()).count();
                assert!(with_text > 0, "{name}: Ok but no page has text");
                let chars: usize = pages.iter().map(|p| p.text.chars().count()).sum();
                let warnings = pages.iter().filter(|p| p.warning().is_some()).count();
                for (i, page) in pages.iter().enumerate() {
                    assert_eq!(get(page, "page"), Some((i + 1).to_string().as_str()));
                    assert_eq!(get(page, "page_count"), Some(pages.len().to_string().as_str()));
                    assert_eq!(get(page, "filename"), Some(name.as_str()));
                }
                let first = pages[0].text.trim().chars().take(40).collect::<String>();
                report.push(format!(
                    "OK   {name}: {} pages, {with_text} with text, {chars} chars, {warnings} warnings, \
                     producer={:?} [{elapsed:?}] first={first:?}",
                    pages.len(),
                    get(&pages[0], "producer"),
                ));
                for p in pages.iter().filter_map(Page::warning).take(2) {
                    report.push(format!("       warning: {p}"));
                }
            }
            Err(e) => report.push(format!("ERR  {name}: {e:?} -> {e} [{elapsed:?}]")),
        }
        if name == "libreoffice-writer-password.pdf" {
            assert_eq!(outcome.as_ref().err(), Some(&LoadError::Encrypted), "{name}");
        }
    }
    eprintln!("\n{}\n", report.join("\n"));
}

#[test]
fn encrypted_file_message() {
    let bytes = std::fs::read(corpus_dir().join("libreoffice-writer-password.pdf")).unwrap();
    let err = load_pdf(&bytes, &[], &Config::default()).unwrap_err();
    assert_eq!(err.to_string(), "the PDF is encrypted (password-protected); decrypt it before submitting");
}

#[test]
fn multi_page_document_and_info_metadata() {
    let bytes = std::fs::read(corpus_dir().join("pdflatex-4-pages.pdf")).unwrap();
    let input = meta(&[("source", "s3://bucket/x.pdf"), ("page", "stale")]);
    let pages = load_pdf(&bytes, &input, &Config::default()).unwrap();
    assert_eq!(pages.len(), 4);
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(get(page, "source"), Some("s3://bucket/x.pdf"));
        assert_eq!(get(page, "page"), Some((i + 1).to_string().as_str()));
        assert_eq!(get(page, "page_count"), Some("4"));
        assert_eq!(get(page, "producer"), Some("pdfTeX-1.40.23"));
        let keys: Vec<&str> = page.metadata.iter().map(|(k, _)| k.as_str()).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(keys.len(), unique.len(), "duplicate metadata keys: {keys:?}");
    }
}

#[test]
fn generated_pdf_round_trip() {
    let bytes = make_pdf(&["Hello page one", "Hello page two"], None);
    let pages = load_pdf(&bytes, &[], &Config::default()).unwrap();
    assert_eq!(pages.len(), 2);
    assert!(pages[0].text.contains("Hello page one"), "{:?}", pages[0].text);
    assert!(pages[1].text.contains("Hello page two"), "{:?}", pages[1].text);
    assert_eq!(get(&pages[0], "title"), Some("Test Title"));
    assert_eq!(get(&pages[0], "producer"), Some("weft tests"));
    assert_eq!(get(&pages[0], "author"), None);
}

#[test]
fn page_cap() {
    let bytes = make_pdf(&["a", "b", "c"], None);
    let cfg = Config { max_pages: 2, ..Config::default() };
    let err = load_pdf(&bytes, &[], &cfg).unwrap_err();
    assert_eq!(err, LoadError::TooManyPages { count: 3, limit: 2 });
    let message = err.to_string();
    assert!(message.contains('3') && message.contains('2'), "{message}");
    let cfg = Config { max_pages: 3, ..Config::default() };
    assert_eq!(load_pdf(&bytes, &[], &cfg).unwrap().len(), 3);
}

#[test]
fn output_cap() {
    let bytes = make_pdf(&["0123456789", "0123456789"], None);
    let cfg = Config { max_output_bytes: 15, ..Config::default() };
    let err = load_pdf(&bytes, &[], &cfg).unwrap_err();
    assert!(matches!(err, LoadError::OutputTooLarge { limit: 15, page: 2, page_count: 2 }), "{err:?}");
}

#[test]
fn decompression_limit_on_page_content_is_a_page_warning() {
    // A page content stream that inflates to ~1 MiB, loaded with a 64 KiB limit.
    let big = "x".repeat(1024 * 1024);
    let bytes = make_pdf(
        &[&big, "small page"],
        Some(&|s: &mut Stream| {
            s.compress().unwrap();
        }),
    );
    assert!(bytes.len() < 64 * 1024, "bomb should be small: {}", bytes.len());
    let cfg = Config { max_decompressed_bytes: 64 * 1024, ..Config::default() };
    let pages = load_pdf(&bytes, &[], &cfg).unwrap();
    assert_eq!(pages.len(), 2);
    assert!(pages[0].text.is_empty());
    let warning = pages[0].warning().expect("warning on the bomb page");
    assert!(warning.contains("max_decompressed_bytes"), "{warning}");
    assert!(pages[1].text.contains("small page"));
    assert!(pages[1].warning().is_none());
}

#[test]
fn decompression_limit_while_loading_is_fatal() {
    // An object stream (decoded eagerly at load time) that inflates past the limit.
    let mut pdf = Vec::new();
    pdf.extend_from_slice(b"%PDF-1.5\n");
    let padding = vec![b' '; 512 * 1024];
    let mut stream =
        Stream::new(dictionary! { "Type" => "XRef", "Size" => 1, "W" => vec![1.into(), 1.into(), 1.into()] }, padding);
    stream.compress().unwrap();
    let offset = pdf.len();
    pdf.extend_from_slice(b"1 0 obj\n");
    pdf.extend_from_slice(
        format!(
            "<< /Type /XRef /Size 1 /W [1 1 1] /Root 1 0 R /Filter /FlateDecode /Length {} >>\nstream\n",
            stream.content.len()
        )
        .as_bytes(),
    );
    pdf.extend_from_slice(&stream.content);
    pdf.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{offset}\n%%EOF").as_bytes());
    let cfg = Config { max_decompressed_bytes: 16 * 1024, ..Config::default() };
    let err = load_pdf(&pdf, &[], &cfg).unwrap_err();
    eprintln!("load-time bomb: {err:?}");
    assert!(
        matches!(err, LoadError::DecompressionLimit { .. } | LoadError::Damaged(_) | LoadError::NoPages),
        "{err:?}"
    );
}

#[test]
fn empty_input() {
    assert_eq!(load_pdf(&[], &[], &Config::default()), Err(LoadError::Empty));
}

#[test]
fn random_bytes_are_not_a_pdf() {
    for seed in 1..20 {
        let bytes = random_bytes(seed, 4096);
        let err = load_pdf(&bytes, &[], &Config::default()).unwrap_err();
        assert_eq!(err, LoadError::NotPdf);
        assert_eq!(err.to_string(), "not a PDF: missing %PDF header");
    }
    let text = b"Hello, this is plain text, not a PDF at all.\n".repeat(10);
    assert_eq!(load_pdf(&text, &[], &Config::default()), Err(LoadError::NotPdf));
}

#[test]
fn random_bytes_after_a_header_are_damaged() {
    for seed in 1..20 {
        let mut bytes = b"%PDF-1.7\n".to_vec();
        bytes.extend(random_bytes(seed, 4096));
        let err = load_pdf(&bytes, &[], &Config::default()).unwrap_err();
        assert!(matches!(err, LoadError::Damaged(_) | LoadError::NoPages), "seed {seed}: {err:?}");
        assert!(err.to_string().starts_with("the PDF is damaged: "), "{err}");
    }
}

#[test]
fn header_only() {
    let err = load_pdf(b"%PDF-1.4\n", &[], &Config::default()).unwrap_err();
    assert!(matches!(err, LoadError::Damaged(_) | LoadError::NoPages), "{err:?}");
}

#[test]
fn truncated_files() {
    let bytes = std::fs::read(corpus_dir().join("pdflatex-4-pages.pdf")).unwrap();
    for percent in [1, 5, 10, 25, 50, 75, 90, 99] {
        let cut = &bytes[..bytes.len() * percent / 100];
        match load_pdf(cut, &[], &Config::default()) {
            // Lenient loading may recover the pages that made it into the prefix.
            Ok(pages) => {
                assert!(!pages.is_empty());
                assert!(pages.iter().any(|p| !p.text.trim().is_empty()), "{percent}%");
            }
            Err(e) => assert!(
                matches!(e, LoadError::Damaged(_) | LoadError::NoPages | LoadError::NoText { .. }),
                "{percent}%: {e:?}"
            ),
        }
    }
    // The generated document cut just after its header cannot be recovered.
    let generated = make_pdf(&["hello"], None);
    let err = load_pdf(&generated[..20], &[], &Config::default()).unwrap_err();
    assert!(matches!(err, LoadError::Damaged(_) | LoadError::NoPages), "{err:?}");
}

/// Truncations and byte flips of every corpus file never panic.
#[test]
fn mangled_corpus_never_panics() {
    let cfg = Config::default();
    let mut panics = Vec::new();
    for path in corpus_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
        for i in 1..16 {
            let cut = bytes.len() * i / 16;
            variants.push((format!("cut at {cut}"), bytes[..cut].to_vec()));
        }
        for seed in 1..16u64 {
            let mut mangled = bytes.clone();
            let noise = random_bytes(seed, 64);
            for pair in noise.chunks(4) {
                let at = (u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize) % mangled.len();
                mangled[at] = pair[0] ^ 0x5a;
            }
            variants.push((format!("16 bytes flipped, seed {seed}"), mangled));
        }
        for (what, variant) in variants {
            let result = std::panic::catch_unwind(|| load_pdf(&variant, &[], &cfg).map(|p| p.len()));
            if result.is_err() {
                panics.push(format!("{name}: {what}"));
            }
        }
    }
    assert!(panics.is_empty(), "lopdf panicked on: {panics:#?}");
}

#[test]
fn config_parsing() {
    assert_eq!(Config::from_json("{}").unwrap(), Config::default());
    assert_eq!(Config::from_json("").unwrap(), Config::default());
    assert_eq!(Config::from_json("null").unwrap(), Config::default());
    let cfg = Config::from_json(r#"{"max_pages": 7, "max_decompressed_bytes": 1024}"#).unwrap();
    assert_eq!(cfg.max_pages, 7);
    assert_eq!(cfg.max_decompressed_bytes, 1024);
    assert_eq!(cfg.max_output_bytes, Config::default().max_output_bytes);
    let err = Config::from_json(r#"{"max_page": 7}"#).unwrap_err();
    assert!(err.contains("max_page"), "{err}");
    let err = Config::from_json(r#"{"max_pages": 0}"#).unwrap_err();
    assert!(err.contains("max_pages"), "{err}");
    let err = Config::from_json(r#"{"max_pages": "ten"}"#).unwrap_err();
    assert!(err.starts_with("invalid pdf-load config"), "{err}");
    assert!(Config::from_json("[1]").is_err());
}

#[test]
fn five_thousand_pages_load_in_linear_time() {
    let n = 5000;
    let texts: Vec<String> = (0..n).map(|i| format!("page {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bytes = make_pdf(&refs, None);
    let t = std::time::Instant::now();
    let pages = load_pdf(&bytes, &[], &Config::default()).unwrap();
    let elapsed = t.elapsed();
    eprintln!("{n} pages: {elapsed:?} ({} bytes)", bytes.len());
    // Linear: ~0.1 s natively. Per-page `extract_text(&[n])` took ~10 s.
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(pages.len(), n);
    assert_eq!(pages[n - 1].text.trim(), format!("page {}", n - 1));
}
