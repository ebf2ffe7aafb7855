//! BEP 42, the DHT security extension: a node id is tied to the node's external IP, so a
//! few hosts cannot place themselves around an info-hash of their choosing.
//!
//! An id is *compliant* for an IP when its first 21 bits are the first 21 bits of
//! `crc32c((ip & mask) | (r << 29))` (IPv4, mask `0x030f3fff` over the 4 address bytes)
//! or `crc32c((ip & mask) | (r << 61))` (IPv6, mask `0x0103070f1f3f7fff` over the first 8
//! address bytes), big-endian, where `r` is the low 3 bits of the id's last byte. The
//! other bits are random. Nodes on local networks are exempt ([`is_exempt`]): any id is
//! valid from there.
//!
//! What the [`Dht`](super::Dht) does with this:
//! - **Telling others where they are.** Every response it sends carries the top-level
//!   `ip` key: the requester's address as we see it ([`super::krpc::Response::ip`]).
//! - **Learning where we are.** The `ip` of the responses to our own queries are votes on
//!   our external address, counted by [`ExternalAddressVotes`] (one vote per responding
//!   IP, bounded memory). Once an address is confirmed and our id is not compliant for
//!   it, the node takes a compliant id ([`compliant_id`], from the injected RNG) and
//!   re-buckets its routing table around it. An exempt (local) address changes nothing.
//! - **Checking others** when [`DhtConfig::enforce_node_id`](super::DhtConfig) is set: a
//!   responder whose id is not compliant for its source IP (and whose IP is not exempt)
//!   never enters the routing table, and its write token is not used for an announce
//!   (BEP 42 "Enforcement"). Its queries are still answered (BEP 42: the attack is
//!   storing on an attacker's node, not serving its requests), and the nodes it names are
//!   still asked — they are checked on their own answers. Enforcement is off on a
//!   loopback socket ([`enforce_on_socket`]), as libtorrent does.
//!
//! Limits: a non-compliant responder still counts as an answer when a lookup decides it
//! is done (BEP 42 would not count it), and a brand-new network at public addresses in
//! which every node enforces and none is compliant yet cannot form (nobody enters any
//! table, so nobody hears enough votes); one non-enforcing node, such as a router, is
//! enough to start it (`core/tests/dht_bep42.rs`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crc::{CRC_32_ISCSI, Crc};

use super::node_id::NodeId;

/// CRC-32C (Castagnoli): polynomial 0x1EDC6F41, reflected, initial and final XOR all ones.
const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// The bits of an IPv4 address (network byte order) that enter the hash.
pub const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];

/// The bits of the first 8 bytes of an IPv6 address that enter the hash.
pub const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/// Distinct voters that must agree on our external address before it is believed.
///
/// BEP 42 warns that a single node cannot be trusted and suggests voting. Four distinct
/// IPs is the rule here: one liar (or a node behind a confused NAT) cannot move our id,
/// an attacker must answer our queries from several addresses at once, and an honest
/// network still confirms within the first lookup (a bootstrap asks dozens of nodes).
/// The agreeing voters must also be a strict majority of all votes held ([`MAX_VOTERS`]
/// at most), so a handful of liars among many honest nodes cannot win either.
pub const VOTES_NEEDED: usize = 4;

/// The most voters remembered. Past this, a new voter replaces the one that voted least
/// recently: memory stays bounded, and after our address changes (a new lease, another
/// network) the old votes age out as new answers come in.
pub const MAX_VOTERS: usize = 64;

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) taken as the IPv4 address
/// (the one rule, [`super::canonical`], applied to a bare IP).
fn canonical_ip(ip: IpAddr) -> IpAddr {
    super::canonical(SocketAddr::new(ip, 0)).ip()
}

/// The CRC-32C whose top 21 bits a compliant id for `ip` starts with, for the random
/// number `r` (only its low 3 bits count).
pub fn id_prefix(ip: IpAddr, r: u8) -> u32 {
    let r = r & 0x07;
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (byte, mask) in b.iter_mut().zip(V4_MASK) {
                *byte &= mask;
            }
            b[0] |= r << 5;
            CRC32C.checksum(&b)
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut b = [0u8; 8];
            for ((byte, src), mask) in b.iter_mut().zip(o).zip(V6_MASK) {
                *byte = src & mask;
            }
            b[0] |= r << 5;
            CRC32C.checksum(&b)
        }
    }
}

