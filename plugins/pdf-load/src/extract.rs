//! Per-page text extraction: a port of lopdf 0.47's `Document::extract_text`
//! (`extract_text_chunks_from_page` and `collect_text` in its
//! `parser_aux.rs`) that takes a page's object id instead of its number.
//!
//! lopdf's own entry points look the page number up through
//! `Document::get_pages()`, which walks the whole page tree on every call, so
//! extracting every page of an n-page document one page at a time costs
//! O(n²) (about 10 s for 5000 pages natively). Keying by object id keeps it
//! linear. The output is the same as `extract_text` (checked against it over
//! the corpus in the tests); only public lopdf APIs are used.

use std::collections::BTreeMap;

use lopdf::content::Content;
use lopdf::{Document, Encoding, Error, Object, ObjectId};

/// The text of the page `page_id` and the errors met extracting it.
///
/// Like `extract_text_chunks`, an error in one font or one operator does not
/// discard text decoded elsewhere on the page; page content is decompressed
/// within `max_decompressed` bytes.
pub fn page_text(doc: &Document, page_id: ObjectId, max_decompressed: usize) -> (String, Vec<Error>) {
    let mut errors = Vec::new();
    let fonts = match doc.get_page_fonts(page_id) {
        Ok(fonts) => fonts,
        Err(e) => return (String::new(), vec![e]),
    };
    let encodings: BTreeMap<Vec<u8>, Encoding> = fonts
        .into_iter()
        .filter_map(|(name, font)| match font.get_font_encoding_with_limit(doc, max_decompressed) {
            Ok(encoding) => Some((name, encoding)),
            Err(e) => {
                errors.push(e);
                None
            }
        })
        .collect();
    let content =
        match doc.get_page_content_with_limit(page_id, max_decompressed).and_then(|data| Content::decode(&data)) {
            Ok(content) => content,
            Err(e) => {
                errors.push(e);
                return (String::new(), errors);
            }
        };

    let mut text = String::new();
    // lopdf starts a new chunk at every `Tf`, and its "at the start of a
    // line" checks look at the current chunk only: `text[chunk..]`.
    let mut chunk = 0;
    let at_line_start = |text: &str, chunk: usize| text[chunk..].ends_with('\n');
    let mut current_encoding = None;
    for operation in &content.operations {
        match operation.operator.as_ref() {
            "Tf" => {
                chunk = text.len();
                let Some(font) = operation.operands.first() else {
                    // lopdf aborts the page here; keep what was read so far.
                    errors.push(Error::Syntax("missing font operand".to_string()));
                    return (text, errors);
                };
                current_encoding = match font.as_name() {
                    Ok(font) => encodings.get(font),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                };
            }
            "Tj" | "TJ" => {
                if let Some(encoding) = current_encoding
                    && let Err(e) = collect_text(&mut text, encoding, &operation.operands)
                {
                    errors.push(e);
                }
            }
            // `'` is `T* Tj`: next line, then show the string operand.
            "'" => {
                if let Some(encoding) = current_encoding {
                    if !at_line_start(&text, chunk) {
                        text.push('\n');
                    }
                    if let Err(e) = collect_text(&mut text, encoding, &operation.operands) {
                        errors.push(e);
                    }
                }
            }
            // `"` is `aw Tw ac Tc T* Tj`: operand 2 is the string to show.
            "\"" => {
                if let Some(encoding) = current_encoding {
                    if !at_line_start(&text, chunk) {
                        text.push('\n');
                    }
                    if let Some(string) = operation.operands.get(2)
                        && let Err(e) = collect_text(&mut text, encoding, std::slice::from_ref(string))
                    {
                        errors.push(e);
                    }
                }
            }
            "T*" | "ET" if !at_line_start(&text, chunk) => text.push('\n'),
            _ => {}
        }
    }
    (text, errors)
}

/// lopdf's `collect_text`: strings are decoded, a `TJ` array ends with a
/// space, and a kerning adjustment below -100 becomes a space.
fn collect_text(text: &mut String, encoding: &Encoding, operands: &[Object]) -> Result<(), Error> {
    for operand in operands {
        match operand {
            Object::String(bytes, _) => encoding.write_to_string(bytes, text)?,
            Object::Array(array) => {
                collect_text(text, encoding, array)?;
                text.push(' ');
            }
            Object::Integer(i) if *i < -100 => text.push(' '),
            _ => {}
        }
    }
    Ok(())
}
