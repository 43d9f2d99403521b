#![allow(clippy::unwrap_used, clippy::expect_used)]

use lopdf::{Document, Object, Stream, dictionary};

use crate::{Config, load_pdf};

/// A one-page PDF: `fonts` builds the `/Font` resource dictionary (adding
/// any objects it needs), `content` is the raw content stream.
fn one_page(fonts: impl FnOnce(&mut Document) -> lopdf::Dictionary, content: &str) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_dict = fonts(&mut doc);
    let content_id = doc.add_object(Stream::new(dictionary! {}, content.as_bytes().to_vec()));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "Resources" => dictionary! { "Font" => font_dict },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => vec![page_id.into()],
            "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

fn helvetica(doc: &mut Document) -> lopdf::Dictionary {
    let id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    dictionary! { "F1" => id }
}

fn text_of(bytes: &[u8]) -> String {
    let pages = load_pdf(bytes, &[], &Config::default()).unwrap();
    pages.into_iter().map(|p| p.text).collect::<Vec<_>>().join("\u{c}")
}

#[test]
fn tj_offsets_become_spaces_and_kerning_does_not() {
    // Words positioned by TJ offsets, no space characters; small kerns
    // inside words.
    let bytes = one_page(helvetica, "BT /F1 12 Tf 72 700 Td [(Her) 20 (e) -333 (is) -400 (text) 15 (.)] TJ ET");
    assert_eq!(text_of(&bytes).trim(), "Here is text.");
}

#[test]
fn standard_14_widths_place_separate_strings() {
    // Each word its own Tj at the position after the previous word plus a
    // space: the gap comes from Helvetica's widths.
    let bytes = one_page(helvetica, "BT /F1 10 Tf 72 700 Td (Hello) Tj 26.7 0 Td (world) Tj ET");
    assert_eq!(text_of(&bytes).trim(), "Hello world");
    let glued = one_page(helvetica, "BT /F1 10 Tf 72 700 Td (Hello) Tj 23 0 Td (world) Tj ET");
    assert_eq!(text_of(&glued).trim(), "Helloworld");
}

#[test]
fn lines_from_geometry_top_to_bottom() {
    // Drawn bottom line first; output is top to bottom.
    let bytes =
        one_page(helvetica, "BT /F1 12 Tf 72 600 Td (second line) Tj ET BT /F1 12 Tf 72 700 Td (first line) Tj ET");
    assert_eq!(text_of(&bytes).trim(), "first line\nsecond line");
}

#[test]
fn to_unicode_bfrange_array_and_identity_h() {
    let bytes = one_page(
        |doc| {
            let cmap = "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
                1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
                1 beginbfrange <0001> <0003> [<0048> <0069> <0021>] endbfrange\n\
                1 beginbfchar <0004> <00660069> endbfchar\n\
                1 beginbfrange <0010> <0012> <0061> endbfrange\n\
                endcmap end end";
            let to_unicode = doc.add_object(Stream::new(dictionary! {}, cmap.as_bytes().to_vec()));
            let cid = doc.add_object(dictionary! {
                "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "Test",
                "CIDSystemInfo" => dictionary! { "Registry" => Object::string_literal("Adobe"),
                    "Ordering" => Object::string_literal("Identity"), "Supplement" => 0 },
                "DW" => 500,
                "W" => vec![1.into(), vec![600.into(), 300.into(), 300.into()].into()],
            });
            let font = doc.add_object(dictionary! {
                "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "Test",
                "Encoding" => "Identity-H", "DescendantFonts" => vec![cid.into()], "ToUnicode" => to_unicode,
            });
            dictionary! { "F1" => font }
        },
        "BT /F1 12 Tf 72 700 Td <000100020003> Tj ET BT /F1 12 Tf 72 680 Td <0004001000110012> Tj ET",
    );
    // bfrange array: H i !, bfchar to two characters, bfrange offset a b c.
    assert_eq!(text_of(&bytes).trim(), "Hi!\nfiabc");
}

