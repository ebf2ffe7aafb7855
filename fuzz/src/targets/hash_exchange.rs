//! The `hash_exchange` target: BEP 52's hash messages against a whole `Session`, both ways.
//!
//! A v2-only torrent of three files (7, 3 and 1 pieces of 16 KiB) is built once. The first
//! input byte chooses the mode:
//! - **serving**: the session seeds the torrent; one inbound peer (handshaking with the
//!   truncated v2 info-hash) sends an `arbitrary` schedule of hash requests with arbitrary
//!   fields (a file's true root or a random one; any layer, index, length and proof count),
//!   `interested`, raw bytes and clock ticks;
//! - **fetching**: the session has only the magnet's info-hash; the peer first serves the
//!   info dictionary honestly (BEP 9), then the schedule sends `hashes` answers (true, with
//!   a flipped byte, or for another range), `hash reject`s, arbitrary `hashes` messages, raw
//!   bytes and ticks.
//!
//! Invariants:
//! 1. Nothing panics, and everything the session sends decodes.
//! 2. Serving: every well-framed hash request is answered exactly once, by `hashes` or
//!    `hash reject` naming the same request; a `hashes` answer holds exactly the true base
//!    hashes (checked against a tree computed here from the content) followed by one true
//!    uncle per proof layer above the requested range; at most 64 answers while the
//!    session chokes the peer.
//! 3. Fetching: until the layers are accepted, our hash requests get only `hash reject`s;
//!    every hash request the session sends asks for a piece layer of a file of
//!    more than one piece, 2–512 hashes at an index that is a multiple of 512 inside the
//!    padded layer, with no proof layers; `MetadataReceived` comes at most once, and only
//!    with every layer equal to the true one.

use std::collections::VecDeque;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};
use unchoke_core::create::{Content, CreateOptions, InputFile, PieceDigests, V2Plan};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::metainfo::merkle::{self, Hash32};
use unchoke_core::session::{
    Action, ConnId, Direction, EncryptionPolicy, Event, MagnetOptions, Session, SessionConfig,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{
    Decoder, ExtensionHandshake, Handshake, HashRequest, Limits, METADATA_PIECE_LEN, Message,
    MetadataMessage, PeerId, Reserved, UT_METADATA,
};

const PIECE: usize = 16 * 1024;
/// The id the peer asks our `ut_metadata` messages to carry.
const PEER_ID_FOR_METADATA: u8 = 3;
/// The id the session asks for (`OUR_UT_METADATA_ID` in the core).
const OUR_ID: u8 = 2;
/// Answers to a choked peer per connection (`CHOKED_HASH_ANSWERS` in the core).
const CHOKED_ANSWERS: usize = 64;

/// The fixed torrent: its metainfo (with layers), and each file's length and piece layer
/// (its per-piece roots), in file-tree order.
struct Fixture {
    metainfo: Metainfo,
    files: Vec<(u64, Hash32, Vec<Hash32>)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let lengths = [("a", 100_000usize), ("b", 40_000), ("c", 5_000)];
        let data: Vec<Vec<u8>> = lengths
            .iter()
            .enumerate()
            .map(|(f, (_, len))| {
                (0..*len)
                    .map(|i| (i * 31 + f * 7 + i / 253) as u8)
                    .collect()
            })
            .collect();
        let input: Vec<InputFile> = lengths
            .iter()
            .map(|(name, len)| InputFile {
                path: vec![(*name).to_owned()],
                length: *len as u64,
            })
            .collect();
        let plan = V2Plan::new(Content::Directory(input), Some(PIECE as u32), false)
            .expect("the fixed plan");
        let mut buf = Vec::new();
        let digests: Vec<PieceDigests> = (0..plan.piece_count())
            .map(|piece| {
                plan.hash_piece(piece, &mut buf, |span, dst| {
                    let start = span.file_offset as usize;
                    dst.copy_from_slice(&data[span.file][start..start + dst.len()]);
                    Ok::<(), ()>(())
                })
                .expect("in memory")
            })
            .collect();
        let bytes = plan
            .finish(&digests, &CreateOptions::new("fuzz"))
            .expect("the fixed torrent");
        let metainfo = Metainfo::from_bytes(&bytes).expect("the fixed torrent parses");
        // The names are already in file-tree order, so `data` is too.
        let files = data
            .iter()
            .map(|d| {
                let layer: Vec<Hash32> = d
                    .chunks(PIECE)
                    .map(|p| {
                        merkle::piece_root(
                            p,
                            merkle::leaves_per_piece(PIECE as u32, d.len() as u64),
                        )
                        .expect("a piece")
                    })
                    .collect();
                let root = merkle::file_root(d).expect("non-empty");
                (d.len() as u64, root, layer)
            })
            .collect();
        Fixture { metainfo, files }
    })
}

