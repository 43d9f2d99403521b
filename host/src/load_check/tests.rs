#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::workflow::{WorkflowError, parse, parse_partial};

const EXAMPLE: &str = r#"name: pdf-digest
version: "1.0"
defaults:
  timeout: 60s
  limits: { memory: 128MiB }
steps:
  - id: load
    plugin: pdf-load
    limits: { memory: 256MiB, fuel: 5000000000, output: 64MiB }
  - id: fetch
    plugin: http-get
    needs: [load]
    map: { concurrency: 4 }
    grants:
      http: ["api.example.com", "*.example.org"]
      secrets: [WEBHOOK_SIGNING_KEY]
"#;

fn has_secret(name: &str) -> bool {
    name == "WEBHOOK_SIGNING_KEY"
}

/// A host with three plugins: `http-get` imports the http and secrets capabilities.
/// It meters fuel and holds one secret, `WEBHOOK_SIGNING_KEY`.
fn host() -> HostFacts<'static> {
    let mut plugins = BTreeMap::new();
    plugins.insert("pdf-load".to_owned(), PluginFacts::Usable { imports: vec!["wasi:io/streams@0.2.3".to_owned()] });
    plugins.insert("chunk".to_owned(), PluginFacts::Registered);
    plugins.insert(
        "http-get".to_owned(),
        PluginFacts::Usable {
            imports: vec!["weft:plugin/http@0.1.0".to_owned(), "weft:plugin/secrets@0.1.0".to_owned()],
        },
    );
    HostFacts {
        plugins,
        ceilings: Ceilings {
            memory: 4 << 30,
            fuel: None,
            output: 256 << 20,
            timeout: Duration::from_secs(3600),
            map_concurrency: 64,
        },
        fuel_metering: true,
        has_secret: Some(&has_secret),
    }
}

