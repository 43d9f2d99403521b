//! Per-step resource limits: the named defaults, the host ceilings a
//! workflow may not exceed, and the memory limiter installed in every store.
//!
//! Each limit guards the host against one kind of misbehaving component:
//! memory against a component that allocates without bound, the deadline
//! against one that never returns, fuel against one that burns CPU inside
//! its deadline, output size and item count against one that floods the
//! next step (or the host's memory, which holds every item), the resource
//! table bound against one that creates WASI resources without end.

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
/// Items one step attempt may return when the host sets no other bound
/// ([`EngineSettings::max_output_items`](crate::EngineSettings)). Each item
/// costs the host a few dozen bytes beyond its payload however small it is,
/// so a component returning millions of empty items would hold host memory
/// that `limits.output` (which counts payload bytes) does not see.
pub const DEFAULT_MAX_OUTPUT_ITEMS: usize = weft_scheduler::DEFAULT_MAX_STEP_ITEMS;
/// WASI resources (streams, pollables, sockets, ...) one attempt may hold
/// at once in its resource table. Wasmtime's own default is 1,000,000; each
/// entry is host memory outside the component's linear memory, so a
/// component creating resources in a loop is stopped far sooner. A step
/// needs a handful at a time.
pub const MAX_WASI_RESOURCES: usize = 10_000;
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
///
/// The limit covers every linear memory of the store together: a component
/// may embed several core modules, each instance with its own memories, and
/// all of them live in the attempt's one store. Wasmtime tells the limiter
/// each memory's current and desired size but not which memory it is, so
/// the limiter keeps the sum: a new memory counts from 0 to its initial
/// size, a growth by its difference. A growth past the memory's own declared
/// maximum is left to Wasmtime to refuse and is not counted; any other
/// growth that fails after being allowed stays counted (Wasmtime's
/// `memory_grow_failed` does not say which growth failed, and giving back
/// the wrong one could let a component undercount), so the sum can only
/// err on the safe side.
#[derive(Debug)]
pub(crate) struct StepLimiter {
    memory_limit: u64,
    /// Bytes of linear memory granted to all memories of the store.
    memory_in_use: u64,
    pub(crate) refused_growth_to: Option<u64>,
}

impl StepLimiter {
    pub(crate) fn new(memory_limit: u64) -> Self {
        StepLimiter { memory_limit, memory_in_use: 0, refused_growth_to: None }
    }
}

impl wasmtime::ResourceLimiter for StepLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|maximum| desired > maximum) {
            // Wasmtime refuses this growth itself, whatever the limiter says.
            return Ok(true);
        }
        let growth = (desired as u64).saturating_sub(current as u64);
        let total = self.memory_in_use.saturating_add(growth);
        if total > self.memory_limit {
            self.refused_growth_to = Some(total);
            return Ok(false);
        }
        self.memory_in_use = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Table elements a component may grow a table to (function references).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const PAGE: u64 = 64 * 1024;

    /// A core module with two memories of one page each, exported as `a`
    /// and `b` (as a component embedding two core modules would have),
    /// encoded by hand so the test needs no WAT parser.
    const TWO_MEMORIES: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x05, 0x05, 0x02, 0x00, 0x01, 0x00, 0x01, // memory section: 2 memories, min 1 page, no max
        0x07, 0x09, 0x02, 0x01, b'a', 0x02, 0x00, 0x01, b'b', 0x02, 0x01, // export `a` = memory 0, `b` = memory 1
    ];

    fn instance_with_limit(limit: u64) -> (wasmtime::Store<StepLimiter>, wasmtime::Memory, wasmtime::Memory) {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, TWO_MEMORIES).unwrap();
        let mut store = wasmtime::Store::new(&engine, StepLimiter::new(limit));
        store.limiter(|limiter| limiter);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let a = instance.get_memory(&mut store, "a").unwrap();
        let b = instance.get_memory(&mut store, "b").unwrap();
        (store, a, b)
    }

    #[test]
    fn the_memory_limit_covers_all_memories_of_a_store_together() {
        // Three pages in all: each memory alone stays under it, together they may not pass it.
        let (mut store, a, b) = instance_with_limit(3 * PAGE);
        a.grow(&mut store, 1).expect("a grows to 2 pages: 3 in all");
        assert!(b.grow(&mut store, 1).is_err(), "b may not grow to 2 pages: 4 in all");
        assert_eq!(store.data().refused_growth_to, Some(4 * PAGE));
        assert_eq!(b.size(&store), 1);
        assert_eq!(store.data().memory_in_use, 3 * PAGE, "both initial pages and a's growth are counted");
    }

    #[test]
    fn a_refused_or_empty_growth_is_not_counted() {
        let (mut store, a, b) = instance_with_limit(4 * PAGE);
        assert!(a.grow(&mut store, 3).is_err(), "5 pages in all");
        a.grow(&mut store, 0).unwrap();
        a.grow(&mut store, 1).expect("3 pages in all");
        b.grow(&mut store, 0).unwrap();
        b.grow(&mut store, 1).expect("4 pages in all: exactly the limit");
        assert_eq!(store.data().memory_in_use, 4 * PAGE);
    }
}
