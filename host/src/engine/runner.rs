//! One step attempt in a fresh store: set up the sandbox and limits,
//! instantiate from the `InstancePre`, call `run`, classify the outcome, drop
//! the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::Step;
use super::bindings::weft::plugin::{logging, types};
use super::limits::{ResolvedLimits, StepLimiter, human_bytes};
use super::stdio::TracingOutput;
use super::{CompiledPlugin, Engine};
use crate::capabilities::logging::{GuestLog, LogLevel};
use crate::item::Item;
use crate::scheduler::{FailureKind, StepAttempt, StepFailure, StepRunner};

/// The host state of one attempt's store.
pub(crate) struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: StepLimiter,
    log: Arc<Mutex<GuestLog>>,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for StepState {}

impl logging::Host for StepState {
    fn log(&mut self, level: logging::Level, message: String) {
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

pub(super) fn add_capabilities_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    Step::add_to_linker::<StepState, HasSelf<StepState>>(linker, |state| state)
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
}

impl WasmStepRunner {
    /// A runner for steps whose plugins are already compiled.
    pub fn new(
        engine: Arc<Engine>,
        plugins: HashMap<String, Arc<CompiledPlugin>>,
        configs: HashMap<String, Arc<str>>,
    ) -> Self {
        WasmStepRunner { engine, plugins, configs }
    }
}

impl StepRunner for WasmStepRunner {
    async fn run(&self, attempt: StepAttempt) -> Result<Vec<Item>, StepFailure> {
        let step_id = attempt.step.id.as_str();
        let Some(plugin) = self.plugins.get(step_id) else {
            return Err(StepFailure::new(FailureKind::Host, format!("no compiled plugin for step `{step_id}`")));
        };
        let config = self.configs.get(step_id).cloned().unwrap_or_else(|| Arc::from("{}"));
        self.engine.run_attempt(plugin, &attempt, &config).await
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
        let step = &attempt.step.id;
        let limits = ResolvedLimits::from_step(&attempt.step.limits);
        let log = Arc::new(Mutex::new(GuestLog::new(&attempt.job_id, step, attempt.attempt)));
        let wasi = WasiCtx::builder()
            .stdout(TracingOutput::new(log.clone(), "stdout"))
            .stderr(TracingOutput::new(log.clone(), "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state =
            StepState { wasi, table: ResourceTable::new(), limiter: StepLimiter::new(limits.memory), log: log.clone() };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.settings.fuel_metering {
            let fuel = limits.fuel.unwrap_or(u64::MAX);
            store.set_fuel(fuel).map_err(|e| host_failure(format!("cannot set fuel: {e}")))?;
        }
        let deadline = Instant::now() + attempt.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline { Err(DeadlineExceeded.into()) } else { Ok(UpdateDeadline::Yield(1)) }
        });

        let ctx = types::Context {
            job_id: attempt.job_id.to_string(),
            step_id: step.clone(),
            attempt: attempt.attempt,
            item_index: attempt.item_index,
        };
        let input: Vec<types::Item> = attempt.input.iter().cloned().map(types::Item::from).collect();
        let outcome = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &ctx, &input, config).await
        }
        .await;

        let refused_growth = store.data().limiter.refused_growth_to;
        drop(store);
        let describe = Describe { step, attempt, limits: &limits, log: &log };
        match outcome {
            Err(error) => Err(describe.engine_error(&error, refused_growth)),
            Ok(Err(step_error)) => Err(describe.step_error(step_error)),
            Ok(Ok(items)) => {
                let total: u64 = items.iter().map(|i| payload_size(i) as u64).sum();
                if total > limits.output {
                    return Err(StepFailure::new(
                        FailureKind::OutputTooLarge,
                        format!(
                            "step `{step}` returned {} of output in {} items, above its limit of {} \
                             (raise `limits.output` in the workflow)",
                            human_bytes(total),
                            items.len(),
                            human_bytes(limits.output)
                        ),
                    ));
                }
                Ok(items.into_iter().map(Item::from).collect())
            }
        }
    }
}

fn payload_size(item: &types::Item) -> usize {
    let payload = match &item.payload {
        types::Payload::Text(text) => text.len(),
        types::Payload::Bytes(bytes) => bytes.len(),
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
                    "step `{step}` tried to grow its memory to {}, above its limit of {} \
                     (raise `limits.memory` in the workflow, up to the host ceiling of {})",
                    human_bytes(wanted),
                    human_bytes(self.limits.memory),
                    human_bytes(super::limits::MEMORY_CEILING)
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
