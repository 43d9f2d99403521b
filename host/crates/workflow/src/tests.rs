#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use super::suggest::{closest, edit_distance};
use super::*;

const EXAMPLE: &str = r#"name: pdf-digest
version: "1.0"
description: PDF text, chunked
defaults:
  timeout: 60s
  retry: { max_attempts: 5, initial_backoff: 1s }
  limits: { memory: 128MiB }
steps:
  - id: load
    plugin: pdf-load
    timeout: 30s
    limits: { memory: 256MiB, fuel: 5000000000, output: 64MiB }
    retry:
      max_attempts: 2
      initial_backoff: 200ms
      max_backoff: 10s
      multiplier: 1.5
      jitter: none
  - id: chunk
    plugin: chunk
    needs: [load]
    map: { concurrency: 4 }
    config: { size: 1000, overlap: 100, nested: { list: [1, "two", true, null, 2.5] } }
    grants:
      http: ["api.example.com", "*.example.org"]
      llm: true
"#;

/// Parses `text` expecting failure; returns the messages (without positions).
fn messages(text: &str) -> Vec<String> {
    match parse("t.yaml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.diagnostics().into_iter().map(|d| d.message).collect(),
    }
}

fn one_message(text: &str) -> String {
    let all = messages(text);
    assert_eq!(all.len(), 1, "expected one diagnostic, got {all:#?}");
    all.into_iter().next().unwrap()
}

/// A minimal valid workflow with the given step list appended.
fn with_steps(steps: &str) -> String {
    format!("name: t\nversion: \"1\"\nsteps:\n{steps}")
}

// ---------------------------------------------------------------- units

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration(" 2 s "), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
}

#[test]
fn durations_reject_with_hints() {
    let bare = parse_duration("30").unwrap_err();
    assert!(bare.contains("no unit") && bare.contains("`30s`"), "{bare}");
    let fractional = parse_duration("1.5s").unwrap_err();
    assert!(fractional.contains("`1500ms`"), "{fractional}");
    assert!(parse_duration("1.5m").unwrap_err().contains("`90s`"));
    assert!(parse_duration("0.5ms").unwrap_err().contains("ms, s, m or h"));
    assert!(parse_duration("30sec").unwrap_err().contains("unknown duration unit `sec`"));
    assert!(parse_duration("-1s").unwrap_err().contains("negative"));
    assert!(parse_duration("").unwrap_err().contains("empty"));
    assert!(parse_duration("s").unwrap_err().contains("not a duration"));
    assert!(parse_duration("99999999999999999999h").is_err());
    assert!(parse_duration("9999999999999999h").unwrap_err().contains("too large"));
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("1024"), Ok(1024));
    assert_eq!(parse_size("1B"), Ok(1));
    assert_eq!(parse_size("4KiB"), Ok(4096));
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("2TiB"), Ok(2 << 40));
    assert_eq!(parse_size("1KB"), Ok(1000));
    assert_eq!(parse_size("1MB"), Ok(1_000_000));
    assert_eq!(parse_size("8GB"), Ok(8_000_000_000));
}

#[test]
fn sizes_reject_with_hints() {
    assert!(parse_size("256M").unwrap_err().contains("did you mean `256MiB`?"));
    assert!(parse_size("1mib").unwrap_err().contains("did you mean `1MiB`?"));
    assert!(parse_size("1.5KiB").unwrap_err().contains("`1536B`"));
    assert!(parse_size("0.5GiB").unwrap_err().contains("`512MiB`"));
    assert!(parse_size("12 bananas").unwrap_err().contains("KiB, MiB"));
    assert!(parse_size("-1").unwrap_err().contains("negative"));
    assert!(parse_size("99999999TiB").unwrap_err().contains("too large"));
}

#[test]
fn formatting() {
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(format_duration(Duration::ZERO), "0s");
    assert_eq!(format_size(4 << 30), "4GiB");
    assert_eq!(format_size(8_000_000_000), "8GB");
    assert_eq!(format_size(1_000_001), "1000001B");
    assert_eq!(format_size(0), "0B");
    assert_eq!(human_size(256 << 20), "256 MiB");
    assert_eq!(human_size(3 << 29), "1.5 GiB");
    assert_eq!(human_size(512), "512 B");
}