/// Level `level` (from the leaves) of a file's tree, computed from its piece layer (level
/// 0 here is the leaves; the piece layer of 16 KiB pieces is the leaves themselves).
fn level(file: &(u64, Hash32, Vec<Hash32>), level: u32) -> Vec<Hash32> {
    let width = file.2.len().next_power_of_two();
    let mut nodes = file.2.clone();
    nodes.resize(width, [0; 32]);
    for _ in 0..level {
        nodes = nodes
            .chunks(2)
            .map(|p| merkle::hash_pair(&p[0], p.get(1).unwrap_or(&[0; 32])))
            .collect();
    }
    nodes
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// A hash request for file `file` (mod 3; 3 picks `root`): with `wild`, these fields
    /// almost as they are; else shaped to mostly valid ones (base 0–2, 2–8 hashes at a
    /// multiple of the length, 0–2 proof layers).
    Request {
        file: u8,
        root: [u8; 32],
        base: u8,
        index: u16,
        length: u16,
        proofs: u8,
        wild: bool,
    },
    /// `interested`: the session may unchoke us.
    Interested,
    /// An answer to the session's oldest outstanding hash request: the true hashes (a byte
    /// flipped when `flip` is some), or a reject.
    Answer { reject: bool, flip: Option<u16> },
    /// A `hashes` message with arbitrary fields and hashes.
    Hashes {
        file: u8,
        index: u16,
        length: u16,
        count: u8,
        byte: u8,
    },
    /// Raw bytes on the stream.
    Raw(Vec<u8>),
    /// Seconds pass.
    Tick(u8),
}

/// Runs the mode the first byte chooses. Panics if an invariant fails.
pub fn hash_exchange(data: &[u8]) {
    hash_exchange_reached(data);
}

/// What one input made happen: `hashes` answers the session sent (serving), and layers
/// it accepted (fetching: `MetadataReceived`). For the replay test that random inputs get
/// that far. Panics if an invariant fails, as [`hash_exchange`].
pub fn hash_exchange_reached(data: &[u8]) -> (usize, usize) {
    let Some((&mode, rest)) = data.split_first() else {
        return (0, 0);
    };
    // Steps decoded one by one until the input runs out (a length-prefixed list would
    // give only a few steps per input).
    let mut u = Unstructured::new(rest);
    let mut world = World::new(mode % 2 == 1);
    for _ in 0..400 {
        if !world.open || u.is_empty() {
            break;
        }
        let Ok(step) = Step::arbitrary(&mut u) else {
            break;
        };
        world.step(step);
    }
    (world.answered, world.received)
}

struct World {
    session: Session,
    conn: ConnId,
    open: bool,
    now: Instant,
    fetching: bool,
    /// What the session sent, not decoded yet.
    out: BytesMut,
    out_handshake_done: bool,
    /// Serving: our requests not answered yet.
    pending: VecDeque<HashRequest>,
    /// Serving: answers given while the session choked us.
    choked_answers: usize,
    /// Raw bytes were sent: what follows may be framed differently than we wrote it, so
    /// answers are no longer matched to requests.
    framing_lost: bool,
    choking: bool,
    /// Fetching: the session's requests not answered yet.
    asked: VecDeque<HashRequest>,
    received: usize,
    /// Serving: `hashes` answers checked.
    answered: usize,
}

