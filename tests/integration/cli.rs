//! The `weft` binary as a user runs it: exit codes, JSON on stdout,
//! messages on stderr.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{component_path, repo_root};

fn weft(args: &[&str], cwd: &Path) -> Output {
    // The test run's one compile cache: the Python and JavaScript plugins
    // take tens of seconds to compile, so they are compiled once per run.
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(cwd)
        .env("WEFT_CACHE_DIR", crate::support::shared_cache_dir())
        .env_remove("RUST_LOG")
        .output()
        .expect("weft runs")
}

fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn run_prints_the_job_result_and_only_final_outputs() {
    let out = weft(&["run", "workflows/pdf-digest.yaml", "--input", "workflows/samples/sample.pdf"], &repo_root());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout_json(&out);
    assert_eq!(json["status"], "succeeded");
    assert_eq!(json["workflow"], "pdf-digest");
    let note = json["outputs"]["notify"].as_array().expect("the final step's output is shown");
    assert_eq!(note.len(), 1);
    let digest: serde_json::Value = serde_json::from_str(note[0]["payload"]["text"].as_str().unwrap()).unwrap();
    let text = digest["summary"].as_str().unwrap();
    assert!(!text.is_empty());
    assert!(!text.contains("jane.doe@example.com"), "the summary is built from masked text: {text}");
    for hidden in ["load", "chunk", "mask", "summarize"] {
        assert!(json["outputs"].get(hidden).is_none(), "intermediate output `{hidden}` is hidden by default");
    }
    assert!(json.get("intermediate").is_none());
    let steps = json["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["load", "chunk", "mask", "summarize", "notify"]);
    assert_eq!(steps[0]["output_items"], 2, "one item per page");
    assert_eq!(steps[0]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(steps[1]["attempts"].as_array().unwrap().len(), 2, "chunk maps over the two pages");

    let out = weft(
        &["run", "workflows/pdf-digest.yaml", "--input", "workflows/samples/sample.pdf", "--show-intermediate"],
        &repo_root(),
    );
    let json = stdout_json(&out);
    assert_eq!(json["intermediate"]["load"].as_array().unwrap().len(), 2);
    assert!(json["intermediate"]["mask"].as_array().is_some());
}

#[test]
fn bundled_workflows_run_from_any_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    let pdf = elsewhere.path().join("doc.pdf");
    std::fs::copy(repo_root().join("workflows/samples/sample.pdf"), &pdf).unwrap();
    let out = weft(&["run", "pdf-digest", "--input", "doc.pdf"], elsewhere.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out)["status"], "succeeded");
    let listed = weft(&["workflows"], elsewhere.path());
    assert!(String::from_utf8_lossy(&listed.stdout).lines().any(|l| l == "pdf-digest"));
}

#[test]
fn a_failed_job_exits_1_and_names_the_step_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = dir.path().join("crash.yaml");
    let trap = component_path("trap");
    std::fs::write(
        &workflow,
        format!("name: crash\nversion: '1'\nsteps:\n  - id: explode\n    plugin: {}\n", trap.display()),
    )
    .unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let out = weft(&["run", "crash.yaml", "--input", "in.txt"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed at step `explode`"), "{stderr}");
    assert!(stderr.contains("boom"), "{stderr}");
    let json = stdout_json(&out);
    assert_eq!(json["status"], "failed");
    assert_eq!(json["error"]["step"], "explode");
    assert_eq!(json["error"]["kind"], "trap");
}

#[test]
fn an_invalid_workflow_exits_2_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = dir.path().join("bad.yaml");
    std::fs::write(
        &workflow,
        "name: bad\nversion: '1'\nsteps:\n  - id: a\n    plugin: pdf-lod\n    timout: 5s\n  - id: b\n    plugin: chunk\n    needs: [c]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let out = weft(&["run", "bad.yaml", "--input", "in.txt"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no job result for an invalid workflow");

    let out = weft(&["validate", "bad.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.yaml:5:13:") && text.contains("pdf-lod"), "{text}");
    assert!(text.contains("bad.yaml:6:5:") && text.contains("timout"), "{text}");
    assert!(text.contains("bad.yaml:9:") && text.contains("`c`"), "{text}");
}

