//! Workflow files: this module owns turning the text of a workflow file (YAML) into a typed,
//! validated DAG of steps ([`Workflow`]). It reports every problem it can find in the file as a
//! [`Diagnostic`] with a `file:line:column` position, never stopping at the first one. Whether
//! the workflow can run on a particular host (its plugins, grants, secrets and ceilings) is the
//! host's load check (`weft::load_check`), which reports in the same form.
//!
//! It must never do I/O (callers pass in the text and a source name), and it must never touch
//! wasmtime, NATS or any other part of the runtime: it depends on nothing of Weft's but
//! [`weft_core::item`] (`scripts/check-deps.py` checks it). It is pure data in, data out, so it can
//! be used by the CLI, the engine and tests alike. It must not panic on any input.
//!
//! [`parse`] checks syntax, structure and everything decidable from the file alone (field names
//! and types, durations and sizes, retry values, step ids, `needs` references, cycles, the
//! `input:` contract and its JSON Schema). [`InputContract`] checks a job's input against that
//! contract ([`sniff`] tells what the bytes are); [`workflow_file_schema`] is the JSON Schema of
//! the file format itself, built from the parser's own field lists.

mod contract;
mod file_schema;
mod parse;
pub mod sniff;
mod suggest;
mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use contract::{
    ContractError, InputContract, InputViolation, MAX_SCHEMA_ERRORS_COUNTED, MAX_VIOLATION_DETAIL_CHARS,
};
pub use file_schema::{SchemaFacts, workflow_file_schema};
pub use parse::MAX_FILE_BYTES;
pub use suggest::did_you_mean;
pub use units::{format_duration, format_size, human_size, parse_duration, parse_size};

/// Default total number of attempts for a step (including the first one).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default delay before the first retry.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Default upper bound on the delay between two attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Default longest wait a step may ask for with a retry-after error: longer
/// requests (a webhook answering `429 Retry-After: 100000000`) end the step
/// instead of holding the job, and its worker slot, for as long as asked.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Default factor by which the backoff grows after each failed attempt.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// How long a job may take from its submission unless the workflow's
/// `deadline` says otherwise: long enough for a document job that waits on
/// LLM rate limits and retries, short enough that no job is held forever.
pub const DEFAULT_JOB_DEADLINE: Duration = Duration::from_secs(3600);
/// Default jitter strategy applied to backoff delays.
pub const DEFAULT_JITTER: Jitter = Jitter::Full;
/// Concurrency used for `map: true` (or a `map` mapping without `concurrency`).
pub const DEFAULT_MAP_CONCURRENCY: usize = 8;
/// Maximum length of a step id, in characters.
pub const MAX_STEP_ID_LEN: usize = 64;

/// A position in a workflow file: 1-based line and 1-based column (in characters).
///
/// The default value (`0:0`) means "no known position" and is only used for values built by hand
/// rather than parsed from a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number, starting at 1, counted in characters.
    pub column: usize,
}