/// `base` made compliant for `ip`: its first 21 bits set from [`id_prefix`] with
/// `r` = the low 3 bits of its last byte; every other bit kept.
pub fn with_prefix_for(ip: IpAddr, base: NodeId) -> NodeId {
    let mut id = base;
    let crc = id_prefix(ip, id.0[19]).to_be_bytes();
    id.0[0] = crc[0];
    id.0[1] = crc[1];
    id.0[2] = (crc[2] & 0xf8) | (id.0[2] & 0x07);
    id
}

/// A random id compliant for `ip`, from the injected RNG: 21 bits from the hash, the
/// rest (the last byte, whose low 3 bits are `r`, included) random.
pub fn compliant_id(ip: IpAddr, rng: &mut fastrand::Rng) -> NodeId {
    with_prefix_for(ip, NodeId::random(rng))
}

/// Whether `id` is compliant for `ip` (its first 21 bits match the hash for the `r` in
/// its last byte). Says nothing about exemption: see [`verify`].
pub fn is_compliant(id: &NodeId, ip: IpAddr) -> bool {
    let crc = id_prefix(ip, id.0[19]).to_be_bytes();
    id.0[0] == crc[0] && id.0[1] == crc[1] && (id.0[2] & 0xf8) == (crc[2] & 0xf8)
}

/// Whether `ip` is on a local network, where BEP 42 checks no id: IPv4 10/8, 172.16/12,
/// 192.168/16, 169.254/16 (link-local) and 127/8 (loopback); IPv6 loopback `::1`,
/// link-local `fe80::/10`, site-local `fec0::/10` (deprecated, still unroutable) and
/// unique-local `fc00::/7`; an IPv4-mapped IPv6 address as its IPv4 address.
pub fn is_exempt(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => exempt_v4(v4),
        IpAddr::V6(v6) => exempt_v6(v6),
    }
}

fn exempt_v4(ip: Ipv4Addr) -> bool {
    ip.is_private() || ip.is_link_local() || ip.is_loopback()
}

fn exempt_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || first & 0xffc0 == 0xfe80
        || first & 0xffc0 == 0xfec0
        || first & 0xfe00 == 0xfc00
}

/// Whether a node may use `id` from `ip` under BEP 42: `ip` is exempt, or `id` is
/// compliant for it.
pub fn verify(id: &NodeId, ip: IpAddr) -> bool {
    is_exempt(ip) || is_compliant(id, ip)
}

/// Whether a node whose UDP socket is bound to `local` should enforce BEP 42 on others:
/// not on a loopback address (`127.0.0.0/8`, `::1`), where every node is a local test
/// node (libtorrent turns enforcement off there too). The driver applies it to
/// [`DhtConfig::enforce_node_id`](super::DhtConfig) once its socket is bound.
pub fn enforce_on_socket(local: &SocketAddr) -> bool {
    !canonical_ip(local.ip()).is_loopback()
}

/// Votes on our external address, from the `ip` key of answers to our queries. See
/// [`VOTES_NEEDED`] and [`MAX_VOTERS`] for the rule.
///
/// A voter is a responding node's IP, not its id (ids are free to choose, addresses are
/// not) nor its port (one host running many nodes votes once); its latest vote replaces
/// its earlier one. Only answers that matched one of our queries are counted — the caller
/// ensures that — so a spoofed datagram cannot vote.
#[derive(Clone, Debug, Default)]
pub struct ExternalAddressVotes {
    /// Voter IP → (the address it saw us at, when it voted by our count).
    votes: BTreeMap<IpAddr, (IpAddr, u64)>,
    /// Votes counted so far (the "when" above).
    counter: u64,
    /// The address the votes last confirmed.
    confirmed: Option<IpAddr>,
}

