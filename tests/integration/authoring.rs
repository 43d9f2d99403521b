//! Plugin authoring as an author meets it: `weft plugin inspect` on real
//! components, and `weft plugin new` projects in every language that build
//! with their own build command and pass their own generated test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{component_path, repo_root, shared_cache_dir};

fn weft(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .output()
        .expect("weft runs")
}

fn inspect_json(file: &Path, cache: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let file = file.to_string_lossy();
    let mut args = vec!["plugin", "inspect", &*file, "--json"];
    args.extend(extra);
    let out = weft(&args, cache);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), json)
}

#[test]
fn inspect_shows_world_imports_grants_exports_and_cache_status() {
    let cache = tempfile::tempdir().unwrap();
    let chunk = component_path("chunk");
    let (code, json) = inspect_json(&chunk, cache.path(), &[]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["world"], "weft:plugin/step@0.1.0");
    assert_eq!(json["package_version"], "0.1.0");
    assert_eq!(json["size"].as_u64(), Some(std::fs::metadata(&chunk).unwrap().len()));
    assert_eq!(json["exports"][0]["name"], "run");
    assert_eq!(json["exports"][0]["signature"], weft::authoring::inspect::STEP_RUN_SIGNATURE);
    let imports = json["imports"].as_array().unwrap();
    assert!(imports.iter().any(|i| i["name"] == "weft:plugin/types@0.1.0" && i["kind"] == "capability"));
    assert!(imports.iter().any(|i| i["kind"] == "wasi"), "Rust's std pulls in sandboxed WASI: {json}");
    assert_eq!(json["required_grants"], serde_json::json!([]));
    assert_eq!(json["problems"], serde_json::json!([]));
    assert_eq!(json["cached"], false, "a fresh cache holds nothing");

    // --compile prepares it exactly as `weft run` would; afterwards it is cached.
    let (code, json) = inspect_json(&chunk, cache.path(), &["--compile"]);
    assert_eq!((code, &json["cached"]), (Some(0), &serde_json::json!(true)), "{json}");
    let out = weft(&["plugin", "inspect", &chunk.to_string_lossy()], cache.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("world:    weft:plugin/step@0.1.0"), "{text}");
    assert!(text.contains("cache:    compiled"), "{text}");
    assert!(text.contains("usable:   yes"), "{text}");
}

#[test]
fn inspect_reads_python_and_javascript_components_too() {
    for (plugin, logging) in [("keyword-tagger", true), ("markdown-format", true)] {
        let (code, json) = inspect_json(&component_path(plugin), shared_cache_dir(), &[]);
        assert_eq!(code, Some(0), "{plugin}: {json}");
        assert_eq!(json["world"], "weft:plugin/step@0.1.0", "{plugin}");
        let imports = json["imports"].as_array().unwrap();
        let logs = imports.iter().any(|i| i["name"] == "weft:plugin/logging@0.1.0" && i["grant"].is_null());
        assert_eq!(logs, logging, "{plugin}: {json}");
        assert!(!imports.iter().any(|i| i["name"].as_str().is_some_and(|n| n.starts_with("wasi:http"))), "{json}");
    }
}

#[test]
fn inspect_says_why_a_component_cannot_be_a_step() {
    let cache = tempfile::tempdir().unwrap();
    // Built against weft:plugin@0.2.0, which this host refuses.
    let (code, json) = inspect_json(&component_path("future-version"), cache.path(), &[]);
    assert_eq!(code, Some(1), "{json}");
    let problems = json["problems"].to_string();
    assert!(problems.contains("weft:plugin@0.2.0") && problems.contains("0.1.x"), "{problems}");
    let out = weft(&["plugin", "inspect", &component_path("future-version").to_string_lossy()], cache.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("usable:   no, it cannot be used as a step:"));

    // Not a component at all: a core module, and a text file.
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = weft(&["plugin", "inspect", &core.to_string_lossy()], cache.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("core WebAssembly module, not a component"));
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    let out = weft(&["plugin", "inspect", &text.to_string_lossy()], cache.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly file"));
}

/// Runs `command`, killing it if it has not finished within `limit`.
fn run_bounded(mut command: Command, limit: Duration) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("the command starts");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        Some(status) => (status.success(), output),
        None => (false, format!("timed out after {limit:?}\n{output}")),
    }
}

/// `weft plugin new NAME --lang LANG`, then the project's own `./test.sh`
/// (build with its build command, `weft run` its workflow, check the output).
fn scaffold_builds_and_passes_its_test(lang: &str) {
    let root = tempfile::tempdir().unwrap();
    let name = format!("hello-{lang}");
    let project = root.path().join(&name);
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["plugin", "new", &name, "--lang", lang])
        .current_dir(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("./test.sh"), "it says what to do next");
    assert_eq!(std::fs::read_to_string(project.join("wit/step.wit")).unwrap(), include_str!("../../wit/step.wit"));

    let weft_bin = PathBuf::from(env!("CARGO_BIN_EXE_weft"));
    let mut test = Command::new("sh");
    test.arg("test.sh")
        .current_dir(&project)
        .env("WEFT", &weft_bin)
        .env("WEFT_CACHE_DIR", shared_cache_dir())
        .env_remove("RUST_LOG");
    match lang {
        // Shares one target directory across runs, so CI compiles
        // wit-bindgen for scaffolds once, not once per run.
        "rust" => {
            // The outer build's settings belong to the host, not to this project.
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy();
                if key.starts_with("CARGO_") || key == "RUSTFLAGS" || key == "RUSTC_WRAPPER" {
                    test.env_remove(&*key);
                }
            }
            test.env("CARGO_TARGET_DIR", repo_root().join("target/wasm/scaffold"));
        }
        // `npm install` would fetch the same pinned packages that
        // scripts/setup.sh installed into tools/js; link those instead.
        "js" => {
            #[cfg(unix)]
            std::os::unix::fs::symlink(repo_root().join("tools/js/node_modules"), project.join("node_modules"))
                .unwrap();
        }
        _ => {}
    }
    let (passed, output) = run_bounded(test, Duration::from_secs(600));
    assert!(passed, "the generated {lang} project fails its own test:\n{output}");
    assert!(output.contains(&format!("ok: {name} passed its test")), "{output}");
    assert!(project.join(format!("{name}.wasm")).is_file());
}

#[test]
fn a_new_rust_plugin_builds_and_passes_its_own_test() {
    scaffold_builds_and_passes_its_test("rust");
}

#[test]
fn a_new_python_plugin_builds_and_passes_its_own_test() {
    scaffold_builds_and_passes_its_test("python");
}

#[test]
fn a_new_javascript_plugin_builds_and_passes_its_own_test() {
    scaffold_builds_and_passes_its_test("js");
}

#[test]
fn plugin_new_refuses_bad_names_and_occupied_directories() {
    let root = tempfile::tempdir().unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["plugin", "new", "My_Plugin", "--lang", "python"])
        .current_dir(root.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot be a plugin name"));
    std::fs::create_dir(root.path().join("taken")).unwrap();
    std::fs::write(root.path().join("taken/file"), "x").unwrap();
    let taken = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["plugin", "new", "taken", "--lang", "js"])
        .current_dir(root.path())
        .output()
        .unwrap();
    assert_eq!(taken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists and is not empty"));
}