#[test]
fn suggestions() {
    assert_eq!(edit_distance("timout", "timeout"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("stpes", "steps"), 1);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(closest("timout", ["id", "timeout"]), Some("timeout"));
    assert_eq!(closest("Plugin", ["plugin"]), Some("plugin"));
    assert_eq!(closest("x", ["id"]), None);
    assert_eq!(closest("zzzzzz", ["timeout"]), None);
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_the_example() {
    let wf = parse("example.yaml", EXAMPLE).unwrap();
    assert_eq!(wf.name, "pdf-digest");
    assert_eq!(wf.version, "1.0");
    assert_eq!(wf.description.as_deref(), Some("PDF text, chunked"));
    assert_eq!(wf.source, "example.yaml");
    assert_eq!(wf.steps.len(), 2);

    let load = wf.step("load").unwrap();
    assert_eq!(load.plugin, "pdf-load");
    assert_eq!(load.timeout, Some(Duration::from_secs(30)));
    assert_eq!(load.limits, StepLimits { memory: Some(256 << 20), fuel: Some(5_000_000_000), output: Some(64 << 20) });
    assert_eq!(
        load.retry,
        RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            multiplier: 1.5,
            jitter: Jitter::None,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    );
    assert_eq!(load.map, None);
    assert_eq!(load.config, serde_json::json!({}));
    assert!(load.grants.is_empty());
    assert_eq!(load.span, Span::new(9, 5));
    assert_eq!(load.spans.id, Span::new(9, 9));
    assert_eq!(load.spans.plugin, Span::new(10, 13));
    assert_eq!(load.spans.limits.memory, Some(Span::new(12, 23)));

    let chunk = wf.step("chunk").unwrap();
    assert_eq!(chunk.needs, vec!["load".to_owned()]);
    assert_eq!(chunk.spans.needs, vec![Span::new(21, 13)]);
    assert_eq!(chunk.map, Some(MapSpec { concurrency: 4 }));
    assert_eq!(
        chunk.config,
        serde_json::json!({"size": 1000, "overlap": 100, "nested": {"list": [1, "two", true, null, 2.5]}})
    );
    assert_eq!(
        chunk.grants.get("http"),
        Some(&GrantSpec::List(vec!["api.example.com".to_owned(), "*.example.org".to_owned()]))
    );
    assert_eq!(chunk.grants.get("llm"), Some(&GrantSpec::All));
    assert!(chunk.grants.is_granted("http"));
    assert!(!chunk.grants.is_granted("email"));
    assert_eq!(chunk.grants.span("llm"), Some(Span::new(26, 7)));
    assert_eq!(chunk.grants.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["http", "llm"]);
    assert!(wf.step("nope").is_none());
}

#[test]
fn defaults_merge_per_field() {
    let wf = parse("example.yaml", EXAMPLE).unwrap();
    let chunk = wf.step("chunk").unwrap();
    // Timeout from defaults, with the span pointing into `defaults`.
    assert_eq!(chunk.timeout, Some(Duration::from_secs(60)));
    assert_eq!(chunk.spans.timeout, wf.defaults.spans.timeout);
    assert_eq!(chunk.spans.timeout, Some(Span::new(5, 12)));
    // Retry: defaults.retry over the built-in defaults.
    assert_eq!(
        chunk.retry,
        RetryPolicy { max_attempts: 5, initial_backoff: Duration::from_secs(1), ..RetryPolicy::default() }
    );
    // Limits per field: memory from defaults only.
    assert_eq!(chunk.limits, StepLimits { memory: Some(128 << 20), ..StepLimits::default() });
    // A step's own retry overrides per field; the rest comes from defaults, then built-ins.
    let text = with_steps("  - id: a\n    plugin: p\n    retry: { max_backoff: 5s }\n")
        .replace("steps:", "defaults:\n  retry: { max_attempts: 7, jitter: none }\nsteps:");
    let wf = parse("t.yaml", &text).unwrap();
    assert_eq!(
        wf.steps[0].retry,
        RetryPolicy {
            max_attempts: 7,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: Duration::from_secs(5),
            multiplier: DEFAULT_MULTIPLIER,
            jitter: Jitter::None,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    );
}

#[test]
fn max_retry_after_is_a_duration_merged_from_defaults() {
    let text = with_steps("  - id: a\n    plugin: p\n  - id: b\n    plugin: p\n    retry: { max_retry_after: 2m }\n")
        .replace("steps:", "defaults:\n  retry: { max_retry_after: 10s }\nsteps:");
    let wf = parse("t.yaml", &text).unwrap();
    assert_eq!(wf.steps[0].retry.max_retry_after, Duration::from_secs(10));
    assert_eq!(wf.steps[1].retry.max_retry_after, Duration::from_secs(120));
    let bad = with_steps("  - id: a\n    plugin: p\n    retry: { max_retry_after: forever }\n");
    assert!(one_message(&bad).contains("retry.max_retry_after"), "{}", one_message(&bad));
}

#[test]
fn deadline_is_a_duration_with_a_default() {
    let wf = parse("t.yaml", &with_steps("  - id: a\n    plugin: p\n")).unwrap();
    assert_eq!(wf.deadline, DEFAULT_JOB_DEADLINE);
    let text = with_steps("  - id: a\n    plugin: p\n").replace("steps:", "deadline: 90s\nsteps:");
    assert_eq!(parse("t.yaml", &text).unwrap().deadline, Duration::from_secs(90));
    let bad = with_steps("  - id: a\n    plugin: p\n").replace("steps:", "deadline: soon\nsteps:");
    assert!(one_message(&bad).contains("invalid duration for `deadline`"), "{}", one_message(&bad));
    let zero = with_steps("  - id: a\n    plugin: p\n").replace("steps:", "deadline: 0s\nsteps:");
    assert!(one_message(&zero).contains("`deadline` is 0"), "{}", one_message(&zero));
}

#[test]
fn builtin_defaults() {
    let wf = parse("t.yaml", &with_steps("  - id: a\n    plugin: p\n")).unwrap();
    let a = &wf.steps[0];
    assert_eq!(a.retry, RetryPolicy::default());
    assert_eq!(
        RetryPolicy::default(),
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: Jitter::Full,
            max_retry_after: Duration::from_secs(300),
        }
    );
    assert_eq!(a.timeout, None);
    assert_eq!(a.limits, StepLimits::default());
    assert_eq!(a.config, serde_json::json!({}));
    assert_eq!(a.map, None);
    assert_eq!(wf.description, None);
}

#[test]
fn map_forms() {
    let wf = parse(
        "t.yaml",
        &with_steps(
            "  - id: a\n    plugin: p\n    map: true\n  - id: b\n    plugin: p\n    map: false\n  - id: c\n    plugin: p\n    map: {}\n",
        ),
    )
    .unwrap();
    assert_eq!(wf.steps[0].map, Some(MapSpec { concurrency: 8 }));
    assert_eq!(wf.steps[1].map, None);
    assert_eq!(wf.steps[2].map, Some(MapSpec::default()));
}

#[test]
fn numbers_are_taken_as_written_for_text_fields() {
    let wf = parse(
        "t.yaml",
        "name: t\nversion: 1.10\nsteps:\n  - id: 1\n    plugin: p\n  - id: b\n    plugin: p\n    needs: [1]\n",
    )
    .unwrap();
    assert_eq!(wf.version, "1.10");
    assert_eq!(wf.steps[0].id, "1");
    assert_eq!(wf.steps[1].needs, ["1"]);
}

#[test]
fn fuel_accepts_underscores_and_null_fields_are_absent() {
    let wf = parse(
        "t.yaml",
        &with_steps("  - id: a\n    plugin: p\n    limits: { fuel: 5_000_000 }\n    needs:\n    config:\n"),
    )
    .unwrap();
    assert_eq!(wf.steps[0].limits.fuel, Some(5_000_000));
    assert!(wf.steps[0].needs.is_empty());
}

#[test]
fn rule_unknown_field_suggests_and_lists() {
    let m = one_message(&with_steps("  - id: load\n    plugin: p\n    timout: 30s\n"));
    assert!(m.starts_with("unknown field `timout` in step `load`; did you mean `timeout`?"), "{m}");
    assert!(m.contains("allowed fields are id, plugin, needs"), "{m}");
    let m = one_message(&with_steps("  - id: load\n    plugin: p\n    zzz: 1\n"));
    assert!(m.starts_with("unknown field `zzz` in step `load`; allowed fields are"), "{m}");
    let m = one_message("name: t\nversion: \"1\"\nstpes: []\nsteps:\n  - id: a\n    plugin: p\n");
    assert!(m.contains("`stpes` at the top level; did you mean `steps`?"), "{m}");
    let m = one_message(&with_steps("  - id: a\n    plugin: p\n    retry: { max_attempt: 2 }\n"));
    assert!(m.contains("in `retry` of step `a`; did you mean `max_attempts`?"), "{m}");
    let text = "name: t\nversion: \"1\"\ndefaults: { retyr: {} }\nsteps:\n  - id: a\n    plugin: p\n";
    assert!(one_message(text).contains("in `defaults`; did you mean `retry`?"));
}

#[test]
fn rule_missing_required_fields() {
    let all = messages("description: x\nsteps:\n  - plugin: p\n  - id: b\n");
    assert_eq!(
        all,
        [
            "missing required field `name` at the top level",
            "missing required field `version` at the top level",
            "missing required field `id` in step #1",
            "missing required field `plugin` in step `b`",
        ]
    );
    assert!(one_message("name: t\nversion: \"1\"\n").contains("missing required field `steps`"));
}

#[test]
fn rule_wrong_types() {
    let m = one_message(&with_steps("  - id: a\n    plugin: p\n    needs: load\n"));
    assert_eq!(m, "expected a list of step ids for `needs` in step `a`, found a string; write `needs: [load]`");
    let all = messages(&with_steps(
        "  - id: a\n    plugin: [x]\n    config: [1]\n    map: 3\n    limits: 5\n    grants: yes\n    retry: 3\n",
    ));
    assert_eq!(
        all,
        [
            "expected a string for `plugin` in step `a`, found a list",
            "expected a mapping for `config` in step `a`, found a list",
            "expected `true` or a mapping such as `{ concurrency: 4 }` for `map` in step `a`, found an integer",
            "expected a mapping for `limits` in step `a`, found an integer",
            "expected a mapping of capability names to `true` or a list for `grants` in step `a`, found a string",
            "expected a mapping for `retry` in step `a`, found an integer",
        ]
    );
    assert!(
        one_message("name: t\nversion: \"1\"\nsteps: {a: 1}\n")
            .contains("expected a list of steps for `steps`, found a mapping")
    );
    assert!(one_message(&with_steps("  - just a string\n")).contains("expected a mapping for step #1, found a string"));
    assert!(one_message("- a\n- b\n").contains("at the top level, found a list"));
}

#[test]
fn rule_duplicate_step_ids_name_the_earlier_line() {
    let err = parse("t.yaml", &with_steps("  - id: a\n    plugin: p\n  - id: a\n    plugin: q\n")).unwrap_err();
    assert_eq!(err.to_string(), "t.yaml:6:9: duplicate step id `a`; it is already used by the step at line 4");
}

#[test]
fn rule_unknown_needs_suggests() {
    let m = one_message(&with_steps("  - id: load\n    plugin: p\n  - id: chunk\n    plugin: p\n    needs: [lod]\n"));
    assert_eq!(m, "step `chunk` needs unknown step `lod`; did you mean `load`?");
    let m = one_message(&with_steps("  - id: load\n    plugin: p\n  - id: chunk\n    plugin: p\n    needs: [zzzzz]\n"));
    assert_eq!(m, "step `chunk` needs unknown step `zzzzz`; the steps are load, chunk");
    let m = one_message(&with_steps("  - id: a\n    plugin: p\n  - id: b\n    plugin: p\n    needs: [a, a]\n"));
    assert_eq!(m, "`needs` in step `b` lists `a` more than once");
}

#[test]
fn rule_self_need() {
    let m = one_message(&with_steps("  - id: a\n    plugin: p\n    needs: [a]\n"));
    assert_eq!(m, "step `a` needs itself; remove `a` from its `needs`");
}

#[test]
fn rule_cycles_list_the_path() {
    let err = parse(
        "t.yaml",
        &with_steps(
            "  - id: a\n    plugin: p\n    needs: [c]\n  - id: b\n    plugin: p\n    needs: [a]\n  - id: c\n    plugin: p\n    needs: [b]\n  - id: d\n    plugin: p\n    needs: [c]\n",
        ),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.yaml:6:13: dependency cycle: a -> c -> b -> a; remove one of these `needs` to break it"
    );
    // Two independent cycles are both reported.
    let all = messages(&with_steps(
        "  - id: a\n    plugin: p\n    needs: [b]\n  - id: b\n    plugin: p\n    needs: [a]\n  - id: x\n    plugin: p\n    needs: [y]\n  - id: y\n    plugin: p\n    needs: [x]\n",
    ));
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].contains("a -> b -> a"));
    assert!(all[1].contains("x -> y -> x"));
}

