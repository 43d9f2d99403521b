//! Layout-aware per-page text extraction on top of lopdf's parser.
//!
//! The page's content stream (and the form XObjects it draws, and its
//! annotations' appearance streams) is read by [`crate::content`]'s lexer
//! and interpreted for its text operators: every glyph gets a position from the text matrix
//! (`Tm`, `Td`, `TD`, `T*`, `TJ` offsets, `Tc`, `Tw`, `Tz`, `TL`, `Ts`) and
//! the CTM (`cm`, `q`, `Q`), and an advance from the font's widths (see
//! [`crate::fonts`]). [`crate::layout`] then turns the glyphs into lines and
//! words from geometry: spaces where glyphs are apart, line breaks where the
//! baseline changes, lines top to bottom, columns in order.
//!
//! Hostile input is expected: nothing here panics, recursion and work are
//! bounded, and what cannot be decoded is reported in the returned errors.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::{Dictionary, Document, Error, Object, ObjectId};

use crate::content::{Lexer, Operand};
use crate::fonts::{Font, deref, number};
use crate::glyph_text::GlyphText;
use crate::layout::{self, PlacedGlyph};

/// How deeply form XObjects may nest.
const MAX_FORM_DEPTH: usize = 12;
/// How many form XObjects one page may draw in total.
const MAX_FORMS_PER_PAGE: usize = 4096;
/// How many glyphs one page may place.
const MAX_GLYPHS_PER_PAGE: usize = 4_000_000;
/// How many `q` may be open at once.
const MAX_STATE_DEPTH: usize = 256;

type Matrix = [f64; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `a` then `b`.
fn mul(a: &Matrix, b: &Matrix) -> Matrix {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]
}

#[derive(Clone)]
struct State {
    ctm: Matrix,
    char_spacing: f64,
    word_spacing: f64,
    scale: f64,
    leading: f64,
    rise: f64,
    font: Option<Rc<Font>>,
    size: f64,
}

/// Fonts already loaded from a document, by object: a font used on many pages
/// (the usual case) is parsed once per document, not once per page.
#[derive(Default)]
pub struct FontCache {
    fonts: HashMap<ObjectId, Rc<Font>>,
}

struct Interpreter<'a, 'c> {
    doc: &'a Document,
    limit: usize,
    fonts: &'c mut FontCache,
    glyphs: Vec<PlacedGlyph>,
    errors: Vec<Problem>,
    forms: usize,
    unmapped: usize,
    warned_fonts: Vec<String>,
}

/// The text of the page `page_id` and the problems met extracting it.
///
/// An error in one font or one operator does not discard text decoded
/// elsewhere on the page; every stream is decompressed within
/// `max_decompressed` bytes.
/// A problem met extracting a page: a lopdf error, or a note in plain words.
#[derive(Debug)]
pub enum Problem {
    Pdf(Error),
    Note(String),
}

pub fn page_text(
    doc: &Document,
    page_id: ObjectId,
    max_decompressed: usize,
    fonts: &mut FontCache,
) -> (String, Vec<Problem>) {
    let mut interp = Interpreter {
        doc,
        limit: max_decompressed,
        fonts,
        glyphs: Vec::new(),
        errors: Vec::new(),
        forms: 0,
        unmapped: 0,
        warned_fonts: Vec::new(),
    };
    let content = match doc.get_page_content_with_limit(page_id, max_decompressed) {
        Ok(data) => data,
        Err(e) => return (String::new(), vec![Problem::Pdf(e)]),
    };
    let resources = page_resources(doc, page_id);
    let state = State {
        ctm: IDENTITY,
        char_spacing: 0.0,
        word_spacing: 0.0,
        scale: 1.0,
        leading: 0.0,
        rise: 0.0,
        font: None,
        size: 0.0,
    };
    interp.run(&content, resources, state.clone(), 0);
    interp.annotations(page_id, &state);
    if interp.unmapped > 0 {
        interp.errors.push(Problem::Note(format!(
            "{} character code(s) have no known Unicode mapping and were left out",
            interp.unmapped
        )));
    }
    let text = layout::page_text(interp.glyphs);
    (text, interp.errors)
}

