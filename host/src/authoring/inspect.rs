//! `weft plugin inspect`: what a component file targets, imports and
//! exports, which grants it needs, and every reason it cannot be used as a
//! step, read from the component's own type information without compiling
//! it (a Python component takes tens of seconds to compile).
//!
//! The import rules are [`capabilities::classify_import`]'s, so what this
//! reports is what loading the component into a workflow would decide.

use std::fmt::Write as _;
use std::path::Path;

use wit_parser::decoding::{DecodedWasm, decode};
use wit_parser::{Resolve, Type, TypeDefKind, WorldItem};

use crate::capabilities::{self, ImportClass};
use crate::engine::{Engine, EngineError, EngineSettings};

/// The signature the `step` world's `run` export has, as this module prints it.
pub const STEP_RUN_SIGNATURE: &str =
    "func(ctx: context, input: list<item>, config: string) -> result<list<item>, step-error>";

/// Interfaces that the `capable-step` world adds to `step`; a component
/// importing one of them targets `capable-step`.
const CAPABLE_STEP_INTERFACES: &[&str] = &["http", "llm", "email", "secrets"];

/// Why a file could not be inspected at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file as the user named it.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly.
    #[error("{file} is not a WebAssembly file (it does not start with the `\\0asm` magic number)")]
    NotWasm {
        /// The file as the user named it.
        file: String,
    },
    /// A core module, not a component.
    #[error(
        "{file} is a core WebAssembly module, not a component; steps are WASI 0.2 components \
         (Rust: build for `--target wasm32-wasip2`; otherwise wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// The file as the user named it.
        file: String,
    },
    /// A WIT package encoded as Wasm, not a component.
    #[error("{file} is a binary-encoded WIT package, not a component")]
    WitPackage {
        /// The file as the user named it.
        file: String,
    },
    /// The component's types could not be decoded.
    #[error("{file} is not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The file as the user named it.
        file: String,
        /// The decoder's message.
        reason: String,
    },
}

/// How the host treats one import.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ImportKind {
    /// A WASI 0.2 interface: linked, sandboxed (no files, env or network).
    Wasi,
    /// A Weft capability; `grant` is the workflow grant it needs, if any.
    Capability {
        /// The grant a step using it must be given; `None`: every step may use it.
        grant: Option<String>,
        /// What the capability does.
        summary: String,
    },
    /// A `weft:plugin` interface from a version this host does not accept.
    UnsupportedVersion {
        /// The version the component was built against.
        found: String,
    },
    /// Nothing this host provides.
    Unknown,
}

/// One import of the component.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportInfo {
    /// E.g. `weft:plugin/logging@0.1.0`, or a bare function name.
    pub name: String,
    /// What the host does with it.
    #[serde(flatten)]
    pub kind: ImportKind,
}

/// One export of the component.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportInfo {
    /// E.g. `run`, or an interface name.
    pub name: String,
    /// For a function, its WIT signature.
    pub signature: Option<String>,
}

/// What `weft plugin inspect` reports about one component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// The file as the user named it.
    pub file: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// The `weft:plugin` world it targets, e.g. `weft:plugin/step@0.1.0`,
    /// when it can be told.
    pub world: Option<String>,
    /// The `weft:plugin` package version it was built against.
    pub package_version: Option<String>,
    /// Its imports, in the component's order.
    pub imports: Vec<ImportInfo>,
    /// Its exports, in the component's order.
    pub exports: Vec<ExportInfo>,
    /// The workflow grants its capability calls need (`grants:` in the
    /// workflow); without them those calls are denied.
    pub required_grants: Vec<String>,
    /// Whether it is already compiled in the cache (`None`: no cache configured).
    pub cached: Option<bool>,
    /// Every reason it cannot be used as a step; empty when it can.
    pub problems: Vec<String>,
}

