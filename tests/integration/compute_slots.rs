//! The engine's compute slots bound the step attempts computing at once, but
//! an attempt waiting on the network gives its slot back: steps that wait on
//! HTTP still overlap under one slot, and many attempts over few slots all
//! finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use weft::engine::EngineSettings;
use weft::scheduler::JobStatus;
use weft::{HostBuilder, Item, PluginSource};

use crate::support::{component_path, load, shared_cache_dir, texts};

/// A loopback HTTP server that holds every request until `together` requests
/// are open at once (or 10 s pass), then answers each with `together` or
/// `alone`: only concurrent requests all get `together`.
async fn rendezvous_server(together: usize) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let open = Arc::new(AtomicUsize::new(0));
    let all_here = Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let (open, all_here) = (open.clone(), all_here.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let waiting = all_here.notified();
                let body = if open.fetch_add(1, Ordering::SeqCst) + 1 >= together {
                    all_here.notify_waiters();
                    "together"
                } else if tokio::time::timeout(Duration::from_secs(10), waiting).await.is_ok() {
                    "together"
                } else {
                    "alone"
                };
                let reply =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

fn host_with_slots(slots: usize) -> weft::Host {
    let settings = EngineSettings {
        cache_dir: Some(shared_cache_dir().to_path_buf()),
        compute_slots: slots,
        ..EngineSettings::default()
    };
    HostBuilder::new()
        .engine_settings(settings)
        .plugin("capability-probe", PluginSource::File(component_path("capability-probe")))
        .build()
        .expect("host builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_waiting_on_http_overlap_under_a_single_compute_slot() {
    let (base, server) = rendezvous_server(3).await;
    let host = host_with_slots(1);
    let calls = serde_json::json!({ "calls": [{ "http": { "url": format!("{base}/wait") } }] });
    let workflow = format!(
        "name: overlap\nversion: '1'\nsteps:\n  - id: probe\n    plugin: capability-probe\n    map: {{ concurrency: 3 }}\n    retry: {{ max_attempts: 1 }}\n    grants: {{ http: [\"{base}\"] }}\n    config: {calls}\n"
    );
    let loaded = load(&host, &workflow);
    let items = (0..3).map(|i| Item::text(format!("item {i}"))).collect();
    let outcome = host.run_job(&loaded, "job-overlap", items).await;
    server.abort();
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:#?}", outcome.report);
    let results: Vec<serde_json::Value> =
        texts(&outcome, "probe").iter().map(|t| serde_json::from_str(t).expect("probe JSON")).collect();
    assert_eq!(results.len(), 3);
    for result in &results {
        // Had the slot been held through the call, the first request would
        // have waited alone for the others, which could not start.
        assert_eq!(result["ok"]["body"], "together", "{results:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_attempts_over_one_compute_slot_all_finish() {
    let host = host_with_slots(1);
    let workflow = format!(
        "name: fan\nversion: '1'\nsteps:\n  - id: echo\n    plugin: {}\n    map: {{ concurrency: 8 }}\n",
        component_path("echo-config").display()
    );
    let loaded = load(&host, &workflow);
    let items: Vec<Item> = (0..24).map(|i| Item::text(format!("item {i}"))).collect();
    let outcome = host.run_job(&loaded, "job-fan", items).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:#?}", outcome.report);
    assert_eq!(texts(&outcome, "echo").len(), 24);
}

/// Runs two `busy` attempts that may run side by side (a map step of
/// concurrency 2), each computing for 500 ms, on a host with `slots` compute
/// slots (0: no bound), and returns when each computed, in microseconds.
async fn busy_intervals(slots: usize) -> Vec<(u128, u128)> {
    let settings = EngineSettings {
        cache_dir: Some(shared_cache_dir().to_path_buf()),
        compute_slots: slots,
        ..EngineSettings::default()
    };
    let host = HostBuilder::new()
        .engine_settings(settings)
        .plugin("busy", PluginSource::File(component_path("busy")))
        .build()
        .expect("host builds");
    let workflow = "name: busy\nversion: '1'\nsteps:\n  - id: work\n    plugin: busy\n    map: { concurrency: 2 }\n    \
                    retry: { max_attempts: 1 }\n    config: { ms: 500 }\n";
    let loaded = load(&host, workflow);
    let items = (0..2).map(|i| Item::text(format!("item {i}"))).collect();
    let outcome = host.run_job(&loaded, &format!("job-busy-{slots}"), items).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:#?}", outcome.report);
    texts(&outcome, "work")
        .iter()
        .map(|text| {
            let (start, end) = text.split_once(' ').expect("`<start> <end>` from busy");
            (start.parse().expect("start micros"), end.parse().expect("end micros"))
        })
        .collect()
}

fn overlap(intervals: &[(u128, u128)]) -> bool {
    let [(a_start, a_end), (b_start, b_end)] = intervals else { panic!("two intervals expected: {intervals:?}") };
    a_start < b_end && b_start < a_end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_compute_slot_keeps_two_computing_attempts_apart() {
    // Without a bound the two attempts compute at the same time: this is
    // what the bounded run below must not do.
    let unbounded = busy_intervals(0).await;
    assert!(overlap(&unbounded), "without compute slots the attempts should overlap: {unbounded:?}");
    // With one slot the second attempt starts only after the first finished,
    // even though the first is interrupted at every epoch tick to let other
    // tasks run (those interruptions keep the slot).
    let bounded = busy_intervals(1).await;
    assert!(!overlap(&bounded), "one compute slot let two attempts compute at once: {bounded:?}");
}
