//! One step attempt in a fresh store: wait for a compute slot, set up the
//! sandbox and limits, instantiate from the `InstancePre`, call `run`,
//! classify the outcome, drop the store.

use std::collections::HashMap;
use std::future::Future as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker, ResourceTable, ResourceTableError};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::weft::plugin::{email, http, llm, logging, secrets, types};
use super::bindings::{self, CapableStep};
use super::limits::{MAX_WASI_RESOURCES, ResolvedLimits, StepLimiter};
use super::stdio::TracingOutput;
use super::{CompiledPlugin, Engine};
use weft_capabilities::logging::{GuestLog, LogLevel};
use weft_capabilities::{self as caps, CallScope, CapabilityConfig, Services, StepGrants};
use weft_core::item::Item;
use weft_scheduler::{FailureKind, StepAttempt, StepFailure, StepRunner};
use weft_workflow::human_size;

/// The host state of one attempt's store.
pub(crate) struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: StepLimiter,
    log: Arc<Mutex<GuestLog>>,
    scope: CallScope,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for StepState {}

impl logging::Host for StepState {
    async fn log(&mut self, level: logging::Level, message: String) {
        let level = match level {
            logging::Level::Trace => LogLevel::Trace,
            logging::Level::Debug => LogLevel::Debug,
            logging::Level::Info => LogLevel::Info,
            logging::Level::Warn => LogLevel::Warn,
            logging::Level::Error => LogLevel::Error,
        };
        self.log.lock().unwrap_or_else(PoisonError::into_inner).emit("log", level, &message);
    }
}

impl http::Host for StepState {
    async fn send(&mut self, request: http::Request) -> Result<http::Response, http::HttpError> {
        let request = caps::http::HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            secret_headers: request
                .secret_headers
                .into_iter()
                .map(|h| caps::http::SecretHeader { name: h.name, secret: h.secret, prefix: h.prefix })
                .collect(),
            timeout: request.timeout_ms.map(std::time::Duration::from_millis),
        };
        match self.scope.http_send(request).await {
            Ok(r) => Ok(http::Response { status: r.status, headers: r.headers, body: r.body }),
            Err(error) => Err(match error {
                caps::http::HttpError::Denied(m) => http::HttpError::Denied(m),
                caps::http::HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
                caps::http::HttpError::Timeout(m) => http::HttpError::Timeout(m),
                caps::http::HttpError::TooLarge(m) => http::HttpError::TooLarge(m),
                caps::http::HttpError::Transport(m) => http::HttpError::Transport(m),
            }),
        }
    }
}

impl llm::Host for StepState {
    async fn chat(&mut self, request: llm::ChatRequest) -> Result<llm::ChatResponse, llm::LlmError> {
        let request = caps::llm::ChatRequest {
            messages: request
                .messages
                .into_iter()
                .map(|m| caps::llm::ChatMessage { role: m.role, content: m.content })
                .collect(),
            model: request.model,
            max_tokens: request.max_tokens,
            temperature: request.temperature,
        };
        match self.scope.llm_chat(request).await {
            Ok(r) => Ok(llm::ChatResponse {
                content: r.content,
                model: r.model,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                finish_reason: r.finish_reason,
            }),
            Err(error) => Err(match error {
                caps::llm::LlmError::Denied(m) => llm::LlmError::Denied(m),
                caps::llm::LlmError::NotConfigured(m) => llm::LlmError::NotConfigured(m),
                caps::llm::LlmError::RateLimited { delay, reason } => llm::LlmError::RateLimited(types::RetryAfter {
                    delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    reason,
                }),
                caps::llm::LlmError::Unavailable(m) => llm::LlmError::Unavailable(m),
                caps::llm::LlmError::Rejected(m) => llm::LlmError::Rejected(m),
            }),
        }
    }
}

impl email::Host for StepState {
    async fn send(&mut self, message: email::Message) -> Result<String, email::EmailError> {
        let message = caps::email::EmailMessage {
            to: message.to,
            cc: message.cc,
            subject: message.subject,
            text_body: message.text_body,
            html_body: message.html_body,
            reply_to: message.reply_to,
            headers: message.headers,
        };
        self.scope.email_send(message).await.map_err(|error| match error {
            caps::email::EmailError::Denied(m) => email::EmailError::Denied(m),
            caps::email::EmailError::NotConfigured(m) => email::EmailError::NotConfigured(m),
            caps::email::EmailError::Invalid(m) => email::EmailError::Invalid(m),
            caps::email::EmailError::Rejected(m) => email::EmailError::Rejected(m),
            caps::email::EmailError::Unavailable(m) => email::EmailError::Unavailable(m),
        })
    }
}

