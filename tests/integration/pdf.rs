//! `pdf-load` and `chunk` in the sandbox: the bundled workflow on the sample
//! PDF, and every PDF of the shared corpus yields text or a typed error.

use weft::Item;
use weft::scheduler::{FailureKind, JobStatus};

use crate::support::{corpus_dir, host, load, repo_root, run_one};

const LOAD_ONLY: &str = "name: load-only\nversion: '1'\nsteps:\n  - id: load\n    plugin: pdf-load\n    timeout: 120s\n    limits: { memory: 1GiB, output: 256MiB }\n    retry: { max_attempts: 1 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdf_digest_masks_and_summarises_the_sample_pdf() {
    let host = host();
    let loaded =
        host.load_workflow_file(repo_root().join("workflows/pdf-digest.yaml")).expect("bundled workflow loads");
    let pdf = std::fs::read(repo_root().join("workflows/samples/sample.pdf")).unwrap();
    let outcome =
        host.run_job(&loaded, "job-sample", vec![Item::bytes(pdf).with_metadata("source", "sample.pdf")]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:?}", outcome.report.error);
    let pages = &outcome.outputs["load"];
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].metadata_value("page"), Some("1"));
    assert_eq!(pages[1].metadata_value("page"), Some("2"));
    assert_eq!(pages[0].metadata_value("source"), Some("sample.pdf"));
    assert!(pages[0].as_text().unwrap().contains("Quarterly operations report"));
    let chunks = &outcome.outputs["chunk"];
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| c.metadata_value("page").is_some()));
    let text: String = chunks.iter().filter_map(Item::as_text).collect();
    assert!(text.contains("electric vans"), "{text}");
    assert!(text.contains("jane.doe@example.com"), "the raw chunks still hold the address");

    let masked: String = outcome.outputs["mask"].iter().filter_map(Item::as_text).collect();
    assert!(!masked.contains("jane.doe@example.com") && masked.contains("[EMAIL]"), "{masked}");
    assert!(!masked.contains("7946 0958") && masked.contains("[PHONE]"), "{masked}");
    let summary = &outcome.outputs["summarize"];
    assert_eq!(summary.len(), 1);
    let summary = summary[0].as_text().unwrap();
    assert!(!summary.is_empty() && !summary.contains("jane.doe@example.com"), "{summary}");
    // Every summary sentence is a sentence of the (masked) source, up to whitespace.
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let source = words(&masked);
    for sentence in weft_summarize_sentences(summary) {
        assert!(source.contains(&words(sentence.trim_end_matches('.'))), "`{sentence}` is not from the source");
    }

    // The offline `notify` channel puts the digest into the job result.
    let note = &outcome.outputs["notify"];
    assert_eq!(note.len(), 1);
    assert_eq!(note[0].metadata_value("channel"), Some("stdout"));
    let digest: serde_json::Value = serde_json::from_str(note[0].as_text().unwrap()).unwrap();
    assert_eq!(digest["job_id"], "job-sample");
    assert_eq!(digest["workflow"], "pdf-digest");
    assert_eq!(digest["summary"], summary);
    assert_eq!(digest["findings"]["EMAIL"], 1, "{digest}");
    assert_eq!(digest["findings"]["PHONE"], 1, "{digest}");
    let all = digest.to_string();
    assert!(!all.contains("jane.doe@example.com") && !all.contains("7946 0958"), "{all}");
}

/// Sentences of a summary, split at ". " (the sample's sentences hold no abbreviations).
fn weft_summarize_sentences(summary: &str) -> Vec<&str> {
    summary.split('\n').flat_map(|line| line.split(". ")).map(str::trim).filter(|s| !s.is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_pdf_yields_text_or_a_typed_error() {
    let host = host();
    let loaded = load(&host, LOAD_ONLY);
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("the shared PDF corpus (../shared/corpus/pdf, or set WEFT_PDF_CORPUS)")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "expected the whole corpus, found {}", files.len());
    let mut with_text = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(path).unwrap();
        let outcome = host.run_job(&loaded, &name, vec![Item::bytes(bytes)]).await;
        match outcome.report.status {
            JobStatus::Succeeded => {
                let pages = &outcome.outputs["load"];
                assert!(!pages.is_empty(), "{name}: no pages");
                if pages.iter().any(|p| p.as_text().is_some_and(|t| !t.trim().is_empty())) {
                    with_text += 1;
                }
            }
            JobStatus::Failed => {
                let error = outcome.report.error.unwrap();
                assert_eq!(error.failure.kind, FailureKind::Fatal, "{name}: {}", error.failure.message);
            }
        }
    }
    assert!(with_text >= 20, "only {with_text} corpus files yielded text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_pdf_is_a_fatal_error_that_says_so() {
    let host = host();
    let bytes = std::fs::read(corpus_dir().join("libreoffice-writer-password.pdf")).unwrap();
    let outcome = run_one(&host, LOAD_ONLY, vec![Item::bytes(bytes)]).await;
    let error = outcome.report.error.expect("encrypted PDFs fail");
    assert_eq!(error.failure.kind, FailureKind::Fatal);
    assert!(error.failure.message.contains("encrypted"), "{}", error.failure.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_garbage_input_are_fatal_errors() {
    let host = host();
    let sample = std::fs::read(repo_root().join("workflows/samples/sample.pdf")).unwrap();
    for (what, bytes) in [
        ("truncated", sample[..sample.len() / 3].to_vec()),
        ("garbage", b"this is not a pdf at all".to_vec()),
        ("empty", Vec::new()),
    ] {
        let outcome = run_one(&host, LOAD_ONLY, vec![Item::bytes(bytes)]).await;
        if outcome.report.status == JobStatus::Succeeded && what == "truncated" {
            // lopdf may recover a truncated file by scanning objects; that is fine
            // as long as it did not crash.
            continue;
        }
        let error = outcome.report.error.unwrap_or_else(|| panic!("{what} input should fail"));
        assert_eq!(error.failure.kind, FailureKind::Fatal, "{what}: {}", error.failure.message);
    }
}
