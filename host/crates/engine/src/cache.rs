//! The on-disk cache of compiled components, so a second `weft run` loads
//! machine code instead of compiling again.
//!
//! An entry is keyed by the SHA-256 of the engine's compatibility hash
//! (Wasmtime version, target, compilation settings) and of the SHA-256 of
//! the component's bytes (computed at build time for embedded plugins): a new
//! Wasmtime or different engine settings never load stale code.
//! Each entry carries the SHA-256 of its artifact, checked before the
//! artifact is handed to Wasmtime, so a truncated or altered file is
//! recompiled rather than trusted.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where compiled components are kept when no directory is configured:
/// `$WEFT_CACHE_DIR`, else `$XDG_CACHE_HOME/weft`, else `$HOME/.cache/weft`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEFT_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("weft"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("weft"))
}

/// A directory of compiled artifacts.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    engine_fingerprint: [u8; 32],
}

/// Feeds `Hash` output into SHA-256 so the engine hash is stable across runs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    pub(crate) fn new(dir: Option<PathBuf>, engine: &wasmtime::Engine) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        CompileCache { dir, engine_fingerprint: hasher.0.finalize().into() }
    }

    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The cache key of a component's bytes under this engine.
    pub(crate) fn key(&self, component: &[u8]) -> String {
        self.key_of_digest(&Sha256::digest(component).into())
    }

    /// The cache key of a component whose bytes have this SHA-256.
    pub(crate) fn key_of_digest(&self, component_digest: &[u8; 32]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.engine_fingerprint);
        hasher.update(component_digest);
        hex(&hasher.finalize())
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(format!("{key}.cwasm")))
    }

    /// Whether an entry exists for `key` (it may still fail its checksum).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.path(key).is_some_and(|p| p.is_file())
    }

    /// The path of the verified artifact for `key`, if present and intact:
    /// its SHA-256 (the file's last 32 bytes) is checked by streaming the
    /// file through the hasher, so checking costs no memory and the caller
    /// can map the file rather than copy it (only the code a step runs then
    /// becomes resident). Entries are never rewritten in place (see
    /// [`CompileCache::store`]), so the file checked is the file mapped.
    pub(crate) fn verified(&self, key: &str) -> Option<PathBuf> {
        let path = self.path(key)?;
        let intact = (|| -> std::io::Result<bool> {
            let mut file = fs::File::open(&path)?;
            let len = file.metadata()?.len();
            if len < 32 {
                return Ok(false);
            }
            let mut hasher = Sha256::new();
            std::io::copy(&mut (&mut file).take(len - 32), &mut hasher)?;
            let mut checksum = [0u8; 32];
            file.read_exact(&mut checksum)?;
            Ok(hasher.finalize().as_slice() == checksum)
        })();
        match intact {
            Ok(true) => Some(path),
            Ok(false) => {
                tracing::warn!(path = %path.display(), "compiled component failed its checksum; recompiling");
                None
            }
            Err(_) => None,
        }
    }

    /// Stores an artifact atomically (write to a temporary file, then rename),
    /// so concurrent hosts never read a half-written entry. Failures only
    /// cost a recompile next time, so they are logged, not returned.
    pub(crate) fn store(&self, key: &str, artifact: &[u8]) {
        let (Some(dir), Some(path)) = (self.dir.as_ref(), self.path(key)) else { return };
        let result = (|| -> std::io::Result<()> {
            fs::create_dir_all(dir)?;
            let mut tmp = tempfile_in(dir)?;
            tmp.1.write_all(artifact)?;
            tmp.1.write_all(&Sha256::digest(artifact))?;
            tmp.1.sync_all()?;
            fs::rename(&tmp.0, &path)
        })();
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "could not write the compile cache");
        }
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    let name = format!(".tmp-{}-{}", std::process::id(), rand::random::<u64>());
    let path = dir.join(name);
    let file = fs::File::create_new(&path)?;
    Ok((path, file))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
