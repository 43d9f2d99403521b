//! Item metadata: ordered `(key, value)` string pairs with unique keys.
//!
//! Metadata flows on only if a step copies it; these helpers read and
//! update it without breaking the unique-keys rule.

/// The value of `key`, if the metadata has it.
pub fn get<'a>(metadata: &'a [(String, String)], key: &str) -> Option<&'a str> {
    metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Whether `key` is set to `value`.
pub fn has(metadata: &[(String, String)], key: &str, value: &str) -> bool {
    metadata.iter().any(|(k, v)| k == key && v == value)
}

/// Sets `key` to `value`: in place if the key is there, else at the end.
pub fn set(metadata: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    let value = value.into();
    match metadata.iter_mut().find(|(k, _)| k == key) {
        Some((_, old)) => *old = value,
        None => metadata.push((key.to_string(), value)),
    }
}

/// The metadata without the entries whose key is one of `keys`.
pub fn without(metadata: &[(String, String)], keys: &[&str]) -> Vec<(String, String)> {
    metadata.iter().filter(|(k, _)| !keys.contains(&k.as_str())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_and_updates_keep_keys_unique_and_ordered() {
        let mut metadata = pairs(&[("page", "1"), ("kind", "pii-findings")]);
        assert_eq!(get(&metadata, "page"), Some("1"));
        assert_eq!(get(&metadata, "nope"), None);
        assert!(has(&metadata, "kind", "pii-findings"));
        assert!(!has(&metadata, "kind", "summary"));
        set(&mut metadata, "page", "2");
        set(&mut metadata, "words", 3.to_string());
        assert_eq!(metadata, pairs(&[("page", "2"), ("kind", "pii-findings"), ("words", "3")]));
        assert_eq!(without(&metadata, &["kind", "nope"]), pairs(&[("page", "2"), ("words", "3")]));
    }
}