#[test]
fn rule_bad_durations_and_sizes() {
    let all = messages(&with_steps(
        "  - id: a\n    plugin: p\n    timeout: 30\n    limits: { memory: 256M, output: lots, fuel: -1 }\n    retry: { initial_backoff: 1.5s, max_backoff: true }\n",
    ));
    assert_eq!(
        all,
        [
            "invalid duration for `timeout` in step `a`: `30` has no unit; add one, e.g. `30s` or `30ms`",
            "invalid size for `limits.memory` in step `a`: unknown size unit `M` in `256M`; did you mean `256MiB`?",
            "invalid size for `limits.output` in step `a`: `lots` is not a size; expected a whole number of bytes, optionally followed by B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, e.g. `64MiB`",
            "`limits.fuel` in step `a` cannot be negative, found -1",
            "invalid duration for `retry.initial_backoff` in step `a`: `1.5s` is not a whole number; write `1500ms` instead",
            "expected a duration such as `30s` for `retry.max_backoff` in step `a`, found a boolean",
        ]
    );
    let all = messages(&with_steps("  - id: a\n    plugin: p\n    timeout: 0s\n    limits: { memory: 0, fuel: 0 }\n"));
    assert_eq!(
        all,
        [
            "`timeout` in step `a` must be greater than zero",
            "`limits.memory` in step `a` must be greater than zero",
            "`limits.fuel` in step `a` must be greater than zero",
        ]
    );
}

