//! Per-source-IP rate limiting of incoming queries: a token bucket for each address.
//!
//! Each IP may send `burst` queries at once and `per_sec` per second after that; queries
//! beyond are dropped unanswered, so flooding us (or making us flood a spoofed victim)
//! gets nothing. The table is bounded: when it holds `max_ips` addresses, a newcomer evicts
//! the one seen longest ago. Tokens are counted in millionths so refills are exact integer
//! arithmetic on microseconds.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::time::Instant;

/// One query's cost in millionths of a token.
const UNIT: u64 = 1_000_000;

/// Limits of a [`RateLimiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained queries per second allowed from one IP.
    pub per_sec: u32,
    /// Queries one IP may send in a burst.
    pub burst: u32,
    /// Addresses tracked at once.
    pub max_ips: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u64,
    last: Instant,
}

/// Token buckets by source IP. See the module docs.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: BTreeMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: BTreeMap::new(),
        }
    }

    /// Whether a query from `ip` at `now` may be answered (and if so, charges it).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let cap = u64::from(self.limit.burst) * UNIT;
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.limit.max_ips.max(1) {
            // A linear pass, paid only by a newcomer when the table is full.
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(ip, b)| (b.last, **ip))
                .map(|(ip, _)| *ip);
            if let Some(old) = oldest {
                self.buckets.remove(&old);
            }
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: cap,
            last: now,
        });
        let elapsed = (now - b.last).as_micros();
        let refill = u64::try_from(elapsed)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(self.limit.per_sec));
        b.tokens = b.tokens.saturating_add(refill).min(cap);
        b.last = b.last.max(now);
        if b.tokens >= UNIT {
            b.tokens -= UNIT;
            true
        } else {
            false
        }
    }

    /// Addresses tracked (bounded by `max_ips`).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}
