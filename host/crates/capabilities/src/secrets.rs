//! Secret values the host holds and uses on a step's behalf: read from a
//! secrets file (`NAME=value` lines) or from environment variables named
//! `WEFT_SECRET_<NAME>`, never handed to a component. Only their names appear
//! in logs and errors.
//!
//! Only variables with that prefix are secrets: a workflow granting itself
//! `AWS_SECRET_ACCESS_KEY` or `NATS_PASSWORD` gets nothing from the host's
//! environment, and the load error it sees names the prefixed variable, so
//! it learns nothing about the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Where the host looks secrets up, in order: the file's entries, then the
/// environment variable of the same name.
#[derive(Clone, Default)]
pub struct SecretStore {
    file: HashMap<String, String>,
    use_environment: bool,
    /// Values set by an embedding program; they win over the others.
    explicit: HashMap<String, String>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.file.keys().chain(self.explicit.keys()).collect();
        names.sort();
        f.debug_struct("SecretStore")
            .field("names", &names)
            .field("use_environment", &self.use_environment)
            .finish_non_exhaustive()
    }
}

/// Why a secrets file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsFileError {
    /// The file could not be read.
    #[error("cannot read secrets file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not `NAME=value`.
    #[error("{path}:{line}: expected `NAME=value` (blank lines and `#` comments are allowed)")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
}

impl SecretStore {
    /// A store that also reads `WEFT_SECRET_<NAME>` environment variables (the default for `weft`).
    pub fn from_environment() -> Self {
        SecretStore { use_environment: true, ..SecretStore::default() }
    }

    /// A store with no secrets at all.
    pub fn empty() -> Self {
        SecretStore::default()
    }

    /// Adds the entries of a `NAME=value` file (values may be quoted).
    ///
    /// # Errors
    ///
    /// [`SecretsFileError`] when the file cannot be read or a line is malformed.
    pub fn with_file(mut self, path: &Path) -> Result<Self, SecretsFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SecretsFileError::Read { path: path.to_path_buf(), source })?;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((name, value)) = line.split_once('=').filter(|(n, _)| is_secret_name(n.trim())) else {
                return Err(SecretsFileError::Syntax { path: path.to_path_buf(), line: index + 1 });
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            self.file.insert(name.trim().to_string(), value.to_string());
        }
        Ok(self)
    }

    /// Sets a secret directly (for embedding programs and tests).
    pub fn with_value(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.explicit.insert(name.into(), value.into());
        self
    }

    /// The value of `name`, if the host has one.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        if let Some(value) = self.explicit.get(name).or_else(|| self.file.get(name)) {
            return Some(value.clone());
        }
        if self.use_environment && is_secret_name(name) {
            return std::env::var(environment_variable(name)).ok();
        }
        None
    }

    /// The value of `name`, for the host's own use (its at-rest keys);
    /// never hand it to a component.
    pub fn host_value(&self, name: &str) -> Option<String> {
        self.get(name)
    }

    /// Whether the host has a value for `name`.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// The environment variable that holds secret `name`: `WEFT_SECRET_<name>`.
pub fn environment_variable(name: &str) -> String {
    format!("{ENVIRONMENT_PREFIX}{name}")
}

/// The prefix of environment variables that hold secrets.
pub const ENVIRONMENT_PREFIX: &str = "WEFT_SECRET_";

/// Secret names look like environment variable names.
pub fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// HMAC-SHA256 of `data` keyed by `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_entries_and_explicit_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.env");
        std::fs::write(&path, "# signing\nWEBHOOK_KEY=\"s3cret\"\nexport OTHER='x y'\n\n").unwrap();
        let store = SecretStore::empty().with_file(&path).unwrap().with_value("OTHER", "z");
        assert_eq!(store.get("WEBHOOK_KEY").as_deref(), Some("s3cret"));
        assert_eq!(store.get("OTHER").as_deref(), Some("z"));
        assert!(!store.has("PATH"), "an empty store does not read the environment");
        assert!(!format!("{store:?}").contains("s3cret"), "Debug never shows values");

        std::fs::write(&path, "GOOD=1\nnot a line\n").unwrap();
        let error = SecretStore::empty().with_file(&path).unwrap_err().to_string();
        assert!(error.ends_with(":2: expected `NAME=value` (blank lines and `#` comments are allowed)"), "{error}");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(weft_core::hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
