//! PDF loading and per-page text extraction on top of `lopdf`.
//!
//! Everything here is target-independent so it can be unit-tested natively.
//! Hostile input is expected: every `lopdf` failure becomes a [`LoadError`]
//! (or a per-page warning) with a plain-words explanation, and the limits in
//! [`Config`] bound pages, output text and per-stream decompression.

use std::fmt;

use lopdf::{DecompressError, Document, Error as PdfError, LoadOptions, Object, ObjectId, ParseError};
use weft_plugin_kit::config::{ConfigError, ConfigFields};

const MIB: usize = 1024 * 1024;

/// How far into the input the `%PDF-` header may start (as readers commonly
/// tolerate leading junk such as a mail header).
const HEADER_SEARCH_WINDOW: usize = 1024;

/// Document-info values longer than this are cut, as they are copied onto
/// every page item.
const MAX_INFO_CHARS: usize = 1024;

/// The step's configuration: the JSON `config` block of the workflow step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// More pages than this is a fatal error (default 5000).
    pub max_pages: usize,
    /// Total bytes of extracted text the step may emit (default 64 MiB).
    pub max_output_bytes: usize,
    /// Bound on what any single stream may decompress to (default 64 MiB).
    /// Applied through `lopdf::LoadOptions::max_decompressed_size` while
    /// loading and to every stream read while extracting a page's text.
    pub max_decompressed_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_pages: 5000, max_output_bytes: 64 * MIB, max_decompressed_bytes: 64 * MIB }
    }
}

impl Config {
    /// Parses and validates the step's JSON config (`{}`, empty or `null`
    /// mean all defaults). The error is a message for a fatal step error.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let mut fields = ConfigFields::parse("pdf-load", json)?;
        let d = Config::default();
        let cfg = Config {
            max_pages: fields.get_or("max_pages", d.max_pages)?,
            max_output_bytes: fields.get_or("max_output_bytes", d.max_output_bytes)?,
            max_decompressed_bytes: fields.get_or("max_decompressed_bytes", d.max_decompressed_bytes)?,
        };
        fields.finish()?;
        for (name, value) in [
            ("max_pages", cfg.max_pages),
            ("max_output_bytes", cfg.max_output_bytes),
            ("max_decompressed_bytes", cfg.max_decompressed_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::new("pdf-load", format!("{name} must be at least 1")).into());
            }
        }
        Ok(cfg)
    }
}

/// One page of text with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub text: String,
    pub metadata: Vec<(String, String)>,
}

impl Page {
    /// The page's `warning` metadata, set when its text could not (fully)
    /// be extracted.
    pub fn warning(&self) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == "warning").map(|(_, v)| v.as_str())
    }
}

