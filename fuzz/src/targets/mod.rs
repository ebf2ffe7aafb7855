//! One module per fuzz target. Each target is a `pub fn(&[u8])` that panics when an
//! invariant fails; the cargo-fuzz binaries in `fuzz_targets/` and the replay harness in
//! `tests/replay.rs` both call these.

mod bencode;
mod fixture;
mod hash_exchange;
mod krpc;
mod lsd;
mod magnet;
mod metainfo;
mod metainfo_v2;
mod mse;
mod rpc;
mod session_hostile;
mod session_peer;
mod swarm;
mod tracker_http;
mod tracker_server;
mod tracker_udp;
mod ut_metadata;
mod ut_pex;
mod utp_conn;
mod utp_packet;
mod utp_session;
mod wire;

pub use self::bencode::{bencode, has_duplicate_keys, nesting, sorted};
pub use self::hash_exchange::{hash_exchange, hash_exchange_reached};
pub use self::krpc::krpc;
pub use self::lsd::lsd;
pub use self::magnet::magnet;
pub use self::metainfo::{check_spec, metainfo, metainfo_structured};
pub use self::metainfo_v2::metainfo_v2;
pub use self::mse::mse;
pub use self::rpc::rpc;
pub use self::session_hostile::{Reached, session_hostile, session_hostile_reached};
pub use self::session_peer::session_peer;
pub use self::swarm::swarm;
pub use self::tracker_http::tracker_http;
pub use self::tracker_server::tracker_server;
pub use self::tracker_udp::tracker_udp;
pub use self::ut_metadata::ut_metadata;
pub use self::ut_pex::ut_pex;
pub use self::utp_conn::{UtpReached, utp_conn, utp_conn_reached};
pub use self::utp_packet::utp_packet;
pub use self::utp_session::{UtpSessionReached, utp_session, utp_session_reached};
pub use self::wire::wire;

/// A fuzz target: checks its invariants on one input, panicking on a finding.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its binary and of its `corpus/` directory).
pub const ALL: &[(&str, Target)] = &[
    ("bencode", bencode),
    ("metainfo", metainfo),
    ("metainfo_structured", metainfo_structured),
    ("magnet", magnet),
    ("wire", wire),
    ("session_peer", session_peer),
    ("tracker_http", tracker_http),
    ("tracker_udp", tracker_udp),
    ("tracker_server", tracker_server),
    ("swarm", swarm),
    ("krpc", krpc),
    ("ut_metadata", ut_metadata),
    ("ut_pex", ut_pex),
    ("session_hostile", session_hostile),
    ("mse", mse),
    ("lsd", lsd),
    ("metainfo_v2", metainfo_v2),
    ("hash_exchange", hash_exchange),
    ("rpc", rpc),
    ("utp_packet", utp_packet),
    ("utp_conn", utp_conn),
    ("utp_session", utp_session),
];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<Target> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
