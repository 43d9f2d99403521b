//! The on-disk cache of compiled components, so a second `weft run` loads
//! machine code instead of compiling again.
//!
//! An entry is keyed by the SHA-256 of the engine's compatibility hash
//! (Wasmtime version, target, compilation settings) and of the SHA-256 of
//! the component's bytes (computed at build time for embedded plugins): a new
//! Wasmtime or different engine settings never load stale code.
//!
//! Loading an entry means running its machine code, so the cache trusts only
//! entries this install wrote: each carries an HMAC-SHA256, under a 32-byte
//! key only this install holds (`install.key`, mode 0600, in the cache
//! directory), of the entry's cache key and its artifact. It is checked, in
//! constant time, before the artifact is handed to Wasmtime. A checksum would
//! only prove the file is intact; the key proves who wrote it, and binding
//! the cache key stops an attacker who may write to a shared cache directory
//! from renaming one valid artifact to another component's key (running one
//! plugin in place of another). An entry that fails is recompiled, with a
//! warning naming the file. A key file others can read, or that someone
//! else owns, is refused with a warning and the cache is off for that host.
//!
//! It must never hand Wasmtime a file it has not authenticated, nor write an
//! entry without its tag.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The install key's file name, inside the cache directory.
pub(crate) const KEY_FILE: &str = "install.key";

/// Bytes of the install key and of an entry's tag.
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 32;

/// Separates this use of the install key from any other (and from the
/// checksummed entries of earlier versions).
const TAG_DOMAIN: &[u8] = b"weft compile cache entry v2\0";

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

/// Why an install key cannot be used; the cache is then off.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InstallKeyError {
    #[error("cannot create or read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is not a regular file (a symbolic link?); delete it and a new key is made on the next run")]
    NotAFile,
    #[error(
        "other users may read or change it (mode {mode:04o}), so they could forge cache entries; \
         run `chmod 600` on it, or delete it and a new key is made on the next run"
    )]
    Exposed { mode: u32 },
    #[error(
        "it belongs to user {owner}, not to this user ({me}), who could then forge cache entries; \
         delete it and a new key is made on the next run"
    )]
    NotOwned { owner: u32, me: u32 },
    #[error("it holds {len} bytes instead of {KEY_LEN}; delete it and a new key is made on the next run")]
    Malformed { len: u64 },
}

/// A directory of compiled artifacts and the key that authenticates them.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    /// The directory and install key; `None` when caching is off.
    store: Option<(PathBuf, [u8; KEY_LEN])>,
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

/// An entry whose tag was verified, still open, so the file mapped is the
/// file that was checked (see [`VerifiedEntry::map_path`]).
pub(crate) struct VerifiedEntry {
    file: fs::File,
    path: PathBuf,
}

impl VerifiedEntry {
    /// The cache file's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A path that opens the very file that was verified. On Linux that is
    /// `/proc/self/fd/N` of the open file, so renaming another file into
    /// place after the check changes nothing; elsewhere, the entry's path.
    pub(crate) fn map_path(&self) -> PathBuf {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            let by_fd = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
            if by_fd.exists() {
                return by_fd;
            }
        }
        let _ = &self.file;
        self.path.clone()
    }
}

