//! BEP 6 allowed-fast pieces, both ways: pieces a peer may request while choked.
//!
//! **Granted to a peer** (we choke it): when a fast peer first says it is interested, it
//! is sent `allowed fast` for the pieces of its canonical set ([`canonical_set`], from its
//! address and the info-hash) that we have and it lacks, at most [`GRANTED`]. Requests for
//! those are served even while we choke it (and survive our choke); any other request
//! while choked is rejected as before. The grant waits for interest, as libtorrent 2.0's
//! does: a peer that wants nothing costs no messages, and pieces it has are left out.
//!
//! **Granted by a peer** (it chokes us): its `allowed fast` pieces (valid indices, at most
//! [`MAX_KEPT`]) are remembered, and while it chokes us our pipeline to it asks only for
//! blocks of those pieces that it has — a new peer gets its first pieces before any
//! unchoke. Once it unchokes us, the pipeline asks for anything again.
//!
//! Invariants: `Peer::granted_fast` is only ever non-empty for a fast peer, holds distinct
//! pieces we had when granting, and at most [`GRANTED`]; `Peer::allowed_fast` holds
//! distinct valid indices, at most [`MAX_KEPT`], and only for a fast peer.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

use super::{Ctx, Peer, Torrent};
use crate::bitfield::Bitfield;
use crate::time::Instant;
use crate::vocab::ConnId;
use crate::wire::Message;

/// Pieces granted to one peer (BEP 6 suggests 10; libtorrent grants 5 by default).
pub(crate) const GRANTED: usize = 10;

/// Most allowed-fast pieces kept from one peer. More would be a peer making "choked"
/// meaningless; the excess is ignored.
pub(crate) const MAX_KEPT: usize = 32;

/// The canonical allowed-fast set of BEP 6: `k` distinct pieces (all of them when the
/// torrent has no more than `k`) of a torrent of `piece_count` pieces for a peer at `ip`.
/// For IPv4 the spec's algorithm: the address's top three bytes (so one /24 gets one set)
/// and the info-hash, hashed again and again with SHA-1, each hash giving five big-endian
/// 32-bit numbers taken modulo `piece_count`. BEP 6 defines no IPv6 form: an IPv6 peer's
/// set comes from its /48 prefix (the usual allocation to one site) the same way.
pub fn canonical_set(ip: IpAddr, info_hash: &[u8; 20], piece_count: u32, k: usize) -> Vec<u32> {
    if piece_count == 0 {
        return Vec::new();
    }
    let k = k.min(piece_count as usize);
    let mut x: Vec<u8> = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            vec![o[0], o[1], o[2], 0]
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                let o = v4.octets();
                vec![o[0], o[1], o[2], 0]
            }
            None => v6.octets()[..6].to_vec(),
        },
    };
    x.extend_from_slice(info_hash);
    let mut set = Vec::with_capacity(k);
    while set.len() < k {
        let hash: [u8; 20] = Sha1::digest(&x).into();
        for chunk in hash.chunks_exact(4) {
            if set.len() == k {
                break;
            }
            let y = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let index = y % piece_count;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x = hash.to_vec();
    }
    set
}

impl Torrent {
    /// A fast peer said it is interested for the first time: grant it its allowed-fast
    /// pieces (see the module docs).
    pub(super) fn grant_allowed_fast(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let Some(c) = self.phase.content() else {
            return; // nothing to grant before the metadata
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if !peer.fast || peer.granted_asked {
            return;
        }
        peer.granted_asked = true;
        let have = c.picker.have();
        let set = canonical_set(
            peer.addr.ip(),
            &self.info_hash.0,
            c.geometry.piece_count(),
            GRANTED,
        );
        for index in set {
            if have.get(index) && !peer.has.get(index) {
                peer.granted_fast.push(index);
                ctx.out.send(conn, &Message::AllowedFast { index });
            }
        }
    }

    /// The peer lets us request `index` while it chokes us.
    pub(super) fn on_allowed_fast(
        &mut self,
        conn: ConnId,
        index: u32,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(c) = self.phase.content() else {
            return; // no piece is known before the metadata: nothing to keep
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if !peer.fast
            || index >= c.geometry.piece_count()
            || peer.allowed_fast.len() >= MAX_KEPT
            || peer.allowed_fast.contains(&index)
        {
            return;
        }
        peer.allowed_fast.push(index);
        if peer.peer_choking {
            self.fill_pipeline(conn, ctx, now);
        }
    }
}

/// What a peer that chokes us lets us request: its allowed-fast pieces that it has and we
/// lack, or `None` when that is nothing (see [`pieces_to_ask`]).
pub(super) fn choked_requestable(peer: &mut Peer, have: &Bitfield) -> Option<Bitfield> {
    pieces_to_ask(&mut peer.allowed_fast, &peer.has, have)
}

/// The pieces of `listed` (a peer's allowed-fast or suggested pieces) that the peer `has`
/// and we do not `have`, as a mask for the picker, or `None` when that is nothing. Pieces
/// we have are forgotten on the way, so a list we hold entirely costs one short scan and
/// no allocation (this runs on every pipeline fill).
pub(super) fn pieces_to_ask(
    listed: &mut Vec<u32>,
    has: &Bitfield,
    have: &Bitfield,
) -> Option<Bitfield> {
    listed.retain(|&index| !have.get(index));
    if !listed.iter().any(|&index| has.get(index)) {
        return None;
    }
    let mut mask = Bitfield::new(has.len());
    for &index in listed.iter() {
        if has.get(index) {
            mask.set(index);
        }
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// BEP 6's own example: 1313 pieces, info-hash 0xaa × 20, a peer at 80.4.4.200.
    #[test]
    fn the_spec_vector() {
        let ip = IpAddr::V4(Ipv4Addr::new(80, 4, 4, 200));
        let hash = [0xaa; 20];
        assert_eq!(
            canonical_set(ip, &hash, 1313, 7),
            vec![1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            canonical_set(ip, &hash, 1313, 9),
            vec![1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
        // The same /24, the same set; a mapped IPv4 address reads as the address.
        let neighbour = IpAddr::V4(Ipv4Addr::new(80, 4, 4, 1));
        assert_eq!(
            canonical_set(neighbour, &hash, 1313, 7),
            canonical_set(ip, &hash, 1313, 7)
        );
        let mapped = IpAddr::V6(Ipv4Addr::new(80, 4, 4, 200).to_ipv6_mapped());
        assert_eq!(
            canonical_set(mapped, &hash, 1313, 7),
            canonical_set(ip, &hash, 1313, 7)
        );
    }

    #[test]
    fn small_torrents_grant_every_piece_and_sets_are_distinct() {
        let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut set = canonical_set(ip, &[1; 20], 4, GRANTED);
        set.sort_unstable();
        assert_eq!(set, vec![0, 1, 2, 3]);
        let set = canonical_set(ip, &[2; 20], 1000, GRANTED);
        assert_eq!(set.len(), GRANTED);
        assert!(set.iter().all(|&i| i < 1000));
        let mut unique = set.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), set.len());
        assert!(canonical_set(ip, &[2; 20], 0, GRANTED).is_empty());
    }
}
