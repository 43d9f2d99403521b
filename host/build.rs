//! Builds the workspace's Wasm components and embeds the standard step
//! library into the `weft` binary.
//!
//! This is the one plugin build command: `cargo build` (or `cargo test`,
//! `cargo install --path host`) runs it over every directory under
//! `plugins/` (the standard library, embedded) and `tests/components/`
//! (misbehaving components for the integration tests, not embedded):
//!
//! - a Rust crate (`Cargo.toml`) is built by a nested
//!   `cargo build --release --target wasm32-wasip2`, with its own target
//!   directory so it never waits on the outer build's lock;
//! - a Python plugin (`pyproject.toml` or `app.py`) by `componentize-py`;
//! - a JavaScript plugin (`package.json`) by `componentize-js`, from the
//!   pinned toolchain in `tools/js/node_modules`.
//!
//! The Python and JavaScript builds take tens of seconds each, so their
//! outputs are cached under `target/wasm/lang-cache/` by a hash of their
//! sources, the WIT and the tool versions: an incremental build or test run
//! rebuilds only what changed. They run in parallel with the nested cargo
//! build. `bash scripts/setup.sh` installs both tools.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| fail("host/ has no parent directory"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR is not set")));

    for watched in [
        "wit",
        "plugins",
        "tests/components",
        "sdk",
        "workflows",
        "Cargo.toml",
        "Cargo.lock",
        "tools/python/requirements.txt",
        "tools/js/package-lock.json",
        "tools/js/node_modules/.weft-installed-lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=WEFT_COMPONENTIZE_PY");
    println!("cargo:rerun-if-env-changed=WEFT_NODE");

    let standard_sources = component_sources(&root.join("plugins"));
    let test_sources = component_sources(&root.join("tests/components"));
    // Cargo scans a watched directory recursively and counts the mtimes of
    // the directories in it too, so adding or removing a component directory
    // (which touches `plugins/` or `tests/components/`) reruns this script;
    // checked with cargo 1.95: an added empty directory, a directory moved in
    // with old mtimes, `rmdir` and `rm -r` each reran it. A watched path that
    // disappears reruns it whatever the mtimes say, so each component
    // directory is watched by name too: a removed component is never
    // embedded from a stale build even if the parent's mtime was restored
    // (as some checkout and cache tools do).
    for source in standard_sources.iter().chain(&test_sources) {
        println!("cargo:rerun-if-changed={}", source.dir.display());
    }
    let rust_crates = |sources: &[ComponentSource]| -> Vec<String> {
        sources.iter().filter(|s| s.language == Language::Rust).map(|s| s.name.clone()).collect()
    };
    let standard = rust_crates(&standard_sources);
    let test_only = rust_crates(&test_sources);
    let wasm_target_dir = root.join("target").join("wasm");
    let artifacts = wasm_target_dir.join(WASM_TARGET).join("release");

    // Python and JavaScript components build on their own threads while the
    // nested cargo build runs.
    let other_languages: Vec<ComponentSource> =
        standard_sources.iter().chain(&test_sources).filter(|s| s.language != Language::Rust).cloned().collect();
    let toolchains = Toolchains::detect(&root, &other_languages);
    let language_builds: Vec<_> = other_languages
        .into_iter()
        .map(|source| {
            let job = toolchains.job(&root, &wasm_target_dir, &source);
            std::thread::spawn(move || job.map(|job| job.run()).and_then(|built| built))
        })
        .collect();

    let mut cargo = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&root)
        .args(["build", "--release", "--target", WASM_TARGET, "--target-dir"])
        .arg(&wasm_target_dir)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    for name in standard.iter().chain(&test_only) {
        cargo.args(["-p", name]);
    }
    // The outer build's flags, wrappers (clippy, coverage) and target belong
    // to the host, not to the guest components.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let inherited_build_setting = key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_BUILD_")
            || key.starts_with("CARGO_TARGET_")
            || key.starts_with("CARGO_ENCODED_")
            || key.starts_with("CARGO_PROFILE_")
            || matches!(
                &*key,
                "RUSTFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_CRATE_NAME"
                    | "OUT_DIR"
                    | "TARGET"
                    | "HOST"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "LLVM_PROFILE_FILE"
            );
        if inherited_build_setting {
            cargo.env_remove(&*key);
        }
    }

    // Components ship inside the binary: keep them lean. Function names stay
    // (for readable traps); DWARF goes.
    cargo.env("CARGO_PROFILE_RELEASE_DEBUG", "false").env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    // Whole-program optimisation: one codegen unit, fat LTO across the
    // crate and its dependencies, and no unwinding tables (a Wasm panic
    // traps either way). The sandboxed pdf-load step took about 8-15% less
    // CPU per document for it (bench/results/pdf-load-sandbox.md).
    cargo
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort");

    let status =
        cargo.status().unwrap_or_else(|e| fail(&format!("could not start cargo to build the components: {e}")));
    let mut errors = Vec::new();
    if !status.success() {
        errors.push(format!(
            "building the Rust components failed (see the cargo output above). \
             If the error mentions a missing target, run `rustup target add {WASM_TARGET}`"
        ));
    }
    for build in language_builds {
        match build.join() {
            Ok(Ok(built)) => {
                if let Err(e) = fs::create_dir_all(&artifacts)
                    .and_then(|()| copy_if_changed(&built.wasm, &artifacts.join(&built.file_name)))
                {
                    errors.push(format!("cannot copy {} into {}: {e}", built.wasm.display(), artifacts.display()));
                }
            }
            Ok(Err(message)) => errors.push(message),
            Err(_) => errors.push("a component build thread panicked".into()),
        }
    }
    if !errors.is_empty() {
        fail(&errors.join("\nerror: "));
    }

    let mut generated = String::from(
        "/// The standard step library, built from `plugins/` and embedded at compile time,\n\
         /// each with the SHA-256 of its bytes (so finding it in the compile cache\n\
         /// does not read the bytes, which then stay out of memory).\n\
         pub(crate) static BUILTIN_PLUGINS: &[(&str, &[u8], [u8; 32])] = &[\n",
    );
    for name in standard_sources.iter().map(|s| &s.name) {
        let wasm = artifacts.join(format!("{}.wasm", name.replace('-', "_")));
        let bytes = fs::read(&wasm)
            .unwrap_or_else(|e| fail(&format!("expected component {} was not built: {e}", wasm.display())));
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let _ = writeln!(generated, "    ({name:?}, include_bytes!({:?}), {digest:?}),", wasm.display().to_string());
    }
    generated.push_str("];\n");

    generated.push_str(
        "/// The example workflows from `workflows/`, embedded at compile time.\n\
         pub(crate) const BUNDLED_WORKFLOWS: &[(&str, &str)] = &[\n",
    );
    let mut workflows: Vec<PathBuf> = fs::read_dir(root.join("workflows"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    workflows.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    workflows.sort();
    for path in workflows {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(generated, "    ({name:?}, include_str!({:?})),", path.display().to_string());
    }
    generated.push_str("];\n");
    fs::write(out_dir.join("bundled.rs"), generated).unwrap_or_else(|e| fail(&format!("cannot write bundled.rs: {e}")));
    println!("cargo:rustc-env=WEFT_COMPONENTS_DIR={}", artifacts.display());
}

/// The language a component directory is written in, told by its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Language {
    /// `Cargo.toml`: a crate in this workspace, named after its directory.
    Rust,
    /// `pyproject.toml` or `app.py`: built by componentize-py.
    Python,
    /// `package.json`: built by componentize-js.
    JavaScript,
}

