//! The HTTP API over real HTTP on loopback, against a real nats-server and
//! in-process workers running real components: upload → job → events →
//! result, idempotent resubmission, refused uploads, listing with paging,
//! cancel, dead letters and replay, the OpenAPI document.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use weft::api::auth::{AuthConfig, Authenticator};
use weft::api::rate_limit::RateLimit;
use weft::api::{ApiLimits, ApiState, WorkflowInfo};
use weft::queue::JobState;

use crate::nats::NatsServer;
use crate::queue::{ECHO, client, fast_retries, start_worker, workflow};
use crate::support::{component_path, host, load, repo_root};

/// An API server on an ephemeral loopback port, stopped on drop.
struct Api {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    http: reqwest::Client,
}

impl Api {
    /// Serves the API over `server` for `workflows` (YAML texts).
    async fn start(server: &NatsServer, workflows: &[&str], limits: ApiLimits) -> Api {
        Api::start_with(server, workflows, limits, None).await
    }

    /// [`Api::start`] with callers authenticated as `auth` says.
    async fn start_with(server: &NatsServer, workflows: &[&str], limits: ApiLimits, auth: Option<AuthConfig>) -> Api {
        let host = host();
        let infos = workflows.iter().map(|yaml| WorkflowInfo::of(&load(&host, yaml))).collect();
        let queue = client(server).await;
        let auth = match auth {
            Some(config) => Some(Authenticator::start(config, queue.clone()).await.unwrap()),
            None => None,
        };
        let state = ApiState::with_auth(queue, infos, limits.clone(), auth).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            weft::api::serve(listener, weft::api::router(state), None, &limits, shutdown, Duration::from_secs(5))
                .await
                .unwrap();
        });
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Api { base, stop: Some(stop), http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    async fn post(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http.post(self.url(path)).header("content-type", content_type).body(body).send().await.unwrap()
    }

    /// GET `path` until its JSON `state` is `wanted` (at most 60 s).
    async fn wait_for_state(&self, job_id: &str, wanted: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job: serde_json::Value = self.get(&format!("/v1/jobs/{job_id}")).await.json().await.unwrap();
            if job["state"] == wanted {
                return job;
            }
            assert!(Instant::now() < deadline, "job {job_id} never reached {wanted}: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A problem+json body, checked to be one.
async fn problem(response: reqwest::Response, status: StatusCode) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    body
}

fn multipart(file_name: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "weft-test-boundary-7d1f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn pdf_digest() -> String {
    std::fs::read_to_string(repo_root().join("workflows/pdf-digest.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uploaded_pdf_becomes_a_job_whose_events_and_result_the_api_serves() {
    let server = NatsServer::start();
    let digest = pdf_digest();
    let worker = start_worker(&server, &[&digest], fast_retries("w1")).await;
    let api = Api::start(&server, &[&digest], ApiLimits::default()).await;
    let pdf = std::fs::read(repo_root().join("workflows/samples/sample.pdf")).unwrap();
    let (content_type, body) = multipart("sample.pdf", "application/pdf", &pdf);

    let response = api.post("/v1/workflows/pdf-digest/jobs", &content_type, body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let accepted: serde_json::Value = response.json().await.unwrap();
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/jobs/{job_id}"));
    assert_eq!(accepted["duplicate"], false);

    // The events stream ends after the terminal state.
    let events = api.get(&format!("/v1/jobs/{job_id}/events")).await;
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(60), events.text()).await.expect("the stream ends").unwrap();
    let states: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str::<serde_json::Value>(data).unwrap()["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states.last().map(String::as_str), Some("succeeded"), "events: {text}");

    let job = api.wait_for_state(&job_id, "succeeded").await;
    assert_eq!(job["workflow"], "pdf-digest");
    assert_eq!(job["attempts"], 1);
    let result: serde_json::Value = api.get(&format!("/v1/jobs/{job_id}/result")).await.json().await.unwrap();
    let digest: serde_json::Value =
        serde_json::from_str(result["notify"][0]["payload"]["text"].as_str().expect("the digest")).unwrap();
    let summary = digest["summary"].as_str().unwrap();
    assert!(!summary.is_empty());
    assert!(!summary.contains("jane.doe@example.com"), "the summary is built from masked text: {summary}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_post_with_the_same_idempotency_key_returns_the_same_job() {
    let server = NatsServer::start();
    let echo = workflow("echo", ECHO);
    let worker = start_worker(&server, &[&echo], fast_retries("w1")).await;
    let api = Api::start(&server, &[&echo], ApiLimits::default()).await;
    let send = |key: &'static str, body: &'static str| {
        api.http
            .post(api.url("/v1/workflows/echo/jobs"))
            .header("content-type", "text/plain")
            .header("idempotency-key", key)
            .body(body)
            .send()
    };
    let first: serde_json::Value = send("order-17", "hello").await.unwrap().json().await.unwrap();
    let job_id = first["job_id"].as_str().unwrap().to_string();
    api.wait_for_state(&job_id, "succeeded").await;
    let again = send("order-17", "hello").await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["job_id"], job_id.as_str());
    assert_eq!(again["duplicate"], true);

    // The same key with another input is refused, naming the first job.
    let other = problem(send("order-17", "other input").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(other["detail"].as_str().unwrap().contains(&job_id), "{other}");
    // Another key is another job.
    let fresh: serde_json::Value = send("order-18", "hello").await.unwrap().json().await.unwrap();
    assert_ne!(fresh["job_id"], job_id.as_str());

    let record = client(&server).await.status(&job_id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 1, "the job ran once");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mistyped_oversized_and_misaddressed_requests_get_problem_details() {
    let server = NatsServer::start();
    let digest = pdf_digest();
    let limits = ApiLimits { max_upload_bytes: 4096, ..ApiLimits::default() };
    let api = Api::start(&server, &[&digest], limits).await;

    let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    let (content_type, body) = multipart("invoice.pdf", "application/pdf", &exe);
    let refused = problem(
        api.post("/v1/workflows/pdf-digest/jobs", &content_type, body).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("Windows executable"), "{refused}");
    let raw = problem(
        api.post("/v1/workflows/pdf-digest/jobs", "application/pdf", exe).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert!(raw["detail"].as_str().unwrap().contains("Windows executable"), "{raw}");

    let big = vec![b'a'; 10_000];
    let too_large = problem(
        api.post("/v1/workflows/pdf-digest/jobs", "text/plain", big.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(too_large["detail"].as_str().unwrap().contains("4 KiB"), "{too_large}");
    let (content_type, body) = multipart("big.txt", "text/plain", &big);
    problem(api.post("/v1/workflows/pdf-digest/jobs", &content_type, body).await, StatusCode::PAYLOAD_TOO_LARGE).await;

    let unknown = problem(api.post("/v1/workflows/nope/jobs", "text/plain", "x").await, StatusCode::NOT_FOUND).await;
    assert!(unknown["detail"].as_str().unwrap().contains("pdf-digest"), "lists the served ones: {unknown}");
    let bad_json =
        problem(api.post("/v1/workflows/pdf-digest/jobs", "application/json", "{oops").await, StatusCode::BAD_REQUEST)
            .await;
    assert!(bad_json["detail"].as_str().unwrap().contains("not valid JSON"), "{bad_json}");
    problem(api.get("/v1/jobs/no-such-job").await, StatusCode::NOT_FOUND).await;
    problem(api.get("/v1/jobs/not%20an%20id").await, StatusCode::BAD_REQUEST).await;
    problem(api.get("/v2/anything").await, StatusCode::NOT_FOUND).await;
    problem(api.http.delete(api.url("/v1/jobs")).send().await.unwrap(), StatusCode::METHOD_NOT_ALLOWED).await;
    problem(api.get("/v1/jobs?state=lost").await, StatusCode::BAD_REQUEST).await;
    problem(api.get("/v1/jobs?since=yesterday").await, StatusCode::BAD_REQUEST).await;

    // A workflow's input contract: a JSON ticket missing a field is refused
    // naming it; a good one is accepted.
    let triage = std::fs::read_to_string(repo_root().join("workflows/ticket-triage.yaml")).unwrap();
    let tickets = Api::start(&server, &[&triage], ApiLimits::default()).await;
    let missing =
        tickets.post("/v1/workflows/ticket-triage/jobs", "application/json", r#"{"subject": "refund"}"#).await;
    let missing = problem(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(missing["detail"].as_str().unwrap().contains("input.body"), "{missing}");
    let depth = client(&server).await.queue_depths().await.unwrap();
    assert!(depth.iter().all(|q| q.jobs == 0), "{depth:?}");
    let good = tickets
        .post("/v1/workflows/ticket-triage/jobs", "application/json", r#"{"subject": "refund", "body": "order 17"}"#)
        .await;
    assert_eq!(good.status(), StatusCode::ACCEPTED);
    let listed: serde_json::Value = tickets.get("/v1/workflows/ticket-triage").await.json().await.unwrap();
    assert_eq!(listed["input"]["json_schema"]["required"][1], "body", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_requests_leave_the_queue_empty() {
    let server = NatsServer::start();
    let digest = pdf_digest();
    let limits = ApiLimits { max_upload_bytes: 4096, ..ApiLimits::default() };
    let api = Api::start(&server, &[&digest], limits).await;
    let exe = b"MZ\x90\x00".to_vec();
    problem(
        api.post("/v1/workflows/pdf-digest/jobs", "application/pdf", exe).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    problem(
        api.post("/v1/workflows/pdf-digest/jobs", "text/plain", vec![b'a'; 10_000]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // Nothing refused reached the queue.
    let depth = client(&server).await.queue_depths().await.unwrap();
    assert!(depth.iter().all(|q| q.jobs == 0), "{depth:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_are_listed_by_workflow_and_state_page_by_page() {
    let server = NatsServer::start();
    let echo = workflow("echo", ECHO);
    let other = workflow("other", ECHO);
    let worker = start_worker(&server, &[&echo, &other], fast_retries("w1")).await;
    let api = Api::start(&server, &[&echo, &other], ApiLimits::default()).await;
    let mut echo_jobs = Vec::new();
    for i in 0..5 {
        let accepted: serde_json::Value =
            api.post("/v1/workflows/echo/jobs", "text/plain", format!("job {i}")).await.json().await.unwrap();
        echo_jobs.push(accepted["job_id"].as_str().unwrap().to_string());
    }
    let other_job: serde_json::Value =
        api.post("/v1/workflows/other/jobs", "text/plain", "x").await.json().await.unwrap();
    for job in echo_jobs.iter().chain([other_job["job_id"].as_str().unwrap().to_string()].iter()) {
        api.wait_for_state(job, "succeeded").await;
    }

    let mut listed = Vec::new();
    let mut cursor = None::<u64>;
    for _page in 0..10 {
        let path = match cursor {
            Some(c) => format!("/v1/jobs?workflow=echo&state=succeeded&limit=2&cursor={c}"),
            None => "/v1/jobs?workflow=echo&state=succeeded&limit=2".to_string(),
        };
        let page: serde_json::Value = api.get(&path).await.json().await.unwrap();
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        listed.extend(jobs.iter().map(|j| j["job_id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_u64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let (mut listed_sorted, mut expected) = (listed.clone(), echo_jobs.clone());
    listed_sorted.sort();
    expected.sort();
    assert_eq!(listed_sorted, expected, "each echo job once, the other workflow's not at all");

    // Without a state filter each job is still listed once, at its latest
    // record (its earlier revisions are in the bucket's stream too).
    let all: serde_json::Value = api.get("/v1/jobs?workflow=echo&limit=500").await.json().await.unwrap();
    let mut ids: Vec<&str> = all["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, expected, "{all}");
    assert!(all["jobs"].as_array().unwrap().iter().all(|j| j["state"] == "succeeded"), "{all}");

    let running: serde_json::Value = api.get("/v1/jobs?state=running").await.json().await.unwrap();
    assert_eq!(running["jobs"].as_array().unwrap().len(), 0);
    let future: serde_json::Value = api.get("/v1/jobs?since=2999-01-01T00:00:00Z").await.json().await.unwrap();
    assert_eq!(future["jobs"].as_array().unwrap().len(), 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_job_is_cancelled_and_a_dead_letter_is_replayed_over_http() {
    let server = NatsServer::start();
    // `waiting` is served by no worker: its job stays queued.
    let waiting = workflow("waiting", ECHO);
    let api = Api::start(&server, &[&waiting], ApiLimits::default()).await;
    let accepted: serde_json::Value =
        api.post("/v1/workflows/waiting/jobs", "text/plain", "x").await.json().await.unwrap();
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    let queued: serde_json::Value = api.get(&format!("/v1/jobs/{job_id}")).await.json().await.unwrap();
    assert_eq!(queued["state"], "queued");
    assert_eq!(queued["workflow"], "waiting");
    problem(api.get(&format!("/v1/jobs/{job_id}/result")).await, StatusCode::CONFLICT).await;

    let cancelled = api
        .http
        .post(api.url(&format!("/v1/jobs/{job_id}/cancel")))
        .json(&serde_json::json!({"reason": "sent by mistake"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: serde_json::Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["job"]["state"], "cancelled");
    assert_eq!(cancelled["job"]["cancellation"]["reason"], "sent by mistake");
    assert_eq!(cancelled["job"]["cancellation"]["by"], "api:anonymous");
    let again =
        problem(api.post(&format!("/v1/jobs/{job_id}/cancel"), "application/json", "").await, StatusCode::CONFLICT)
            .await;
    assert!(again["detail"].as_str().unwrap().contains("already finished"), "{again}");

    // A job that fails for good is listed as a dead letter and replayed.
    let trap = workflow("trap", &format!("  - id: boom\n    plugin: {}\n", component_path("trap").display()));
    let worker = start_worker(&server, &[&trap], fast_retries("w1")).await;
    let api = Api::start(&server, &[&trap], ApiLimits::default()).await;
    let accepted: serde_json::Value =
        api.post("/v1/workflows/trap/jobs", "text/plain", "x").await.json().await.unwrap();
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    api.wait_for_state(&job_id, "dead_lettered").await;
    let letters: serde_json::Value = api.get("/v1/dead-letters?workflow=trap").await.json().await.unwrap();
    let letters = letters["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["job_id"], job_id.as_str());
    assert_eq!(letters[0]["authenticated"], true);
    assert!(letters[0].get("message").is_none(), "the job's input is not returned");
    let replayed = api.post(&format!("/v1/dead-letters/{job_id}/replay"), "application/json", "").await;
    assert_eq!(replayed.status(), StatusCode::ACCEPTED);
    let job = api.wait_for_state(&job_id, "dead_lettered").await;
    assert_eq!(job["replays"], 1);
    // The job's record was written several times (running, dead-lettered,
    // queued by the replay, running, dead-lettered): it is listed once, as
    // it is now.
    let listed: serde_json::Value = api.get("/v1/jobs?workflow=trap").await.json().await.unwrap();
    let listed = listed["jobs"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (&listed[0]["state"], &listed[0]["replays"]),
        (&serde_json::json!("dead_lettered"), &serde_json::json!(1))
    );
    problem(api.post("/v1/dead-letters/nobody/replay", "application/json", "").await, StatusCode::NOT_FOUND).await;
    worker.stop().await;
    let record = client(&server).await.status(&job_id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::DeadLettered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_health_answers() {
    let server = NatsServer::start();
    let echo = workflow("echo", ECHO);
    let api = Api::start(&server, &[&echo], ApiLimits::default()).await;
    let doc: serde_json::Value = api.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/workflows/{workflow}/jobs",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/result",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/cancel",
        "/v1/dead-letters",
        "/v1/dead-letters/{id}/replay",
        "/v1/workflows",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    assert_eq!(api.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(api.get("/readyz").await.status(), StatusCode::OK);
    let workflows: serde_json::Value = api.get("/v1/workflows").await.json().await.unwrap();
    assert_eq!(workflows["workflows"][0]["name"], "echo");
    assert_eq!(workflows["workflows"][0]["steps"][0]["plugin"], "echo-config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_keys_admit_their_scopes_only_and_each_caller_is_rate_limited() {
    let server = NatsServer::start();
    let echo = workflow("echo", ECHO);
    let queue = client(&server).await;
    let scopes = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (_, submitter) = queue.create_api_key("ci", &scopes(&["submit", "read"]), None, "test").await.unwrap();
    let (_, reader) = queue.create_api_key("dash", &scopes(&["read"]), None, "test").await.unwrap();
    let (revoked, revoked_token) = queue.create_api_key("old", &scopes(&["submit"]), None, "test").await.unwrap();
    queue.revoke_api_key(&revoked.id).await.unwrap();
    let limits = ApiLimits {
        per_key: RateLimit::new(0.01, 3).unwrap(),
        per_address: RateLimit::new(1000.0, 1000).unwrap(),
        ..ApiLimits::default()
    };
    let auth = AuthConfig { api_keys: true, ..AuthConfig::default() };
    let api = Api::start_with(&server, &[&echo], limits, Some(auth)).await;
    let submit = |token: Option<&str>| {
        let mut request =
            api.http.post(api.url("/v1/workflows/echo/jobs")).header("content-type", "text/plain").body("x");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let missing = submit(None).await.unwrap();
    assert_eq!(missing.headers()["www-authenticate"], "Bearer realm=\"weft\"");
    let missing = problem(missing, StatusCode::UNAUTHORIZED).await;
    assert!(missing["detail"].as_str().unwrap().contains("weft keys create"), "{missing}");
    let wrong = problem(submit(Some("weft_nope_AAAA")).await.unwrap(), StatusCode::UNAUTHORIZED).await;
    assert!(!wrong["detail"].as_str().unwrap().contains("AAAA"), "the credential is never echoed: {wrong}");
    let gone = problem(submit(Some(&revoked_token)).await.unwrap(), StatusCode::UNAUTHORIZED).await;
    assert!(gone["detail"].as_str().unwrap().contains("revoked"), "{gone}");
    let scope = problem(submit(Some(&reader)).await.unwrap(), StatusCode::FORBIDDEN).await;
    assert!(scope["detail"].as_str().unwrap().contains("submit"), "{scope}");

    // The submitter's three requests fit its burst of 3; the fourth waits.
    let accepted = submit(Some(&submitter)).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let job: serde_json::Value = accepted.json().await.unwrap();
    let read = api
        .http
        .get(api.url(&format!("/v1/jobs/{}", job["job_id"].as_str().unwrap())))
        .bearer_auth(&submitter)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(submit(Some(&submitter)).await.unwrap().status(), StatusCode::ACCEPTED);
    let limited = submit(Some(&submitter)).await.unwrap();
    assert!(limited.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let limited = problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(limited["detail"].as_str().unwrap().contains("too many requests"), "{limited}");
    // Another caller has its own bucket; probes need no key and are not counted.
    let listed = api.http.get(api.url("/v1/jobs")).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(api.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(api.get("/openapi.json").await.status(), StatusCode::OK);
}
