//! Where an address to dial came from, which decides who is dialled first and who keeps
//! a place among the bounded candidates when a flood arrives.

/// The source of a peer address given to [`crate::session::Session::add_peers_from`].
///
/// Sources are ranked (see [`PeerSource::rank`]): a flood from a low source (a tracker
/// answering 100,000 junk addresses) can fill the free candidate places but never push
/// out an address from a higher one, and higher sources are dialled first. The order
/// follows how much an attacker must do to plant an address there: nothing for a tracker
/// he runs, a lookup answer for the DHT, a place on our LAN for local service discovery,
/// a connection for PEX, while the user's own `--peer` and a peer that already sent us
/// verified data are evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerSource {
    /// A tracker's answer: the cheapest for an attacker to fill.
    Tracker,
    /// A DHT lookup (BEP 5).
    Dht,
    /// Local service discovery (BEP 14): a multicast announce from our LAN. Above the DHT
    /// (the sender must be on the same link, TTL 1) but below PEX: anyone on the LAN can
    /// announce any port for any info-hash without ever having connected to us.
    Lsd,
    /// Peer exchange from a connected peer (BEP 11).
    Pex,
    /// A peer that was connected before and sent us data (set by the session only).
    Proven,
    /// Given by the user (`--peer`, [`crate::session::Session::add_peers`]).
    User,
}

impl PeerSource {
    /// The rank: higher is dialled first and keeps its candidate place against lower.
    pub fn rank(self) -> u8 {
        match self {
            PeerSource::Tracker => 0,
            PeerSource::Dht => 1,
            PeerSource::Lsd => 2,
            PeerSource::Pex => 3,
            PeerSource::Proven => 4,
            PeerSource::User => 5,
        }
    }
}