/// One component to build: a directory under `plugins/` or `tests/components/`.
#[derive(Debug, Clone)]
struct ComponentSource {
    name: String,
    dir: PathBuf,
    language: Language,
}

/// The component directories directly under `dir`, sorted by name. A
/// directory with none of the manifests above is not a component.
fn component_sources(dir: &Path) -> Vec<ComponentSource> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sources: Vec<ComponentSource> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let dir = entry.path();
            let language = if dir.join("Cargo.toml").is_file() {
                Language::Rust
            } else if dir.join("pyproject.toml").is_file() || dir.join("app.py").is_file() {
                Language::Python
            } else if dir.join("package.json").is_file() {
                Language::JavaScript
            } else {
                return None;
            };
            Some(ComponentSource { name: entry.file_name().to_string_lossy().into_owned(), dir, language })
        })
        .collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    sources
}

/// What the Python and JavaScript builds run, found once per build.
struct Toolchains {
    /// `componentize-py` and its `--version` line, or why it is unusable.
    python: Result<(PathBuf, String), String>,
    /// `node` and the componentize-js CLI script, or why they are unusable.
    javascript: Result<(PathBuf, PathBuf), String>,
    /// Tool pins that go into every cache key.
    pins: String,
}

const SETUP_HINT: &str = "run `bash scripts/setup.sh` from the repository root to install the pinned plugin tools";