impl CompileCache {
    /// A cache in `dir` (none: caching off). Reads this install's key, or
    /// creates it on first use; a key that cannot be trusted turns the
    /// cache off, with a warning saying why and what to do.
    pub(crate) fn new(dir: Option<PathBuf>, engine: &wasmtime::Engine) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        // Entries of the earlier, checksummed format get other names, so an
        // upgrade recompiles them quietly instead of warning about each.
        hasher.0.update(TAG_DOMAIN);
        let store = dir.and_then(|dir| match install_key(&dir) {
            Ok(key) => Some((dir, key)),
            Err(error) => {
                tracing::warn!(
                    path = %dir.join(KEY_FILE).display(),
                    "the compile cache's install key is not used, so compiled components are not cached: {error}"
                );
                None
            }
        });
        CompileCache { store, engine_fingerprint: hasher.0.finalize().into() }
    }

    /// The cache directory, when caching is on.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.store.as_ref().map(|(dir, _)| dir.as_path())
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
        self.dir().map(|dir| dir.join(format!("{key}.cwasm")))
    }

    /// Whether an entry exists for `key` (it may still fail its check).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.path(key).is_some_and(|p| p.is_file())
    }

    /// A MAC over `key` and the artifact bytes fed to it afterwards.
    fn mac(install_key: &[u8; KEY_LEN], key: &str) -> HmacSha256 {
        // A key of any length is accepted by HMAC, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(install_key).unwrap_or_else(|_| unreachable!());
        mac.update(TAG_DOMAIN);
        mac.update(key.as_bytes());
        mac
    }

    /// The entry for `key`, if present and written by this install for this
    /// key: its tag (the file's last 32 bytes) is recomputed by streaming the
    /// file through the MAC, so checking costs no memory and the caller can
    /// map the file rather than copy it (only the code a step runs then
    /// becomes resident), and compared in constant time.
    pub(crate) fn verified(&self, key: &str) -> Option<VerifiedEntry> {
        let (_, install_key) = self.store.as_ref()?;
        let path = self.path(key)?;
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read a compiled component in the cache; recompiling");
                return None;
            }
        };
        let authentic = (|| -> std::io::Result<bool> {
            let len = file.metadata()?.len();
            if len < TAG_LEN as u64 {
                return Ok(false);
            }
            let mut mac = Self::mac(install_key, key);
            let mut remaining = len - TAG_LEN as u64;
            let mut buffer = vec![0u8; 256 * 1024];
            while remaining > 0 {
                let want = usize::try_from(remaining.min(buffer.len() as u64)).unwrap_or(buffer.len());
                let read = file.read(&mut buffer[..want])?;
                if read == 0 {
                    return Ok(false);
                }
                mac.update(&buffer[..read]);
                remaining -= read as u64;
            }
            let mut tag = [0u8; TAG_LEN];
            file.read_exact(&mut tag)?;
            Ok(mac.verify_slice(&tag).is_ok())
        })();
        match authentic {
            Ok(true) => Some(VerifiedEntry { file, path }),
            Ok(false) => {
                tracing::warn!(
                    path = %path.display(),
                    "compiled component in the cache was not written by this install for this component \
                     (swapped, forged or damaged); recompiling it"
                );
                None
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read a compiled component in the cache; recompiling");
                None
            }
        }
    }

    /// Stores an artifact with its tag atomically (write to a temporary
    /// file, then rename), so concurrent hosts never read a half-written
    /// entry. Failures only cost a recompile next time, so they are logged,
    /// not returned.
    pub(crate) fn store(&self, key: &str, artifact: &[u8]) {
        let (Some((dir, install_key)), Some(path)) = (self.store.as_ref(), self.path(key)) else { return };
        let result = (|| -> std::io::Result<()> {
            fs::create_dir_all(dir)?;
            let mut tmp = tempfile_in(dir)?;
            let mut mac = Self::mac(install_key, key);
            mac.update(artifact);
            tmp.1.write_all(artifact)?;
            tmp.1.write_all(&mac.finalize().into_bytes())?;
            tmp.1.sync_all()?;
            fs::rename(&tmp.0, &path)
        })();
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "could not write the compile cache");
        }
    }
}

/// Reads this install's key from `dir`, creating the directory and the key
/// on first use. The key is written to a temporary file (created new, mode
/// 0600) and hard-linked into place, which fails if another host made the
/// key first: a key file is never seen half written, and never replaced.
fn install_key(dir: &Path) -> Result<[u8; KEY_LEN], InstallKeyError> {
    fs::create_dir_all(dir)?;
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        let key: [u8; KEY_LEN] = rand::random();
        let (tmp_path, mut tmp) = tempfile_in(dir)?;
        let written = tmp.write_all(&key).and_then(|()| tmp.sync_all()).and_then(|()| fs::hard_link(&tmp_path, &path));
        let _ = fs::remove_file(&tmp_path);
        match written {
            Ok(()) => return Ok(key),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error.into()),
        }
    }
    read_install_key(&path)
}

/// Reads an existing key, refusing one that others could read or forge with.
fn read_install_key(path: &Path) -> Result<[u8; KEY_LEN], InstallKeyError> {
    if !fs::symlink_metadata(path)?.file_type().is_file() {
        return Err(InstallKeyError::NotAFile);
    }
    let mut file = fs::File::open(path)?;
    // Checked on the open file, so what is checked is what is read.
    let metadata = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let mode = metadata.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(InstallKeyError::Exposed { mode });
        }
        let me = own_uid(path.parent().unwrap_or(Path::new(".")))?;
        if metadata.uid() != me {
            return Err(InstallKeyError::NotOwned { owner: metadata.uid(), me });
        }
    }
    if metadata.len() != KEY_LEN as u64 {
        return Err(InstallKeyError::Malformed { len: metadata.len() });
    }
    let mut key = [0u8; KEY_LEN];
    file.read_exact(&mut key)?;
    Ok(key)
}

/// This process's user id, as the owner of a file it creates in `dir` (the
/// standard library has no `geteuid`, and the host has no `unsafe` code).
#[cfg(unix)]
fn own_uid(dir: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let (path, file) = tempfile_in(dir)?;
    let uid = file.metadata().map(|m| m.uid());
    let _ = fs::remove_file(&path);
    uid
}

/// A new file in `dir` that only this user may read (mode 0600 on Unix).
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    let name = format!(".tmp-{}-{}", std::process::id(), rand::random::<u64>());
    let path = dir.join(name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options.open(&path)?;
    Ok((path, file))
}

pub(crate) use weft_core::hex;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_new_key_file_is_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let made = install_key(dir.path()).unwrap();
        assert_eq!(install_key(dir.path()).unwrap(), made, "the second host reads the key the first made");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, [std::ffi::OsString::from(KEY_FILE)], "no temporary file is left behind");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        install_key(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let error = install_key(dir.path()).unwrap_err();
        assert!(matches!(error, InstallKeyError::Exposed { mode: 0o640 }), "{error:?}");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }

    #[test]
    fn a_key_file_of_the_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        install_key(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"x").unwrap();
        assert!(matches!(install_key(dir.path()), Err(InstallKeyError::Malformed { len: 33 })));
    }
}