impl Inspection {
    /// Whether a workflow step can run this component.
    pub fn usable_as_step(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report as people read it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "file:     {} ({})", self.file, human_size(self.size));
        let _ = writeln!(out, "world:    {}", self.world.as_deref().unwrap_or("unknown (not a weft:plugin component)"));
        let _ = writeln!(out, "exports:");
        if self.exports.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for export in &self.exports {
            match &export.signature {
                Some(signature) => _ = writeln!(out, "  {}: {signature}", export.name),
                None => _ = writeln!(out, "  {}", export.name),
            }
        }
        let _ = writeln!(out, "imports:");
        if self.imports.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        // WASI is linked for every step and always sandboxed: one line for all of it.
        let wasi: Vec<&str> = self.imports.iter().filter(|i| i.kind == ImportKind::Wasi).map(|i| &*i.name).collect();
        let mut wasi_packages: Vec<&str> =
            wasi.iter().filter_map(|name| name.strip_prefix("wasi:")?.split('/').next()).collect();
        wasi_packages.dedup();
        let others: Vec<&ImportInfo> = self.imports.iter().filter(|i| i.kind != ImportKind::Wasi).collect();
        let width = others.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for import in others {
            let what = match &import.kind {
                ImportKind::Wasi => String::new(),
                ImportKind::Capability { grant: None, summary } => format!("{summary} (no grant needed)"),
                ImportKind::Capability { grant: Some(grant), summary } => {
                    format!("{summary} (calls need grant `{grant}`)")
                }
                ImportKind::UnsupportedVersion { found } => format!("weft:plugin@{found}: a version this host refuses"),
                ImportKind::Unknown => "NOT PROVIDED by this host".to_string(),
            };
            let _ = writeln!(out, "  {:width$}  {what}", import.name);
        }
        if !wasi.is_empty() {
            let _ = writeln!(
                out,
                "  + {} WASI 0.2 interfaces ({}), sandboxed: no files, environment or network",
                wasi.len(),
                wasi_packages.join(", ")
            );
        }
        let grants = if self.required_grants.is_empty() { "none".to_string() } else { self.required_grants.join(", ") };
        let _ = writeln!(out, "grants:   {grants} (what its step must grant for its capability calls to succeed)");
        let cache = match self.cached {
            Some(true) => "compiled (a run loads machine code without compiling)",
            Some(false) => "not compiled yet (the first run compiles it and caches the result)",
            None => "no compile cache configured",
        };
        let _ = writeln!(out, "cache:    {cache}");
        if self.problems.is_empty() {
            let _ = writeln!(out, "usable:   yes, as a workflow step");
        } else {
            let _ = writeln!(out, "usable:   no, it cannot be used as a step:");
            for problem in &self.problems {
                let _ = writeln!(out, "  - {problem}");
            }
        }
        out
    }
}

/// Inspects the component at `path` as a host with `settings` would see it:
/// `cached` comes from that host's compile cache. With `compile`, it is also
/// compiled and prepared exactly as a workflow step would be (which fills
/// the cache), and anything that fails there joins `problems`.
///
/// # Errors
///
/// [`InspectError::Read`] when the file cannot be read; otherwise as
/// [`inspect_bytes`].
pub fn inspect_file(path: &Path, settings: EngineSettings, compile: bool) -> Result<Inspection, InspectError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| InspectError::Read { file: file.clone(), source })?;
    // Inspection runs one component at most: no instance pool needed.
    let engine = Engine::new(EngineSettings { pooling: false, ..settings }).ok();
    let cached = engine.as_ref().filter(|e| e.cache_dir().is_some()).map(|e| e.is_cached(&bytes));
    let mut inspection = inspect_bytes(&file, &bytes, cached)?;
    if compile && let Some(engine) = &engine {
        let name = path.file_stem().map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned());
        match engine.load_plugin(&name, &bytes) {
            Ok(_) => inspection.cached = inspection.cached.map(|_| true),
            Err(EngineError::InvalidComponent { reason, .. }) => {
                if !inspection.problems.contains(&reason) {
                    inspection.problems.push(reason);
                }
            }
            Err(other) => inspection.problems.push(other.to_string()),
        }
    }
    Ok(inspection)
}