/// Why a PDF could not be loaded. `Display` gives the message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The input has no bytes at all.
    Empty,
    /// No `%PDF-` header near the start of the input.
    NotPdf,
    /// The PDF needs a password to be read.
    Encrypted,
    /// The PDF is encrypted in a way that cannot be undone here.
    Encryption(String),
    /// `lopdf` could not parse the file.
    Damaged(String),
    /// The file parsed but no page could be found.
    NoPages,
    /// The file loaded, but no page has any extractable text (scanned
    /// images, say). `problem` is the first extraction failure, if any.
    NoText { page_count: usize, problem: Option<String> },
    /// More pages than `max_pages`.
    TooManyPages { count: usize, limit: usize },
    /// The extracted text passed `max_output_bytes`.
    OutputTooLarge { limit: usize, page: usize, page_count: usize },
    /// A stream needed to load the document inflates past
    /// `max_decompressed_bytes`.
    DecompressionLimit { limit: usize },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Empty => write!(f, "not a PDF: the input is empty (0 bytes)"),
            LoadError::NotPdf => write!(f, "not a PDF: missing %PDF header"),
            LoadError::Encrypted => {
                write!(f, "the PDF is encrypted (password-protected); decrypt it before submitting")
            }
            LoadError::Encryption(detail) => {
                write!(f, "the PDF is encrypted and cannot be decrypted here ({detail}); decrypt it before submitting")
            }
            LoadError::Damaged(detail) => write!(f, "the PDF is damaged: {detail}"),
            LoadError::NoPages => {
                write!(f, "the PDF is damaged: no pages found (the page tree is missing or unreadable)")
            }
            LoadError::NoText { page_count, problem: None } => write!(
                f,
                "the PDF has no extractable text on any of its {page_count} page(s) \
                 (it may be scanned images; run OCR on it first)"
            ),
            LoadError::NoText { page_count, problem: Some(problem) } => {
                write!(f, "no text could be extracted from any of the PDF's {page_count} page(s): {problem}")
            }
            LoadError::TooManyPages { count, limit } => {
                write!(f, "the PDF has {count} pages, more than the max_pages limit of {limit}")
            }
            LoadError::OutputTooLarge { limit, page, page_count } => write!(
                f,
                "the extracted text exceeds the max_output_bytes limit of {limit} bytes \
                 (reached on page {page} of {page_count})"
            ),
            LoadError::DecompressionLimit { limit } => write!(
                f,
                "a stream in the PDF decompresses to more than the max_decompressed_bytes \
                 limit of {limit} bytes (possible decompression bomb)"
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Loads `bytes` as a PDF and returns one [`Page`] per page, in order.
///
/// Each page's metadata is `meta` (minus keys this function sets) followed by
/// `page`, `page_count`, the document info fields `title`, `author`,
/// `producer` and `creator` when present, and `warning` when the page's text
/// could not be (fully) extracted: such a page is not an error, but a
/// document where no page has any text is ([`LoadError::NoText`]).
pub fn load_pdf(bytes: &[u8], meta: &[(String, String)], cfg: &Config) -> Result<Vec<Page>, LoadError> {
    load_pdf_with_budget(bytes, meta, cfg, cfg.max_output_bytes)
}

/// [`load_pdf`] with an explicit text budget, for a step that loads several
/// PDFs under one `max_output_bytes` limit. Errors still name the limit.
pub fn load_pdf_with_budget(
    bytes: &[u8],
    meta: &[(String, String)],
    cfg: &Config,
    budget: usize,
) -> Result<Vec<Page>, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    let window = &bytes[..bytes.len().min(HEADER_SEARCH_WINDOW)];
    if !window.windows(5).any(|w| w == b"%PDF-") {
        return Err(LoadError::NotPdf);
    }

    let options = LoadOptions { max_decompressed_size: Some(cfg.max_decompressed_bytes), ..LoadOptions::default() };
    let doc = Document::load_mem_with_options(bytes, options).map_err(|e| load_error(&e))?;

    // Without a usable password lopdf still "loads" an encrypted file but
    // leaves its objects undecrypted (`encryption_state` stays `None`). A file
    // with an empty user password is decrypted and read normally.
    if doc.trailer.has(b"Encrypt") && doc.encryption_state.is_none() {
        return Err(LoadError::Encrypted);
    }

    let page_ids: Vec<_> = doc.page_iter().collect();
    let page_count = page_ids.len();
    if page_count == 0 {
        return Err(LoadError::NoPages);
    }
    if page_count > cfg.max_pages {
        return Err(LoadError::TooManyPages { count: page_count, limit: cfg.max_pages });
    }

    const OWN_KEYS: [&str; 7] = ["page", "page_count", "title", "author", "producer", "creator", "warning"];
    let base: Vec<(String, String)> = meta.iter().filter(|(k, _)| !OWN_KEYS.contains(&k.as_str())).cloned().collect();
    let info = document_info(&doc);

    let mut used = 0usize;
    let mut pages = Vec::with_capacity(page_count);
    let mut fonts = crate::extract::FontCache::default();
    for (number, page_id) in (1..).zip(page_ids) {
        let (text, warning) = page_text(&doc, page_id, cfg.max_decompressed_bytes, &mut fonts);
        used = used.saturating_add(text.len());
        if used > budget {
            return Err(LoadError::OutputTooLarge { limit: cfg.max_output_bytes, page: number, page_count });
        }
        let mut metadata = base.clone();
        metadata.push(("page".into(), number.to_string()));
        metadata.push(("page_count".into(), page_count.to_string()));
        metadata.extend(info.iter().cloned());
        if let Some(warning) = warning {
            metadata.push(("warning".into(), warning));
        }
        pages.push(Page { text, metadata });
    }
    if pages.iter().all(|p| p.text.trim().is_empty()) {
        return Err(LoadError::NoText {
            page_count,
            problem: pages.iter().find_map(|p| p.warning().map(str::to_string)),
        });
    }
    Ok(pages)
}

