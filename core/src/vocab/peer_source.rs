//! Where an address to dial came from, which decides who is dialled first and who keeps
//! a place among the bounded candidates when a flood arrives.

/// The source of a peer address given to [`crate::session::Session::add_peers_from`].
///
/// Sources are ranked (see [`PeerSource::rank`]): a flood from a low source (a tracker
/// answering 100,000 junk addresses) can fill the free candidate places but never push
/// out an address from a higher one, and higher sources are dialled first. The order
/// follows how much an attacker must do to plant an address there: nothing for a tracker
/// he runs, a connection for PEX, a lookup answer for the DHT, while the user's own
/// `--peer` and a peer that already sent us verified data are evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerSource {
    /// A tracker's answer: the cheapest for an attacker to fill.
    Tracker,
    /// A DHT lookup (BEP 5).
    Dht,
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
            PeerSource::Pex => 2,
            PeerSource::Proven => 3,
            PeerSource::User => 4,
        }
    }
}