/// Inspects component bytes; `file` names them in messages. `cached` is the
/// engine's answer for these bytes, if a cache is configured.
///
/// # Errors
///
/// [`InspectError`] when the bytes are not a component at all; a component
/// that cannot be a step is a successful [`Inspection`] with `problems`.
pub fn inspect_bytes(file: &str, bytes: &[u8], cached: Option<bool>) -> Result<Inspection, InspectError> {
    let file_name = || file.to_string();
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(InspectError::NotWasm { file: file_name() });
    }
    // Layer 0x00 with version 1 is a core module; components use layer 0x01.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(InspectError::CoreModule { file: file_name() });
    }
    let (resolve, world_id) = match decode(bytes) {
        Ok(DecodedWasm::Component(resolve, world)) => (resolve, world),
        Ok(DecodedWasm::WitPackage(..)) => return Err(InspectError::WitPackage { file: file_name() }),
        Err(error) => return Err(InspectError::Invalid { file: file_name(), reason: format!("{error:#}") }),
    };
    let world = &resolve.worlds[world_id];

    let imports: Vec<ImportInfo> = world
        .imports
        .iter()
        .filter(|(_, item)| !matches!(item, WorldItem::Type { .. }))
        .map(|(key, _)| {
            let name = resolve.name_world_key(key);
            let kind = match capabilities::classify_import(&name) {
                ImportClass::Wasi => ImportKind::Wasi,
                ImportClass::Capability(cap) => {
                    ImportKind::Capability { grant: cap.grant.map(str::to_string), summary: cap.summary.to_string() }
                }
                ImportClass::UnsupportedVersion { found } => ImportKind::UnsupportedVersion { found },
                ImportClass::Unknown => ImportKind::Unknown,
            };
            ImportInfo { name, kind }
        })
        .collect();
    let exports: Vec<ExportInfo> = world
        .exports
        .iter()
        .map(|(key, item)| ExportInfo {
            name: resolve.name_world_key(key),
            signature: match item {
                WorldItem::Function(function) => Some(signature(&resolve, &function.params, function.result)),
                _ => None,
            },
        })
        .collect();

    let package_version = imports
        .iter()
        .find_map(|i| i.name.strip_prefix(capabilities::PLUGIN_PACKAGE)?.split_once('@').map(|(_, v)| v.to_string()));
    let capable = imports.iter().any(|i| {
        i.name
            .strip_prefix("weft:plugin/")
            .is_some_and(|rest| CAPABLE_STEP_INTERFACES.contains(&rest.split('@').next().unwrap_or_default()))
    });
    let run = exports.iter().find(|e| e.name == "run");
    let world_name = match (&package_version, run) {
        (Some(version), Some(_)) => {
            Some(format!("weft:plugin/{}@{version}", if capable { "capable-step" } else { "step" }))
        }
        _ => None,
    };

    let mut problems = Vec::new();
    let mut refused_versions: Vec<&str> = Vec::new();
    for import in &imports {
        match &import.kind {
            ImportKind::UnsupportedVersion { found } => {
                if !refused_versions.contains(&found.as_str()) {
                    refused_versions.push(found);
                    problems.push(format!(
                        "it was built against weft:plugin@{found}, but this host accepts weft:plugin@{}.{}.x; \
                         rebuild it against the WIT of this host (`weft plugin new` copies it)",
                        capabilities::SUPPORTED_PACKAGE_VERSION.0,
                        capabilities::SUPPORTED_PACKAGE_VERSION.1
                    ));
                }
            }
            ImportKind::Unknown => problems.push(format!(
                "it imports `{}`, which this host does not provide{}",
                import.name,
                unknown_import_hint(&import.name)
            )),
            ImportKind::Wasi | ImportKind::Capability { .. } => {}
        }
    }
    match run {
        None => problems.push(format!(
            "it does not export a `run` function (exports: {}); build it for the `weft:plugin/step` world",
            if exports.is_empty() {
                "none".to_string()
            } else {
                exports.iter().map(|e| format!("`{}`", e.name)).collect::<Vec<_>>().join(", ")
            }
        )),
        Some(ExportInfo { signature: Some(found), .. }) if found != STEP_RUN_SIGNATURE => problems.push(format!(
            "its `run` export is `{found}`, but the step world's is `{STEP_RUN_SIGNATURE}`; \
             rebuild it against this host's wit/step.wit"
        )),
        Some(ExportInfo { signature: None, .. }) => {
            problems.push("its `run` export is an interface, not the step world's `run` function".to_string())
        }
        Some(_) => {}
    }
    let mut required_grants: Vec<String> = imports
        .iter()
        .filter_map(|i| match &i.kind {
            ImportKind::Capability { grant: Some(grant), .. } => Some(grant.clone()),
            _ => None,
        })
        .collect();
    required_grants.dedup();

    Ok(Inspection {
        file: file.to_string(),
        size: bytes.len(),
        world: world_name,
        package_version,
        imports,
        exports,
        required_grants,
        cached,
        problems,
    })
}

