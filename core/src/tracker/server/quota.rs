//! Who created which swarms lately: the per-address quota on *new* info-hashes that keeps a
//! flood of random hashes from a few addresses from churning honest swarms out.
//!
//! An address is an IPv4 address or an IPv6 /64 (one host is commonly given a whole /64, so
//! counting single IPv6 addresses would give an attacker 2⁶⁴ quotas). The log is bounded:
//! entries older than the window are forgotten, and beyond a cap the oldest go first, which
//! can only make the quota more lenient, never lock out an honest address.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Instant;

/// How many swarms one address may create per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwarmQuota {
    /// Swarms one address may create within `window` (default 20).
    pub per_ip: u32,
    /// The sliding window (default 30 min).
    pub window: Duration,
}

impl Default for SwarmQuota {
    fn default() -> Self {
        SwarmQuota {
            per_ip: 20,
            window: Duration::from_secs(30 * 60),
        }
    }
}

/// The address a quota is counted for: an IPv4 address or the /64 of an IPv6 one.
pub(crate) fn quota_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Recent creations, oldest first, with a count per address.
#[derive(Debug, Default, Clone)]
pub(crate) struct CreationLog {
    log: VecDeque<(Instant, IpAddr)>,
    per_ip: BTreeMap<IpAddr, u32>,
}

impl CreationLog {
    /// Whether `ip` may create one more within `quota` at `now` (old entries are dropped).
    pub(crate) fn allows(&mut self, quota: SwarmQuota, ip: IpAddr, now: Instant) -> bool {
        self.forget_before(now, quota.window);
        self.per_ip.get(&quota_key(ip)).copied().unwrap_or(0) < quota.per_ip
    }

    /// Notes that `ip` created one at `now`; keeps at most `cap` entries.
    pub(crate) fn record(&mut self, ip: IpAddr, now: Instant, cap: usize) {
        let key = quota_key(ip);
        self.log.push_back((now, key));
        *self.per_ip.entry(key).or_default() += 1;
        while self.log.len() > cap {
            self.pop_oldest();
        }
    }

    /// Entries held (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.log.len()
    }

    fn forget_before(&mut self, now: Instant, window: Duration) {
        while let Some(&(at, _)) = self.log.front() {
            if now.saturating_duration_since(at) < window {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((_, key)) = self.log.pop_front() else {
            return;
        };
        if let Some(n) = self.per_ip.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&key);
            }
        }
    }
}
