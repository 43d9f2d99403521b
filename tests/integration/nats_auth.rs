//! NATS authentication and TLS through the `weft` binary, against a real
//! nats-server configured for each mode: the right credentials connect and
//! run a job end to end (`weft serve` + `weft submit --wait`); wrong or
//! missing ones fail at once with an error that names the problem and the
//! flag to fix. Credentials files (JWT, operator mode) are not covered: they
//! need an operator/account/resolver setup beyond these tests.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::nats::NatsServer;
use crate::support::component_path;

/// The `weft` binary with no NATS settings inherited from the environment.
fn weft_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.current_dir(cwd)
        .env("WEFT_CACHE_DIR", crate::support::shared_cache_dir())
        .env_remove("RUST_LOG")
        .env_remove("NATS_URL")
        .env_remove("NATS_PASSWORD")
        .env_remove("NATS_TOKEN")
        .env_remove("NATS_NKEY");
    cmd
}

/// A directory with an `echo` workflow and an input file.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: echo\nversion: '1'\nsteps:\n  - id: echo\n    plugin: {}\n",
        component_path("echo-config").display()
    );
    std::fs::write(dir.path().join("echo.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("input.txt"), "hello over an authenticated connection").unwrap();
    dir
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `weft submit echo --input input.txt --wait` with `auth` flags.
fn submit(dir: &Path, url: &str, job_id: &str, auth: &[&str]) -> Output {
    weft_cmd(dir)
        .args(["submit", "echo", "--input", "input.txt", "--wait", "--timeout-secs", "60", "--job-id", job_id])
        .args(["--nats", url])
        .args(auth)
        .output()
        .expect("weft submit runs")
}

/// Runs one job through `weft serve` and `weft submit --wait`, both with
/// `auth`, and checks it succeeded; then stops the worker with SIGTERM.
fn job_runs_with(server_url: &str, auth: &[&str]) {
    let dir = workdir();
    let mut worker = weft_cmd(dir.path())
        .args(["serve", "--workflows", ".", "--drain-grace-secs", "10", "--nats", server_url])
        .args(auth)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft serve starts");
    let out = submit(dir.path(), server_url, "auth-ok", auth);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let status = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let exit = wait_exit(&mut worker, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "submit with {auth:?}: {stderr}");
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("submit --wait prints the job record");
    assert_eq!(record["state"], "succeeded", "{record}");
    assert_eq!(record["attempts"], 1);
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "the worker connected with {auth:?} and drained cleanly");
}

/// Runs `weft submit` with `auth` and returns its error output, checking it
/// failed quickly (a rejected connection is not retried for the whole
/// connect window) and printed no job id.
fn submit_fails(server_url: &str, auth: &[&str]) -> String {
    let dir = workdir();
    let started = Instant::now();
    let out = submit(dir.path(), server_url, "auth-denied", auth);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "submit with {auth:?} must fail as a usage error: {stderr}");
    assert!(out.stdout.is_empty(), "nothing was submitted: {}", String::from_utf8_lossy(&out.stdout));
    assert!(started.elapsed() < Duration::from_secs(10), "failed fast, not after retries: {:?}", started.elapsed());
    assert!(stderr.contains(&format!("cannot connect to NATS at {server_url}")), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password() {
    let server = NatsServer::start_with_config(Some(r#"authorization { user: "weft", password: "s3cret-pw" }"#));
    let url = server.url();
    tokio::task::block_in_place(|| {
        job_runs_with(&url, &["--nats-user", "weft", "--nats-password", "s3cret-pw"]);
        let wrong = submit_fails(&url, &["--nats-user", "weft", "--nats-password", "guessed"]);
        assert!(wrong.contains("the server rejected the credentials (authorization violation)"), "{wrong}");
        assert!(wrong.contains("--nats-password"), "names the flag to check: {wrong}");
        let missing = submit_fails(&url, &[]);
        assert!(
            missing.contains("requires authentication") && missing.contains("no credentials were given"),
            "{missing}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token() {
    let server = NatsServer::start_with_config(Some(r#"authorization { token: "t0ken-for-weft" }"#));
    let url = server.url();
    tokio::task::block_in_place(|| {
        job_runs_with(&url, &["--nats-token", "t0ken-for-weft"]);
        let wrong = submit_fails(&url, &["--nats-token", "not-the-token"]);
        assert!(wrong.contains("the server rejected the credentials"), "{wrong}");
        assert!(wrong.contains("--nats-token"), "{wrong}");
        let missing = submit_fails(&url, &[]);
        assert!(missing.contains("no credentials were given"), "{missing}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_seed() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let server = NatsServer::start_with_config(Some(&format!(
        "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
        user.public_key()
    )));
    let url = server.url();
    tokio::task::block_in_place(|| {
        job_runs_with(&url, &["--nats-nkey", &seed]);
        let stranger = nkeys::KeyPair::new_user().seed().unwrap();
        let wrong = submit_fails(&url, &["--nats-nkey", &stranger]);
        assert!(wrong.contains("the server rejected the credentials"), "{wrong}");
        assert!(wrong.contains("--nats-nkey"), "{wrong}");
        let malformed = submit_fails(&url, &["--nats-nkey", "SUNOTASEED"]);
        assert!(malformed.contains("cannot authenticate") && malformed.contains("user seed"), "{malformed}");
    });
}

/// A CA and a server certificate for 127.0.0.1 signed by it, written as PEM
/// files into `dir`; returns (ca, cert, key) paths.
fn certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "weft test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server_params.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, server_cert.pem()).unwrap();
    std::fs::write(&paths.2, server_key.serialize_pem()).unwrap();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let server = NatsServer::start_with_config(Some(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
        cert.display(),
        key.display()
    )));
    let ca = ca.to_str().unwrap().to_string();
    let (url, tls_url) = (server.url(), server.tls_url());
    tokio::task::block_in_place(|| {
        // The server demands TLS; trusting its CA is enough, with either scheme.
        job_runs_with(&url, &["--nats-tls-ca", &ca, "--nats-require-tls"]);
        // A tls:// URL connects too: `status` gets past the connection and
        // answers about the job itself.
        let dir = workdir();
        let out = weft_cmd(dir.path())
            .args(["status", "tls-probe", "--nats", &tls_url, "--nats-tls-ca", &ca])
            .output()
            .expect("weft status runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no job `tls-probe` is known"), "{stderr}");
        let untrusted = submit_fails(&url, &[]);
        assert!(untrusted.contains("TLS handshake failed"), "{untrusted}");
        assert!(untrusted.contains("UnknownIssuer") || untrusted.contains("unknown issuer"), "{untrusted}");
        assert!(untrusted.contains("--nats-tls-ca"), "{untrusted}");
        let missing_ca = submit_fails(&url, &["--nats-tls-ca", "/nonexistent/ca.pem"]);
        assert!(missing_ca.contains("the TLS CA file /nonexistent/ca.pem does not exist"), "{missing_ca}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_against_a_plain_server_fails() {
    let server = NatsServer::start();
    let url = server.url();
    tokio::task::block_in_place(|| {
        let stderr = submit_fails(&url, &["--nats-require-tls"]);
        assert!(stderr.contains("TLS handshake failed"), "{stderr}");
        assert!(stderr.contains("--nats-require-tls"), "{stderr}");
    });
}