impl ExternalAddressVotes {
    /// No votes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `voter`'s claim that it sees us at `seen_as`. Returns the confirmed address
    /// when this vote confirms a different one than before (see [`VOTES_NEEDED`]),
    /// `None` otherwise.
    pub fn vote(&mut self, voter: IpAddr, seen_as: IpAddr) -> Option<IpAddr> {
        let voter = canonical_ip(voter);
        let seen_as = canonical_ip(seen_as);
        self.counter += 1;
        if !self.votes.contains_key(&voter) && self.votes.len() >= MAX_VOTERS {
            let oldest = self
                .votes
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(v, _)| *v);
            if let Some(oldest) = oldest {
                self.votes.remove(&oldest);
            }
        }
        self.votes.insert(voter, (seen_as, self.counter));
        let winner = self.leader()?;
        if self.confirmed == Some(winner) {
            return None;
        }
        self.confirmed = Some(winner);
        Some(winner)
    }

    /// The address at least [`VOTES_NEEDED`] voters agree on, if they are also a strict
    /// majority of the votes held.
    fn leader(&self) -> Option<IpAddr> {
        let mut tally: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for (seen_as, _) in self.votes.values() {
            *tally.entry(*seen_as).or_default() += 1;
        }
        let (addr, count) = tally.into_iter().max_by_key(|(_, n)| *n)?;
        (count >= VOTES_NEEDED && 2 * count > self.votes.len()).then_some(addr)
    }

    /// The external address the votes confirmed last, if any.
    pub fn confirmed(&self) -> Option<IpAddr> {
        self.confirmed
    }

    /// Voters remembered (at most [`MAX_VOTERS`]).
    pub fn voters(&self) -> usize {
        self.votes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn hex_id(s: &str) -> NodeId {
        let mut id = [0u8; 20];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        NodeId(id)
    }

    /// BEP 42's test vectors: (IP, rand, example id). The bold parts are the first 21
    /// bits and the last byte; the rest are random.
    const VECTORS: [(&str, u8, &str); 5] = [
        (
            "124.31.75.21",
            1,
            "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
        ),
        (
            "21.75.31.124",
            86,
            "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
        ),
        (
            "65.23.51.170",
            22,
            "a5d43220bc8f112a3d426c84764f8c2a1150e616",
        ),
        (
            "84.124.73.14",
            65,
            "1b0321dd1bb1fe518101ceef99462b947a01ff41",
        ),
        (
            "43.213.53.83",
            90,
            "e56f6cbf5b7c4be0237986d5243b87aa6d51305a",
        ),
    ];

    #[test]
    fn bep42_vectors_are_compliant_and_their_prefixes_match() {
        for (addr, rand, example) in VECTORS {
            let example = hex_id(example);
            assert_eq!(example.0[19], rand, "the last byte is the random number");
            assert!(is_compliant(&example, ip(addr)), "{addr}");
            // Our own construction from the same random parts gives the same bold bits.
            let mut base = NodeId::default();
            base.0[19] = rand;
            let ours = with_prefix_for(ip(addr), base);
            assert_eq!(ours.0[..2], example.0[..2], "{addr}");
            assert_eq!(ours.0[2] & 0xf8, example.0[2] & 0xf8, "{addr}");
            // Flipping any of the 21 checked bits breaks compliance.
            for bit in 0..21 {
                let mut bad = example;
                bad.0[bit / 8] ^= 0x80 >> (bit % 8);
                assert!(!is_compliant(&bad, ip(addr)), "{addr} bit {bit}");
            }
            // So does another r in the last byte (the prefix depends on it).
            let mut other_r = example;
            other_r.0[19] ^= 0x01;
            assert!(!is_compliant(&other_r, ip(addr)));
            // The unchecked bits are free.
            let mut free = example;
            free.0[2] ^= 0x07;
            free.0[10] ^= 0xff;
            free.0[19] ^= 0xf8;
            assert!(is_compliant(&free, ip(addr)));
        }
        // The worked example: crc32c(0x200f0b15) for 124.31.75.21 with r = 1.
        assert_eq!(id_prefix(ip("124.31.75.21"), 1) >> 8, 0x5fbfbd);
    }

    #[test]
    fn generated_ids_are_compliant_for_their_address_only() {
        let mut rng = fastrand::Rng::with_seed(7);
        for addr in [
            "124.31.75.21",
            "8.8.8.8",
            "2a00:1450:4001:81b::200e",
            "::ffff:1.2.3.4",
        ] {
            let id = compliant_id(ip(addr), &mut rng);
            assert!(is_compliant(&id, ip(addr)), "{addr}");
            assert!(verify(&id, ip(addr)));
        }
        // An IPv4-mapped address is its IPv4 address.
        let id = compliant_id(ip("1.2.3.4"), &mut rng);
        assert!(is_compliant(&id, ip("::ffff:1.2.3.4")));
        // Another address: compliant only by a 1-in-2^21 chance, which this seed is not.
        assert!(!is_compliant(&id, ip("1.2.200.4")));
        // IPv6: only the first 8 bytes count.
        let v6 = compliant_id(ip("2a00:1450:4001:81b::1"), &mut rng);
        assert!(is_compliant(&v6, ip("2a00:1450:4001:81b:ffff::2")));
        assert!(!is_compliant(&v6, ip("2a00:1450:4001:8ff::1")));
    }

    #[test]
    fn local_networks_are_exempt_public_ones_are_not() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.3.4",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "fe80::1",
            "fec0::1",
            "fd00::1",
            "fc12::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_exempt(ip(a)), "{a}");
            assert!(verify(&NodeId([0xab; 20]), ip(a)), "{a}");
        }
        for a in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "11.0.0.1",
            "2001:db8::1",
            "2a00::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_exempt(ip(a)), "{a}");
        }
        assert!(!verify(&NodeId([0xab; 20]), ip("8.8.8.8")));
    }

    #[test]
    fn enforcement_is_off_on_loopback_sockets() {
        let s = |a: &str| -> SocketAddr { a.parse().expect("addr") };
        assert!(!enforce_on_socket(&s("127.0.0.1:6881")));
        assert!(!enforce_on_socket(&s("[::1]:6881")));
        assert!(!enforce_on_socket(&s("[::ffff:127.0.0.1]:6881")));
        assert!(enforce_on_socket(&s("0.0.0.0:6881")));
        assert!(enforce_on_socket(&s("[::]:6881")));
        assert!(enforce_on_socket(&s("192.168.1.5:6881")));
    }

    #[test]
    fn an_address_is_confirmed_by_enough_distinct_agreeing_voters() {
        let mut v = ExternalAddressVotes::new();
        let us = ip("8.8.4.4");
        let voter = |i: u8| IpAddr::V4(Ipv4Addr::new(1, 1, 1, i));
        // The same voter again and again is one vote.
        for _ in 0..10 {
            assert_eq!(v.vote(voter(1), us), None);
        }
        assert_eq!(v.voters(), 1);
        for i in 2..VOTES_NEEDED as u8 {
            assert_eq!(v.vote(voter(i), us), None);
        }
        assert_eq!(v.vote(voter(VOTES_NEEDED as u8), us), Some(us));
        assert_eq!(v.confirmed(), Some(us));
        // Confirmed once: agreeing votes change nothing.
        assert_eq!(v.vote(voter(50), us), None);
        // A few liars do not move it.
        for i in 100..103 {
            assert_eq!(v.vote(voter(i), ip("6.6.6.6")), None);
        }
        assert_eq!(v.confirmed(), Some(us));
    }

    #[test]
    fn a_split_vote_confirms_nothing_and_memory_is_bounded() {
        let mut v = ExternalAddressVotes::new();
        let voter = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0100_0000 + i));
        // Three ways: enough voters for each, but never a strict majority.
        for i in 0..12 {
            let seen = ["8.8.4.4", "9.9.9.9", "1.0.0.1"][i as usize % 3];
            assert_eq!(v.vote(voter(i), ip(seen)), None);
        }
        assert_eq!(v.confirmed(), None);
        // Many voters: memory stays bounded, and the latest ones decide (a new address).
        let mut confirmed = None;
        for i in 100..1000 {
            if let Some(a) = v.vote(voter(i), ip("5.5.5.5")) {
                confirmed = Some(a);
            }
            assert!(v.voters() <= MAX_VOTERS);
        }
        assert_eq!(confirmed, Some(ip("5.5.5.5")));
        // Our address moves: once the new one has the majority it is confirmed.
        let mut moved = None;
        for i in 2000..2000 + MAX_VOTERS as u32 {
            if let Some(a) = v.vote(voter(i), ip("7.7.7.7")) {
                moved.get_or_insert(a);
            }
        }
        assert_eq!(moved, Some(ip("7.7.7.7")));
        assert_eq!(v.confirmed(), Some(ip("7.7.7.7")));
    }
}