#[test]
fn validate_accepts_every_bundled_workflow() {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = weft(&args, &repo_root());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("warning:"), "no bundled workflow grants what its step cannot use:\n{text}");
    assert!(text.contains("needs secrets when run: WEBHOOK_SIGNING_KEY"), "{text}");
}

#[test]
fn a_grant_the_component_cannot_use_is_a_warning_from_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: g\nversion: '1'\nsteps:\n  - id: chunk\n    plugin: chunk\n    grants: { llm: true }\n";
    std::fs::write(dir.path().join("g.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let warning = "warning: g.yaml:6:15: step `chunk` is granted `llm`, but its plugin `chunk` does not import \
                   `weft:plugin/llm`, so the grant has no effect";
    let out = weft(&["validate", "g.yaml"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("g.yaml: ok (1 steps)\n") && text.contains(warning), "{text}");
    let out = weft(&["run", "g.yaml", "--input", "in.txt"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains(warning), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout_json(&out).is_object(), "the job result alone is on stdout");
}

#[test]
fn plugins_lists_the_standard_library_with_imports() {
    crate::support::precompile(&["keyword-tagger", "markdown-format"]);
    let out = weft(&["plugins", "--json"], &repo_root());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout_json(&out);
    let names: Vec<&str> = json.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"pdf-load") && names.contains(&"chunk"), "{names:?}");
    assert!(names.contains(&"keyword-tagger") && names.contains(&"markdown-format"), "{names:?}");
    for plugin in json.as_array().unwrap() {
        assert!(plugin["exports"].as_array().unwrap().iter().any(|e| e == "run"));
    }
}

#[test]
fn bad_invocations_exit_2_and_help_exits_0() {
    assert_eq!(weft(&["run"], &repo_root()).status.code(), Some(2));
    assert_eq!(weft(&["run", "pdf-digest", "--input", "/nonexistent/file.pdf"], &repo_root()).status.code(), Some(2));
    let help = weft(&["--help"], &repo_root());
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("validate"));
}

/// Regression (issue 17): `weft run nosuch` printed the same OS error twice
/// and did not say which workflows there are.
#[test]
fn an_unknown_workflow_is_one_error_that_lists_the_bundled_workflows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let names: Vec<&str> = weft::bundled_workflows().map(|(name, _)| name).collect();
    assert!(names.contains(&"pdf-digest"), "{names:?}");
    let expected = format!(
        "error: workflow file `nosuch` not found, and no bundled workflow has that name; bundled workflows: {}\n",
        names.join(", ")
    );

    let out = weft(&["run", "nosuch", "--input", "in.txt"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no job result without a workflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, expected);
    assert_eq!(stderr.matches("not found").count(), 1, "{stderr}");
    assert!(stderr.contains("pdf-digest"), "{stderr}");

    // `serve` names its workflows the same way, and says so before it
    // connects to anything (nothing listens on this port).
    let out = weft(&["serve", "--workflows", "nosuch", "--nats", "nats://127.0.0.1:1"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), expected);
}

/// An error and its cause are said once: reading a directory as a workflow
/// fails with one OS error, not the same one twice.
#[test]
fn a_workflow_that_cannot_be_read_names_its_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let out = weft(&["run", "flows", "--input", "in.txt"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: cannot read workflow flows: "), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn guest_stdout_stderr_and_logs_become_tagged_log_lines_not_output() {
    let dir = tempfile::tempdir().unwrap();
    let probe = component_path("sandbox-probe");
    std::fs::write(
        dir.path().join("probe.yaml"),
        format!("name: probe\nversion: '1'\nsteps:\n  - id: look\n    plugin: {}\n", probe.display()),
    )
    .unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let out = weft(&["-v", "run", "probe.yaml", "--input", "in.txt"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // stdout stays pure JSON: the guest's own stdout never reaches it.
    assert_eq!(stdout_json(&out)["status"], "succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in ["probe stdout line", "probe stderr line", "probe log line"] {
        let tagged = stderr.lines().find(|l| l.contains(line)).unwrap_or_else(|| panic!("no `{line}` in:\n{stderr}"));
        assert!(tagged.contains("step=look") && tagged.contains("attempt=1"), "untagged: {tagged}");
    }
}
