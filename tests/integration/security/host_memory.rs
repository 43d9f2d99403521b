//! A plugin (or a workflow's `map`) filling the host's memory beside the
//! sandbox: items the host holds outside any linear memory.

use weft::scheduler::{FailureKind, JobStatus, SchedulerSettings};
use weft::{HostBuilder, Item, PluginSource};

use crate::support::{component_path, host, load, one_step, run_one, shared_cache_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_returning_more_items_than_the_host_allows_fails_with_a_limit_error() {
    let host = host();
    // 100,001 items of no payload: a few MiB of host memory, far under
    // `limits.output` (which counts payload bytes), one over the item cap.
    let yaml = one_step("huge-output", "    config: { count: 100001, item_bytes: 0 }\n");
    let outcome = run_one(&host, &yaml, vec![Item::text("x")]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let failure = outcome.report.error.expect("the job failed").failure;
    assert_eq!(failure.kind, FailureKind::Limit, "{}", failure.message);
    assert!(
        failure.message.contains("returned 100001 items, above this host's limit of 100000 items per step attempt")
            && failure.message.contains("`max_output_items`"),
        "{}",
        failure.message
    );
    assert_eq!(outcome.report.steps[0].attempts.len(), 1, "a limit breach is not retried");

    // At the cap it still works, and the host keeps serving jobs.
    let at_cap =
        run_one(&host, &one_step("huge-output", "    config: { count: 100000, item_bytes: 0 }\n"), vec![]).await;
    assert_eq!(at_cap.report.status, JobStatus::Succeeded, "{:?}", at_cap.report.error);
    assert_eq!(at_cap.outputs["s"].len(), 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_whose_items_return_more_than_the_host_allows_together_fails_with_a_limit_error() {
    let settings = weft::engine::EngineSettings {
        cache_dir: Some(shared_cache_dir().to_path_buf()),
        ..weft::engine::EngineSettings::default()
    };
    // 8 MiB for a map step's output together: each item's 1 MB is within
    // `limits.output`, 40 of them are not within the map's bound.
    let scheduler = SchedulerSettings { max_map_output: 8 * 1024 * 1024, ..SchedulerSettings::default() };
    let host = HostBuilder::new()
        .engine_settings(settings)
        .scheduler_settings(scheduler)
        .plugin("huge-output", PluginSource::File(component_path("huge-output")))
        .plugin("noop", PluginSource::File(component_path("noop")))
        .build()
        .unwrap();
    let yaml = one_step("huge-output", "    map: { concurrency: 2 }\n    config: { count: 1, item_bytes: 1000000 }\n");
    let input: Vec<Item> = (0..40).map(|i| Item::text(format!("item {i}"))).collect();
    let loaded = load(&host, &yaml);
    let outcome = host.run_job(&loaded, "map-flood", input).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let failure = outcome.report.error.expect("the job failed").failure;
    assert_eq!(failure.kind, FailureKind::Limit, "{}", failure.message);
    assert!(
        failure.message.contains("map step `s` returned 8.6 MiB of output from its first 9 input items")
            && failure.message.contains("limit of 8 MiB for a map step's output together"),
        "{}",
        failure.message
    );
    assert!(outcome.report.steps[0].attempts.len() < 40, "the items after the breach are not run");

    let healthy = run_one(&host, &one_step("noop", ""), vec![Item::text("still here")]).await;
    assert_eq!(healthy.report.status, JobStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_holding_wasi_resources_without_end_is_stopped_with_a_limit_error() {
    let host = host();
    // Each pollable is an entry in the host's resource table, outside the
    // component's linear memory; Wasmtime alone would allow 1,000,000.
    let outcome = run_one(&host, &one_step("sandbox-probe", "    config: { pollables: 20000 }\n"), vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let failure = outcome.report.error.expect("the job failed").failure;
    assert_eq!(failure.kind, FailureKind::Limit, "{}", failure.message);
    assert!(
        failure.message.contains("held more than 10000 WASI resources (streams, pollables, ...) at once"),
        "{}",
        failure.message
    );

    // Under the bound the same probe works, and the host keeps serving.
    let within = run_one(&host, &one_step("sandbox-probe", "    config: { pollables: 5000 }\n"), vec![]).await;
    assert_eq!(within.report.status, JobStatus::Succeeded, "{:?}", within.report.error);
    assert_eq!(crate::support::texts(&within, "s"), ["held 5000 pollables"]);
}

#[test]
fn the_item_cap_is_set_by_the_operator_on_the_command_line() {
    use crate::support::weft_cmd;

    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: many\nversion: '1'\nsteps:\n  - id: s\n    plugin: {}\n    config: {{ count: 11, item_bytes: 0 }}\n",
        component_path("huge-output").display()
    );
    std::fs::write(dir.path().join("many.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("in.txt"), "x").unwrap();
    let run = |extra: &[&str]| {
        weft_cmd(dir.path()).args(["run", "many.yaml", "--input", "in.txt"]).args(extra).output().unwrap()
    };
    let capped = run(&["--max-step-items", "10"]);
    let stderr = String::from_utf8_lossy(&capped.stderr);
    assert_eq!(capped.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("returned 11 items, above this host's limit of 10 items")
            && stderr.contains("--max-step-items"),
        "{stderr}"
    );
    let default = run(&[]);
    assert_eq!(default.status.code(), Some(0), "{}", String::from_utf8_lossy(&default.stderr));
}
