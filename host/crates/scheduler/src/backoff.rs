//! Retry delays: exponential backoff with optional full jitter, never
//! shorter than a step's retry-after.

use std::time::Duration;

use weft_workflow::{Jitter, RetryPolicy};

/// Picks the jittered delay in `[0, ceiling]`. A trait so tests can pin it.
pub trait JitterSource: Send + Sync {
    /// A delay between zero and `ceiling`, inclusive.
    fn sample(&self, ceiling: Duration) -> Duration;
}

/// Uniformly random jitter from the thread-local RNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomJitter;

impl JitterSource for RandomJitter {
    fn sample(&self, ceiling: Duration) -> Duration {
        use rand::Rng as _;
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// The delay before the attempt after `failed_attempt` (1-based).
///
/// The exponential ceiling is `initial_backoff * multiplier^(failed_attempt-1)`,
/// capped at `max_backoff`. With [`Jitter::Full`] the delay is drawn
/// uniformly from `[0, ceiling]` (the "full jitter" of the AWS architecture
/// blog), which spreads retries of many jobs apart. A `retry_after` from the
/// step is a floor: the host never retries sooner than the step asked.
pub fn backoff_delay(
    policy: &RetryPolicy,
    failed_attempt: u32,
    retry_after: Option<Duration>,
    jitter: &dyn JitterSource,
) -> Duration {
    let exponent = i32::try_from(failed_attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let factor = policy.multiplier.max(1.0).powi(exponent);
    let uncapped = policy.initial_backoff.as_secs_f64() * factor;
    let ceiling = if uncapped.is_finite() && uncapped < policy.max_backoff.as_secs_f64() {
        Duration::from_secs_f64(uncapped)
    } else {
        policy.max_backoff
    };
    let delay = match policy.jitter {
        Jitter::Full => jitter.sample(ceiling),
        Jitter::None => ceiling,
    };
    retry_after.map_or(delay, |floor| delay.max(floor))
}