impl secrets::Host for StepState {
    async fn hmac_sha256(&mut self, name: String, data: Vec<u8>) -> Result<Vec<u8>, secrets::SecretError> {
        self.scope.hmac_sha256(&name, &data).await.map_err(|error| match error {
            caps::SecretError::Denied(m) => secrets::SecretError::Denied(m),
            caps::SecretError::Missing(m) => secrets::SecretError::Missing(m),
        })
    }
}

pub(super) fn add_capabilities_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    CapableStep::add_to_linker::<StepState, HasSelf<StepState>>(linker, |state| state)
}

/// What the steps of one workflow may reach: the workflow's name, each
/// step's resolved grants, and the host's capability services.
#[derive(Debug, Clone)]
pub struct StepCapabilities {
    /// The workflow's name, given to steps in their context.
    pub workflow: Arc<str>,
    /// The step's resolved grants.
    pub grants: Arc<StepGrants>,
    /// The host's services.
    pub services: Arc<Services>,
}

impl StepCapabilities {
    /// No grants and no configured services: every capability call is denied.
    /// Built once per process: [`Engine::run_attempt`] uses it on every
    /// attempt, and building services means building an HTTP client.
    pub fn none() -> Self {
        static NONE: std::sync::OnceLock<StepCapabilities> = std::sync::OnceLock::new();
        NONE.get_or_init(|| StepCapabilities {
            workflow: Arc::from(""),
            grants: Arc::new(StepGrants::default()),
            services: Arc::new(Services::new(CapabilityConfig::default())),
        })
        .clone()
    }
}

/// The error an epoch callback raises when an attempt's deadline passes.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Runs step attempts with Wasm components: the engine's [`StepRunner`].
pub struct WasmStepRunner {
    engine: Arc<Engine>,
    /// The compiled plugin of each step id.
    plugins: HashMap<String, Arc<CompiledPlugin>>,
    /// Each step's config, serialised once.
    configs: HashMap<String, Arc<str>>,
    /// Each step's grants and the host's services.
    capabilities: HashMap<String, StepCapabilities>,
}

impl WasmStepRunner {
    /// A runner for steps whose plugins are already compiled.
    pub fn new(
        engine: Arc<Engine>,
        plugins: HashMap<String, Arc<CompiledPlugin>>,
        configs: HashMap<String, Arc<str>>,
        capabilities: HashMap<String, StepCapabilities>,
    ) -> Self {
        WasmStepRunner { engine, plugins, configs, capabilities }
    }
}

impl StepRunner for WasmStepRunner {
    async fn run(&self, attempt: StepAttempt) -> Result<Vec<Item>, StepFailure> {
        let step_id = attempt.step.id.as_str();
        let Some(plugin) = self.plugins.get(step_id) else {
            return Err(StepFailure::new(FailureKind::Host, format!("no compiled plugin for step `{step_id}`")));
        };
        let config = self.configs.get(step_id).cloned().unwrap_or_else(|| Arc::from("{}"));
        match self.capabilities.get(step_id) {
            Some(capabilities) => self.engine.run_attempt_with(plugin, &attempt, &config, capabilities).await,
            None => self.engine.run_attempt(plugin, &attempt, &config).await,
        }
    }
}

impl Engine {
    /// Runs one attempt in a fresh store, dropped when it returns: the
    /// sandbox is set up, the component instantiated from its `InstancePre`,
    /// `run` called with `config` (JSON), and the outcome classified.
    ///
    /// # Errors
    ///
    /// A [`StepFailure`] whose kind says what happened: the step's own error,
    /// a timeout, a trap, a limit breach.
    pub async fn run_attempt(
        &self,
        plugin: &CompiledPlugin,
        attempt: &StepAttempt,
        config: &str,
    ) -> Result<Vec<Item>, StepFailure> {
        self.run_attempt_with(plugin, attempt, config, &StepCapabilities::none()).await
    }