#[test]
fn differences_encoding_through_glyph_names() {
    let bytes = one_page(
        |doc| {
            let encoding = doc.add_object(dictionary! {
                "Type" => "Encoding", "BaseEncoding" => "WinAnsiEncoding",
                "Differences" => vec![
                    1.into(), "Adieresis".into(), "eacute".into(), "uni20AC".into(), "u1F600".into(),
                    "germandbls".into(), "f_f".into(), "a.sc".into(),
                ],
            });
            let font = doc.add_object(dictionary! {
                "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => encoding,
            });
            dictionary! { "F1" => font }
        },
        "BT /F1 12 Tf 72 700 Td <4101020304050607> Tj ET",
    );
    assert_eq!(text_of(&bytes).trim(), "AÄé€😀ßffa");
}

#[test]
fn ligatures_are_expanded() {
    let bytes = one_page(
        |doc| {
            let encoding = doc.add_object(dictionary! {
                "Type" => "Encoding", "Differences" => vec![1.into(), "fi".into(), "ffl".into()],
            });
            let font = doc.add_object(dictionary! {
                "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Times-Roman", "Encoding" => encoding,
            });
            dictionary! { "F1" => font }
        },
        "BT /F1 12 Tf 72 700 Td (\\001ne wa\\002e) Tj ET",
    );
    assert_eq!(text_of(&bytes).trim(), "fine waffle");
}

#[test]
fn two_columns_are_read_in_column_order() {
    let mut content = String::from("BT /F1 14 Tf 200 760 Td (A Title Across Both Columns) Tj ET\n");
    // Left column at x=72, right column at x=320, drawn line by line across
    // the page (left line, right line, …) as some producers do.
    for i in 0..8 {
        let y = 700 - 14 * i;
        content.push_str(&format!("BT /F1 10 Tf 72 {y} Td (left column line {i} with words) Tj ET\n"));
        content.push_str(&format!("BT /F1 10 Tf 320 {y} Td (right column line {i} more words) Tj ET\n"));
    }
    let text = text_of(&one_page(helvetica, &content));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"A Title Across Both Columns"), "{text}");
    let expected: Vec<String> = (0..8)
        .map(|i| format!("left column line {i} with words"))
        .chain((0..8).map(|i| format!("right column line {i} more words")))
        .collect();
    assert_eq!(lines.get(1..), Some(expected.iter().map(String::as_str).collect::<Vec<_>>().as_slice()), "{text}");
}

#[test]
fn single_column_with_a_table_is_not_split() {
    let mut content = String::new();
    for i in 0..8 {
        let y = 700 - 14 * i;
        content.push_str(&format!("BT /F1 10 Tf 72 {y} Td (name{i}) Tj 200 0 Td (value{i}) Tj ET\n"));
    }
    let text = text_of(&one_page(helvetica, &content));
    assert!(text.starts_with("name0 value0\nname1 value1\n"), "{text}");
}

#[test]
fn rotated_page_text_reads_upright() {
    // Text drawn rotated by 90 degrees (as on a /Rotate 90 page): it runs
    // bottom to top, so the leftmost line is the first.
    let bytes = one_page(
        helvetica,
        "BT /F1 12 Tf 0 1 -1 0 300 100 Tm (second line) Tj ET BT /F1 12 Tf 0 1 -1 0 280 100 Tm (first line) Tj ET",
    );
    assert_eq!(text_of(&bytes).trim(), "first line\nsecond line");
}

#[test]
fn ctm_scaling_and_text_state() {
    // Scaled by cm, horizontal scaling Tz, word spacing Tw on real spaces,
    // character spacing Tc: still one line of words.
    let bytes =
        one_page(helvetica, "q 2 0 0 2 0 0 cm BT /F1 6 Tf 50 Tz 1 Tc 3 Tw 36 350 Td (spaced out words) Tj ET Q");
    assert_eq!(text_of(&bytes).trim(), "spaced out words");
}

#[test]
fn soft_hyphen_at_line_end_is_joined() {
    let bytes = one_page(
        |doc| {
            let encoding = doc.add_object(dictionary! { "Differences" => vec![1.into(), "sfthyphen".into()] });
            let font = doc.add_object(dictionary! {
                "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => encoding,
            });
            dictionary! { "F1" => font }
        },
        "BT /F1 12 Tf 14 TL 72 700 Td (a hyphen\\001) Tj T* (ated word) Tj ET",
    );
    assert_eq!(text_of(&bytes).trim(), "a hyphenated word");
}