impl Span {
    /// Creates a span from a 1-based line and column.
    pub fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem found in a workflow file, displayed as `file:line:column: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Name of the file the problem is in (as passed to [`parse`]).
    pub source: String,
    /// Where the problem is.
    pub span: Span,
    /// What is wrong and how to fix it (lowercase, no trailing period).
    pub message: String,
}

impl Diagnostic {
    /// Creates a diagnostic.
    pub fn new(source: impl Into<String>, span: Span, message: impl Into<String>) -> Self {
        Self { source: source.into(), span, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.source, self.span.line, self.span.column, self.message)
    }
}

/// Renders diagnostics one per line (no trailing newline).
fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Why a workflow file was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkflowError {
    /// The text is not valid YAML (or repeats a key in a mapping); nothing else was checked.
    #[error("{source_name}:{}:{}: {message}", span.line, span.column)]
    Syntax {
        /// Name of the file (as passed to [`parse`]).
        source_name: String,
        /// Where the YAML parser gave up.
        span: Span,
        /// What the YAML parser complained about.
        message: String,
    },
    /// The file is valid YAML but not a valid workflow (or not valid for this host); every
    /// problem found is listed, sorted by position.
    #[error("{}", render_diagnostics(diagnostics))]
    Invalid {
        /// Name of the file (as passed to [`parse`]).
        source_name: String,
        /// Every problem found, sorted by position; never empty.
        diagnostics: Vec<Diagnostic>,
    },
}

impl WorkflowError {
    /// All problems as diagnostics (a syntax error becomes a single diagnostic).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Self::Syntax { source_name, span, message } => {
                vec![Diagnostic::new(source_name.clone(), *span, message.clone())]
            }
            Self::Invalid { diagnostics, .. } => diagnostics.clone(),
        }
    }

    /// Name of the file the error is about.
    pub fn source_name(&self) -> &str {
        match self {
            Self::Syntax { source_name, .. } | Self::Invalid { source_name, .. } => source_name,
        }
    }

    /// Builds an [`WorkflowError::Invalid`] from diagnostics, sorted by position; `Ok` if empty.
    fn from_diagnostics(source_name: &str, mut diagnostics: Vec<Diagnostic>) -> Result<(), Self> {
        if diagnostics.is_empty() {
            return Ok(());
        }
        diagnostics.sort_by_key(|d| d.span);
        diagnostics.dedup();
        Err(Self::Invalid { source_name: source_name.to_owned(), diagnostics })
    }
}

/// A parsed and structurally validated workflow: a DAG of steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Workflow {
    /// The workflow's name (non-empty).
    pub name: String,
    /// The workflow's version, as written (non-empty).
    pub version: String,
    /// Optional free-form description.
    pub description: Option<String>,
    /// How long a job may take from its submission, retries and waits
    /// included (`deadline:`, [`DEFAULT_JOB_DEADLINE`] unless written);
    /// past it the job fails for good.
    pub deadline: Duration,
    /// The `defaults` section as written (already applied to every step in [`Workflow::steps`]).
    pub defaults: Defaults,
    /// What a job's input must be (`input:`), if the file says.
    pub input: Option<InputContract>,
    /// The steps, in file order, with defaults applied. Ids are unique and every `needs` entry
    /// names another step; there are no cycles.
    /// Shared, so a job's run refers to them without copying.
    pub steps: Vec<Arc<StepSpec>>,
    /// Name of the file the workflow came from, used in messages.
    pub source: String,
}

impl Workflow {
    /// The step with the given id, if any.
    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.id == id).map(|s| &**s)
    }

    /// Steps that no other step needs (the workflow's outputs), in file order.
    pub fn sinks(&self) -> Vec<&StepSpec> {
        let needed: BTreeSet<&str> = self.steps.iter().flat_map(|s| s.needs.iter().map(String::as_str)).collect();
        self.steps.iter().filter(|s| !needed.contains(s.id.as_str())).map(|s| &**s).collect()
    }

    /// Steps ordered so that every step comes after all the steps it needs; among steps that are
    /// ready at the same time, file order is kept (the order is deterministic).
    ///
    /// For a workflow returned by [`parse`] this contains every step. For a hand-built workflow
    /// with a cycle or a dangling `needs`, the steps that can never become ready are left out.
    pub fn topological_order(&self) -> Vec<&StepSpec> {
        let index: BTreeMap<&str, usize> = self.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        let mut missing = vec![0usize; self.steps.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); self.steps.len()];
        for (i, step) in self.steps.iter().enumerate() {
            let unique: BTreeSet<&str> = step.needs.iter().map(String::as_str).collect();
            for need in unique {
                match index.get(need) {
                    Some(&j) => {
                        missing[i] += 1;
                        if let Some(list) = dependents.get_mut(j) {
                            list.push(i);
                        }
                    }
                    // A dangling need can never be satisfied.
                    None => missing[i] += 1,
                }
            }
        }
        let mut ready: BinaryHeap<Reverse<usize>> =
            missing.iter().enumerate().filter(|(_, m)| **m == 0).map(|(i, _)| Reverse(i)).collect();
        let mut order = Vec::with_capacity(self.steps.len());
        while let Some(Reverse(i)) = ready.pop() {
            if let Some(step) = self.steps.get(i) {
                order.push(&**step);
            }
            for &d in dependents.get(i).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(m) = missing.get_mut(d) {
                    *m = m.saturating_sub(1);
                    if *m == 0 {
                        ready.push(Reverse(d));
                    }
                }
            }
        }
        order
    }
}

/// The `defaults` section of a workflow file, resolved against the built-in defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Defaults {
    /// Default timeout for every step, if any.
    pub timeout: Option<Duration>,
    /// Default retry policy (built-in defaults overridden per field by `defaults.retry`).
    pub retry: RetryPolicy,
    /// Default limits for every step.
    pub limits: StepLimits,
    /// Where each default was written.
    pub spans: DefaultsSpans,
}

/// Where the fields of the `defaults` section were written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefaultsSpans {
    /// The `defaults` key itself.
    pub defaults: Option<Span>,
    /// The `defaults.timeout` value.
    pub timeout: Option<Span>,
    /// The `defaults.retry` value.
    pub retry: Option<Span>,
    /// The `defaults.limits.*` values.
    pub limits: LimitSpans,
}

/// One step of a workflow: a plugin invocation with its configuration, dependencies and policy.
#[derive(Clone, Debug, PartialEq)]
pub struct StepSpec {
    /// Unique id, matching `[a-z0-9][a-z0-9_-]*`, at most [`MAX_STEP_ID_LEN`] characters.
    pub id: String,
    /// Name of the plugin to run.
    pub plugin: String,
    /// Ids of the steps whose outputs this step consumes, in file order, without duplicates.
    pub needs: Vec<String>,
    /// Plugin configuration; always a JSON object (`{}` when absent).
    pub config: serde_json::Value,
    /// When set, the step runs once per input item with this concurrency.
    pub map: Option<MapSpec>,
    /// Retry policy (built-in defaults, then `defaults.retry`, then the step's `retry`, per field).
    pub retry: RetryPolicy,
    /// Timeout for one attempt (the step's own, else `defaults.timeout`), if any.
    pub timeout: Option<Duration>,
    /// Resource limits (the step's own, else `defaults.limits`, per field).
    pub limits: StepLimits,
    /// Capabilities granted to the step.
    pub grants: Grants,
    /// Where the step starts (its first key).
    pub span: Span,
    /// Where the step's fields were written (for values inherited from `defaults`, the span
    /// points into the `defaults` section).
    pub spans: StepSpans,
}

/// Where the fields of a step were written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepSpans {
    /// The `id` value.
    pub id: Span,
    /// The `plugin` value.
    pub plugin: Span,
    /// Each `needs` entry, parallel to [`StepSpec::needs`].
    pub needs: Vec<Span>,
    /// The `config` value, if written.
    pub config: Option<Span>,
    /// The `map` value, if written.
    pub map: Option<Span>,
    /// The `retry` value, if written in the step.
    pub retry: Option<Span>,
    /// The effective `timeout` value (step or defaults), if any.
    pub timeout: Option<Span>,
    /// The effective `limits.*` values (step or defaults).
    pub limits: LimitSpans,
    /// The `grants` value, if written.
    pub grants: Option<Span>,
}

/// Where each resource limit was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitSpans {
    /// The `limits.memory` value.
    pub memory: Option<Span>,
    /// The `limits.fuel` value.
    pub fuel: Option<Span>,
    /// The `limits.output` value.
    pub output: Option<Span>,
}

/// Run a step once per input item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSpec {
    /// How many items may be processed at the same time (at least 1).
    pub concurrency: usize,
}

impl Default for MapSpec {
    fn default() -> Self {
        Self { concurrency: DEFAULT_MAP_CONCURRENCY }
    }
}

/// How a failed step is retried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, including the first (at least 1; 1 means no retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound on the delay between attempts (at least `initial_backoff`).
    pub max_backoff: Duration,
    /// Factor applied to the delay after each failed attempt (at least 1.0).
    pub multiplier: f64,
    /// How delays are randomised.
    pub jitter: Jitter,
    /// The longest retry-after a step may ask for; a longer request fails
    /// the step without a retry (see [`DEFAULT_MAX_RETRY_AFTER`]).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// [`DEFAULT_MAX_ATTEMPTS`], [`DEFAULT_INITIAL_BACKOFF`], [`DEFAULT_MAX_BACKOFF`],
    /// [`DEFAULT_MULTIPLIER`], [`DEFAULT_JITTER`] and [`DEFAULT_MAX_RETRY_AFTER`].
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            multiplier: DEFAULT_MULTIPLIER,
            jitter: DEFAULT_JITTER,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

/// How retry delays are randomised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Jitter {
    /// Each delay is drawn uniformly between zero and the computed backoff (`full`).
    Full,
    /// Delays are exactly the computed backoff (`none`).
    None,
}

/// Resource limits for one step; `None` means the host's default applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepLimits {
    /// Maximum linear memory, in bytes.
    pub memory: Option<u64>,
    /// Maximum wasmtime fuel per attempt.
    pub fuel: Option<u64>,
    /// Maximum size of the step's output, in bytes.
    pub output: Option<u64>,
}

/// What a grant allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantSpec {
    /// Everything the capability offers (`true` in the file).
    All,
    /// Only the listed items (hosts, secret names, ...), as written; never empty.
    List(Vec<String>),
}

/// Capabilities granted to a step: capability name -> [`GrantSpec`], ordered by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    entries: BTreeMap<String, (GrantSpec, Span)>,
}

impl Grants {
    /// An empty set of grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a grant, remembering where it was written; returns the previous spec.
    pub fn insert(&mut self, name: impl Into<String>, spec: GrantSpec, span: Span) -> Option<GrantSpec> {
        self.entries.insert(name.into(), (spec, span)).map(|(spec, _)| spec)
    }

    /// Whether the capability `name` is granted at all (fully or for some items).
    pub fn is_granted(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// What the capability `name` is granted for, if it is granted.
    pub fn get(&self, name: &str) -> Option<&GrantSpec> {
        self.entries.get(name).map(|(spec, _)| spec)
    }

    /// Where the grant for `name` was written, if it is granted.
    pub fn span(&self, name: &str) -> Option<Span> {
        self.entries.get(name).map(|(_, span)| *span)
    }

    /// All grants, ordered by capability name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &GrantSpec)> {
        self.entries.iter().map(|(name, (spec, _))| (name.as_str(), spec))
    }

    /// Number of granted capabilities.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no capability is granted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parses and validates a workflow file (phase 1): syntax, structure and everything decidable
/// from the file alone. `source_name` is only used in messages.
///
/// # Errors
///
/// [`WorkflowError::Syntax`] if the text is not YAML (or repeats a mapping key), otherwise
/// [`WorkflowError::Invalid`] listing every problem found.
pub fn parse(source_name: &str, text: &str) -> Result<Workflow, WorkflowError> {
    parse::parse(source_name, text)
}

/// Like [`parse`], but on phase-1 problems still returns a best-effort [`Workflow`] with them,
/// so that callers can also check it against a host and report every problem at once.
///
/// The best-effort workflow leaves out steps missing an `id` or a `plugin`, may have empty
/// `name`/`version`, and carries none of the guarantees of [`Workflow`] (unique ids, no dangling
/// `needs`, no cycles): it must not be run unless the returned diagnostics are empty. The
/// diagnostics are sorted by position.
///
/// # Errors
///
/// [`WorkflowError::Syntax`] if the text is not YAML (or repeats a mapping key): there is
/// nothing to return then.
pub fn parse_partial(source_name: &str, text: &str) -> Result<(Workflow, Vec<Diagnostic>), WorkflowError> {
    parse::parse_partial(source_name, text)
}