#[test]
fn rule_retry_values() {
    let all = messages(&with_steps(
        "  - id: a\n    plugin: p\n    retry: { max_attempts: 0, multiplier: 0.5, initial_backoff: 20s, max_backoff: 10s, jitter: ful }\n",
    ));
    assert_eq!(
        all,
        [
            "`retry.max_attempts` in step `a` must be at least 1 (it counts the first attempt), found 0",
            "`retry.multiplier` in step `a` must be at least 1.0, found 0.5",
            "`retry.initial_backoff` (20s) is greater than `retry.max_backoff` (10s) in step `a`; lower initial_backoff or raise max_backoff",
            "unknown jitter `ful` for `retry.jitter` in step `a`; did you mean `full`?",
        ]
    );
    // Order checked against inherited values, reported once in defaults.
    let text = "name: t\nversion: \"1\"\ndefaults:\n  retry: { initial_backoff: 1m }\nsteps:\n  - id: a\n    plugin: p\n  - id: b\n    plugin: p\n";
    assert_eq!(
        messages(text),
        [
            "`defaults.retry.initial_backoff` (1m) is greater than `defaults.retry.max_backoff` (30s, inherited); lower initial_backoff or raise max_backoff"
        ]
    );
    assert!(
        one_message(&with_steps("  - id: a\n    plugin: p\n    retry: { multiplier: .nan }\n"))
            .contains("at least 1.0")
    );
    assert!(
        one_message(&with_steps("  - id: a\n    plugin: p\n    retry: { max_attempts: 5000000000 }\n"))
            .contains("is too large, found 5000000000; the maximum is 4294967295")
    );
}