#[test]
fn hard_hyphen_between_lowercase_letters_is_joined() {
    let bytes = one_page(
        helvetica,
        "BT /F1 12 Tf 14 TL 72 700 Td (consectetuer adip-) Tj T* (iscing elit, Jean-) Tj T* (Paul and 1-) Tj T* (two) Tj ET",
    );
    assert_eq!(text_of(&bytes).trim(), "consectetuer adipiscing elit, Jean-\nPaul and 1-\ntwo");
}

/// A Type 1 font without `/Encoding` whose descriptor embeds `file` as `key`.
fn embedded(key: &'static str, file: Vec<u8>) -> impl FnOnce(&mut Document) -> lopdf::Dictionary {
    move |doc| {
        let program = doc.add_object(Stream::new(dictionary! { "Subtype" => "Type1C" }, file));
        let descriptor = doc.add_object(dictionary! { "Type" => "FontDescriptor", "FontName" => "X", key => program });
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "X", "FontDescriptor" => descriptor,
        });
        dictionary! { "F1" => font }
    }
}

#[test]
fn type1_builtin_encoding_past_notdef() {
    // The `def` inside `/.notdef` does not end the encoding array.
    let program = b"%!PS-AdobeFont-1.0: X\n/Encoding 256 array\n0 1 255 {1 index exch /.notdef put} for\n\
        dup 12 /fi put\ndup 108 /l put\ndup 101 /e put\ndup 100 /d put\nreadonly def\ncurrentfile eexec\n";
    let bytes = one_page(embedded("FontFile", program.to_vec()), "BT /F1 12 Tf 72 700 Td (\\014lled) Tj ET");
    assert_eq!(text_of(&bytes).trim(), "filled");
}

#[test]
fn cff_builtin_encoding_maps_ligatures() {
    // Code 12 is the glyph `fi`, code 11 the custom-named glyph `f_f`.
    let program = crate::fonts::test_cff_font(&[0, 0, 109, 1, 135], &[0, 2, 12, 11], false);
    let bytes = one_page(embedded("FontFile3", program), "BT /F1 12 Tf 72 700 Td (\\014\\013) Tj ET");
    assert_eq!(text_of(&bytes).trim(), "fiff");
}

#[test]
fn tex_glyph_names() {
    use crate::fonts::glyph_name_to_text;
    assert_eq!(glyph_name_to_text(b"phi1").as_deref(), Some("\u{3D5}"));
    assert_eq!(glyph_name_to_text(b"arrowdblright").as_deref(), Some("\u{21D2}"));
    assert_eq!(glyph_name_to_text(b"phi").as_deref(), Some("\u{3C6}"));
    assert_eq!(glyph_name_to_text(b"notaglyph"), None);
}

/// Adds `annots` (built by the closure) to the first page of `bytes`.
fn with_annots(bytes: &[u8], annots: impl FnOnce(&mut Document) -> Vec<Object>) -> Vec<u8> {
    let mut doc = Document::load_mem(bytes).unwrap();
    let page_id = *doc.get_pages().values().next().unwrap();
    let list = annots(&mut doc);
    doc.get_dictionary_mut(page_id).unwrap().set("Annots", list);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn annotation_appearances_and_field_values() {
    let page = one_page(helvetica, "BT /F1 12 Tf 72 700 Td (Name:) Tj ET BT /F1 12 Tf 72 600 Td (Town:) Tj ET");
    let bytes = with_annots(&page, |doc| {
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
        });
        // An appearance stream drawn in its own 0 0 100 20 box, placed (scaled
        // by 0.5) on the rectangle to the right of "Name:".
        let ap = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 200.into(), 40.into()],
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            },
            b"BT /F1 24 Tf 4 10 Td (Alice) Tj ET".to_vec(),
        ));
        let shown = doc.add_object(dictionary! {
            "Type" => "Annot", "Subtype" => "Widget", "FT" => "Tx", "V" => Object::string_literal("Alice"),
            "Rect" => vec![120.into(), 695.into(), 220.into(), 715.into()], "AP" => dictionary! { "N" => ap },
        });
        // A field whose appearance is missing: its value is shown.
        let parent = doc.add_object(dictionary! { "FT" => "Tx", "V" => Object::string_literal("Springfield") });
        let bare = doc.add_object(dictionary! {
            "Type" => "Annot", "Subtype" => "Widget", "Parent" => parent,
            "Rect" => vec![120.into(), 595.into(), 260.into(), 610.into()],
        });
        // Hidden: not shown.
        let hidden = doc.add_object(dictionary! {
            "Type" => "Annot", "Subtype" => "Widget", "FT" => "Tx", "V" => Object::string_literal("Secret"), "F" => 2,
            "Rect" => vec![120.into(), 500.into(), 220.into(), 515.into()],
        });
        // A push button's caption: not shown (the page usually draws it).
        let caption = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 100.into(), 20.into()],
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            },
            b"BT /F1 12 Tf 4 5 Td (Submit) Tj ET".to_vec(),
        ));
        let button = doc.add_object(dictionary! {
            "Type" => "Annot", "Subtype" => "Widget", "FT" => "Btn",
            "Rect" => vec![72.into(), 400.into(), 172.into(), 420.into()], "AP" => dictionary! { "N" => caption },
        });
        vec![shown.into(), bare.into(), hidden.into(), button.into()]
    });
    assert_eq!(text_of(&bytes).trim(), "Name: Alice\nTown: Springfield");
}

