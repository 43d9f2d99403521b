//! Rate limits of the HTTP API: a token bucket per key (an API key's id,
//! a JWT's subject, or a client address), answering "go on" or "retry
//! after this long" (the API's `429` with `Retry-After`). Pure: no I/O,
//! no tasks; time comes from a [`Clock`] so tests control it. Memory is
//! bounded: at most `max_keys` buckets are tracked, and buckets that have
//! refilled (indistinguishable from a new one) are the first dropped.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A token bucket's shape: it refills at `per_second` and holds at most
/// `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

/// Default per-key limit ([`RateLimit`] for an authenticated caller):
/// protects the workers' queue and the state bucket from one client's
/// loop gone wrong while leaving room for batch submissions.
pub const DEFAULT_PER_KEY_LIMIT: RateLimit = RateLimit { per_second: 50.0, burst: 100 };

/// Default per-address limit: protects the API (and the key store a failed
/// authentication reads) from one address guessing or flooding.
pub const DEFAULT_PER_ADDRESS_LIMIT: RateLimit = RateLimit { per_second: 20.0, burst: 40 };

/// Default cap on the buckets one [`RateLimiter`] tracks: bounds its memory
/// (about 100 bytes a bucket) when many addresses or keys call once.
pub const DEFAULT_MAX_TRACKED_KEYS: usize = 100_000;

/// Why a [`RateLimit`] is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitError {
    /// Not a positive, finite rate.
    #[error("a rate limit of {0} requests per second is not usable; give a positive number")]
    Rate(f64),
    /// A zero burst would refuse every request.
    #[error("a rate limit's burst must be at least 1 (a burst of 0 refuses every request)")]
    Burst,
    /// Tracking no keys at all cannot limit anything.
    #[error("a rate limiter must track at least 1 key")]
    MaxKeys,
}

impl RateLimit {
    /// A limit of `per_second` sustained with bursts of `burst`.
    ///
    /// # Errors
    ///
    /// [`RateLimitError`] for a rate that is not positive and finite or a
    /// zero burst.
    pub fn new(per_second: f64, burst: u32) -> Result<Self, RateLimitError> {
        let limit = RateLimit { per_second, burst };
        limit.check()?;
        Ok(limit)
    }

    fn check(&self) -> Result<(), RateLimitError> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(RateLimitError::Rate(self.per_second));
        }
        if self.burst == 0 {
            return Err(RateLimitError::Burst);
        }
        Ok(())
    }
}

/// Where a [`RateLimiter`] reads the time.
pub trait Clock: Send + Sync {
    /// Now, monotonic.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by key. Cheap to call: one mutex and a hash look-up.
pub struct RateLimiter<C: Clock = SystemClock> {
    limit: RateLimit,
    max_keys: usize,
    clock: C,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter<SystemClock> {
    /// A limiter with `limit` per key, tracking at most `max_keys` keys.
    ///
    /// # Errors
    ///
    /// [`RateLimitError`] for an unusable limit or `max_keys` of zero.
    pub fn new(limit: RateLimit, max_keys: usize) -> Result<Self, RateLimitError> {
        Self::with_clock(limit, max_keys, SystemClock)
    }
}

impl<C: Clock> RateLimiter<C> {
    /// As [`RateLimiter::new`], reading time from `clock`.
    ///
    /// # Errors
    ///
    /// As [`RateLimiter::new`].
    pub fn with_clock(limit: RateLimit, max_keys: usize, clock: C) -> Result<Self, RateLimitError> {
        limit.check()?;
        if max_keys == 0 {
            return Err(RateLimitError::MaxKeys);
        }
        Ok(RateLimiter { limit, max_keys, clock, buckets: Mutex::new(HashMap::new()) })
    }

    /// The limit applied to every key.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one request from `key`'s bucket.
    ///
    /// # Errors
    ///
    /// When the bucket is empty: how long until it holds a request again
    /// (the `Retry-After`; see [`retry_after_secs`]).
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        let burst = f64::from(self.limit.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: burst, updated: now });
        bucket.tokens = self.refilled(bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.limit.per_second))
    }

    /// How many keys are tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst))
    }

    /// Frees at least a tenth of the capacity, so a full map is swept once
    /// per that many new keys, not on every one: first the buckets that
    /// have refilled (dropping one loses nothing), then, if every key is
    /// still busy (a flood of distinct keys), arbitrary ones (each such key
    /// gets a fresh burst: the cap on memory wins over exactness).
    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let burst = f64::from(self.limit.burst);
        buckets.retain(|_, bucket| self.refilled(bucket, now) < burst);
        let target = self.max_keys - (self.max_keys / 10).max(1);
        if buckets.len() > target {
            let excess = buckets.len() - target;
            let victims: Vec<String> = buckets.keys().take(excess).cloned().collect();
            for key in victims {
                buckets.remove(&key);
            }
            tracing::warn!(
                max_keys = self.max_keys,
                dropped = excess,
                "rate limiter full of busy keys; dropped some (they start with a fresh burst)"
            );
        }
    }
}

