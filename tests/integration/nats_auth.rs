//! NATS authentication and TLS through the `weft` binary, against a real
//! nats-server configured for each mode: the right credentials connect and
//! run a job end to end (`weft serve` + `weft submit --wait`); wrong or
//! missing ones fail at once with an error that names the problem and the
//! flag to fix. Credentials files run against a server in operator mode
//! (decentralised JWT auth): the test signs its own operator, account and user
//! JWTs with fresh nkeys and preloads the account into a memory resolver.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::nats::NatsServer;
use crate::support::{component_path, wait_exit, weft_cmd};

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
        assert!(!wrong.contains("--nats-token"), "names only the flags used: {wrong}");
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
        assert!(!wrong.contains("--nats-nkey"), "names only the flag used: {wrong}");
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

/// Signs `claims` as a NATS JWT (v2) with `issuer`: the `ed25519-nkey`
/// header, `iss` and `iat` filled in, and `jti` the base32 SHA-512/256 of the
/// standard claim fields, as nats-io/jwt computes it.
fn sign_jwt(issuer: &nkeys::KeyPair, mut claims: serde_json::Value) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let base64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let issued_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    claims["iss"] = issuer.public_key().into();
    claims["iat"] = issued_at.into();
    let standard_fields = serde_json::json!({
        "iat": issued_at, "iss": issuer.public_key(), "name": claims["name"], "sub": claims["sub"]
    });
    let digest = sha2::Sha512_256::digest(serde_json::to_vec(&standard_fields).unwrap());
    claims["jti"] = base32_no_padding(&digest).into();
    let header = base64url.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = base64url.encode(serde_json::to_vec(&claims).unwrap());
    let signing_input = format!("{header}.{payload}");
    let signature = issuer.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", base64url.encode(signature))
}

/// RFC 4648 base32 (upper case), no padding.
fn base32_no_padding(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// An account JWT signed by `operator`; `jetstream` gives it unlimited
/// JetStream (an account without JetStream limits cannot use JetStream).
fn account_jwt(operator: &nkeys::KeyPair, account: &nkeys::KeyPair, name: &str, jetstream: bool) -> String {
    let mut limits = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1
    });
    if jetstream {
        for field in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[field] = (-1).into();
        }
    }
    sign_jwt(
        operator,
        serde_json::json!({
            "sub": account.public_key(), "name": name,
            "nats": { "limits": limits, "type": "account", "version": 2 }
        }),
    )
}

/// A `.creds` file for `user`, its JWT signed by `account`, in the layout
/// `nsc generate creds` writes.
fn creds_file(path: &Path, account: &nkeys::KeyPair, user: &nkeys::KeyPair, seed_owner: &nkeys::KeyPair) -> String {
    let jwt = sign_jwt(
        account,
        serde_json::json!({
            "sub": user.public_key(), "name": "weft-worker",
            "nats": { "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2 }
        }),
    );
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        seed_owner.seed().unwrap()
    );
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_file_in_operator_mode() {
    let operator = nkeys::KeyPair::new_operator();
    let (account, system) = (nkeys::KeyPair::new_account(), nkeys::KeyPair::new_account());
    let operator_jwt = sign_jwt(
        &operator,
        serde_json::json!({
            "sub": operator.public_key(), "name": "weft-test-operator",
            "nats": { "system_account": system.public_key(), "type": "operator", "version": 2 }
        }),
    );
    let server = NatsServer::start_with_config(Some(&format!(
        "operator: {operator_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {app}: {app_jwt}\n  {sys}: {sys_jwt}\n}}\n",
        sys = system.public_key(),
        app = account.public_key(),
        app_jwt = account_jwt(&operator, &account, "weft", true),
        sys_jwt = account_jwt(&operator, &system, "SYS", false),
    )));
    let url = server.url();
    let creds = tempfile::tempdir().unwrap();
    let user = nkeys::KeyPair::new_user();
    let good = creds_file(&creds.path().join("weft.creds"), &account, &user, &user);
    // A user of an account this operator never signed, and a valid user JWT
    // paired with someone else's seed (it cannot sign the server's nonce).
    let stranger_account = nkeys::KeyPair::new_account();
    let foreign = creds_file(&creds.path().join("foreign.creds"), &stranger_account, &user, &user);
    let wrong_seed = creds_file(&creds.path().join("wrong-seed.creds"), &account, &user, &nkeys::KeyPair::new_user());
    tokio::task::block_in_place(|| {
        job_runs_with(&url, &["--nats-creds", &good]);
        for bad in [&foreign, &wrong_seed] {
            let rejected = submit_fails(&url, &["--nats-creds", bad]);
            assert!(rejected.contains("the server rejected the credentials"), "{bad}: {rejected}");
            assert!(rejected.contains("--nats-creds"), "names the flag to check: {rejected}");
            assert!(!rejected.contains("--nats-token"), "names only the flag used: {rejected}");
        }
        let missing_file = creds.path().join("absent.creds");
        let missing = submit_fails(&url, &["--nats-creds", missing_file.to_str().unwrap()]);
        assert!(missing.contains(&format!("cannot read the credentials file {}", missing_file.display())), "{missing}");
        let garbage_file = creds.path().join("garbage.creds");
        std::fs::write(&garbage_file, "this is not a credentials file\n").unwrap();
        let garbage = submit_fails(&url, &["--nats-creds", garbage_file.to_str().unwrap()]);
        assert!(garbage.contains("cannot parse user JWT from the credentials file"), "{garbage}");
        let no_credentials = submit_fails(&url, &[]);
        assert!(no_credentials.contains("no credentials were given"), "{no_credentials}");
    });
}
