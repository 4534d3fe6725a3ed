//! Per-organisation rate limiting: a token bucket per org, so one hospital's
//! runaway script cannot starve the province. Buckets live in memory per
//! gateway replica; N replicas admit up to N times the rate, which is the
//! usual trade for not putting a shared store on every request's path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vbp_kernel::OrgId;

/// Independent locks, so concurrent requests of different orgs rarely meet.
const SHARDS: usize = 16;
/// A shard larger than this sheds its idle (full) buckets.
const SWEEP_ABOVE: usize = 4_096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

struct Shard {
    buckets: HashMap<OrgId, Bucket>,
    /// Size at which the next sweep runs; doubling it after a sweep that
    /// freed little keeps sweeping amortised O(1) per request.
    sweep_at: usize,
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    shards: Vec<Mutex<Shard>>,
}

impl RateLimiter {
    /// `rate` tokens per second refill a bucket of `burst`; a rate of 0 turns
    /// the limiter off.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        sweep_at: SWEEP_ABOVE,
                    })
                })
                .collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes one token of `org`'s bucket, or says how long until one is there.
    pub fn check(&self, org: OrgId, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let shard = &self.shards[(org.as_uuid().as_u128() % SHARDS as u128) as usize];
        let mut shard = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if shard.buckets.len() > shard.sweep_at {
            let (rate, burst) = (self.rate, self.burst);
            shard
                .buckets
                .retain(|_, b| refilled(b.tokens, b.updated, now, rate, burst) < burst);
            shard.sweep_at = (shard.buckets.len() * 2).max(SWEEP_ABOVE);
        }
        let bucket = shard.buckets.entry(org).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        bucket.tokens = refilled(bucket.tokens, bucket.updated, now, self.rate, self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

fn refilled(tokens: f64, updated: Instant, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(updated).as_secs_f64();
    (tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let org = OrgId::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check(org, t0).unwrap();
        }
        let wait = limiter.check(org, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        limiter.check(org, t0 + Duration::from_millis(500)).unwrap();
        assert!(limiter.check(org, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn organisations_have_their_own_buckets() {
        let limiter = RateLimiter::new(1.0, 1);
        let (a, b) = (OrgId::new(), OrgId::new());
        let now = Instant::now();
        limiter.check(a, now).unwrap();
        assert!(limiter.check(a, now).is_err());
        limiter.check(b, now).unwrap();
    }

    #[test]
    fn zero_rate_is_off_and_idle_buckets_are_swept() {
        let off = RateLimiter::new(0.0, 1);
        let org = OrgId::new();
        for _ in 0..100 {
            off.check(org, Instant::now()).unwrap();
        }
        let limiter = RateLimiter::new(1000.0, 1);
        let n = SWEEP_ABOVE * SHARDS * 2;
        let t0 = Instant::now();
        for _ in 0..n {
            let _ = limiter.check(OrgId::new(), t0);
        }
        // A second later those buckets are full again, i.e. idle: the next
        // sweep of each shard drops them, so the maps do not hold 2n orgs.
        let later = t0 + Duration::from_secs(1);
        for _ in 0..n {
            let _ = limiter.check(OrgId::new(), later);
        }
        let total: usize = limiter
            .shards
            .iter()
            .map(|s| s.lock().unwrap().buckets.len())
            .sum();
        assert!(total <= n + n / 2, "{total} buckets kept of {}", 2 * n);
    }
}