impl World {
    fn new(fetching: bool) -> World {
        let fx = fixture();
        let now = Instant::from_secs(1);
        let config = SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        };
        let mut session = Session::new(config, 21, now);
        let info_hash = fx.metainfo.info_hash;
        let addr = "127.0.0.9:51413".parse().expect("address");
        let conn = if fetching {
            let t = session
                .add_magnet(info_hash, MagnetOptions::default(), now)
                .expect("magnet added");
            session.connection_opened(addr, Direction::Outbound(t), now)
        } else {
            let have = unchoke_core::bitfield::Bitfield::full(fx.metainfo.info.piece_count());
            session
                .add_torrent(&fx.metainfo, Some(have), now)
                .expect("torrent added");
            session.connection_opened(addr, Direction::Inbound, now)
        };
        let mut world = World {
            session,
            conn,
            open: true,
            now,
            fetching,
            out: BytesMut::new(),
            out_handshake_done: false,
            pending: VecDeque::new(),
            choked_answers: 0,
            framing_lost: false,
            choking: true,
            asked: VecDeque::new(),
            received: 0,
            answered: 0,
        };
        let mut first = BytesMut::new();
        Handshake {
            reserved: Reserved::NONE.with_fast().with_extension_protocol(),
            info_hash,
            peer_id: PeerId(*b"-FZ0001-hashexchange"),
        }
        .encode(&mut first);
        ExtensionHandshake {
            m: [(UT_METADATA.to_owned(), PEER_ID_FOR_METADATA)]
                .into_iter()
                .collect(),
            metadata_size: Some(fx.metainfo.info_bytes.len() as u64),
            ..ExtensionHandshake::default()
        }
        .to_message()
        .encode(&mut first);
        if !fetching {
            Message::HaveNone.encode(&mut first);
        }
        world.feed(first);
        if fetching {
            // The info dictionary, honestly: one metadata piece.
            let info = &fx.metainfo.info_bytes;
            assert!(info.len() <= METADATA_PIECE_LEN as usize);
            let mut buf = BytesMut::new();
            MetadataMessage::Data {
                piece: 0,
                total_size: info.len() as u64,
                data: info.clone(),
            }
            .to_message(OUR_ID)
            .encode(&mut buf);
            world.feed(buf);
        }
        world
    }

    fn step(&mut self, step: Step) {
        let fx = fixture();
        let mut buf = BytesMut::new();
        match step {
            Step::Request {
                file,
                root,
                base,
                index,
                length,
                proofs,
                wild,
            } => {
                let pieces_root = fx.files.get(usize::from(file % 4)).map_or(root, |f| f.1);
                let request = if wild {
                    HashRequest {
                        pieces_root,
                        base_layer: u32::from(base % 8),
                        index: u32::from(index % 40),
                        length: u32::from(length % 20),
                        proof_layers: u32::from(proofs % 8),
                    }
                } else {
                    let length = 2u32 << (length % 3);
                    HashRequest {
                        pieces_root,
                        base_layer: u32::from(base % 3),
                        index: u32::from(index % 4) * length,
                        length,
                        proof_layers: u32::from(proofs % 3),
                    }
                };
                Message::HashRequest(request).encode(&mut buf);
                if !self.fetching && !self.framing_lost {
                    self.pending.push_back(request);
                }
            }
            Step::Interested => Message::Interested.encode(&mut buf),
            Step::Answer { reject, flip } => {
                let Some(request) = self.asked.pop_front() else {
                    return;
                };
                if reject {
                    Message::HashReject(request).encode(&mut buf);
                } else {
                    let file = fx
                        .files
                        .iter()
                        .find(|f| f.1 == request.pieces_root)
                        .expect("asked only about our files");
                    let layer = level(file, 0);
                    let start = request.index as usize;
                    let mut hashes: Vec<u8> = layer[start..start + request.length as usize]
                        .iter()
                        .flatten()
                        .copied()
                        .collect();
                    if let Some(i) = flip {
                        let i = usize::from(i) % hashes.len();
                        hashes[i] ^= 1;
                    }
                    Message::Hashes {
                        request,
                        hashes: Bytes::from(hashes),
                    }
                    .encode(&mut buf);
                }
            }
            Step::Hashes {
                file,
                index,
                length,
                count,
                byte,
            } => {
                let pieces_root = fx.files[usize::from(file % 3)].1;
                Message::Hashes {
                    request: HashRequest {
                        pieces_root,
                        base_layer: 0,
                        index: u32::from(index % 1024),
                        length: u32::from(length % 1024),
                        proof_layers: 0,
                    },
                    hashes: Bytes::from(vec![byte; 32 * usize::from(count % 16)]),
                }
                .encode(&mut buf);
            }
            Step::Raw(raw) => {
                // Raw bytes may break the framing of what follows; requests counted as
                // pending could then never arrive, so serving stops matching answers.
                self.pending.clear();
                self.framing_lost = true;
                buf.extend_from_slice(&raw);
            }
            Step::Tick(secs) => {
                self.now += std::time::Duration::from_secs(u64::from(secs % 30));
                self.session.handle_timeout(self.now);
                self.drain();
                return;
            }
        }
        self.feed(buf);
    }

    fn feed(&mut self, mut buf: BytesMut) {
        self.session.handle_bytes(self.conn, &mut buf, self.now);
        self.drain();
    }

    fn drain(&mut self) {
        let fx = fixture();
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send { conn, data } if conn == self.conn => {
                    self.out.extend_from_slice(&data);
                }
                Action::Disconnect { conn, .. } if conn == self.conn => self.open = false,
                Action::Event(Event::MetadataReceived { torrent, metainfo }) => {
                    assert!(self.fetching, "a seeding torrent received metadata");
                    self.received += 1;
                    assert_eq!(self.received, 1, "metadata received twice");
                    let v2 = metainfo.v2.as_ref().expect("v2 metadata");
                    assert!(v2.piece_layers_known);
                    assert_eq!(
                        v2.files,
                        fx.metainfo.v2.as_ref().expect("v2").files,
                        "layers other than the true ones accepted"
                    );
                    let _ = self.session.metadata_ready(torrent, None, self.now);
                }
                _ => {}
            }
        }
        self.check_output();
    }

    /// Decodes what the session sent and checks its hash messages.
    fn check_output(&mut self) {
        if !self.out_handshake_done {
            if self.out.len() < 68 {
                return;
            }
            let _ = self.out.split_to(68);
            self.out_handshake_done = true;
        }
        let decoder = Decoder::new(None, Limits::default());
        loop {
            match decoder.decode(&mut self.out) {
                Ok(Some(Message::HashRequest(r))) => self.check_request(r),
                Ok(Some(Message::Hashes { request, hashes })) => {
                    self.check_answer(request, Some(&hashes))
                }
                Ok(Some(Message::HashReject(request))) => self.check_answer(request, None),
                Ok(Some(Message::Choke)) => self.choking = true,
                Ok(Some(Message::Unchoke)) => self.choking = false,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("the session sent an undecodable stream: {e}"),
            }
        }
    }

    /// Fetching: a hash request the session sent.
    fn check_request(&mut self, r: HashRequest) {
        assert!(self.fetching, "a seeding torrent sent a hash request");
        let file = fixture()
            .files
            .iter()
            .find(|f| f.1 == r.pieces_root)
            .expect("a request about one of the torrent's files");
        let width = file.2.len().next_power_of_two() as u32;
        assert!(file.2.len() > 1, "a layer asked of a one-piece file");
        assert_eq!(
            r.base_layer, 0,
            "16 KiB pieces: the piece layer is the leaves"
        );
        assert_eq!(r.proof_layers, 0);
        assert!(r.length >= 2 && r.length <= 512, "{r:?}");
        assert_eq!(r.index % 512, 0, "{r:?}");
        assert!(r.index + r.length <= width, "{r:?}");
        self.asked.push_back(r);
    }

    /// Serving: an answer to one of our requests, `hashes` or a reject (`None`).
    fn check_answer(&mut self, request: HashRequest, hashes: Option<&Bytes>) {
        if self.fetching {
            // Before its layers are known a fetching torrent can only reject.
            assert!(
                hashes.is_none() || self.received > 0,
                "hashes served before the layers were known"
            );
            return;
        }
        if self.choking && hashes.is_some() {
            self.choked_answers += 1;
            assert!(
                self.choked_answers <= CHOKED_ANSWERS,
                "too many answers while choked"
            );
        }
        if self.framing_lost {
            return; // after raw bytes, requests may have been framed from them
        }
        let asked = self.pending.pop_front().expect("an answer to no request");
        assert_eq!(
            asked, request,
            "answers come in order, naming their request"
        );
        let Some(hashes) = hashes else {
            return;
        };
        let file = fixture()
            .files
            .iter()
            .find(|f| f.1 == request.pieces_root)
            .expect("hashes answered about one of our files");
        let base = level(file, request.base_layer);
        let start = request.index as usize;
        let length = request.length as usize;
        let mut want: Vec<Hash32> = base[start..start + length].to_vec();
        let first_uncle = request
            .length
            .next_power_of_two()
            .trailing_zeros()
            .saturating_sub(1);
        for i in first_uncle..request.proof_layers {
            let nodes = level(file, request.base_layer + i + 1);
            want.push(nodes[(start >> (i + 1)) ^ 1]);
        }
        let got: Vec<Hash32> = hashes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        assert_eq!(got, want, "{request:?}");
        self.answered += 1;
    }
}