#[test]
fn rule_map_concurrency_zero() {
    let m = one_message(&with_steps("  - id: a\n    plugin: p\n    map: { concurrency: 0 }\n"));
    assert_eq!(m, "`map.concurrency` in step `a` must be at least 1, found 0");
}

#[test]
fn rule_empty_steps_and_empty_name() {
    let all = messages("name: \"\"\nversion: \"1\"\nsteps: []\n");
    assert_eq!(
        all,
        ["`name` is empty; give the workflow a name", "`steps` is empty; a workflow needs at least one step",]
    );
    assert!(one_message("name: t\nversion: \"1\"\nsteps:\n").contains("`steps` is empty"));
    assert!(one_message("").contains("the file is empty"));
    assert!(one_message("# just a comment\n").contains("the file is empty"));
}

#[test]
fn rule_invalid_step_ids() {
    let all =
        messages(&with_steps("  - id: Load\n    plugin: p\n  - id: _x\n    plugin: p\n  - id: \"\"\n    plugin: p\n"));
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].starts_with("invalid step id `Load`: ids are lowercase letters"));
    assert!(all[0].ends_with("; try `load`"), "{}", all[0]);
    assert!(all[1].ends_with("; try `x`"), "{}", all[1]);
    assert!(all[2].starts_with("invalid step id ``"));
    let long = "a".repeat(65);
    assert!(one_message(&with_steps(&format!("  - id: {long}\n    plugin: p\n"))).contains("at most 64 characters"));
    assert!(parse("t.yaml", &with_steps(&format!("  - id: {}\n    plugin: p\n", "a".repeat(64)))).is_ok());
    assert!(parse("t.yaml", &with_steps("  - id: 0a-b_c\n    plugin: p\n")).is_ok());
}

#[test]
fn rule_grants_values() {
    let all = messages(&with_steps(
        "  - id: a\n    plugin: p\n    grants: { http: false, llm: [], email: 3, secrets: [a, [b]] }\n",
    ));
    assert_eq!(
        all,
        [
            "grant `http` in step `a` is `false`; remove it to withhold the capability",
            "grant `llm` in step `a` is an empty list, which allows nothing; list what it allows or use `true`",
            "expected `true` or a list of strings for grant `email` in step `a`, found an integer",
            "expected a string for an entry of grant `secrets` in step `a`, found a list",
        ]
    );
}

#[test]
fn rule_config_must_be_json() {
    let all = messages(&with_steps("  - id: a\n    plugin: p\n    config: { x: .inf, [k]: 1 }\n"));
    assert_eq!(
        all,
        [
            "`config.x` in step `a` is `.inf`, which json cannot represent; use a finite number or a string",
            "keys in `config` in step `a` must be strings, found a list; quote the key",
        ]
    );
}