/// A form field attribute, from the widget or the field it belongs to.
fn inherited<'a>(doc: &'a Document, annot: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    let mut node = annot;
    for _ in 0..16 {
        if let Some(value) = deref(doc, node.get(key).ok()) {
            return Some(value);
        }
        match deref(doc, node.get(b"Parent").ok()) {
            Some(Object::Dictionary(parent)) => node = parent,
            _ => return None,
        }
    }
    None
}

/// A form's `/Matrix`, or the identity.
fn form_matrix(doc: &Document, dict: &Dictionary) -> Matrix {
    if let Some(Object::Array(m)) = deref(doc, dict.get(b"Matrix").ok()) {
        let v: Vec<f64> = m.iter().filter_map(|o| number(Some(o))).collect();
        if let [a, b, c, d, e, f] = v.as_slice() {
            return [*a, *b, *c, *d, *e, *f];
        }
    }
    IDENTITY
}

/// A rectangle `[x0 y0 x1 y1]`, normalised so that x0 <= x1 and y0 <= y1.
fn rect(doc: &Document, object: Option<&Object>) -> Option<[f64; 4]> {
    let Some(Object::Array(r)) = deref(doc, object) else {
        return None;
    };
    let v: Vec<f64> = r.iter().filter_map(|o| number(deref(doc, Some(o)))).collect();
    match v.as_slice() {
        [a, b, c, d] if [a, b, c, d].iter().all(|x| x.is_finite()) => {
            Some([a.min(*c), b.min(*d), a.max(*c), b.max(*d)])
        }
        _ => None,
    }
}

/// The matrix that maps an appearance stream's `/BBox` (after its `/Matrix`)
/// onto the annotation's `/Rect` (PDF 32000-1, 12.5.5), for an axis-aligned
/// form matrix.
fn appearance_matrix(form: &Matrix, bbox: [f64; 4], target: [f64; 4]) -> Option<Matrix> {
    let corners = [[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[0], bbox[3]], [bbox[2], bbox[3]]];
    let mapped: Vec<[f64; 2]> = corners
        .iter()
        .map(|[x, y]| [form[0] * x + form[2] * y + form[4], form[1] * x + form[3] * y + form[5]])
        .collect();
    let x0 = mapped.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
    let x1 = mapped.iter().map(|p| p[0]).fold(f64::NEG_INFINITY, f64::max);
    let y0 = mapped.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min);
    let y1 = mapped.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max);
    if !(x1 - x0 > 0.0 && y1 - y0 > 0.0) {
        return None;
    }
    let sx = (target[2] - target[0]) / (x1 - x0);
    let sy = (target[3] - target[1]) / (y1 - y0);
    Some([sx, 0.0, 0.0, sy, target[0] - x0 * sx, target[1] - y0 * sy])
}

/// The page's `/Resources`, inherited through the page tree if need be.
fn page_resources(doc: &Document, page_id: ObjectId) -> Option<&Dictionary> {
    let mut node = doc.get_dictionary(page_id).ok()?;
    for _ in 0..64 {
        if let Some(Object::Dictionary(resources)) = deref(doc, node.get(b"Resources").ok()) {
            return Some(resources);
        }
        match deref(doc, node.get(b"Parent").ok()) {
            Some(Object::Dictionary(parent)) => node = parent,
            _ => return None,
        }
    }
    None
}