impl Toolchains {
    fn detect(root: &Path, sources: &[ComponentSource]) -> Self {
        let requirements = fs::read_to_string(root.join("tools/python/requirements.txt")).unwrap_or_default();
        let js_lock = fs::read_to_string(root.join("tools/js/package-lock.json")).unwrap_or_default();
        let pinned_py = requirements
            .lines()
            .find_map(|l| l.trim().strip_prefix("componentize-py=="))
            .unwrap_or("(unpinned)")
            .to_string();
        let needs = |language| sources.iter().any(|s| s.language == language);
        let python = if needs(Language::Python) {
            let tool = env::var_os("WEFT_COMPONENTIZE_PY").map(PathBuf::from).unwrap_or("componentize-py".into());
            match Command::new(&tool).arg("--version").output() {
                Ok(out) if out.status.success() => {
                    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    if !version.ends_with(&pinned_py) {
                        println!(
                            "cargo:warning=found {version}, but tools/python/requirements.txt pins \
                             componentize-py {pinned_py}; {SETUP_HINT}"
                        );
                    }
                    Ok((tool, version))
                }
                Ok(out) => Err(format!(
                    "`{} --version` failed: {}; {SETUP_HINT}",
                    tool.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Err(format!(
                    "componentize-py {pinned_py} is needed to build the Python plugins, but `{}` could not be \
                     started ({e}); {SETUP_HINT}",
                    tool.display()
                )),
            }
        } else {
            Err("no Python plugins".into())
        };
        let javascript = if needs(Language::JavaScript) {
            let node = env::var_os("WEFT_NODE").map(PathBuf::from).unwrap_or("node".into());
            let modules = root.join("tools/js/node_modules");
            let cli = modules.join("@bytecodealliance/componentize-js/src/cli.js");
            let installed_lock = fs::read_to_string(modules.join(".weft-installed-lock")).unwrap_or_default();
            if let Err(e) = Command::new(&node).arg("--version").output() {
                Err(format!(
                    "Node.js 20 or later is needed to build the JavaScript plugins, but `{}` could not be \
                     started ({e}); install Node.js, then {SETUP_HINT}",
                    node.display()
                ))
            } else if !cli.is_file() {
                Err(format!(
                    "componentize-js is needed to build the JavaScript plugins and is not installed; {SETUP_HINT}"
                ))
            } else if installed_lock != js_lock {
                Err(format!("tools/js/node_modules does not match tools/js/package-lock.json; {SETUP_HINT}"))
            } else {
                Ok((node, cli))
            }
        } else {
            Err("no JavaScript plugins".into())
        };
        Toolchains { python, javascript, pins: format!("{requirements}\n{js_lock}") }
    }

    /// The build of one Python or JavaScript component, or why it cannot run.
    fn job(&self, root: &Path, wasm_target_dir: &Path, source: &ComponentSource) -> Result<LanguageBuild, String> {
        let what = match source.language {
            Language::Python => "Python",
            Language::JavaScript => "JavaScript",
            Language::Rust => "Rust",
        };
        let world = manifest_field(source, "world").unwrap_or_else(|| "step".into());
        let mut hash = Fnv1a::new();
        hash.write(what.as_bytes());
        hash.write(world.as_bytes());
        hash.write(self.pins.as_bytes());
        hash_tree(&mut hash, &root.join("wit"));
        hash_tree(&mut hash, &source.dir);
        let wit = root.join("wit");
        let command = match source.language {
            Language::Python => {
                let (tool, version) = self.python.clone().map_err(|e| format!("plugin `{}`: {e}", source.name))?;
                hash.write(version.as_bytes());
                let app = manifest_field(source, "app").unwrap_or_else(|| "app".into());
                let mut command = Command::new(tool);
                command.current_dir(&source.dir).arg("-d").arg(&wit).args([
                    "-w",
                    &world,
                    "componentize",
                    &app,
                    "-p",
                    ".",
                ]);
                // No `__pycache__` in the source tree: it would retrigger this build.
                command.env("PYTHONDONTWRITEBYTECODE", "1");
                command
            }
            Language::JavaScript => {
                let (node, cli) = self.javascript.clone().map_err(|e| format!("plugin `{}`: {e}", source.name))?;
                let main = manifest_field(source, "main").unwrap_or_else(|| "index.js".into());
                // componentize-js reads the WIT and sources through a WASI
                // sandbox that sees only paths under its working directory:
                // run it from the repository root with relative paths.
                let relative_dir = source.dir.strip_prefix(root).unwrap_or(&source.dir);
                let mut command = Command::new(node);
                command
                    .current_dir(root)
                    .arg(cli)
                    .arg(relative_dir.join(main))
                    .args(["--wit", "wit", "--world-name", &world])
                    // The host links no wasi:http; a step reaches the network
                    // only through granted weft:plugin capabilities.
                    // (`--disable` takes every value up to the next option.)
                    .args(["--disable", "http", "fetch-event"]);
                command
            }
            Language::Rust => return Err(format!("plugin `{}` is a Rust crate, built by cargo", source.name)),
        };
        let file_name = format!("{}.wasm", source.name.replace('-', "_"));
        let cached = wasm_target_dir.join("lang-cache").join(format!("{}-{:016x}.wasm", source.name, hash.finish()));
        Ok(LanguageBuild { name: source.name.clone(), what, command, cached, file_name })
    }
}

/// A Python or JavaScript component build, skipped when its cached output exists.
struct LanguageBuild {
    name: String,
    what: &'static str,
    command: Command,
    cached: PathBuf,
    file_name: String,
}

/// A component that is ready: `wasm` is its cached output.
struct BuiltComponent {
    wasm: PathBuf,
    file_name: String,
}

impl LanguageBuild {
    fn run(mut self) -> Result<BuiltComponent, String> {
        if self.cached.is_file() {
            return Ok(BuiltComponent { wasm: self.cached, file_name: self.file_name });
        }
        let dir = self.cached.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let partial = self.cached.with_extension(format!("partial-{}", std::process::id()));
        match self.command.arg("-o").arg(&partial).output() {
            Ok(out) if out.status.success() && partial.is_file() => {
                fs::rename(&partial, &self.cached)
                    .map_err(|e| format!("cannot store {}: {e}", self.cached.display()))?;
                Ok(BuiltComponent { wasm: self.cached, file_name: self.file_name })
            }
            Ok(out) => {
                let _ = fs::remove_file(&partial);
                Err(format!(
                    "building the {} plugin `{}` failed:\n{}{}",
                    self.what,
                    self.name,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
            Err(e) => {
                Err(format!("cannot start the build of the {} plugin `{}`: {e}; {SETUP_HINT}", self.what, self.name))
            }
        }
    }
}

/// A string field of the component's manifest: `[tool.weft]` in
/// `pyproject.toml` (`app`, `world`), or `package.json` (`main`, `weft.world`).
fn manifest_field(source: &ComponentSource, field: &str) -> Option<String> {
    match source.language {
        Language::Python => {
            let text = fs::read_to_string(source.dir.join("pyproject.toml")).ok()?;
            let mut in_section = false;
            for line in text.lines().map(str::trim) {
                if line.starts_with('[') {
                    in_section = line == "[tool.weft]";
                } else if in_section
                    && let Some((key, value)) = line.split_once('=')
                    && key.trim() == field
                {
                    return Some(value.trim().trim_matches('"').to_string());
                }
            }
            None
        }
        Language::JavaScript => {
            let text = fs::read_to_string(source.dir.join("package.json")).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            let value = if field == "main" { json.get("main") } else { json.get("weft").and_then(|w| w.get(field)) };
            value.and_then(serde_json::Value::as_str).map(str::to_string)
        }
        Language::Rust => None,
    }
}

/// Feeds every file under `dir` (relative path and bytes, in sorted order)
/// into `hash`, skipping build outputs and installed dependencies.
fn hash_tree(hash: &mut Fnv1a, dir: &Path) {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = fs::read_dir(&current) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name();
            if matches!(name.to_str(), Some("node_modules" | "__pycache__" | "target" | ".git")) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_none_or(|e| e != "wasm") {
                files.push(path);
            }
        }
    }
    files.sort();
    for file in files {
        hash.write(file.strip_prefix(dir).unwrap_or(&file).to_string_lossy().as_bytes());
        hash.write(&fs::read(&file).unwrap_or_default());
    }
}

/// 64-bit FNV-1a: stable across Rust versions (unlike `DefaultHasher`) and
/// needs no dependency; a cache key, not a security boundary.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes.iter().chain(&(bytes.len() as u64).to_le_bytes()) {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn copy_if_changed(from: &Path, to: &Path) -> std::io::Result<()> {
    let same = fs::metadata(to).is_ok_and(|m| m.len() == fs::metadata(from).map(|f| f.len()).unwrap_or(u64::MAX))
        && fs::read(to)? == fs::read(from)?;
    if same { Ok(()) } else { fs::copy(from, to).map(|_| ()) }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
