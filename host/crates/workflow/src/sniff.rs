//! Media type sniffing: what a job's input is, told from its bytes (a small
//! magic-byte table, then UTF-8 text and JSON), never from a file name or a
//! `Content-Type` a client sent. It owns the table of media types Weft can
//! recognise, which is also the list a workflow's `input.media_types` may
//! name. It must stay cheap: the binary kinds are decided from the first
//! bytes, and only text is read to its end.

/// How many leading bytes [`sniff_head`] needs to tell every binary kind
/// apart (the longest magic is the ZIP entry name `[Content_Types].xml` at
/// offset 30; the rest keeps room for a UTF-8 check of a text head).
pub const SNIFF_HEAD_BYTES: usize = 512;

/// How far into a ZIP archive its entry names are searched for the folder
/// that tells an Office Open XML document's kind (`word/`, `xl/`, `ppt/`):
/// Office writes them in the first entries, and a bound keeps sniffing a
/// large archive cheap.
const OOXML_SCAN_BYTES: usize = 64 * 1024;

/// A kind of input Weft recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `%PDF-`.
    Pdf,
    /// `MZ`: a Windows (PE) executable or DLL.
    WindowsExecutable,
    /// `\x7fELF`: a Linux or Unix executable or library.
    Elf,
    /// `\x89PNG\r\n\x1a\n`.
    Png,
    /// `\xff\xd8\xff`.
    Jpeg,
    /// `GIF87a` / `GIF89a`.
    Gif,
    /// `PK\x03\x04` (or an empty archive's `PK\x05\x06`), not an Office document.
    Zip,
    /// A ZIP archive holding `[Content_Types].xml` and `word/`.
    Docx,
    /// A ZIP archive holding `[Content_Types].xml` and `xl/`.
    Xlsx,
    /// A ZIP archive holding `[Content_Types].xml` and `ppt/`.
    Pptx,
    /// UTF-8 text that is a JSON object or array.
    Json,
    /// UTF-8 text without control characters other than tab, line feed,
    /// carriage return and form feed.
    Text,
    /// Zero bytes.
    Empty,
    /// Anything else.
    Unknown,
}

