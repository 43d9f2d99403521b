//! Host capabilities: what a step component may reach outside its sandbox,
//! and the grant each one needs.
//!
//! Deny by default: WASI is linked with no files, no environment, no
//! network and no inherited stdio; every `weft:plugin/*` capability but
//! logging needs a grant in the workflow. A component whose imports its step
//! was not granted is rejected when the workflow is loaded, never mid-job.
//!
//! Architecture invariant: this module decides *what* is allowed and holds
//! the plain-Rust behaviour of each capability; the engine adapts it to the
//! generated wasmtime bindings. Secrets never leave the host.

pub mod logging;

/// The WIT package every capability interface lives in.
pub const PLUGIN_PACKAGE: &str = "weft:plugin";

/// The versions of the `weft:plugin` package this host accepts: any 0.1.x.
pub const SUPPORTED_PACKAGE_VERSION: (u64, u64) = (0, 1);

/// One host capability interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// The interface name without package version, e.g. `weft:plugin/logging`.
    pub interface: &'static str,
    /// The workflow grant that allows it; `None` when every step may use it.
    pub grant: Option<&'static str>,
    /// What it does, for `weft plugins` and error messages.
    pub summary: &'static str,
}

/// Every capability this host provides.
pub const CAPABILITIES: &[Capability] = &[
    Capability { interface: "weft:plugin/types", grant: None, summary: "shared data types" },
    Capability {
        interface: "weft:plugin/logging",
        grant: None,
        summary: "structured logs into the host's tracing, tagged with job, step and attempt",
    },
];

/// The grant names a workflow may use.
pub fn known_grants() -> impl Iterator<Item = &'static str> {
    CAPABILITIES.iter().filter_map(|c| c.grant)
}

/// How the host treats one import of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportClass {
    /// A WASI 0.2 interface: linked, but sandboxed (no files, env or network).
    Wasi,
    /// A Weft capability.
    Capability(Capability),
    /// A `weft:plugin` interface from a package version this host does not support.
    UnsupportedVersion {
        /// The version the component was built against.
        found: String,
    },
    /// Something this host does not provide at all.
    Unknown,
}

/// Classifies an import name such as `wasi:cli/environment@0.2.3` or
/// `weft:plugin/logging@0.1.0`.
pub fn classify_import(name: &str) -> ImportClass {
    let (interface, version) = match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    };
    if let Some(rest) = interface.strip_prefix("wasi:") {
        let package = rest.split('/').next().unwrap_or_default();
        let wasi_02 = version.is_none_or(|v| v.starts_with("0.2."));
        return if WASI_PACKAGES.contains(&package) && wasi_02 { ImportClass::Wasi } else { ImportClass::Unknown };
    }
    let Some(capability) = CAPABILITIES.iter().find(|c| c.interface == interface) else {
        return ImportClass::Unknown;
    };
    match version {
        Some(v) if !version_supported(v) => ImportClass::UnsupportedVersion { found: v.to_string() },
        _ => ImportClass::Capability(*capability),
    }
}

/// Whether a `weft:plugin` package version is one this host accepts.
pub fn version_supported(version: &str) -> bool {
    let mut parts = version.split(['.', '-', '+']).map(str::parse::<u64>);
    matches!(
        (parts.next(), parts.next()),
        (Some(Ok(major)), Some(Ok(minor))) if (major, minor) == SUPPORTED_PACKAGE_VERSION
    )
}

/// WASI 0.2 packages linked (sandboxed) into every step.
const WASI_PACKAGES: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_wasi_capabilities_and_strangers() {
        assert_eq!(classify_import("wasi:cli/environment@0.2.3"), ImportClass::Wasi);
        assert_eq!(classify_import("wasi:http/outgoing-handler@0.2.3"), ImportClass::Unknown);
        assert_eq!(classify_import("wasi:cli/environment@0.3.0"), ImportClass::Unknown);
        assert!(
            matches!(classify_import("weft:plugin/logging@0.1.0"), ImportClass::Capability(c) if c.grant.is_none())
        );
        assert!(matches!(classify_import("weft:plugin/logging@0.1.7"), ImportClass::Capability(_)));
        assert_eq!(
            classify_import("weft:plugin/logging@0.2.0"),
            ImportClass::UnsupportedVersion { found: "0.2.0".into() }
        );
        assert_eq!(classify_import("acme:secret/backdoor@1.0.0"), ImportClass::Unknown);
    }
}
