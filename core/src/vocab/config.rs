//! Tunables of a [`crate::session::Session`], with the defaults the mission and BEPs call for.

use std::time::Duration;

use super::{CryptoLevel, EncryptionPolicy};
use crate::choker::ChokerConfig;

/// Session-wide settings. `Default` gives the values documented on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Port we accept connections on, told to peers in the extension handshake (`p`).
    /// 0: not listening / unknown.
    pub listen_port: u16,
    /// Our public IPv6 address, sent to HTTP trackers as BEP 7 `ipv6=` so one reached over
    /// IPv4 can list us to IPv6 peers too (default `None`: not sent). The driver finds it
    /// when listening on every address.
    pub announce_ipv6: Option<std::net::Ipv6Addr>,
    /// Client name and version for the extension handshake (`v`).
    pub client_name: String,
    /// Most established peer connections per torrent (inbound and outbound together).
    pub max_peers_per_torrent: usize,
    /// Of those, how many only peers that dial us may take: we stop dialling at
    /// `max_peers_per_torrent - inbound_slots` (default 10). Without a reserve, peers that
    /// all learn the same list (a DHT lookup returns the whole swarm) fill every slot with
    /// each other, and the swarm splits into cliques that never trade: the simulator saw
    /// 100 DHT peers split into two halves of 50 and take 1.7× the P2P bound, 1.05× with
    /// the reserve.
    pub inbound_slots: usize,
    /// Most connection attempts per torrent in flight at once.
    pub max_connecting: usize,
    /// A connection we dialled must complete its handshake within this time (default
    /// 20 s); inbound ones have [`Self::inbound_handshake_timeout`] if shorter.
    pub handshake_timeout: Duration,
    /// Send a keep-alive after this long without sending anything (default 2 min, BEP 3).
    pub keepalive_interval: Duration,
    /// Drop a peer from which nothing arrived for this long (default 3 min: a keep-alive
    /// interval plus a margin).
    pub idle_timeout: Duration,
    /// If a peer has sent no block for this long while we had requests outstanding to it,
    /// its requests are cancelled and given to other peers (default 30 s).
    pub request_timeout: Duration,
    /// How long a `have` to a peer we choke that is interested in us may wait (default
    /// 30 s; zero: never). It leaves with the connection's next other message, when the
    /// peer says it is not interested, or at the first one-second housekeeping tick that
    /// keeps the oldest waiting `have` within this delay, with all the others waiting
    /// then. For such a peer a `have` changes only what it counts for rarest first, not
    /// what it may do: it cannot request from us until we unchoke it, and our unchoke
    /// carries the waiting `have`s ahead of it. A peer we unchoke hears at once (it may
    /// request the piece now), as does one not interested in us (the piece may make it
    /// so) and one we trade with (requests go to it all the time). `have`s were a single
    /// message each and most of a swarm's messages: nearly half of the simulator's events
    /// at 100 peers; waiting 30 s rather than 1 s took a further third of all events
    /// away with the same distribution times (benches/RESULTS.md). Our completion is never
    /// delayed (`upload_only` and the interest messages it causes carry the held `have`s
    /// along).
    pub have_delay: Duration,
    /// Requests we queue per peer for upload; also advertised as our `reqq` (default 250).
    pub max_queued_uploads: usize,
    /// A peer's upload request not served within this long is dropped (with a reject under
    /// BEP 6) at the next choke round (default 30 s), so a peer cannot park requests
    /// behind its own slow reading.
    pub upload_request_timeout: Duration,
    /// The floor of a useful upload slot, in bytes per second (default 16 KiB/s; 0 turns
    /// the rule off). A peer that took less than this in a
    /// [`SessionConfig::slot_trial`] window while unchoked (its socket read slowly, or it asked
    /// for nothing) and sends us less than this itself **wasted its slot**: it ranks after
    /// every peer that did not, and its regular slot goes at once to one of those (see
    /// `torrent/choking.rs`). It still fills a slot no one else wants, so when our own
    /// uplink keeps every peer below the floor the slots stay full.
    pub slow_reader_rate: u64,
    /// The window an unchoked peer is judged over against
    /// [`SessionConfig::slow_reader_rate`], window after window while it holds its slot
    /// (default 2 s, judged at its exact end; the first window is what is left of it after
    /// the unchoke's 1 s opening, when the kernel's send buffer fills whatever the peer
    /// reads): long enough for any honest peer to ask and read 16 KiB a second, short
    /// enough that a slot held by a peer that never asks, or reads at a trickle once the
    /// send buffer is full, turns over within 2 s of its unchoke rather than at a 10 s
    /// choke round.
    pub slot_trial: Duration,
    /// Seconds of a peer's measured download rate to keep requested ahead (pipeline depth =
    /// rate × this / 16 KiB), so a fast link never idles on round trips (default 2 s;
    /// libtorrent uses 3). It must cover the peer's answer latency, not only the network's:
    /// Transmission answers requests in bursts about 0.5 s apart, and at 0.5 s of rate the
    /// depth and the rate held each other down at ~0.5 MB/s.
    pub pipeline_seconds_millis: u64,
    /// Fewest requests kept outstanding to an unchoked peer with something we want, also
    /// the depth before its rate is measured (default 2, as libtorrent). The depth then
    /// grows with the measured rate, by a factor of `pipeline_seconds / round trip` per round
    /// trip, so a fast link reaches full speed within a few round trips. A larger floor would
    /// queue minutes of data at a slow peer: its blocks would keep arriving long after it
    /// choked us, and endgame duplicates sent to it could not be cancelled in time (the
    /// simulator measured 17 % of the payload wasted at 32 on 3.6 KiB/s links).
    pub min_pipeline: usize,
    /// Most requests kept outstanding to one peer, further bounded by its `reqq`
    /// (default 500 blocks = 8 MiB).
    pub max_pipeline: usize,
    /// Hash failures a peer may be responsible for, net of the good pieces it sent, before
    /// it is banned (default 3). A failure counts whole against a peer that sent the piece
    /// alone and half against each peer of a shared piece; a verified piece earns half back
    /// (at most 4 failures' worth banked).
    pub max_strikes: u32,
    /// Delay before redialling an address that refused or dropped us; doubles per failure
    /// (default 5 s).
    pub reconnect_delay: Duration,
    /// Failed dials after which an address is forgotten (default 3: with the 5 s, 10 s
    /// back-off a peer that refuses every connection is given up 15 s after the first
    /// dial, one that times out every time after three time-outs more; six tries took
    /// 2 min 45 s, long enough for a user to think the tool hung).
    pub max_connect_failures: u32,
    /// How long an incomplete torrent may have nothing that could make progress — no peer
    /// connected, no address left to dial, no tracker it can announce to and no DHT — before
    /// [`super::Event::GaveUp`] says so (default 10 s; peers may still dial us meanwhile).
    /// A torrent with a usable tracker or the DHT never gives up: either may find peers
    /// later.
    pub give_up_after: Duration,
    /// Tracker URL schemes the driver can announce to (default `http`, `https` and `udp`,
    /// lower case; a driver without TLS leaves `https` out). A tracker with any other
    /// scheme (`ftp`, `wss`…) is named once in
    /// [`super::Event::TrackerUnsupported`] and never announced to.
    pub tracker_schemes: Vec<String>,
    /// Most addresses kept per torrent waiting to be dialled (default 1,000), so a hostile
    /// tracker answering with a million peers cannot grow memory. When full, an address
    /// from a higher-ranked source ([`super::PeerSource`]) replaces one from the lowest
    /// source; others are ignored until places free up.
    pub max_candidates: usize,
    /// Choking rounds (default: 4 regular slots every 10 s, optimistic every 30 s,
    /// snubbed after 60 s).
    pub choker: ChokerConfig,
    /// Largest info dictionary a magnet torrent fetches from peers (BEP 9), in bytes
    /// (default 16 MiB, a torrent of about 800,000 pieces). A peer announcing a larger
    /// `metadata_size` for a torrent whose metadata we lack is dropped. It also bounds the
    /// availability kept per peer before the metadata arrives.
    pub max_metadata_size: u32,
    /// Limits on a torrent's shape (file count, path lengths), checked on metadata fetched
    /// for a magnet link before it is decoded (the file count, straight from the bytes) and
    /// after (the paths): a refused one gives [`super::Event::MetadataError`] with
    /// [`crate::metainfo::MetainfoError::Shape`]. A driver passes the same limits to its
    /// storage set-up. Default: [`crate::metainfo::ShapeLimits::default`].
    pub shape: crate::metainfo::ShapeLimits,
    /// Run a DHT node (BEP 5) with these settings, looking up and announcing every
    /// non-private torrent (default `None`: no DHT). The driver owns its UDP socket.
    pub dht: Option<crate::dht::DhtConfig>,
    /// Local service discovery (BEP 14): announce every non-private torrent to the LAN's
    /// multicast group when it is added and every 5 minutes ([`super::Action::SendLsd`]),
    /// and dial peers that announce our torrents there
    /// ([`crate::session::Session::handle_lsd_datagram`]). Needs a `listen_port`. Off by
    /// default: an embedder (and the simulator) must not multicast unasked; the CLI turns
    /// it on, and a driver turns it off when its LSD socket cannot be set up.
    pub lsd: bool,
    /// The LSD groups announces go to (BEP 14: IPv4 `239.192.152.143:6771`, IPv6
    /// `[ff15::efc0:988f]:6771`): those the driver has a socket joined to. Each announce
    /// round sends the same torrents to every group set here. Announces heard are taken
    /// from either family whatever this says (the driver only hands over what its sockets
    /// received). Default: IPv4 only.
    pub lsd_families: crate::lsd::LsdFamilies,
    /// The address families the DHT runs over (BEP 32: a node, and a routing table, per
    /// family): those the driver's UDP socket can send to. Default: IPv4 only.
    pub dht_families: crate::dht::DhtFamilies,
    /// Give up a dial ([`super::Action::Connect`]) the driver has not reported opened or
    /// failed after this long: the session counts it failed, emits
    /// [`super::Action::CancelConnect`] and [`super::Event::ConnectFailed`] with
    /// [`super::ConnectFailure::TimedOut`] (default 10 s).
    pub connect_timeout: Duration,
    /// Most inbound connections held at once, before and after their handshake; one more
    /// is refused as it is opened ([`super::DisconnectReason::TooManyConnections`], no
    /// peer event) (default 200).
    pub max_inbound: usize,
    /// Most inbound connections still in their handshake at once (default 100). One more
    /// takes the place of the oldest of them if that one has been silent for a second or
    /// more (it is dropped), else it is refused as it is opened: peers that connect and
    /// say nothing, even kept refilled, cannot crowd out the ones that would trade.
    pub max_inbound_handshaking: usize,
    /// An inbound connection must complete its handshake within this time (default
    /// 10 s, shorter than [`Self::handshake_timeout`]): an honest peer that dialled us
    /// speaks at once, so a socket that says nothing is only holding a slot.
    pub inbound_handshake_timeout: Duration,
    /// Most inbound connections from one IP address still in their handshake (default
    /// 3): one host cannot fill the handshaking slots alone.
    pub max_handshaking_per_ip: usize,
    /// Most inbound connections from one IP address at once, before and after their
    /// handshake (default 8).
    pub max_inbound_per_ip: usize,
    /// When a torrent is at `max_peers_per_torrent` and a new peer completes its
    /// handshake, a connected peer that exchanged no payload with us for this long (or
    /// since it connected) may be evicted to make room (default 10 s); a peer that
    /// uploads to us or that we upload to within it never is. See
    /// `session/admission.rs` for the whole rule.
    pub evict_idle_after: Duration,
    /// The shorter [`Self::evict_idle_after`] of a *useless* peer (default 3 s): one that
    /// is neither interested in us nor interesting to us, or that is interested but took
    /// nothing from an upload slot it was given (it wasted it, see
    /// [`Self::slow_reader_rate`]) while we want nothing from it. An honest peer says
    /// what it wants within a round trip of its handshake and reads what it asked for, so
    /// a few seconds tell; waiting the full grace would let attackers that reconnect as
    /// fast as they are evicted keep every slot young.
    pub evict_useless_after: Duration,
    /// With every peer slot taken, a torrent may dial one peer past the limit to replace a
    /// useless one (see `evict_useless_after`); at most one such dial per this interval
    /// (default 10 s). Zero spaces them only by their round trips: a swarm whose peers have
    /// little to trade yet then turns its connections over several times a minute.
    pub evict_dial_interval: Duration,
    /// A handshake naming a peer id already connected on the torrent is a duplicate.
    /// The established connection is kept if it has exchanged payload, or if it is
    /// younger than this (against a newcomer from the same IP, two peers dialling each
    /// other at once, both ends keep the same one); an established connection older than
    /// this that never exchanged payload gives way to a newcomer from another IP
    /// (default 5 s), so a
    /// squatter that took a peer's id first cannot lock the real peer out.
    pub duplicate_grace: Duration,
    /// How many addresses (IPs, per torrent) evicted as idle the session remembers
    /// (default 1,024; 0 turns the memory off). A remembered IP that comes back gets no
    /// fresh `evict_idle_after` grace: while its torrent is full it may not evict another
    /// idle peer to get in, and once admitted its idle time counts from its last payload
    /// before the eviction, so it is the first to go. Without it an idle attacker evicted
    /// for a newcomer reconnects at once, evicts the next idle peer, and attackers keep
    /// every slot young so an honest newcomer never finds one to take. It is not a ban:
    /// a remembered peer is admitted whenever there is room. When more are evicted, the
    /// oldest eviction is forgotten first.
    pub evicted_memory: usize,
    /// How long an address evicted as idle is remembered (default 5 min): long enough to
    /// outlast an attacker's reconnection loop, short enough that an honest peer that was
    /// idle for good reason (a seed connecting to a seed) gets its grace back.
    pub evicted_memory_for: Duration,
    /// Whether the session emits the peer events a UI shows
    /// ([`super::Event::PeerConnected`], [`super::Event::PeerDisconnected`],
    /// [`super::Event::ConnectFailed`]), once each. Off, the only events are about
    /// torrents, pieces and trackers (default off; the runtimes turn it on).
    pub peer_events: bool,
    /// Whether the driver reports what each socket accepted
    /// ([`crate::session::Session::handle_sent`]). With it, the session bounds what waits unsent
    /// per connection (the three settings below); without it (a harness that delivers
    /// everything at once) none of them applies. The real runtimes turn it on (default
    /// off).
    pub send_accounting: bool,
    /// A connection with more than this handed to the driver and not accepted by its
    /// socket is dropped at once as a [`super::DisconnectReason::SlowReader`] (default
    /// 16 MiB).
    pub max_unsent_bytes: usize,
    /// A connection with bytes unsent whose socket accepted nothing for this long is
    /// dropped as a [`super::DisconnectReason::SlowReader`] (default 60 s): a peer that
    /// stops reading holds our memory and an upload slot.
    pub send_stall_timeout: Duration,
    /// Uploads for a connection wait (their [`super::Action::ReadBlock`]s are held back)
    /// while its unsent bytes plus the blocks being read for it exceed this (default
    /// 4 MiB): memory for uploads is bounded by the session, not by a stalled socket.
    pub upload_read_ahead: usize,
    /// How often a torrent whose pieces changed gets an [`super::Action::SaveResume`]
    /// (default 15 s): what a crash can lose is this much progress, re-downloaded or
    /// re-checked on restart.
    pub resume_interval: Duration,
    /// Downloads stop sending new block requests, in every torrent, while this many bytes
    /// of [`super::Action::WriteBlock`]s are unanswered by
    /// [`crate::session::Session::disk_write_done`] (counted 16 KiB a block), and start
    /// again when half of it is written (default 32 MiB). Requests already sent still
    /// arrive: the bytes waiting for the disk stay under this plus the blocks outstanding
    /// at the moment it was reached (at most `max_pipeline` blocks per peer). Memory for
    /// downloads is bounded by not asking, not by a driver that stops reading.
    pub max_unwritten_bytes: usize,
    /// Longest [`crate::session::Session::close`] takes before
    /// [`crate::session::Session::is_drained`] says yes whatever is still out (default
    /// 10 s): a stuck disk or a silent tracker cannot hold an exit up. Writes already
    /// handed out get the first half of it before the final resume saves go out anyway.
    pub close_timeout: Duration,
    /// How long an announce may take in all (default 60 s, enough for a UDP tracker's
    /// first transmission and BEP 15's retransmissions at 15 s and 45 s): past it the
    /// announce counts as failed ([`super::Event::TrackerError`], "timed out after 60 s"),
    /// the announcer moves on to the next tracker, and a late answer is ignored. Name
    /// resolution counts against it.
    pub tracker_timeout: Duration,
    /// The same for a `stopped` announce and any announce made after
    /// [`crate::session::Session::stop_announces`] (default 3 s): leaving must not hold
    /// the exit up.
    pub stopped_tracker_timeout: Duration,
    /// How long the announcer waits for one tracker's answer before it also asks the next
    /// tracker (default 15 s): the slow one stays out until [`Self::tracker_timeout`] and
    /// its answer still counts, but a tracker answering at 1 byte/s in the first tier
    /// delays the first peers from a good one behind it by this much at most, and is asked
    /// after the trackers that answered in time from then on.
    pub tracker_attempt_timeout: Duration,
    /// Most peers taken from one tracker answer (default 200; a tracker may list 100,000
    /// junk addresses). Tracker peers rank lowest among candidates anyway (see
    /// [`super::PeerSource`]); this keeps one answer from churning the whole list.
    pub max_peers_per_announce: usize,
    /// Whether peer connections are encrypted (MSE/PE; default
    /// [`EncryptionPolicy::Prefer`]: dial encrypted, accept both, retry a refusing peer
    /// once in plaintext).
    pub encryption: EncryptionPolicy,
    /// Which stream an encrypted handshake may settle on (default [`CryptoLevel::Both`]:
    /// plaintext after the handshake when the peer allows it, RC4 when it insists).
    pub crypto_level: CryptoLevel,
    /// Which transports dials use (default [`super::Transport::Tcp`]; see
    /// [`super::Transport`] for the `Both` policy). Incoming uTP is taken unless this is
    /// `Tcp`; incoming TCP always.
    pub transport: super::Transport,
    /// With [`super::Transport::Both`], how long a uTP dial waits for the peer's answer
    /// before the dial goes to TCP instead (default 3 s, libtorrent's
    /// `utp_connect_timeout`): long enough for a SYN and one retransmission on most
    /// paths, short enough that a peer without uTP costs little. With
    /// [`super::Transport::Utp`] the dial has [`Self::connect_timeout`] like a TCP one.
    pub utp_connect_timeout: Duration,
    /// Whether a torrent's `url-list` (BEP 19 web seeds) is used (default `true`);
    /// [`crate::session::Session::add_web_seeds`] adds web seeds either way.
    pub web_seeds: bool,
    /// Requests in flight to one web seed (BEP 19) at once (default 4; each asks for at
    /// most one piece's worth of blocks, so at most 4 pieces are out to a web seed).
    pub web_seed_requests: usize,
    /// How long a web seed request may take before the session gives up on it (default
    /// 60 s): its blocks go to other sources and it counts as a failure.
    pub web_seed_timeout: Duration,
    /// The wait before asking a web seed again after its first failure in a row (default
    /// 2 s); it doubles with every further failure in a row up to
    /// [`Self::web_seed_max_retry`], and a success clears it.
    pub web_seed_retry: Duration,
    /// The longest wait between attempts at a failing web seed (default 60 s): a web seed
    /// is never given up for failures, only banned for wrong data.
    pub web_seed_max_retry: Duration,
    /// Session-wide (global) limit on payload bytes sent per second, over every torrent
    /// and peer (default `None`: unlimited; 0 also means unlimited). Each torrent may have
    /// its own limit besides ([`crate::session::Session::set_limits`]); a block goes only
    /// when both allow it. See [`crate::limits`].
    pub upload_limit: Option<u64>,
    /// Session-wide (global) limit on payload bytes received per second (default `None`:
    /// unlimited; 0 also means unlimited): requests are held back so blocks arrive no
    /// faster. See [`crate::limits`].
    pub download_limit: Option<u64>,
    /// Session-wide seeding limits (default: none): when a seed pauses itself. Each
    /// torrent follows them unless it has its own
    /// ([`crate::session::Session::set_seed_limits`], which also changes these live). A
    /// ratio that is not finite or is negative is read as no ratio limit.
    pub seed_limits: super::SeedLimits,
    /// How many torrents download and seed at once (default: no limit); the rest wait
    /// queued, in the order they were added ([`crate::session::Session::set_queue_limits`]
    /// changes it live).
    pub queue_limits: super::QueueLimits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            listen_port: 0,
            announce_ipv6: None,
            client_name: concat!("unchoke ", env!("CARGO_PKG_VERSION")).to_string(),
            max_peers_per_torrent: 50,
            inbound_slots: 10,
            max_connecting: 8,
            handshake_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
            have_delay: Duration::from_secs(30),
            max_queued_uploads: 250,
            upload_request_timeout: Duration::from_secs(30),
            slow_reader_rate: 16 * 1024,
            slot_trial: Duration::from_secs(2),
            pipeline_seconds_millis: 2000,
            min_pipeline: 2,
            max_pipeline: 500,
            max_strikes: 3,
            reconnect_delay: Duration::from_secs(5),
            max_connect_failures: 3,
            give_up_after: Duration::from_secs(10),
            tracker_schemes: vec!["http".to_string(), "https".to_string(), "udp".to_string()],
            max_candidates: 1000,
            choker: ChokerConfig::default(),
            max_metadata_size: 16 * 1024 * 1024,
            shape: crate::metainfo::ShapeLimits::default(),
            dht: None,
            lsd: false,
            lsd_families: crate::lsd::LsdFamilies::default(),
            dht_families: crate::dht::DhtFamilies::default(),
            connect_timeout: Duration::from_secs(10),
            max_inbound: 200,
            max_inbound_handshaking: 100,
            inbound_handshake_timeout: Duration::from_secs(10),
            max_handshaking_per_ip: 3,
            max_inbound_per_ip: 8,
            evict_idle_after: Duration::from_secs(10),
            evict_useless_after: Duration::from_secs(3),
            evict_dial_interval: Duration::from_secs(10),
            duplicate_grace: Duration::from_secs(5),
            evicted_memory: 1024,
            evicted_memory_for: Duration::from_secs(300),
            peer_events: false,
            send_accounting: false,
            max_unsent_bytes: 16 << 20,
            send_stall_timeout: Duration::from_secs(60),
            upload_read_ahead: 4 << 20,
            resume_interval: Duration::from_secs(15),
            max_unwritten_bytes: 32 << 20,
            close_timeout: Duration::from_secs(10),
            tracker_timeout: Duration::from_secs(60),
            stopped_tracker_timeout: Duration::from_secs(3),
            tracker_attempt_timeout: Duration::from_secs(15),
            max_peers_per_announce: 200,
            encryption: EncryptionPolicy::Prefer,
            crypto_level: CryptoLevel::Both,
            transport: super::Transport::Tcp,
            utp_connect_timeout: Duration::from_secs(3),
            web_seeds: true,
            web_seed_requests: 4,
            web_seed_timeout: Duration::from_secs(60),
            web_seed_retry: Duration::from_secs(2),
            web_seed_max_retry: Duration::from_secs(60),
            upload_limit: None,
            download_limit: None,
            seed_limits: super::SeedLimits::default(),
            queue_limits: super::QueueLimits::default(),
        }
    }
}