/// Extracts one page's text (see [`crate::extract`]).
/// Returns the text and a warning when something failed.
fn page_text(
    doc: &Document,
    page_id: ObjectId,
    max_decompressed: usize,
    fonts: &mut crate::extract::FontCache,
) -> (String, Option<String>) {
    let (text, errors) = crate::extract::page_text(doc, page_id, max_decompressed, fonts);
    let mut problems: Vec<String> = Vec::new();
    for e in &errors {
        let problem = match e {
            crate::extract::Problem::Note(note) => note.clone(),
            crate::extract::Problem::Pdf(PdfError::Decompress(DecompressError::MemoryLimitExceeded { .. })) => format!(
                "the page content decompresses to more than the \
                 max_decompressed_bytes limit of {max_decompressed} bytes"
            ),
            crate::extract::Problem::Pdf(e) => describe(e),
        };
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    let warning = match (problems.is_empty(), text.trim().is_empty()) {
        (true, _) => None,
        (false, true) => Some(format!("text extraction failed on this page: {}", problems.join("; "))),
        (false, false) => Some(format!("some text on this page could not be extracted: {}", problems.join("; "))),
    };
    (text, warning)
}

/// The document info dictionary's `Title`, `Author`, `Producer` and
/// `Creator`, as metadata pairs, skipping absent, empty or undecodable ones.
fn document_info(doc: &Document) -> Vec<(String, String)> {
    let Ok(info) = doc.trailer.get_deref(b"Info", doc).and_then(Object::as_dict) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, name) in
        [(&b"Title"[..], "title"), (b"Author", "author"), (b"Producer", "producer"), (b"Creator", "creator")]
    {
        let Ok(value) = info.get_deref(key, doc).and_then(lopdf::decode_text_string) else {
            continue;
        };
        let value: String = value.chars().filter(|c| *c != '\0').take(MAX_INFO_CHARS).collect();
        let value = value.trim();
        if !value.is_empty() {
            out.push((name.to_string(), value.to_string()));
        }
    }
    out
}

/// Maps a failure of `Document::load_mem_with_options` to a [`LoadError`].
fn load_error(e: &PdfError) -> LoadError {
    match e {
        PdfError::Parse(ParseError::InvalidFileHeader) => LoadError::NotPdf,
        PdfError::Decompress(DecompressError::MemoryLimitExceeded { limit }) => {
            LoadError::DecompressionLimit { limit: *limit }
        }
        PdfError::InvalidPassword => LoadError::Encrypted,
        PdfError::Decryption(_) | PdfError::UnsupportedSecurityHandler(_) | PdfError::AlreadyEncrypted => {
            LoadError::Encryption(describe(e))
        }
        _ => LoadError::Damaged(describe(e)),
    }
}

/// A plain-words description of a lopdf error.
fn describe(e: &PdfError) -> String {
    match e {
        PdfError::Parse(ParseError::EndOfInput) => "the file ends unexpectedly (is it truncated?)".into(),
        PdfError::Parse(ParseError::InvalidTrailer) | PdfError::Parse(ParseError::InvalidXref) | PdfError::Xref(_) => {
            format!(
                "its cross-reference table or trailer cannot be read, \
                 and no objects could be recovered (is it truncated?): {}",
                chain(e)
            )
        }
        PdfError::UnsupportedSecurityHandler(name) => {
            format!("unsupported security handler /{}", String::from_utf8_lossy(name))
        }
        _ => chain(e),
    }
}

/// An error's message followed by its sources'.
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !message.contains(&part) {
            message.push_str(": ");
            message.push_str(&part);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests;