#[test]
fn nfc_normalisation() {
    // e + combining acute from a ToUnicode map becomes é.
    assert_eq!(crate::layout::normalize("e\u{301}\u{FB03}"), "\u{E9}ffi");
}

#[test]
fn hostile_fonts_and_operators_do_not_panic() {
    let bytes = one_page(
        |doc| {
            let cmap = "begincodespacerange <> <FFFFFFFFFF> endcodespacerange beginbfrange <FFFF> <0000> <00> \
                <01> <02> [ endbfrange beginbfchar <01> endbfchar <0102030405> <0041>";
            let to_unicode = doc.add_object(Stream::new(dictionary! {}, cmap.as_bytes().to_vec()));
            let font = doc.add_object(dictionary! {
                "Type" => "Font", "Subtype" => "Type0", "Encoding" => "Identity-H", "ToUnicode" => to_unicode,
                "DescendantFonts" => vec![dictionary! { "W" => vec![1.into(), "x".into(), Object::Null] }.into()],
            });
            let type3 = doc.add_object(dictionary! {
                "Type" => "Font", "Subtype" => "Type3", "FontMatrix" => vec![Object::Real(f32::NAN)],
                "Widths" => vec![Object::Null], "FirstChar" => -5,
            });
            dictionary! { "F1" => font, "F2" => type3 }
        },
        "BT /F1 1e308 Tf 1e308 0 0 1e308 0 0 Tm <01020304050607> Tj 0 0 0 0 0 0 Tm [(x) 1e300 (y)] TJ /F2 -1 Tf \
         (abc) Tj /Missing 12 Tf (abc) ' 1 2 (z) \" ET Q Q q q cm Td TD Tm /X Do",
    );
    // Whatever the text, loading returns without panicking.
    let _ = load_pdf(&bytes, &[], &Config::default());
}

#[test]
fn junk_in_a_content_stream_does_not_lose_the_text_after_it() {
    // lopdf's parser gave up at the stray `}` and at `--20`, dropping the
    // rest of the stream; poppler and pdf.js read on.
    let bytes = one_page(helvetica, "BT /F1 12 Tf 72 700 Td (Before) Tj } 0 --20 Td (after) Tj ET");
    let pages = load_pdf(&bytes, &[], &Config::default()).unwrap();
    assert_eq!(pages[0].text.split_whitespace().collect::<Vec<_>>(), ["Before", "after"]);
    assert!(pages[0].warning().is_none());
}

#[test]
fn a_stream_cut_inside_a_string_keeps_the_text_before_and_warns() {
    let bytes = one_page(helvetica, "BT /F1 12 Tf 72 700 Td (Kept) Tj 0 -20 Td (cut sho");
    let pages = load_pdf(&bytes, &[], &Config::default()).unwrap();
    assert_eq!(pages[0].text.trim(), "Kept");
    let warning = pages[0].warning().expect("a warning for the cut stream");
    assert!(warning.contains("ends inside a string"), "{warning}");
}
