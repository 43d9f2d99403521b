//! The data that flows between steps: [`Item`]s of text or bytes with string
//! metadata. Mirrors `weft:plugin/types.item` in `wit/step.wit` but has no
//! wasmtime types, so the scheduler and embedders can use it freely.

use serde::{Deserialize, Serialize};

/// The content of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// UTF-8 text.
    Text(String),
    /// Opaque bytes, shown as base64 in JSON.
    Bytes(#[serde(with = "base64_bytes")] Vec<u8>),
}

/// One unit of data flowing between steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What the item holds.
    pub payload: Payload,
    /// Ordered key/value pairs (`page`, `source`, ...).
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
}

impl Item {
    /// A text item without metadata.
    pub fn text(text: impl Into<String>) -> Self {
        Item { payload: Payload::Text(text.into()), metadata: Vec::new() }
    }

    /// A bytes item without metadata.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Item { payload: Payload::Bytes(bytes.into()), metadata: Vec::new() }
    }

    /// Adds a metadata entry, replacing an existing value for the same key.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// The value of a metadata key, if present.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The text payload, if this is a text item.
    pub fn as_text(&self) -> Option<&str> {
        match &self.payload {
            Payload::Text(text) => Some(text),
            Payload::Bytes(_) => None,
        }
    }

    /// Bytes this item occupies: payload plus metadata keys and values.
    /// The host's output-size limit counts this.
    pub fn size_bytes(&self) -> usize {
        let payload = match &self.payload {
            Payload::Text(text) => text.len(),
            Payload::Bytes(bytes) => bytes.len(),
        };
        payload + self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_json_as_base64() {
        let item = Item::bytes(vec![0u8, 1, 2, 255]).with_metadata("page", "1");
        let json = serde_json::to_string(&item).unwrap();
        assert_eq!(json, r#"{"payload":{"bytes":"AAEC/w=="},"metadata":[["page","1"]]}"#);
        assert_eq!(serde_json::from_str::<Item>(&json).unwrap(), item);
    }

    #[test]
    fn with_metadata_replaces_existing_key() {
        let item = Item::text("x").with_metadata("a", "1").with_metadata("a", "2");
        assert_eq!(item.metadata, vec![("a".to_string(), "2".to_string())]);
        assert_eq!(item.size_bytes(), 3);
    }
}
