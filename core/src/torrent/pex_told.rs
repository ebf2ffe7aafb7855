//! The addresses we told one peer about over PEX: a sorted set kept small.
//!
//! A swarm holds one of these per connection, each about as long as the torrent's peer
//! list, and they were the largest single part of a simulated host's memory (heaptrack at
//! N = 300: 27 MiB of 118 MiB outside the payload as `Vec<SocketAddr>`, 32 bytes an
//! address). IPv4 addresses — nearly all of them — are kept as one `u64` each.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A set of socket addresses, iterated in `SocketAddr` order, each once.
///
/// Invariant: `v4` and `v6` are sorted and without repeats. `SocketAddr`'s order puts
/// every IPv4 address before every IPv6 one, and orders IPv4 ones by IP, then port —
/// exactly the order of the keys `ip << 16 | port` — so iterating `v4` then `v6` is
/// iterating the set in `SocketAddr` order. IPv6 ones are kept whole (flow info and scope
/// id included), so the set is exact for any address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ToldSet {
    v4: Vec<u64>,
    v6: Vec<SocketAddrV6>,
}

fn key(addr: SocketAddrV4) -> u64 {
    (u64::from(u32::from(*addr.ip())) << 16) | u64::from(addr.port())
}

fn from_key(key: u64) -> SocketAddr {
    // The key holds 48 bits: the IP's 32 above the port's 16.
    let ip = Ipv4Addr::from(u32::try_from(key >> 16).unwrap_or(u32::MAX));
    SocketAddr::V4(SocketAddrV4::new(ip, (key & 0xffff) as u16))
}

impl ToldSet {
    /// The addresses, in `SocketAddr` order.
    pub(super) fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.v4
            .iter()
            .map(|&k| from_key(k))
            .chain(self.v6.iter().map(|&a| SocketAddr::V6(a)))
    }

    /// How many addresses.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The set after telling the peer `added` (none of them in the set) and `dropped` (all
    /// of them in it), both in address order as `pex_news` gives them; it stays sorted,
    /// each address once.
    pub(super) fn update(&mut self, added: &[(SocketAddr, u8)], dropped: &[SocketAddr]) {
        if !dropped.is_empty() {
            self.v4
                .retain(|&k| dropped.binary_search(&from_key(k)).is_err());
            self.v6
                .retain(|&a| dropped.binary_search(&SocketAddr::V6(a)).is_err());
        }
        if !added.is_empty() {
            for (addr, _) in added {
                match addr {
                    SocketAddr::V4(a) => self.v4.push(key(*a)),
                    SocketAddr::V6(a) => self.v6.push(*a),
                }
            }
            self.v4.sort_unstable();
            self.v4.dedup();
            self.v6.sort_unstable();
            self.v6.dedup();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::Ipv6Addr;

    use super::*;

    fn random_addr(rng: &mut fastrand::Rng) -> SocketAddr {
        if rng.u8(..) < 200 {
            // Few distinct values per field, so adds, drops and repeats meet; the
            // top octet spans 0..=255 so the key's high bits are exercised.
            let ip = Ipv4Addr::new(rng.u8(..).max(rng.u8(250..)), rng.u8(0..2), 0, rng.u8(0..4));
            SocketAddr::V4(SocketAddrV4::new(ip, rng.u16(0..3) * 30_000))
        } else {
            let ip = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, rng.u16(0..3));
            SocketAddr::V6(SocketAddrV6::new(
                ip,
                rng.u16(0..3),
                rng.u32(0..2),
                rng.u32(0..2),
            ))
        }
    }

    /// The key order is `SocketAddrV4`'s order, and a key gives its address back.
    #[test]
    fn keys_order_and_return_ipv4_addresses_exactly() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..10_000 {
            let a = SocketAddrV4::new(Ipv4Addr::from(rng.u32(..)), rng.u16(..));
            let b = SocketAddrV4::new(Ipv4Addr::from(rng.u32(..)), rng.u16(..));
            assert_eq!(key(a).cmp(&key(b)), a.cmp(&b), "{a} {b}");
            assert_eq!(from_key(key(a)), SocketAddr::V4(a));
        }
    }

    /// Against a `BTreeSet<SocketAddr>`: the same addresses in the same order after
    /// random updates of the kind `pex_news` makes (added not in the set, dropped in it).
    #[test]
    fn updates_keep_the_same_set_in_the_same_order_as_a_tree_set() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..300 {
            let mut set = ToldSet::default();
            let mut model: BTreeSet<SocketAddr> = BTreeSet::new();
            for _ in 0..20 {
                let candidates: BTreeSet<SocketAddr> = (0..rng.usize(0..40))
                    .map(|_| random_addr(&mut rng))
                    .collect();
                let added: Vec<(SocketAddr, u8)> = candidates
                    .iter()
                    .filter(|a| !model.contains(a))
                    .map(|a| (*a, rng.u8(..)))
                    .collect();
                let dropped: Vec<SocketAddr> =
                    model.iter().filter(|_| rng.u8(..) < 60).copied().collect();
                set.update(&added, &dropped);
                for a in &dropped {
                    model.remove(a);
                }
                model.extend(added.iter().map(|(a, _)| *a));
                assert_eq!(
                    set.iter().collect::<Vec<_>>(),
                    model.iter().copied().collect::<Vec<_>>(),
                    "round {round}"
                );
                assert_eq!(set.len(), model.len());
            }
        }
    }
}
