//! `weft plugin new`: a working plugin project in Rust, Python or
//! JavaScript, so an author goes from nothing to a running step in minutes.
//!
//! Every project gets a copy of this host's `wit/step.wit` (so it is built
//! against a `weft:plugin` version this host accepts), a `build.sh` with the
//! one build command, a one-step `workflow.yaml`, and a `test.sh` that
//! builds the component, runs it with `weft run` and checks its output. The
//! build tools are pinned to the versions this repository builds its own
//! plugins with (`tools/python/requirements.txt`, `tools/js/package.json`).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The WIT every scaffold copies: this host's own contract.
const STEP_WIT: &str = include_str!("../../../wit/step.wit");
const PYTHON_TOOLS: &str = include_str!("../../../tools/python/requirements.txt");
const JS_TOOLS: &str = include_str!("../../../tools/js/package.json");

const WORKFLOW: &str = include_str!("templates/common/workflow.yaml");
const INPUT: &str = include_str!("templates/common/input.txt");
const TEST_SH: &str = include_str!("templates/common/test.sh");
const README: &str = include_str!("templates/common/README.md");

/// Where the Rust plugin kit (`weft-plugin-kit`) of the source tree this
/// binary was built from lives; a Rust project depends on it by path.
const RUST_PLUGIN_KIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/rust");

/// A language `weft plugin new` can scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// wit-bindgen, `cargo build --target wasm32-wasip2`.
    Rust,
    /// componentize-py.
    Python,
    /// componentize-js.
    JavaScript,
}

impl FromStr for Language {
    type Err = ScaffoldError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "rust" | "rs" => Ok(Language::Rust),
            "python" | "py" => Ok(Language::Python),
            "js" | "javascript" => Ok(Language::JavaScript),
            other => Err(ScaffoldError::UnknownLanguage(other.to_string())),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::JavaScript => "JavaScript",
        })
    }
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// Not one of the languages above.
    #[error("unknown language `{0}`: choose rust, python or js")]
    UnknownLanguage(String),
    /// The name cannot be a plugin, package and file name at once.
    #[error(
        "`{0}` cannot be a plugin name: use 1-64 lowercase letters, digits and single hyphens, \
         starting with a letter (like `keyword-tagger`)"
    )]
    InvalidName(String),
    /// The target directory holds files already.
    #[error("{} already exists and is not empty; choose another name or --dir", .0.display())]
    DirectoryNotEmpty(PathBuf),
    /// A Rust project needs the plugin kit of the Weft source tree, and the
    /// tree this binary was built from is gone.
    #[error(
        "a Rust plugin depends on the Weft plugin kit, which is not at {} (the Weft source tree this \
         binary was built from); build weft from a source checkout, or choose python or js",
        .0.display()
    )]
    KitNotFound(PathBuf),
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Creates a `language` plugin project called `name` in `dir` (which must
/// not exist or be empty) and returns the files it wrote, relative to `dir`.
///
/// # Errors
///
/// [`ScaffoldError`] for a bad name, a non-empty directory or a failed write.
pub fn scaffold(name: &str, language: Language, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.to_string()));
    }
    if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::DirectoryNotEmpty(dir.to_path_buf()));
    }
    let python_version = pinned_python_tool("componentize-py");
    let (componentize_js, jco, preview2_shim) =
        (pinned_js_tool("componentize-js"), pinned_js_tool("jco"), pinned_js_tool("preview2-shim"));
    let (build_command, setup) = match language {
        Language::Rust => (
            "`cargo build --release --target wasm32-wasip2`, then copies the component here".to_string(),
            "Setup, once: `rustup target add wasm32-wasip2`.".to_string(),
        ),
        Language::Python => (
            "`componentize-py -d wit -w step componentize app -o NAME.wasm`".replace("NAME", name),
            format!("Setup, once: `python3 -m pip install componentize-py=={python_version}`."),
        ),
        Language::JavaScript => (
            "`componentize-js src/index.js --wit wit --world-name step -o NAME.wasm --disable http fetch-event`"
                .replace("NAME", name),
            "Setup, once: `npm install` (Node.js 20 or later; installs the pinned componentize-js).".to_string(),
        ),
    };
    let kit_dependency = match language {
        Language::Rust => rust_kit_dependency()?,
        Language::Python | Language::JavaScript => String::new(),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &name.replace('-', "_"))
            .replace("{{language}}", &language.to_string())
            .replace("{{build_command}}", &build_command)
            .replace("{{setup}}", &setup)
            .replace("{{componentize_py}}", &python_version)
            .replace("{{componentize_js}}", &componentize_js)
            .replace("{{jco}}", &jco)
            .replace("{{preview2_shim}}", &preview2_shim)
            .replace("{{kit_dependency}}", &kit_dependency)
    };

    let mut files: Vec<(&str, String)> = vec![
        ("wit/step.wit", STEP_WIT.to_string()),
        ("workflow.yaml", fill(WORKFLOW)),
        ("test/input.txt", INPUT.to_string()),
        ("test.sh", fill(TEST_SH)),
        ("README.md", fill(README)),
    ];
    match language {
        Language::Rust => files.extend([
            ("Cargo.toml", fill(include_str!("templates/rust/Cargo.toml"))),
            ("src/lib.rs", fill(include_str!("templates/rust/lib.rs"))),
            ("build.sh", fill(include_str!("templates/rust/build.sh"))),
            (".gitignore", fill(include_str!("templates/rust/gitignore"))),
        ]),
        Language::Python => files.extend([
            ("app.py", fill(include_str!("templates/python/app.py"))),
            ("build.sh", fill(include_str!("templates/python/build.sh"))),
            (".gitignore", fill(include_str!("templates/python/gitignore"))),
        ]),
        Language::JavaScript => files.extend([
            ("package.json", fill(include_str!("templates/js/package.json"))),
            ("src/index.js", fill(include_str!("templates/js/index.js"))),
            ("build.sh", fill(include_str!("templates/js/build.sh"))),
            (".gitignore", fill(include_str!("templates/js/gitignore"))),
        ]),
    }

    let mut written = Vec::with_capacity(files.len());
    for (relative, contents) in files {
        let path = dir.join(relative);
        let write_error = |source| ScaffoldError::Write { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_error)?;
        }
        fs::write(&path, contents).map_err(write_error)?;
        if relative.ends_with(".sh") {
            make_executable(&path).map_err(write_error)?;
        }
        written.push(PathBuf::from(relative));
    }
    Ok(written)
}