/// The check's errors, one per line (empty when there are none).
fn check_errors(wf: &Workflow, facts: &HostFacts<'_>) -> String {
    check(wf, facts).errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn with_steps(steps: &str) -> String {
    format!("name: t\nversion: \"1\"\nsteps:\n{steps}")
}

// ---------------------------------------------------------------- host checks

#[test]
fn host_check_passes_for_the_example() {
    let wf = parse("example.yaml", EXAMPLE).unwrap();
    assert_eq!(check_errors(&wf, &host()), "");
}

#[test]
fn host_check_unknown_plugin_suggests() {
    let wf = parse("t.yaml", &with_steps("  - id: a\n    plugin: pdf-lod\n  - id: b\n    plugin: zzz\n")).unwrap();
    assert_eq!(
        check_errors(&wf, &host()),
        "t.yaml:5:13: unknown plugin `pdf-lod` in step `a`; did you mean `pdf-load`? known plugins: chunk, http-get, pdf-load\n\
         t.yaml:7:13: unknown plugin `zzz` in step `b`; known plugins: chunk, http-get, pdf-load"
    );
}

#[test]
fn host_check_ceilings() {
    let text = "name: t\nversion: \"1\"\ndefaults:\n  timeout: 2h\nsteps:\n  - id: a\n    plugin: chunk\n    limits: { memory: 8GiB, output: 1GiB }\n    map: { concurrency: 100 }\n  - id: b\n    plugin: chunk\n";
    let wf = parse("t.yaml", text).unwrap();
    assert_eq!(
        check_errors(&wf, &host()),
        "t.yaml:4:12: defaults.timeout 2h is above this host's ceiling of 1h\n\
         t.yaml:8:23: limits.memory 8GiB for step `a` is above this host's ceiling of 4GiB\n\
         t.yaml:8:37: limits.output 1GiB for step `a` is above this host's ceiling of 256MiB\n\
         t.yaml:9:10: map.concurrency 100 for step `a` is above this host's ceiling of 64"
    );
    let mut facts = host();
    facts.ceilings.fuel = Some(10);
    let wf = parse("t.yaml", &with_steps("  - id: a\n    plugin: chunk\n    limits: { fuel: 11 }\n    timeout: 61m\n"))
        .unwrap();
    assert_eq!(
        check_errors(&wf, &facts),
        "t.yaml:6:21: limits.fuel 11 for step `a` is above this host's ceiling of 10\n\
         t.yaml:7:14: timeout 61m for step `a` is above this host's ceiling of 1h"
    );
}

#[test]
fn host_check_grants() {
    let wf = parse(
        "t.yaml",
        &with_steps("  - id: fetch\n    plugin: http-get\n    grants: { http: [\"ftp://a.example\"], secrets: true }\n  - id: ok\n    plugin: http-get\n    grants: { http: [a.example], htp: true, zzzz: true }\n"),
    )
    .unwrap();
    assert_eq!(
        check_errors(&wf, &host()),
        "t.yaml:6:13: step `fetch`: `ftp://a.example` in grant `http` is not a host pattern: only http and https are supported\n\
         t.yaml:9:34: unknown grant `htp` in step `ok`; did you mean `http`? known grants: email, http, llm, secrets\n\
         t.yaml:9:45: unknown grant `zzzz` in step `ok`; known grants: email, http, llm, secrets"
    );
}

#[test]
fn parse_partial_allows_reporting_both_phases_at_once() {
    let text = "name: bad\nversion: '1'\nsteps:\n  - id: a\n    plugin: pdf-lod\n    timout: 5s\n  - id: b\n    plugin: chunk\n    needs: [c]\n  - plugin: chunk\n";
    let (wf, mut diagnostics) = parse_partial("bad.yaml", text).unwrap();
    assert_eq!(wf.steps.len(), 2, "the step without id is left out");
    assert_eq!(diagnostics.len(), 3);
    diagnostics.extend(check(&wf, &host()).errors);
    diagnostics.sort_by_key(|d| d.span);
    let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "bad.yaml:5:13: unknown plugin `pdf-lod` in step `a`; did you mean `pdf-load`? known plugins: chunk, http-get, pdf-load",
            "bad.yaml:6:5: unknown field `timout` in step `a`; did you mean `timeout`? allowed fields are id, plugin, needs, config, map, retry, timeout, limits, grants",
            "bad.yaml:9:13: step `b` needs unknown step `c`; did you mean `a`?",
            "bad.yaml:10:5: missing required field `id` in step #3",
        ]
    );
    // A valid file gives no diagnostics and the same workflow as `parse`.
    let (wf, diagnostics) = parse_partial("example.yaml", EXAMPLE).unwrap();
    assert!(diagnostics.is_empty());
    assert_eq!(wf, parse("example.yaml", EXAMPLE).unwrap());
    assert!(matches!(parse_partial("x.yaml", "a: [").unwrap_err(), WorkflowError::Syntax { .. }));
}

// ---------------------------------------------------------------- snapshots

fn snapshot_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/workflows/invalid"))
}

/// The file alone, then against the test host (which meters no fuel); the rendered errors
/// and warnings (or `ok`).
fn render_case(name: &str, text: &str) -> String {
    let wf = match parse(name, text) {
        Ok(wf) => wf,
        Err(e) => return e.to_string(),
    };
    let mut facts = host();
    facts.fuel_metering = false;
    let checked = check(&wf, &facts);
    let mut lines: Vec<String> = checked.errors.iter().map(ToString::to_string).collect();
    lines.extend(checked.warnings.iter().map(|w| format!("warning: {w}")));
    if lines.is_empty() { "ok".to_owned() } else { lines.join("\n") }
}

#[test]
fn snapshots_of_invalid_workflows() {
    let dir = snapshot_dir();
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 14, "expected at least 14 cases in {}", dir.display());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(case).unwrap();
        let actual = format!("{}\n", render_case(&name, &text));
        let expected_path = case.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("--- {name}\nexpected:\n{expected}actual:\n{actual}"));
        }
        assert_ne!(actual, "ok\n", "{name} should be invalid");
    }
    assert!(
        failures.is_empty(),
        "snapshot mismatches (run with UPDATE_SNAPSHOTS=1 to accept):\n{}",
        failures.join("\n")
    );
}