    /// Like [`Engine::run_attempt`], with the step's grants and the host's
    /// capability services.
    ///
    /// # Errors
    ///
    /// As [`Engine::run_attempt`].
    pub async fn run_attempt_with(
        &self,
        plugin: &CompiledPlugin,
        attempt: &StepAttempt,
        config: &str,
        capabilities: &StepCapabilities,
    ) -> Result<Vec<Item>, StepFailure> {
        let step = &attempt.step.id;
        // Taken before the sandbox exists, so at most `compute_slots`
        // sandboxes are computing at once; the rest wait here, holding no
        // instance memory. The wait counts against the attempt's timeout.
        let mut slot = match &self.compute_slots {
            Some(slots) => {
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| host_failure("the engine's compute slots are closed".to_string()))?;
                // The attempt that freed the slot woke this task into its own
                // worker thread's LIFO slot, which other worker threads cannot
                // steal from: yield once so an idle worker can take it.
                tokio::task::yield_now().await;
                Some(slot)
            }
            None => None,
        };
        let limits = ResolvedLimits::from_step(&attempt.step.limits);
        let log = Arc::new(Mutex::new(GuestLog::new(&attempt.job_id, step, attempt.attempt)));
        let wasi = WasiCtx::builder()
            .stdout(TracingOutput::new(log.clone(), "stdout"))
            .stderr(TracingOutput::new(log.clone(), "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let deadline = Instant::now() + attempt.timeout;
        let scope = CallScope {
            job_id: attempt.job_id.clone(),
            workflow: capabilities.workflow.clone(),
            step: Arc::from(step.as_str()),
            attempt: attempt.attempt,
            grants: capabilities.grants.clone(),
            deadline,
            services: capabilities.services.clone(),
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_WASI_RESOURCES);
        let state = StepState { wasi, table, limiter: StepLimiter::new(limits.memory), log: log.clone(), scope };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.settings.fuel_metering {
            let fuel = limits.fuel.unwrap_or(u64::MAX);
            store.set_fuel(fuel).map_err(|e| host_failure(format!("cannot set fuel: {e}")))?;
        }
        // Set when the guest is suspended only to share the CPU (an epoch
        // tick), so that suspension keeps its compute slot; any other
        // suspension is a wait on I/O or a timer, and gives the slot back.
        let cpu_yield = Arc::new(AtomicBool::new(false));
        if self.settings.deadline_checks {
            store.set_epoch_deadline(1);
            let cpu_yield_in_callback = cpu_yield.clone();
            store.epoch_deadline_callback(move |_| {
                if Instant::now() >= deadline {
                    Err(DeadlineExceeded.into())
                } else {
                    cpu_yield_in_callback.store(true, Ordering::Relaxed);
                    Ok(UpdateDeadline::Yield(1))
                }
            });
        }

        let ctx = types::Context {
            job_id: &attempt.job_id,
            workflow: &capabilities.workflow,
            step_id: step,
            attempt: attempt.attempt,
            item_index: attempt.item_index,
        };
        let metadata = bindings::metadata_refs(&attempt.input);
        let input = bindings::item_params(&attempt.input, &metadata);
        let outcome = {
            let mut call = std::pin::pin!(async {
                let instance = plugin.pre.instantiate_async(&mut store).await?;
                instance.call_run(&mut store, ctx, &input, config).await
            });
            std::future::poll_fn(|cx| {
                let poll = call.as_mut().poll(cx);
                if poll.is_pending() && !cpu_yield.swap(false, Ordering::Relaxed) && slot.take().is_some() {
                    tracing::trace!(step = %step, "attempt waits on I/O; compute slot released");
                }
                poll
            })
            .await
        };

        let refused_growth = store.data().limiter.refused_growth_to;
        drop(store);
        // The sandbox's memory is back in the pool: the next attempt may start.
        drop(slot);
        let describe = Describe { step, attempt, limits: &limits, log: &log };
        match outcome {
            Err(error) => Err(describe.engine_error(&error, refused_growth)),
            Ok(Err(step_error)) => Err(describe.step_error(step_error)),
            Ok(Ok(items)) => {
                let max_items = self.settings.max_output_items;
                if items.len() > max_items {
                    return Err(StepFailure::new(
                        FailureKind::Limit,
                        format!(
                            "step `{step}` returned {} items, above this host's limit of {max_items} items per \
                             step attempt (return fewer, larger items, or raise the host's limit: \
                             `--max-step-items` of `weft run`/`serve`, `max_output_items` when embedding)",
                            items.len()
                        ),
                    ));
                }
                let total: u64 = items.iter().map(|i| payload_size(i) as u64).sum();
                if total > limits.output {
                    return Err(StepFailure::new(
                        FailureKind::OutputTooLarge,
                        format!(
                            "step `{step}` returned {} of output in {} items, above its limit of {} \
                             (raise `limits.output` in the workflow)",
                            human_size(total),
                            items.len(),
                            human_size(limits.output)
                        ),
                    ));
                }
                Ok(items.into_iter().map(Item::from).collect())
            }
        }
    }
}

fn payload_size(item: &types::ItemResult) -> usize {
    let payload = match &item.payload {
        types::PayloadResult::Text(text) => text.len(),
        types::PayloadResult::Bytes(bytes) => bytes.len(),
    };
    payload + item.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

fn host_failure(message: String) -> StepFailure {
    StepFailure::new(FailureKind::Host, message)
}

/// Turns what happened in an attempt into a [`StepFailure`] a user can act on.
struct Describe<'a> {
    step: &'a str,
    attempt: &'a StepAttempt,
    limits: &'a ResolvedLimits,
    log: &'a Mutex<GuestLog>,
}

impl Describe<'_> {
    fn step_error(&self, error: types::StepError) -> StepFailure {
        let step = self.step;
        match error {
            types::StepError::Retryable(message) => {
                StepFailure::new(FailureKind::Retryable, format!("step `{step}` failed (retryable): {message}"))
            }
            types::StepError::RetryAfter(types::RetryAfter { delay_ms, reason }) => StepFailure::retry_after(
                std::time::Duration::from_millis(delay_ms),
                format!("step `{step}` asked to retry after {delay_ms} ms: {reason}"),
            ),
            types::StepError::Fatal(message) => {
                StepFailure::new(FailureKind::Fatal, format!("step `{step}` failed: {message}"))
            }
        }
    }

