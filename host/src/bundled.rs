//! What the `weft` binary carries with it: the standard step library and the
//! example workflows, embedded at build time by `host/build.rs`, so
//! `cargo install --path host` alone yields a `weft` that runs the bundled
//! workflows from any directory.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The embedded plugins as `(name, component bytes)`.
pub fn builtin_plugins() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    BUILTIN_PLUGINS.iter().map(|(name, bytes, _)| (*name, *bytes))
}

/// The SHA-256 of an embedded plugin's bytes, computed at build time, when
/// `bytes` is one of [`builtin_plugins`] (compared by address, so the bytes
/// themselves are not read).
pub(crate) fn builtin_digest(bytes: &'static [u8]) -> Option<[u8; 32]> {
    BUILTIN_PLUGINS.iter().find(|(_, embedded, _)| std::ptr::eq(*embedded, bytes)).map(|(_, _, digest)| *digest)
}

/// The bundled workflows (`workflows/*.yaml`) as `(name, YAML text)`.
pub fn bundled_workflows() -> impl Iterator<Item = (&'static str, &'static str)> {
    BUNDLED_WORKFLOWS.iter().copied()
}