#[test]
fn grants_are_resolved_once_per_step() {
    let wf = parse("example.yaml", EXAMPLE).unwrap();
    let checked = check(&wf, &host());
    assert!(checked.errors.is_empty() && checked.warnings.is_empty(), "{checked:?}");
    let fetch = &checked.grants["fetch"];
    assert!(fetch.allows_url(&"https://api.example.com/x".parse().unwrap()));
    assert!(!fetch.allows_url(&"https://example.net/".parse().unwrap()));
    assert_eq!(fetch.secrets.iter().collect::<Vec<_>>(), ["WEBHOOK_SIGNING_KEY"]);
    assert_eq!(checked.grants["load"], StepGrants::default());
}

#[test]
fn a_missing_secret_is_an_error_only_where_secrets_are_required() {
    let text =
        with_steps("  - id: sign\n    plugin: http-get\n    grants: { secrets: [NOT_HERE, WEBHOOK_SIGNING_KEY] }\n");
    let wf = parse("t.yaml", &text).unwrap();
    assert_eq!(
        check_errors(&wf, &host()),
        "t.yaml:6:13: step `sign` is granted secret `NOT_HERE`, but this host has no value for it; \
         set the environment variable `WEFT_SECRET_NOT_HERE` or add `NOT_HERE` to the secrets file"
    );
    let mut validating = host();
    validating.has_secret = None;
    assert_eq!(check_errors(&wf, &validating), "");
}

#[test]
fn fuel_needs_a_metering_host() {
    let wf = parse("t.yaml", &with_steps("  - id: a\n    plugin: pdf-load\n    limits: { fuel: 1000 }\n")).unwrap();
    assert_eq!(check_errors(&wf, &host()), "");
    let mut facts = host();
    facts.fuel_metering = false;
    assert_eq!(
        check_errors(&wf, &facts),
        "t.yaml:6:21: step `a` sets `limits.fuel`, but this host does not meter fuel; \
         enable fuel metering (`weft run --fuel`) or remove the limit"
    );
}

#[test]
fn grants_are_compared_with_the_components_imports() {
    // `pdf-load` imports no capability: its `http` grant can have no effect.
    // `http-get` imports `http` and `secrets` but is granted neither: not an
    // error, since an import says what a component *may* use.
    let text = with_steps(
        "  - id: load\n    plugin: pdf-load\n    grants: { http: true, llm: [gpt] }\n  - id: get\n    plugin: http-get\n",
    );
    let wf = parse("t.yaml", &text).unwrap();
    let checked = check(&wf, &host());
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    let warnings: Vec<String> = checked.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "t.yaml:6:15: step `load` is granted `http`, but its plugin `pdf-load` does not import `weft:plugin/http`, \
             so the grant has no effect; remove it or move it to the step that needs it",
            "t.yaml:6:27: step `load` is granted `llm`, but its plugin `pdf-load` does not import `weft:plugin/llm`, \
             so the grant has no effect; remove it or move it to the step that needs it",
        ]
    );
}

#[test]
fn an_unusable_plugin_is_reported_at_its_step() {
    let wf = parse("t.yaml", &with_steps("  - id: a\n    plugin: from-the-future\n")).unwrap();
    let mut facts = host();
    facts.plugins.insert(
        "from-the-future".to_owned(),
        PluginFacts::Unusable("component is built against `weft:plugin@0.9.0`; this host supports 0.1.x".to_owned()),
    );
    assert_eq!(
        check_errors(&wf, &facts),
        "t.yaml:5:13: step `a`: component is built against `weft:plugin@0.9.0`; this host supports 0.1.x"
    );
}

#[test]
fn the_check_never_panics_on_a_best_effort_workflow() {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    for end in 0..=EXAMPLE.len() {
        if let Some(prefix) = EXAMPLE.get(..end)
            && let Ok((wf, _)) = parse_partial("cut.yaml", prefix)
        {
            let _ = check(&wf, &host());
        }
    }
    for i in 0..lines.len() {
        let mut removed = lines.clone();
        removed.remove(i);
        if let Ok((wf, _)) = parse_partial("cut.yaml", &removed.join("\n")) {
            let checked = check(&wf, &host());
            for d in checked.errors.iter().chain(&checked.warnings) {
                assert!(d.span.line >= 1 && d.span.column >= 1, "bad position {d:?}");
            }
        }
    }
}