/// The media types a workflow's `input.media_types` may name: those Weft
/// can recognise from an input's bytes, `image/*`, and
/// `application/octet-stream` (any input at all).
pub const KNOWN_MEDIA_TYPES: &[&str] = &[
    "application/pdf",
    "application/json",
    "text/plain",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/*",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.microsoft.portable-executable",
    "application/x-elf",
    "application/octet-stream",
];

impl MediaKind {
    /// Its media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::WindowsExecutable => "application/vnd.microsoft.portable-executable",
            Self::Elf => "application/x-elf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Zip => "application/zip",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            Self::Json => "application/json",
            Self::Text | Self::Empty => "text/plain",
            Self::Unknown => "application/octet-stream",
        }
    }

    /// What it is, for people: "a Windows executable (MZ header)".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Pdf => "a PDF document",
            Self::WindowsExecutable => "a Windows executable (MZ header)",
            Self::Elf => "a Linux/Unix executable (ELF header)",
            Self::Png => "a PNG image",
            Self::Jpeg => "a JPEG image",
            Self::Gif => "a GIF image",
            Self::Zip => "a ZIP archive",
            Self::Docx => "a Word document (docx)",
            Self::Xlsx => "an Excel workbook (xlsx)",
            Self::Pptx => "a PowerPoint presentation (pptx)",
            Self::Json => "JSON",
            Self::Text => "plain UTF-8 text",
            Self::Empty => "empty (0 bytes)",
            Self::Unknown => "binary data of a type Weft does not recognise",
        }
    }

    /// Whether a workflow that accepts `accepted` (one of
    /// [`KNOWN_MEDIA_TYPES`]) accepts this kind: its own type, a family it
    /// belongs to (JSON and empty input are text, an Office document is a
    /// ZIP archive, `image/*`), or `application/octet-stream` (anything).
    pub fn is_accepted_by(self, accepted: &str) -> bool {
        accepted == "application/octet-stream"
            || accepted == self.media_type()
            || (accepted == "text/plain" && matches!(self, Self::Json | Self::Empty))
            || (accepted == "application/zip" && matches!(self, Self::Docx | Self::Xlsx | Self::Pptx))
            || (accepted == "image/*" && matches!(self, Self::Png | Self::Jpeg | Self::Gif))
    }

    /// The kinds this one may turn out to be once the whole input is read,
    /// when only its head was: a ZIP head may be an Office document, a text
    /// head may be JSON (or not text at all past the head).
    fn possible_from_head(self) -> &'static [MediaKind] {
        match self {
            Self::Zip => &[Self::Zip, Self::Docx, Self::Xlsx, Self::Pptx],
            Self::Text | Self::Json => &[Self::Text, Self::Json, Self::Unknown],
            Self::Pdf => &[Self::Pdf],
            Self::WindowsExecutable => &[Self::WindowsExecutable],
            Self::Elf => &[Self::Elf],
            Self::Png => &[Self::Png],
            Self::Jpeg => &[Self::Jpeg],
            Self::Gif => &[Self::Gif],
            Self::Docx => &[Self::Docx],
            Self::Xlsx => &[Self::Xlsx],
            Self::Pptx => &[Self::Pptx],
            Self::Empty => &[Self::Empty],
            Self::Unknown => &[Self::Unknown],
        }
    }

    /// Whether some kind this head may turn out to be is accepted by `accepted`.
    pub(crate) fn head_may_be_accepted_by(self, accepted: &str) -> bool {
        self.possible_from_head().iter().any(|kind| kind.is_accepted_by(accepted))
    }
}

/// The kind decided by magic bytes alone, if any.
fn magic(bytes: &[u8]) -> Option<MediaKind> {
    const TABLE: &[(&[u8], MediaKind)] = &[
        (b"%PDF-", MediaKind::Pdf),
        (b"\x89PNG\r\n\x1a\n", MediaKind::Png),
        (b"\xff\xd8\xff", MediaKind::Jpeg),
        (b"GIF87a", MediaKind::Gif),
        (b"GIF89a", MediaKind::Gif),
        (b"\x7fELF", MediaKind::Elf),
        (b"MZ", MediaKind::WindowsExecutable),
        (b"PK\x03\x04", MediaKind::Zip),
        (b"PK\x05\x06", MediaKind::Zip),
    ];
    let kind = TABLE.iter().find(|(prefix, _)| bytes.starts_with(prefix)).map(|(_, kind)| *kind)?;
    Some(if kind == MediaKind::Zip { office_kind(bytes).unwrap_or(MediaKind::Zip) } else { kind })
}

/// The Office Open XML kind of a ZIP archive, if it is one: its first
/// entry is `[Content_Types].xml` (as Office writes it) and an entry name in
/// the first [`OOXML_SCAN_BYTES`] starts with `word/`, `xl/` or `ppt/`.
fn office_kind(bytes: &[u8]) -> Option<MediaKind> {
    // A local file header is 30 bytes, then the entry's name.
    let first_name = bytes.get(30..30 + b"[Content_Types].xml".len())?;
    if first_name != b"[Content_Types].xml" {
        return None;
    }
    let scan = &bytes[..bytes.len().min(OOXML_SCAN_BYTES)];
    let has = |folder: &[u8]| scan.windows(folder.len()).any(|w| w == folder);
    if has(b"word/") {
        Some(MediaKind::Docx)
    } else if has(b"xl/") {
        Some(MediaKind::Xlsx)
    } else if has(b"ppt/") {
        Some(MediaKind::Pptx)
    } else {
        None
    }
}

/// Whether `text` has no control characters but tab, line feed, carriage
/// return and form feed (a NUL or an escape sequence makes it binary).
fn is_plain(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// What `input` is, from all of its bytes, with the parsed JSON when it is
/// JSON (an object or array: its first non-blank character is `{` or `[`).
pub fn sniff(input: &[u8]) -> (MediaKind, Option<serde_json::Value>) {
    if input.is_empty() {
        return (MediaKind::Empty, None);
    }
    if let Some(kind) = magic(input) {
        return (kind, None);
    }
    let Ok(text) = std::str::from_utf8(input) else { return (MediaKind::Unknown, None) };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !is_plain(text) {
        return (MediaKind::Unknown, None);
    }
    if text.trim_start().starts_with(['{', '['])
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
    {
        return (MediaKind::Json, Some(value));
    }
    (MediaKind::Text, None)
}

/// What an input whose first bytes are `head` is, as far as the head can
/// tell: a binary kind for sure, [`MediaKind::Text`] for a head that is
/// text so far (a UTF-8 character cut at the end of the head is allowed),
/// which the whole input may or may not confirm.
pub fn sniff_head(head: &[u8]) -> MediaKind {
    if head.is_empty() {
        return MediaKind::Empty;
    }
    if let Some(kind) = magic(head) {
        return kind;
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut inside a character at the end: the part before is what counts.
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return MediaKind::Unknown,
    };
    if is_plain(text) { MediaKind::Text } else { MediaKind::Unknown }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every kind, in the order [`KNOWN_MEDIA_TYPES`] lists them.
    const ALL_KINDS: [MediaKind; 13] = [
        MediaKind::Pdf,
        MediaKind::Json,
        MediaKind::Text,
        MediaKind::Png,
        MediaKind::Jpeg,
        MediaKind::Gif,
        MediaKind::Zip,
        MediaKind::Docx,
        MediaKind::Xlsx,
        MediaKind::Pptx,
        MediaKind::WindowsExecutable,
        MediaKind::Elf,
        MediaKind::Unknown,
    ];

    fn office(folder: &str) -> Vec<u8> {
        let mut zip = b"PK\x03\x04".to_vec();
        zip.resize(30, 0);
        zip.extend_from_slice(b"[Content_Types].xml<Types/>PK\x03\x04");
        zip.extend_from_slice(&[0; 26]);
        zip.extend_from_slice(folder.as_bytes());
        zip.extend_from_slice(b"document.xml");
        zip
    }

    #[test]
    fn each_magic_is_recognised_whatever_follows() {
        let cases: &[(&[u8], MediaKind)] = &[
            (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", MediaKind::Pdf),
            (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", MediaKind::WindowsExecutable),
            (b"\x7fELF\x02\x01\x01\x00", MediaKind::Elf),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", MediaKind::Png),
            (b"\xff\xd8\xff\xe0\x00\x10JFIF", MediaKind::Jpeg),
            (b"GIF89a\x01\x00", MediaKind::Gif),
            (b"PK\x03\x04\x14\x00\x00\x00notes.txt", MediaKind::Zip),
            (b"PK\x05\x06\x00\x00", MediaKind::Zip),
        ];
        for (bytes, kind) in cases {
            assert_eq!(sniff(bytes).0, *kind, "{bytes:?}");
            assert_eq!(sniff_head(bytes), *kind, "{bytes:?}");
        }
        assert_eq!(sniff(&office("word/")).0, MediaKind::Docx);
        assert_eq!(sniff(&office("xl/")).0, MediaKind::Xlsx);
        assert_eq!(sniff(&office("ppt/")).0, MediaKind::Pptx);
    }

    #[test]
    fn text_json_and_binary_are_told_apart() {
        assert_eq!(sniff(b"").0, MediaKind::Empty);
        assert_eq!(sniff("Grüße\n\tbonjour\r\n".as_bytes()).0, MediaKind::Text);
        let (kind, json) = sniff(b"  {\"subject\": \"hi\"}\n");
        assert_eq!((kind, json), (MediaKind::Json, Some(serde_json::json!({"subject": "hi"}))));
        assert_eq!(sniff(b"[1, 2]").0, MediaKind::Json);
        // Not an object or array, or not valid: text.
        assert_eq!(sniff(b"42").0, MediaKind::Text);
        assert_eq!(sniff(b"{\"subject\": ").0, MediaKind::Text);
        assert_eq!(sniff(b"\xff\xfe\x00\x01").0, MediaKind::Unknown);
        assert_eq!(sniff(b"text with a NUL \x00 inside").0, MediaKind::Unknown);
        assert_eq!(sniff(b"\x1b[31mred").0, MediaKind::Unknown);
    }

    #[test]
    fn a_head_cut_inside_a_character_is_still_text() {
        let text = "é".repeat(300);
        let head = &text.as_bytes()[..SNIFF_HEAD_BYTES - 1];
        assert!(std::str::from_utf8(head).is_err(), "the head ends inside a character");
        assert_eq!(sniff_head(head), MediaKind::Text);
        assert_eq!(sniff_head(b"\xff\xfe\x00\x01"), MediaKind::Unknown);
    }

    #[test]
    fn families_accept_their_members_only() {
        assert!(MediaKind::Json.is_accepted_by("text/plain"));
        assert!(!MediaKind::Text.is_accepted_by("application/json"));
        assert!(MediaKind::Docx.is_accepted_by("application/zip"));
        assert!(!MediaKind::Zip.is_accepted_by(MediaKind::Docx.media_type()));
        assert!(MediaKind::Gif.is_accepted_by("image/*"));
        assert!(!MediaKind::Pdf.is_accepted_by("image/*"));
        assert!(MediaKind::WindowsExecutable.is_accepted_by("application/octet-stream"));
        assert!(!MediaKind::WindowsExecutable.is_accepted_by("application/pdf"));
        for kind in ALL_KINDS {
            assert!(KNOWN_MEDIA_TYPES.contains(&kind.media_type()), "{kind:?}");
        }
    }
}
