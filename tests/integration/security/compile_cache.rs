//! Someone who may write to a shared compile-cache directory: the cache
//! holds machine code the host runs, so only entries this install wrote for
//! the component at hand are loaded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{component_path, host_with_cache, load, one_step, weft_cmd};

/// `weft run WORKFLOW --input in.txt` in `dir` with its own compile cache;
/// exit code (none if it had to be killed), stdout and stderr.
fn weft_run(dir: &Path, cache: &Path, workflow: &str) -> (Option<i32>, String, String) {
    let mut child = weft_cmd(dir)
        .env("WEFT_CACHE_DIR", cache)
        .args(["run", workflow, "--input", "in.txt"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both outputs are a few KiB, well under a pipe's buffer, so waiting
    // before reading cannot block the child.
    let status = crate::support::wait_exit(&mut child, Duration::from_secs(120));
    if status.is_none() {
        let _ = child.kill();
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.and_then(|s| s.code()), stdout, stderr)
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    found.sort();
    found
}

/// A one-step workflow file running the component at `plugin`.
fn write_workflow(dir: &Path, file: &str, plugin: &Path, config: &str) {
    let yaml =
        format!("name: w\nversion: '1'\nsteps:\n  - id: s\n    plugin: {}\n    config: {config}\n", plugin.display());
    std::fs::write(dir.join(file), yaml).unwrap();
}

fn first_output_text(stdout: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    json["outputs"]["s"][0]["payload"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text output: {stdout}"))
        .to_string()
}

#[test]
fn swapping_two_valid_cache_entries_does_not_run_one_plugin_in_place_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "the input").unwrap();
    // `noop` returns its input; `echo-config` returns its config: the output says which ran.
    write_workflow(dir.path(), "noop.yaml", &component_path("noop"), "{}");
    write_workflow(dir.path(), "echo.yaml", &component_path("echo-config"), "{marker: echo-config-ran}");

    let (code, _, stderr) = weft_run(dir.path(), cache.path(), "noop.yaml");
    assert_eq!(code, Some(0), "{stderr}");
    let noop_entry = entries(cache.path());
    assert_eq!(noop_entry.len(), 1, "{noop_entry:?}");
    let (code, stdout, stderr) = weft_run(dir.path(), cache.path(), "echo.yaml");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(first_output_text(&stdout).contains("echo-config-ran"), "{stdout}");
    let echo_entry: Vec<PathBuf> = entries(cache.path()).into_iter().filter(|p| *p != noop_entry[0]).collect();
    assert_eq!(echo_entry.len(), 1);

    // Swap the two valid artifacts (each with its own, valid tag) between the keys.
    let (noop_entry, echo_entry) = (&noop_entry[0], &echo_entry[0]);
    let aside = cache.path().join("aside");
    std::fs::rename(echo_entry, &aside).unwrap();
    std::fs::rename(noop_entry, echo_entry).unwrap();
    std::fs::rename(&aside, noop_entry).unwrap();

    let (code, stdout, stderr) = weft_run(dir.path(), cache.path(), "echo.yaml");
    assert_eq!(code, Some(0), "{stderr}");
    let output = first_output_text(&stdout);
    assert!(output.contains("echo-config-ran") && !output.contains("the input"), "noop ran in its place: {stdout}");
    assert!(
        stderr.contains("was not written by this install for this component")
            && stderr.contains(&*echo_entry.display().to_string()),
        "the swap is reported with the file's name: {stderr}"
    );
    // The recompiled entry replaced the planted one, so the next run loads it quietly.
    let (code, stdout, stderr) = weft_run(dir.path(), cache.path(), "echo.yaml");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(first_output_text(&stdout).contains("echo-config-ran"), "{stdout}");
    assert!(!stderr.contains("was not written by this install"), "{stderr}");
}

#[test]
fn a_cache_entry_forged_under_another_key_is_recompiled_not_loaded() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let yaml = one_step("noop", "");
    load(&host_with_cache(Some(ours.path())), &yaml);
    // Another install (the attacker's, with its own key) compiles the same
    // component: an entry with the same name and a valid tag under its key.
    load(&host_with_cache(Some(theirs.path())), &yaml);
    let (planted, target) = (&entries(theirs.path())[0], &entries(ours.path())[0]);
    assert_eq!(planted.file_name(), target.file_name(), "the same cache key in both");
    let planted_bytes = std::fs::read(planted).unwrap();
    std::fs::write(target, &planted_bytes).unwrap();

    let host = host_with_cache(Some(ours.path()));
    load(&host, &yaml);
    assert_eq!(host.engine_stats().cache_hits, 0, "the forged entry is not loaded");
    assert_eq!(host.engine_stats().compiled, 1, "the component is compiled again");
    assert_ne!(std::fs::read(target).unwrap(), planted_bytes, "and the forged entry is replaced by our own");

    let again = host_with_cache(Some(ours.path()));
    load(&again, &yaml);
    assert_eq!((again.engine_stats().cache_hits, again.engine_stats().compiled), (1, 0), "our own entry loads");
}

#[cfg(unix)]
#[test]
fn a_cache_key_file_other_users_can_read_is_not_used_and_runs_still_work() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let yaml = one_step("noop", "");
    load(&host_with_cache(Some(cache.path())), &yaml);
    let key = cache.path().join("install.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "made private");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Through the engine: the intact entry is not loaded, nothing is cached.
    let host = host_with_cache(Some(cache.path()));
    load(&host, &yaml);
    assert_eq!((host.engine_stats().cache_hits, host.engine_stats().compiled), (0, 1));

    // Through the CLI: the run works and says why the cache is off.
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    write_workflow(dir.path(), "noop.yaml", &component_path("noop"), "{}");
    let (code, stdout, stderr) = weft_run(dir.path(), cache.path(), "noop.yaml");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(first_output_text(&stdout), "hello");
    assert!(
        stderr.contains("install key is not used") && stderr.contains("mode 0644") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}
