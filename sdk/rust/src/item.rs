//! Items in and out: most steps read text items and write text items, and
//! keep their logic on plain `(text, metadata)` pairs so it can be tested
//! without the bindings.

use crate::{Item, Metadata, Payload, StepError};

impl Item {
    /// A text item.
    pub fn text(text: impl Into<String>, metadata: Metadata) -> Self {
        Item { payload: Payload::Text(text.into()), metadata }
    }

    /// A bytes item.
    pub fn bytes(bytes: Vec<u8>, metadata: Metadata) -> Self {
        Item { payload: Payload::Bytes(bytes), metadata }
    }

    /// The text, if this is a text item.
    pub fn as_text(&self) -> Option<&str> {
        match &self.payload {
            Payload::Text(text) => Some(text),
            Payload::Bytes(_) => None,
        }
    }
}

/// The input as `(text, metadata)` pairs, for a step (`step` is its name in
/// the message) that handles text only.
///
/// # Errors
///
/// A fatal error at the first bytes item: `<step> expects text items, got
/// bytes (input item <index>)`, then `; <hint>` if a hint is given (such as
/// `extract the text first`).
pub fn text_items(input: Vec<Item>, step: &str, hint: Option<&str>) -> Result<Vec<(String, Metadata)>, StepError> {
    let mut texts = Vec::with_capacity(input.len());
    for (index, item) in input.into_iter().enumerate() {
        match item.payload {
            Payload::Text(text) => texts.push((text, item.metadata)),
            Payload::Bytes(_) => {
                let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
                return Err(StepError::Fatal(format!(
                    "{step} expects text items, got bytes (input item {index}){hint}"
                )));
            }
        }
    }
    Ok(texts)
}

/// `(text, metadata)` pairs as text items.
pub fn from_texts(texts: impl IntoIterator<Item = (String, Metadata)>) -> Vec<Item> {
    texts.into_iter().map(|(text, metadata)| Item::text(text, metadata)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fatal(error: StepError) -> String {
        match error {
            StepError::Fatal(message) => message,
            other => format!("not fatal: {other:?}"),
        }
    }

    #[test]
    fn text_items_round_trip_and_bytes_are_refused_by_index() {
        let meta = vec![("page".to_string(), "1".to_string())];
        let input = vec![Item::text("a", meta.clone()), Item::text(String::from("b"), vec![])];
        assert_eq!(input[0].as_text(), Some("a"));
        let texts = text_items(input, "chunk", None).unwrap_or_default();
        assert_eq!(texts, vec![("a".to_string(), meta.clone()), ("b".to_string(), vec![])]);
        let back = from_texts(texts);
        assert_eq!((back.len(), back[1].as_text(), &back[0].metadata), (2, Some("b"), &meta));

        let mixed = vec![Item::text("a", vec![]), Item::bytes(vec![1, 2], vec![])];
        assert_eq!(mixed[1].as_text(), None);
        let error = text_items(mixed.clone(), "chunk", None).map(|_| ()).map_err(fatal);
        assert_eq!(error, Err("chunk expects text items, got bytes (input item 1)".to_string()));
        let error = text_items(mixed, "summarize", Some("extract the text first")).map(|_| ()).map_err(fatal);
        assert_eq!(
            error,
            Err("summarize expects text items, got bytes (input item 1); extract the text first".to_string())
        );
    }
}