/// A retry delay as whole seconds for `Retry-After`, rounded up and at
/// least 1 (a `Retry-After: 0` invites an immediate retry that fails).
pub fn retry_after_secs(delay: Duration) -> u64 {
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A clock the test moves by hand.
    #[derive(Clone)]
    struct FakeClock(Arc<Mutex<Instant>>);

    impl FakeClock {
        fn new() -> Self {
            FakeClock(Arc::new(Mutex::new(Instant::now())))
        }
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn limiter(per_second: f64, burst: u32, max_keys: usize) -> (RateLimiter<FakeClock>, FakeClock) {
        let clock = FakeClock::new();
        (RateLimiter::with_clock(RateLimit::new(per_second, burst).unwrap(), max_keys, clock.clone()).unwrap(), clock)
    }

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let (limiter, clock) = limiter(2.0, 3, 10);
        for _ in 0..3 {
            assert_eq!(limiter.check("k"), Ok(()));
        }
        let wait = limiter.check("k").unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        clock.advance(Duration::from_millis(499));
        assert!(limiter.check("k").is_err(), "not refilled yet");
        clock.advance(Duration::from_millis(1));
        assert_eq!(limiter.check("k"), Ok(()));
        assert!(limiter.check("k").is_err());
        // A long quiet spell refills to the burst, not beyond.
        clock.advance(Duration::from_secs(3600));
        for _ in 0..3 {
            assert_eq!(limiter.check("k"), Ok(()));
        }
        assert!(limiter.check("k").is_err());
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let (limiter, _clock) = limiter(1.0, 1, 10);
        assert_eq!(limiter.check("a"), Ok(()));
        assert!(limiter.check("a").is_err());
        assert_eq!(limiter.check("b"), Ok(()));
    }

    #[test]
    fn a_slow_rate_says_how_long_to_wait_in_whole_seconds() {
        let (limiter, _clock) = limiter(0.1, 1, 10);
        assert_eq!(limiter.check("k"), Ok(()));
        let wait = limiter.check("k").unwrap_err();
        assert_eq!(retry_after_secs(wait), 10);
        assert_eq!(retry_after_secs(Duration::from_millis(10_001)), 11);
    }

    #[test]
    fn tracked_keys_stay_under_the_cap_and_refilled_buckets_go_first() {
        let (limiter, clock) = limiter(1.0, 2, 10);
        // One busy key (empty bucket) and nine idle ones.
        assert_eq!(limiter.check("busy"), Ok(()));
        assert_eq!(limiter.check("busy"), Ok(()));
        for i in 0..9 {
            limiter.check(&format!("idle-{i}")).unwrap();
        }
        assert_eq!(limiter.tracked(), 10);
        // The idle ones refill to 2; `busy` to 1 only.
        clock.advance(Duration::from_secs(1));
        limiter.check("new").unwrap();
        assert!(limiter.tracked() <= 10, "{}", limiter.tracked());
        // `busy` kept its state: one request left, not a fresh burst of 2.
        assert_eq!(limiter.check("busy"), Ok(()));
        assert!(limiter.check("busy").is_err(), "the busy key must not be dropped while idle ones could be");

        // A flood of distinct keys never grows the map past its cap.
        for i in 0..1000 {
            let _ = limiter.check(&format!("flood-{i}"));
            let _ = limiter.check(&format!("flood-{i}"));
            assert!(limiter.tracked() <= 10);
        }
    }

    #[test]
    fn unusable_limits_are_refused_with_the_reason() {
        assert_eq!(RateLimit::new(0.0, 1), Err(RateLimitError::Rate(0.0)));
        assert!(RateLimit::new(f64::NAN, 1).is_err());
        assert_eq!(RateLimit::new(1.0, 0), Err(RateLimitError::Burst));
        assert!(RateLimiter::new(DEFAULT_PER_KEY_LIMIT, 0).is_err());
        assert!(RateLimit::new(1.0, 0).unwrap_err().to_string().contains("at least 1"));
    }
}
