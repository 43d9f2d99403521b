//! `weft serve --http` as a user runs it (the binary, the bundled
//! workflows directory): the README's curl session, the loopback-only rule
//! without auth, and schemathesis (a tool nobody here wrote) generating
//! requests from `/openapi.json` against the running server.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::nats::NatsServer;
use crate::support::repo_root;

/// A `weft serve` process, killed on drop.
struct Served {
    child: Child,
    base: String,
    _stderr: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `weft serve` with `args` and waits (at most 600 s) for the line
/// that says where the API listens.
fn serve(server: &NatsServer, args: &[&str]) -> Served {
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(repo_root())
        .args(["serve", "--nats", &server.url(), "--workflows", "workflows/", "--http", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Owned at once, so a failed wait below kills the process on drop.
    let mut served = Served { child, base: String::new(), _stderr: None };
    let stderr = served.child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    served._stderr = Some(std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    }));
    // A cold compile cache compiles every bundled plugin first (minutes on a
    // loaded 2-core machine).
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line =
            received.recv_timeout(left).unwrap_or_else(|_| panic!("no API address; stderr:\n{}", seen.join("\n")));
        if let Some(rest) = line.split("HTTP API on ").nth(1) {
            served.base = rest.split_whitespace().next().unwrap().to_string();
            return served;
        }
        seen.push(line);
    }
}

#[test]
fn without_auth_the_api_refuses_a_non_loopback_address() {
    let server = NatsServer::start();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(repo_root())
        .args(["serve", "--nats", &server.url(), "--workflows", "workflows/", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without authentication") && stderr.contains("--insecure-no-auth"), "{stderr}");
}

/// The README's curl session, step by step, with the binary a user builds.
#[test]
fn the_readme_curl_session_uploads_follows_and_fetches_a_result() {
    let server = NatsServer::start();
    let served = serve(&server, &[]);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .current_dir(repo_root())
            .args(["-sS", "--max-time", "60"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let accepted =
        curl(&["-F", "file=@workflows/samples/sample.pdf", &format!("{}/v1/workflows/pdf-digest/jobs", served.base)]);
    let accepted: serde_json::Value = serde_json::from_str(&accepted).unwrap();
    let job = accepted["job_id"].as_str().unwrap();
    let events = curl(&["-N", &format!("{}/v1/jobs/{job}/events", served.base)]);
    assert!(events.contains("\"state\":\"succeeded\""), "{events}");
    let result: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("{}/v1/jobs/{job}/result", served.base)])).unwrap();
    assert!(result["notify"][0]["payload"]["text"].as_str().unwrap().contains("summary"), "{result}");
}

/// schemathesis generates requests for every operation of `/openapi.json`
/// and checks each answer: no 5xx, and every response matches the document
/// (status code, content type, body schema).
#[test]
fn schemathesis_finds_no_server_error_and_no_response_off_the_schema() {
    let Ok(version) = Command::new("schemathesis").arg("--version").output() else {
        panic!("schemathesis is not installed: run `bash scripts/setup.sh` (tools/python/requirements.txt pins it)");
    };
    assert!(version.status.success());
    let server = NatsServer::start();
    // API only: submitted jobs wait in the stream, nothing runs them.
    // Its requests come fast from one address: a rate limit that lets them
    // reach the handlers (429 is documented, and tested in api.rs).
    let served = serve(&server, &["--no-worker", "--rate-per-address", "100000", "--rate-per-key", "100000"]);
    let examples = std::env::var("WEFT_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".to_string());
    let out = Command::new("schemathesis")
        .args([
            "run",
            &format!("{}/openapi.json", served.base),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            &examples,
            "--seed",
            "1",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found problems:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // It did run requests (a run of zero cases also exits 0).
    assert!(stdout.contains("passed"), "{stdout}");
}