    fn engine_error(&self, error: &wasmtime::Error, refused_growth: Option<u64>) -> StepFailure {
        let step = self.step;
        if error.downcast_ref::<DeadlineExceeded>().is_some() {
            return StepFailure::new(
                FailureKind::Timeout,
                format!("step `{step}` ran past its timeout of {:?} and was stopped", self.attempt.timeout),
            );
        }
        if let Some(wanted) = refused_growth {
            return StepFailure::new(
                FailureKind::MemoryLimit,
                format!(
                    "step `{step}` tried to grow its memory to {} (all its memories together), above its limit of {} \
                     (raise `limits.memory` in the workflow, up to the host ceiling of {})",
                    human_size(wanted),
                    human_size(self.limits.memory),
                    human_size(super::limits::MEMORY_CEILING)
                ),
            );
        }
        if matches!(error.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full)) {
            return StepFailure::new(
                FailureKind::Limit,
                format!(
                    "step `{step}` held more than {MAX_WASI_RESOURCES} WASI resources (streams, pollables, ...) at \
                     once, this host's limit, and was stopped (drop each resource once it is no longer needed)"
                ),
            );
        }
        if error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
            return StepFailure::new(
                FailureKind::Retryable,
                format!("step `{step}` could not start: every instance slot of this host is busy ({error})"),
            );
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => StepFailure::new(
                FailureKind::StackOverflow,
                format!("step `{step}` overflowed its stack (unbounded recursion?) and was stopped"),
            ),
            Some(Trap::OutOfFuel) => StepFailure::new(
                FailureKind::FuelExhausted,
                format!(
                    "step `{step}` used up its fuel budget of {} (raise `limits.fuel` in the workflow)",
                    self.limits.fuel.map_or_else(|| "?".to_string(), |f| f.to_string())
                ),
            ),
            Some(trap) => {
                let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
                let stderr: Vec<&str> = log.recent_stderr().collect();
                let detail = if stderr.is_empty() {
                    String::new()
                } else {
                    format!("; its last stderr: {}", stderr.join(" | "))
                };
                StepFailure::new(FailureKind::Trap, format!("step `{step}` crashed: {trap}{detail}"))
            }
            None => StepFailure::new(FailureKind::Host, format!("step `{step}` could not run: {}", error.root_cause())),
        }
    }
}
