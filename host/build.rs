//! Builds the workspace's Wasm components for `wasm32-wasip2` and embeds the
//! standard step library into the `weft` binary.
//!
//! This is the one plugin build command: `cargo build` (or `cargo test`,
//! `cargo install --path host`) runs it. It invokes a nested
//! `cargo build --release --target wasm32-wasip2` over every crate under
//! `plugins/` (the standard library, embedded) and `tests/components/`
//! (misbehaving components for the integration tests, not embedded), with
//! its own target directory so it never waits on the outer build's lock.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| fail("host/ has no parent directory"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR is not set")));

    for watched in ["wit", "plugins", "tests/components", "workflows", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let standard = component_crates(&root.join("plugins"));
    let test_only = component_crates(&root.join("tests/components"));
    let wasm_target_dir = root.join("target").join("wasm");

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

    let status =
        cargo.status().unwrap_or_else(|e| fail(&format!("could not start cargo to build the components: {e}")));
    if !status.success() {
        fail(&format!(
            "building the Wasm components failed (see the cargo output above). \
             If the error mentions a missing target, run `rustup target add {WASM_TARGET}`"
        ));
    }

    let artifacts = wasm_target_dir.join(WASM_TARGET).join("release");
    let mut generated = String::from(
        "/// The standard step library, built from `plugins/` and embedded at compile time.\n\
         pub(crate) const BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for name in &standard {
        let wasm = artifacts.join(format!("{}.wasm", name.replace('-', "_")));
        if !wasm.is_file() {
            fail(&format!("expected component {} was not built", wasm.display()));
        }
        let _ = writeln!(generated, "    ({name:?}, include_bytes!({:?})),", wasm.display().to_string());
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

/// The package names of the component crates directly under `dir`
/// (each sub-directory with a `Cargo.toml`; the package is named after it).
fn component_crates(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
