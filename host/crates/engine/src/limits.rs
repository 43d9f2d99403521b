//! Per-step resource limits: the named defaults, the host ceilings a
//! workflow may not exceed, and the memory limiter installed in every store.
//!
//! Each limit guards the host against one kind of misbehaving component:
//! memory against a component that allocates without bound, the deadline
//! against one that never returns, fuel against one that burns CPU inside
//! its deadline, output size against one that floods the next step.

use std::time::Duration;

use weft_workflow::StepLimits;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Linear memory a step may grow to when its workflow sets no `limits.memory`.
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 * MIB;
/// The most linear memory a workflow may grant a step. wasm32 cannot
/// address more, and each pooled instance slot reserves this much address space.
pub const MEMORY_CEILING: u64 = 4 * GIB;
/// Output (payload + metadata bytes) a step may return when its workflow sets
/// no `limits.output`.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 * MIB;
/// The most output a workflow may allow one step attempt.
pub const OUTPUT_CEILING: u64 = GIB;
/// The longest timeout a workflow may set for a step attempt.
pub const TIMEOUT_CEILING: Duration = Duration::from_secs(60 * 60);
/// The most concurrent items a `map` step may run.
pub const MAP_CONCURRENCY_CEILING: usize = 64;
/// How often the engine's epoch advances; a runaway step is stopped within
/// one tick of its deadline, and yields to other tasks at every tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The limits one attempt runs under, after applying defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedLimits {
    /// Bytes of linear memory.
    pub memory: u64,
    /// Fuel units (roughly, Wasm instructions), when fuel is metered.
    pub fuel: Option<u64>,
    /// Bytes of output.
    pub output: u64,
}

impl ResolvedLimits {
    /// Applies the defaults to what a workflow step declared.
    pub fn from_step(limits: &StepLimits) -> Self {
        ResolvedLimits {
            memory: limits.memory.unwrap_or(DEFAULT_MEMORY_LIMIT),
            fuel: limits.fuel,
            output: limits.output.unwrap_or(DEFAULT_OUTPUT_LIMIT),
        }
    }
}

/// Enforces a step's memory limit inside its store and remembers a refusal,
/// so the trap that usually follows is reported as a memory-limit failure.
#[derive(Debug)]
pub(crate) struct StepLimiter {
    memory_limit: u64,
    pub(crate) refused_growth_to: Option<u64>,
}

impl StepLimiter {
    pub(crate) fn new(memory_limit: u64) -> Self {
        StepLimiter { memory_limit, refused_growth_to: None }
    }
}

impl wasmtime::ResourceLimiter for StepLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.memory_limit {
            self.refused_growth_to = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Table elements a component may grow a table to (function references).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
