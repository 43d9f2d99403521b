//! A second host (a second `weft run`) loads compiled components from the
//! on-disk cache instead of compiling them again.

use weft::Item;
use weft::scheduler::JobStatus;

use crate::support::{host_with_cache, load, one_step};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_loads_from_the_cache_and_does_not_recompile() {
    let cache = tempfile::tempdir().unwrap();
    let yaml = "name: t\nversion: '1'\nsteps:\n  - id: a\n    plugin: noop\n  - id: b\n    plugin: echo-config\n    needs: [a]\n";

    let first = host_with_cache(Some(cache.path()));
    let loaded = load(&first, yaml);
    assert_eq!(first.engine_stats().compiled, 2);
    assert_eq!(first.engine_stats().cache_hits, 0);
    assert_eq!(first.run_job(&loaded, "j1", vec![Item::text("x")]).await.report.status, JobStatus::Succeeded);
    drop(first);

    let second = host_with_cache(Some(cache.path()));
    let loaded = load(&second, yaml);
    assert_eq!(second.engine_stats().compiled, 0, "nothing is recompiled");
    assert_eq!(second.engine_stats().cache_hits, 2);
    assert_eq!(second.run_job(&loaded, "j2", vec![Item::text("x")]).await.report.status, JobStatus::Succeeded);
}

#[test]
fn a_corrupted_cache_entry_is_recompiled_not_trusted() {
    let cache = tempfile::tempdir().unwrap();
    let yaml = one_step("noop", "");
    load(&host_with_cache(Some(cache.path())), &yaml);
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let host = host_with_cache(Some(cache.path()));
    load(&host, &yaml);
    assert_eq!(host.engine_stats().compiled, 1);
    assert_eq!(host.engine_stats().cache_hits, 0);
}