/// A hint for imports authors commonly pull in by accident.
fn unknown_import_hint(name: &str) -> &'static str {
    if name.starts_with("wasi:http/") {
        "; steps reach the network only through granted weft:plugin capabilities \
         (JavaScript: build with `componentize-js --disable http fetch-event`)"
    } else if name.starts_with("wasi:") {
        "; this host links WASI 0.2 cli, clocks, filesystem, io, random and sockets (all sandboxed)"
    } else {
        ""
    }
}

fn signature(resolve: &Resolve, params: &[wit_parser::Param], result: Option<Type>) -> String {
    let params: Vec<String> = params.iter().map(|p| format!("{}: {}", p.name, type_name(resolve, &p.ty))).collect();
    match result {
        Some(ty) => format!("func({}) -> {}", params.join(", "), type_name(resolve, &ty)),
        None => format!("func({})", params.join(", ")),
    }
}

/// A WIT type as it is written in a `.wit` file.
fn type_name(resolve: &Resolve, ty: &Type) -> String {
    let id = match ty {
        Type::Bool => return "bool".into(),
        Type::U8 => return "u8".into(),
        Type::U16 => return "u16".into(),
        Type::U32 => return "u32".into(),
        Type::U64 => return "u64".into(),
        Type::S8 => return "s8".into(),
        Type::S16 => return "s16".into(),
        Type::S32 => return "s32".into(),
        Type::S64 => return "s64".into(),
        Type::F32 => return "f32".into(),
        Type::F64 => return "f64".into(),
        Type::Char => return "char".into(),
        Type::String => return "string".into(),
        Type::ErrorContext => return "error-context".into(),
        Type::Id(id) => *id,
    };
    let def = &resolve.types[id];
    if let Some(name) = &def.name {
        return name.clone();
    }
    let optional = |t: &Option<Type>| t.as_ref().map_or_else(|| "_".to_string(), |t| type_name(resolve, t));
    match &def.kind {
        TypeDefKind::List(t) => format!("list<{}>", type_name(resolve, t)),
        TypeDefKind::Option(t) => format!("option<{}>", type_name(resolve, t)),
        TypeDefKind::Result(r) => format!("result<{}, {}>", optional(&r.ok), optional(&r.err)),
        TypeDefKind::Tuple(t) => {
            format!("tuple<{}>", t.types.iter().map(|t| type_name(resolve, t)).collect::<Vec<_>>().join(", "))
        }
        TypeDefKind::Type(t) => type_name(resolve, t),
        TypeDefKind::Future(t) => format!("future<{}>", optional(t)),
        TypeDefKind::Stream(t) => format!("stream<{}>", optional(t)),
        other => other.as_str().to_string(),
    }
}

fn human_size(bytes: usize) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    #[allow(clippy::cast_precision_loss)]
    let size = bytes as f64;
    if size >= MIB { format!("{:.1} MiB", size / MIB) } else { format!("{:.1} KiB", size / 1024.0) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn non_components_are_refused_with_the_reason() {
        let not_wasm = inspect_bytes("x.wasm", b"hello world", None).unwrap_err();
        assert!(not_wasm.to_string().contains("not a WebAssembly file"), "{not_wasm}");
        let core = inspect_bytes("m.wasm", b"\0asm\x01\0\0\0", None).unwrap_err();
        assert!(core.to_string().contains("core WebAssembly module, not a component"), "{core}");
    }
}