/// The `Cargo.toml` line that makes a Rust project depend on the plugin kit:
/// a path dependency on the kit of this binary's source tree.
fn rust_kit_dependency() -> Result<String, ScaffoldError> {
    let kit = Path::new(RUST_PLUGIN_KIT);
    let kit = kit.canonicalize().map_err(|_| ScaffoldError::KitNotFound(kit.to_path_buf()))?;
    if !kit.join("Cargo.toml").is_file() {
        return Err(ScaffoldError::KitNotFound(kit));
    }
    // A TOML literal string holds any path without escaping but `'`.
    let path = kit.to_string_lossy();
    Ok(if path.contains('\'') {
        format!("weft-plugin-kit = {{ path = {path:?} }}")
    } else {
        format!("weft-plugin-kit = {{ path = '{path}' }}")
    })
}

/// A name usable as plugin, package, crate and file name: kebab-case.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// The version `tools/python/requirements.txt` pins for `package`.
fn pinned_python_tool(package: &str) -> String {
    PYTHON_TOOLS
        .lines()
        .find_map(|line| line.trim().strip_prefix(package)?.strip_prefix("==").map(str::to_string))
        .unwrap_or_else(|| "*".to_string())
}

/// The version `tools/js/package.json` pins for `@bytecodealliance/<package>`.
fn pinned_js_tool(package: &str) -> String {
    serde_json::from_str::<serde_json::Value>(JS_TOOLS)
        .ok()
        .and_then(|json| json["dependencies"][format!("@bytecodealliance/{package}")].as_str().map(str::to_string))
        .unwrap_or_else(|| "*".to_string())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_kebab_case() {
        for good in ["a", "keyword-tagger", "step2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Tagger", "2step", "a_b", "a--b", "a-", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn tool_pins_come_from_the_repository_s_tool_files() {
        assert!(pinned_python_tool("componentize-py").starts_with("0."));
        assert_ne!(pinned_js_tool("componentize-js"), "*");
        assert_ne!(pinned_js_tool("jco"), "*");
        assert_eq!("py".parse::<Language>().unwrap(), Language::Python);
        assert!("cobol".parse::<Language>().is_err());
    }

    #[test]
    fn a_project_is_written_once_with_every_placeholder_filled() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("shout");
        let files = scaffold("shout", Language::Rust, &target).unwrap();
        assert!(files.contains(&PathBuf::from("wit/step.wit")));
        let manifest = fs::read_to_string(target.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("weft-plugin-kit = { path = '"), "{manifest}");
        assert!(Path::new(RUST_PLUGIN_KIT).join("src/lib.rs").is_file(), "the kit is where the scaffold points");
        for file in &files {
            let text = fs::read_to_string(target.join(file)).unwrap();
            assert!(!text.contains("{{"), "{} has an unfilled placeholder", file.display());
        }
        let again = scaffold("shout", Language::Python, &target).unwrap_err();
        assert!(again.to_string().contains("already exists and is not empty"), "{again}");
    }
}