#[test]
fn duplicate_yaml_keys_are_errors() {
    let err = parse("t.yaml", &with_steps("  - id: a\n    plugin: p\n    plugin: q\n")).unwrap_err();
    assert_eq!(err.to_string(), "t.yaml:6:5: duplicate key `plugin` in mapping; each key may appear only once");
    assert!(matches!(err, WorkflowError::Syntax { .. }));
}

#[test]
fn syntax_errors_have_positions() {
    let err = parse("t.yaml", "name: [a, b\nversion: 1\n").unwrap_err();
    let WorkflowError::Syntax { span, message, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(span.line >= 1 && span.column >= 1);
    assert!(message.starts_with("invalid yaml: "), "{message}");
    assert_eq!(err.diagnostics().len(), 1);
    assert_eq!(err.source_name(), "t.yaml");
}

#[test]
fn multiple_documents_are_rejected() {
    let text = format!("{}---\nname: other\n", with_steps("  - id: a\n    plugin: p\n"));
    assert!(one_message(&text).contains("expected a single yaml document"));
}

#[test]
fn collects_all_problems_sorted() {
    let text = "name: \"\"\nversion: \"1\"\nsteps:\n  - id: Bad\n    plugin: p\n    timout: 5s\n  - id: b\n    plugin: p\n    needs: [c]\n    map: { concurrency: 0 }\n";
    let err = parse("many.yaml", text).unwrap_err();
    let WorkflowError::Invalid { diagnostics, source_name } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(source_name, "many.yaml");
    assert_eq!(diagnostics.len(), 5, "{err}");
    assert!(diagnostics.windows(2).all(|w| w[0].span <= w[1].span));
    assert_eq!(err.to_string().lines().count(), 5);
    assert!(err.to_string().lines().all(|l| l.starts_with("many.yaml:")));
}

#[test]
fn diagnostic_display() {
    let d = Diagnostic::new("f.yaml", Span::new(3, 7), "something is off");
    assert_eq!(d.to_string(), "f.yaml:3:7: something is off");
    let e = WorkflowError::Invalid {
        source_name: "f.yaml".into(),
        diagnostics: vec![d.clone(), Diagnostic::new("f.yaml", Span::new(4, 1), "more")],
    };
    assert_eq!(e.to_string(), "f.yaml:3:7: something is off\nf.yaml:4:1: more");
}

// ---------------------------------------------------------------- graph helpers

#[test]
fn topological_order_and_sinks() {
    let wf = parse(
        "t.yaml",
        &with_steps(
            "  - id: d\n    plugin: p\n    needs: [c, b]\n  - id: c\n    plugin: p\n    needs: [a]\n  - id: b\n    plugin: p\n    needs: [a]\n  - id: a\n    plugin: p\n  - id: e\n    plugin: p\n",
        ),
    )
    .unwrap();
    let order: Vec<&str> = wf.topological_order().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, ["a", "c", "b", "d", "e"]);
    let sinks: Vec<&str> = wf.sinks().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(sinks, ["d", "e"]);

    let wf = parse("example.yaml", EXAMPLE).unwrap();
    let order: Vec<&str> = wf.topological_order().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, ["load", "chunk"]);
    let sinks: Vec<&str> = wf.sinks().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(sinks, ["chunk"]);
}

#[test]
fn topological_order_of_hand_built_cycle_omits_stuck_steps() {
    let mut wf = parse("t.yaml", &with_steps("  - id: a\n    plugin: p\n  - id: b\n    plugin: p\n")).unwrap();
    Arc::make_mut(&mut wf.steps[0]).needs = vec!["b".into()];
    Arc::make_mut(&mut wf.steps[1]).needs = vec!["a".into()];
    assert!(wf.topological_order().is_empty());
    Arc::make_mut(&mut wf.steps[1]).needs = vec!["ghost".into()];
    assert!(wf.topological_order().is_empty());
}

#[test]
fn bundled_workflows_parse() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../workflows"));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return; // no workflows directory yet
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Err(e) = parse(&name, &text) {
                panic!("{name} does not parse:\n{e}");
            }
        }
    }
}

// ---------------------------------------------------------------- robustness

