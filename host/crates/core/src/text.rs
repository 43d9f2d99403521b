//! Text from outside (a plugin's log line, a job id or reason a publisher
//! chose) made safe to print on a terminal or into a log: control
//! characters are written as escapes, so a line cannot forge another log
//! line, move the cursor, recolour the terminal or hide what follows.

use std::borrow::Cow;

/// `text` with every control character escaped (`\n`, `\r`, `\t`,
/// `\u{1b}`), borrowed when there is none. Printable Unicode is kept.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_the_rest_is_kept() {
        assert!(matches!(printable("plain é 😀"), std::borrow::Cow::Borrowed("plain é 😀")));
        assert_eq!(printable("a\nINFO forged line"), "a\\nINFO forged line");
        assert_eq!(printable("\u{1b}[2Jcleared\r\t\0"), "\\u{1b}[2Jcleared\\r\\t\\u{0}");
        assert_eq!(printable("bidi \u{202e} stays visible as itself"), "bidi \u{202e} stays visible as itself");
    }
}