impl Interpreter<'_, '_> {
    fn run(&mut self, data: &[u8], resources: Option<&Dictionary>, mut state: State, depth: usize) {
        let mut lexer = Lexer::new(data);
        let mut stack: Vec<State> = Vec::new();
        let mut tm = IDENTITY;
        let mut tlm = IDENTITY;
        let mut font_cache: HashMap<Vec<u8>, Rc<Font>> = HashMap::new();
        // Where strings with escapes and hex strings are decoded.
        let mut scratch = Vec::new();
        while let Some(op) = lexer.next() {
            // Operands are read only by the operators that use them: the
            // numeric ones (how many, and the first six: no operator takes
            // more) are parsed here, per arm.
            match op.operator {
                b"q" if stack.len() < MAX_STATE_DEPTH => stack.push(state.clone()),
                b"Q" => {
                    if let Some(saved) = stack.pop() {
                        state = saved;
                    }
                }
                b"cm" => {
                    if let (m, 6) = op.numbers() {
                        state.ctm = mul(&m, &state.ctm);
                    }
                }
                b"BT" => {
                    tm = IDENTITY;
                    tlm = IDENTITY;
                }
                b"Tc" => state.char_spacing = op.numbers().0[0],
                b"Tw" => state.word_spacing = op.numbers().0[0],
                b"Tz" => state.scale = op.numbers().0[0] / 100.0,
                b"TL" => state.leading = op.numbers().0[0],
                b"Ts" => state.rise = op.numbers().0[0],
                b"Tf" => {
                    state.size = op.numbers().0[0];
                    let name = op.operands.first().and_then(Operand::name);
                    state.font = Some(match name {
                        Some(name) => {
                            if let Some(font) = font_cache.get(name.as_ref()) {
                                font.clone()
                            } else {
                                let font = self.font(resources, &name);
                                font_cache.insert(name.into_owned(), font.clone());
                                font
                            }
                        }
                        None => Rc::new(Font::fallback()),
                    });
                }
                b"Td" => {
                    if let ([x, y, ..], 2) = op.numbers() {
                        tlm = mul(&[1.0, 0.0, 0.0, 1.0, x, y], &tlm);
                        tm = tlm;
                    }
                }
                b"TD" => {
                    if let ([x, y, ..], 2) = op.numbers() {
                        state.leading = -y;
                        tlm = mul(&[1.0, 0.0, 0.0, 1.0, x, y], &tlm);
                        tm = tlm;
                    }
                }
                b"Tm" => {
                    if let (m, 6) = op.numbers() {
                        tlm = m;
                        tm = tlm;
                    }
                }
                b"T*" => {
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -state.leading], &tlm);
                    tm = tlm;
                }
                b"Tj" => {
                    if let Some(bytes) = op.operands.first().and_then(|o| o.string(&mut scratch)) {
                        self.show(bytes, &state, &mut tm);
                    }
                }
                b"'" => {
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -state.leading], &tlm);
                    tm = tlm;
                    if let Some(bytes) = op.operands.first().and_then(|o| o.string(&mut scratch)) {
                        self.show(bytes, &state, &mut tm);
                    }
                }
                b"\"" => {
                    let ([word, char, ..], _) = op.numbers();
                    state.word_spacing = word;
                    state.char_spacing = char;
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -state.leading], &tlm);
                    tm = tlm;
                    if let Some(bytes) = op.operands.get(2).and_then(|o| o.string(&mut scratch)) {
                        self.show(bytes, &state, &mut tm);
                    }
                }
                b"TJ" => {
                    for item in op.operands.first().and_then(Operand::items).into_iter().flatten() {
                        if let Some(bytes) = item.string(&mut scratch) {
                            self.show(bytes, &state, &mut tm);
                        } else if let Some(adjust) = item.number() {
                            let tx = -adjust / 1000.0 * state.size * state.scale;
                            tm = mul(&[1.0, 0.0, 0.0, 1.0, tx, 0.0], &tm);
                        }
                    }
                }
                b"Do" if depth < MAX_FORM_DEPTH => {
                    if let Some(name) = op.operands.first().and_then(Operand::name) {
                        self.form(resources, &name, &state, depth);
                    }
                }
                _ => {}
            }
        }
        if let Some(problem) = lexer.problem() {
            self.errors.push(Problem::Note(problem.to_string()));
        }
    }

    /// Draws the form XObject `name`.
    fn form(&mut self, resources: Option<&Dictionary>, name: &[u8], state: &State, depth: usize) {
        if self.forms >= MAX_FORMS_PER_PAGE {
            return;
        }
        let doc = self.doc;
        let Some(Object::Dictionary(xobjects)) = resources.and_then(|r| deref(doc, r.get(b"XObject").ok())) else {
            return;
        };
        let Some(Object::Stream(stream)) = deref(doc, xobjects.get(name).ok()) else {
            return;
        };
        if !matches!(stream.dict.get(b"Subtype").and_then(Object::as_name), Ok(b"Form")) {
            return;
        }
        self.form_stream(stream, resources, state.ctm, state, depth);
    }

    /// Runs a form XObject's content with its `/Matrix` applied before `ctm`.
    fn form_stream(
        &mut self,
        stream: &lopdf::Stream,
        resources: Option<&Dictionary>,
        ctm: Matrix,
        state: &State,
        depth: usize,
    ) {
        let doc = self.doc;
        self.forms += 1;
        let data = match stream.decompressed_content_with_limit(self.limit) {
            Ok(data) => data,
            Err(e) => {
                if !stream.content.is_empty() {
                    self.errors.push(Problem::Pdf(e));
                }
                // An unfiltered stream is its own content.
                if stream.dict.get(b"Filter").is_ok() {
                    return;
                }
                stream.content.clone()
            }
        };
        let mut inner = state.clone();
        inner.ctm = mul(&form_matrix(doc, &stream.dict), &ctm);
        let own = match deref(doc, stream.dict.get(b"Resources").ok()) {
            Some(Object::Dictionary(r)) => Some(r),
            _ => resources,
        };
        self.run(&data, own, inner, depth + 1);
    }

    /// Draws the normal appearance streams of the page's annotations (form
    /// field values, free text), as a viewer (and `pdftotext`) shows them;
    /// hidden and no-view annotations are skipped.
    fn annotations(&mut self, page_id: ObjectId, state: &State) {
        let doc = self.doc;
        let Ok(page) = doc.get_dictionary(page_id) else {
            return;
        };
        let Some(Object::Array(annots)) = deref(doc, page.get(b"Annots").ok()) else {
            return;
        };
        for annot in annots {
            if self.forms >= MAX_FORMS_PER_PAGE {
                return;
            }
            let Some(Object::Dictionary(annot)) = deref(doc, Some(annot)) else {
                continue;
            };
            let flags = number(deref(doc, annot.get(b"F").ok())).unwrap_or(0.0) as u32;
            if flags & (2 | 32) != 0 || matches!(annot.get(b"Subtype").and_then(Object::as_name), Ok(b"Popup")) {
                continue;
            }
            // Buttons: check marks are symbols, and a push button's caption
            // usually repeats text the page content already draws.
            if matches!(inherited(doc, annot, b"FT").and_then(|o| o.as_name().ok()), Some(b"Btn")) {
                continue;
            }
            let empty = Dictionary::new();
            let ap = match deref(doc, annot.get(b"AP").ok()) {
                Some(Object::Dictionary(ap)) => ap,
                _ => &empty,
            };
            let before = self.glyphs.len();
            self.appearance(annot, ap, state);
            if self.glyphs.len() == before {
                self.field_value(annot, state);
            }
        }
    }

    /// Draws an annotation's normal appearance stream, placed on its `/Rect`.
    fn appearance(&mut self, annot: &Dictionary, ap: &Dictionary, state: &State) {
        let doc = self.doc;
        let stream = match deref(doc, ap.get(b"N").ok()) {
            Some(Object::Stream(stream)) => stream,
            Some(Object::Dictionary(states)) => {
                let Ok(on) = annot.get(b"AS").and_then(Object::as_name) else {
                    return;
                };
                match deref(doc, states.get(on).ok()) {
                    Some(Object::Stream(stream)) => stream,
                    _ => return,
                }
            }
            _ => return,
        };
        let (Some(target), Some(bbox)) = (rect(doc, annot.get(b"Rect").ok()), rect(doc, stream.dict.get(b"BBox").ok()))
        else {
            return;
        };
        let Some(placement) = appearance_matrix(&form_matrix(doc, &stream.dict), bbox, target) else {
            return;
        };
        self.form_stream(stream, None, mul(&placement, &state.ctm), state, 1);
    }

    /// The value of a text or choice form field whose appearance shows no
    /// text (a viewer regenerates it): placed at the left of its `/Rect`.
    fn field_value(&mut self, annot: &Dictionary, state: &State) {
        let doc = self.doc;
        let inherited = |key: &[u8]| inherited(doc, annot, key);
        if !matches!(inherited(b"FT").and_then(|o| o.as_name().ok()), Some(b"Tx" | b"Ch")) {
            return;
        }
        let Some(value) = inherited(b"V").and_then(|v| lopdf::decode_text_string(v).ok()) else {
            return;
        };
        let Some(target) = rect(doc, annot.get(b"Rect").ok()) else {
            return;
        };
        let size = (target[3] - target[1]).clamp(1.0, 12.0);
        let placement =
            [size, 0.0, 0.0, size, target[0] + 2.0, target[1] + ((target[3] - target[1]) - size) / 2.0 + 0.2 * size];
        let m = mul(&placement, &state.ctm);
        let height = (m[2] * m[2] + m[3] * m[3]).sqrt();
        for (i, c) in value.split_whitespace().collect::<Vec<_>>().join(" ").chars().enumerate() {
            if self.glyphs.len() >= MAX_GLYPHS_PER_PAGE {
                return;
            }
            let x = 0.5 * i as f64;
            let at = |dx: f64| [m[0] * dx + m[4], m[1] * dx + m[5]];
            let ([x0, y0], [x1, y1]) = (at(x), at(x + 0.5));
            self.glyphs.push(PlacedGlyph {
                text: GlyphText::from_char(c),
                x0,
                y0,
                x1,
                y1,
                dir: [m[0], m[1]],
                size: if height.is_finite() { height } else { 0.0 },
            });
        }
    }

    /// The font resource `name`, loaded once per object.
    fn font(&mut self, resources: Option<&Dictionary>, name: &[u8]) -> Rc<Font> {
        let doc = self.doc;
        let fonts = resources.and_then(|r| deref(doc, r.get(b"Font").ok()));
        let entry = match fonts {
            Some(Object::Dictionary(fonts)) => fonts.get(name).ok(),
            _ => None,
        };
        let id = match entry {
            Some(Object::Reference(id)) => Some(*id),
            _ => None,
        };
        if let Some(id) = id
            && let Some(font) = self.fonts.fonts.get(&id)
        {
            let font = font.clone();
            self.note_font_problems(&font);
            return font;
        }
        let font = match deref(doc, entry) {
            Some(Object::Dictionary(dict)) => Font::load(doc, dict, self.limit),
            _ => {
                self.errors.push(Problem::Note(format!("font /{} is missing", String::from_utf8_lossy(name))));
                Font::fallback()
            }
        };
        self.note_font_problems(&font);
        let font = Rc::new(font);
        if let Some(id) = id {
            self.fonts.fonts.insert(id, font.clone());
        }
        font
    }

    /// Reports a font's loading problems once per page (the font itself may
    /// come from the document-wide cache).
    fn note_font_problems(&mut self, font: &Font) {
        for problem in &font.problems {
            if !self.warned_fonts.contains(problem) {
                self.warned_fonts.push(problem.clone());
                self.errors.push(Problem::Note(problem.clone()));
            }
        }
    }

    /// Places the glyphs of one shown string and advances the text matrix.
    fn show(&mut self, bytes: &[u8], state: &State, tm: &mut Matrix) {
        let Some(font) = state.font.clone() else {
            return;
        };
        let size = state.size;
        let scale = state.scale;
        for glyph in font.decode(bytes) {
            let trm = mul(&mul(&[size * scale, 0.0, 0.0, size, 0.0, state.rise], tm), &state.ctm);
            let w0 = glyph.width / 1000.0;
            let mut tx = w0 * size + state.char_spacing;
            if glyph.len == 1 && glyph.code == 32 {
                tx += state.word_spacing;
            }
            tx *= scale;
            // The glyph's own extent (without spacing) in device space.
            let text_to_device = mul(tm, &state.ctm);
            let adv = w0 * size * scale;
            let end = [trm[4] + adv * text_to_device[0], trm[5] + adv * text_to_device[1]];
            if !glyph.mapped {
                self.unmapped += 1;
            }
            if self.glyphs.len() < MAX_GLYPHS_PER_PAGE {
                let height = (trm[2] * trm[2] + trm[3] * trm[3]).sqrt();
                self.glyphs.push(PlacedGlyph {
                    text: glyph.text,
                    x0: trm[4],
                    y0: trm[5],
                    x1: end[0],
                    y1: end[1],
                    dir: [trm[0], trm[1]],
                    size: if height.is_finite() { height } else { 0.0 },
                });
            }
            *tm = mul(&[1.0, 0.0, 0.0, 1.0, tx, 0.0], tm);
        }
    }
}

#[cfg(test)]
mod tests;