/// Checks the contract for any input: no panic, and errors always have real positions.
fn assert_well_behaved(text: &str) {
    let partial = std::panic::catch_unwind(|| {
        if let Ok((wf, _)) = parse_partial("fuzz.yaml", text) {
            let _ = wf.topological_order();
            let _ = wf.sinks();
        }
    });
    assert!(partial.is_ok(), "parse_partial panicked on:\n{text}");
    let outcome = std::panic::catch_unwind(|| {
        parse("fuzz.yaml", text).map(|wf| {
            let _ = wf.topological_order();
            let _ = wf.sinks();
        })
    });
    match outcome {
        Err(_) => panic!("parse panicked on:\n{text}"),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let diagnostics = e.diagnostics();
            assert!(!diagnostics.is_empty(), "empty error for:\n{text}");
            for d in diagnostics {
                assert!(d.span.line >= 1 && d.span.column >= 1, "bad position {:?} for:\n{text}", d.span);
                assert!(!d.message.is_empty());
            }
        }
    }
}

#[test]
fn fuzzish_malformed_variants_never_panic() {
    let base = EXAMPLE;
    let chars: Vec<char> = base.chars().collect();
    // Every truncation.
    for end in 0..=chars.len() {
        assert_well_behaved(&chars[..end].iter().collect::<String>());
    }
    // Every line removed, and every line duplicated.
    let lines: Vec<&str> = base.lines().collect();
    for i in 0..lines.len() {
        let mut removed = lines.clone();
        removed.remove(i);
        assert_well_behaved(&removed.join("\n"));
        let mut duplicated = lines.clone();
        duplicated.insert(i, lines[i]);
        assert_well_behaved(&duplicated.join("\n"));
    }
    // Pseudo-random single-character substitutions and insertions of YAML-significant chars.
    let specials = [
        ':', '-', '[', ']', '{', '}', ',', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '\t', '\n', ' ',
        '?', '0', 'x', '\u{feff}', 'é',
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    for _ in 0..1500 {
        let mut mutated = chars.clone();
        for _ in 0..(1 + next() % 3) {
            let pos = next() % mutated.len();
            let c = specials[next() % specials.len()];
            if next() % 2 == 0 {
                mutated[pos] = c;
            } else {
                mutated.insert(pos, c);
            }
        }
        assert_well_behaved(&mutated.iter().collect::<String>());
    }
    // Oddities.
    for text in [
        "~",
        "[]",
        "{}",
        "name:",
        "steps: [~]",
        "steps: [[], {}, 1]",
        "&a [*a]",
        "a: &x 1\nb: *x",
        "!!binary aGVsbG8=",
        "name: !custom t\nversion: !!str 1\nsteps:\n  - id: !!int a\n    plugin: p\n",
        &"[".repeat(300),
        &"- ".repeat(300),
        "name: t\nversion: \"1\"\nsteps:\n  - id: a\n    plugin: p\n    needs: [a, b, c, a]\n",
        "\u{0}",
        "---\n---\n---\n",
        "? [a, b]\n: c\n",
    ] {
        assert_well_behaved(text);
    }
}

/// `levels` anchored lists, each holding ten aliases of the one before, as
/// complex keys (`? &x1 [*x0, ...]`) or as values (`x1: &x1 [*x0, ...]`).
fn alias_bomb(levels: usize, as_keys: bool) -> String {
    let mut text =
        String::from("name: bomb\nversion: '1'\nsteps: [{id: a, plugin: p}]\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..=levels {
        let list = vec![format!("*x{}", i - 1); 10].join(", ");
        if as_keys {
            text.push_str(&format!("? &x{i} [{list}]\n: v\n"));
        } else {
            text.push_str(&format!("x{i}: &x{i} [{list}]\n"));
        }
    }
    text
}

#[test]
fn alias_bombs_are_refused_before_anything_is_built_even_as_complex_keys() {
    let started = std::time::Instant::now();
    let err = parse("bomb.yaml", &alias_bomb(9, false)).unwrap_err().to_string();
    assert!(err.contains("expand to more than 100000 yaml nodes"), "{err}");
    // As complex keys, which the loader's own budget counts as one node each.
    let err = parse("keys.yaml", &alias_bomb(9, true)).unwrap_err().to_string();
    assert!(err.contains("expand to more than 100000 yaml nodes"), "{err}");
    // Ordinary anchors still work.
    let ok = with_steps(
        "  - id: a\n    plugin: p\n    config: &shared { size: 10 }\n  - id: b\n    plugin: p\n    config: *shared\n",
    );
    assert_eq!(parse("ok.yaml", &ok).unwrap().steps[1].config, serde_json::json!({ "size": 10 }));
    // A file larger than any workflow needs is not read at all.
    let huge = format!("{}# {}\n", with_steps("  - id: a\n    plugin: p\n"), "x".repeat(1 << 20));
    let err = parse("huge.yaml", &huge).unwrap_err().to_string();
    assert!(err.starts_with("huge.yaml:1:1: the file is larger than the 1 MiB a workflow file may be"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn complex_keys_are_refused_by_kind_without_building_their_text() {
    let text = with_steps("  - id: a\n    plugin: p\n    ? [x, y]\n    : v\n    ? { k: v }\n    : w\n");
    let err = parse("keys.yaml", &text).unwrap_err().to_string();
    assert!(err.contains("a field name must be plain text, found a list used as a key in step `a`"), "{err}");
    assert!(err.contains("found a mapping used as a key in step `a`"), "{err}");
}

#[test]
fn pathological_nesting_is_rejected_without_overflowing_the_stack() {
    let staircase = |n: usize, item: &str| (0..n).map(|i| format!("{}{item}\n", " ".repeat(i))).collect::<String>();
    let cases = [
        "- ".repeat(100_000),
        "[".repeat(100_000),
        format!("{}{}", "{a: ".repeat(254), "}".repeat(254)),
        staircase(5_000, "a:"),
        staircase(5_000, "-"),
        "a:\r".repeat(10_000),
        format!("{}{}{}", "- ".repeat(120), "[".repeat(254), "]".repeat(254)),
        format!(
            "x: &a {}{}\ny: &b [{}*a{}]\nz: [*b, *b]\n",
            "[".repeat(250),
            "]".repeat(250),
            "[".repeat(250),
            "]".repeat(250)
        ),
    ];
    for text in &cases {
        assert_well_behaved(text);
    }
    let err = parse("deep.yaml", &"- ".repeat(1000)).unwrap_err();
    assert!(err.to_string().contains("nested too deeply"), "{err}");
    // Ordinary wide or indented files are not affected.
    let wide = with_steps(&format!(
        "  - id: a\n    plugin: p\n    config: {{ {} }}\n",
        (0..500).map(|i| format!("k{i}: [v]")).collect::<Vec<_>>().join(", ")
    ));
    assert!(parse("wide.yaml", &wide).is_ok());
}

// ---------------------------------------------------------------- input contracts

#[test]
fn an_input_section_becomes_a_contract_that_checks_inputs() {
    let text = "name: pdf\nversion: \"1\"\ninput:\n  media_types: [application/pdf]\n  max_size: 20MiB\nsteps:\n  - id: a\n    plugin: p\n";
    let workflow = parse("t.yaml", text).unwrap();
    let contract = workflow.input.expect("the contract is parsed");
    assert_eq!(contract.workflow(), "pdf");
    assert_eq!(contract.max_size(), Some(20 << 20));
    assert_eq!(contract.media_types(), ["application/pdf"]);
    assert!(contract.check(b"MZ\x90\x00", None).is_err());
    let json = "name: t\nversion: \"1\"\ninput:\n  json_schema: { type: object, required: [subject], properties: { subject: { type: string, maxLength: 200 } } }\nsteps:\n  - id: a\n    plugin: p\n";
    let contract = parse("t.yaml", json).unwrap().input.unwrap();
    assert_eq!(contract.check(br#"{}"#, None).unwrap_err().to_string(), "input.subject: required field missing");
    assert!(parse("t.yaml", &with_steps("  - id: a\n    plugin: p\n")).unwrap().input.is_none());
}

#[test]
fn a_bad_input_section_is_reported_at_its_position() {
    let diagnostics = |text: &str| match parse("t.yaml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.diagnostics().into_iter().map(|d| format!("{}: {}", d.span, d.message)).collect::<Vec<_>>(),
    };
    let text = "name: t\nversion: \"1\"\ninput:\n  media_types: [application/pdff, text/plain]\n  max_sise: 1MiB\n  json_schema: { type: objekt }\nsteps:\n  - id: a\n    plugin: p\n";
    let found = diagnostics(text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].starts_with("4:17: unknown media type `application/pdff`; did you mean `application/pdf`?"),
        "{found:#?}"
    );
    assert!(found[1].starts_with("5:3: unknown field `max_sise` in `input`; did you mean `max_size`?"), "{found:#?}");
    assert!(found[2].starts_with("6:16: `input.json_schema` is not a usable JSON Schema"), "{found:#?}");
    let text = "name: t\nversion: \"1\"\ninput: { media_types: [application/pdf], json_schema: { type: object } }\nsteps:\n  - id: a\n    plugin: p\n";
    assert!(one_message(text).contains("accepts no JSON; add application/json"));
    let text = "name: t\nversion: \"1\"\ninput: { max_size: 0 }\nsteps:\n  - id: a\n    plugin: p\n";
    assert_eq!(one_message(text), "`input.max_size` must be greater than zero");
}
