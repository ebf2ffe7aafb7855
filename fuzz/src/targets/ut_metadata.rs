//! The `ut_metadata` target: the BEP 9 codec, and a session serving or fetching metadata
//! fed by a hostile peer.
//!
//! The first input byte chooses the mode: codec, serving session or fetching (magnet)
//! session, and for the latter whether the peer first answers every request honestly (so
//! the fetch completes, the driver's `metadata_ready` follows, and the schedule then runs
//! against the torrent that became ready). Codec mode decodes the rest as a `ut_metadata`
//! payload. Session modes decode a
//! schedule (with `arbitrary`) of metadata data/reject/request messages with arbitrary
//! fields (true or corrupted bytes), raw payloads under our extension id, raw stream bytes,
//! repeated extension handshakes and clock ticks.
//!
//! Invariants:
//! 1. Nothing panics. A decoded message re-encodes to a payload that decodes to the same
//!    message, and a data message carries exactly its piece's length.
//! 2. A fetching session never accepts unverified metadata: every `MetadataReceived` carries
//!    exactly the true info dictionary (whose SHA-1 is the info-hash), at most once.
//! 3. Everything the session sends is a valid message stream; its `ut_metadata` messages
//!    decode; data it serves is exactly the slice of its info dictionary; it requests only
//!    pieces inside the size it fetches; it serves at most 8 pieces per peer per second.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};
use unchoke_core::InfoHash;
use unchoke_core::bencode::{self, Dict, Value};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    Action, ConnId, Direction, EncryptionPolicy, Event, MagnetOptions, Session, SessionConfig,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{
    Decoder, ExtensionHandshake, Handshake, Limits, METADATA_PIECE_LEN, Message, MetadataMessage,
    PeerId, Reserved, UT_METADATA, metadata_piece_len,
};

/// The id the hostile peer asks our `ut_metadata` messages to carry.
const PEER_ID_FOR_METADATA: u8 = 3;
/// The id the session asks for (`OUR_UT_METADATA_ID` in the core).
const OUR_ID: u8 = 2;
/// Pieces served per peer per second (`SERVE_PER_SECOND` in the core).
const SERVE_PER_SECOND: u64 = 8;

#[derive(Arbitrary, Debug)]
enum Step {
    /// A data message for `piece`: the true bytes unless `corrupt` names a byte to flip, with
    /// the true total size unless `total` is given.
    Data {
        piece: u8,
        corrupt: Option<u16>,
        total: Option<u32>,
    },
    /// A reject for `piece`.
    Reject { piece: u8 },
    /// A request for `piece`.
    Request { piece: u16 },
    /// An arbitrary payload under our `ut_metadata` id.
    Payload(Vec<u8>),
    /// Raw bytes on the stream.
    Raw(Vec<u8>),
    /// A (repeated) extension handshake with this `metadata_size` (the true one if `None`)
    /// and `ut_metadata` id (disabled when 0).
    Handshake { size: Option<u32>, id: u8 },
    /// Seconds pass.
    Tick(u8),
}

/// A 1,200-piece torrent's info dictionary: 24 KB, two metadata pieces.
fn info_bytes() -> &'static (Bytes, InfoHash) {
    static INFO: OnceLock<(Bytes, InfoHash)> = OnceLock::new();
    INFO.get_or_init(|| {
        let pieces: Vec<u8> = (0..1200u32 * 20).map(|i| (i * 13 + i / 97) as u8).collect();
        let info = Value::Dict(Dict::new(vec![
            (b"length", Value::Int(1200 * 1024)),
            (b"name", Value::Bytes(b"fuzz.bin")),
            (b"piece length", Value::Int(1024)),
            (b"pieces", Value::Bytes(&pieces)),
        ]));
        let bytes = Bytes::from(bencode::encode(&info));
        let hash = InfoHash::of_info_bytes(&bytes);
        (bytes, hash)
    })
}

/// Runs the mode the first byte chooses. Panics if an invariant fails.
pub fn ut_metadata(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => codec(rest),
        1 => session(rest, false, false),
        _ => session(rest, true, (mode / 3) % 2 == 1),
    }
}

fn codec(payload: &[u8]) {
    let payload = Bytes::copy_from_slice(payload);
    let Ok(Some(m)) = MetadataMessage::decode(&payload) else {
        return;
    };
    if let MetadataMessage::Data {
        piece,
        total_size,
        data,
    } = &m
    {
        assert_eq!(
            Some(data.len() as u32),
            metadata_piece_len(*total_size, *piece),
            "data of the wrong length accepted"
        );
    }
    let mut again = BytesMut::new();
    m.encode(&mut again);
    assert_eq!(
        MetadataMessage::decode(&again.freeze()),
        Ok(Some(m)),
        "does not round-trip"
    );
}

struct World {
    session: Session,
    conn: ConnId,
    open: bool,
    now: Instant,
    start: Instant,
    fetching: bool,
    out: BytesMut,
    out_handshake_done: bool,
    received: usize,
    served: u64,
    /// Metadata pieces the session asked for and the peer has not answered.
    asked: Vec<u32>,
    torrent: unchoke_core::session::TorrentId,
}

fn session(data: &[u8], fetching: bool, honest_first: bool) {
    let mut u = Unstructured::new(data);
    let Ok(steps) = Vec::<Step>::arbitrary(&mut u) else {
        return;
    };
    let (info, info_hash) = info_bytes();
    let now = Instant::from_secs(1);
    // The peer speaks plaintext BitTorrent: our dial must not open with MSE.
    let config = SessionConfig {
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config, 11, now);
    let torrent = if fetching {
        session.add_magnet(*info_hash, MagnetOptions::default(), now)
    } else {
        let metainfo = Metainfo::from_info_bytes(info).expect("the fixed info parses");
        session.add_torrent(&metainfo, None, now)
    }
    .expect("torrent added");
    let addr = "127.0.0.9:51413".parse().expect("address");
    let conn = session.connection_opened(addr, Direction::Outbound(torrent), now);
    let mut world = World {
        session,
        conn,
        open: true,
        now,
        start: now,
        fetching,
        out: BytesMut::new(),
        out_handshake_done: false,
        received: 0,
        served: 0,
        asked: Vec::new(),
        torrent,
    };
    let mut first = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast().with_extension_protocol(),
        info_hash: *info_hash,
        peer_id: PeerId(*b"-FZ0001-hostilepeer!"),
    }
    .encode(&mut first);
    handshake(Some(info.len() as u32), PEER_ID_FOR_METADATA).encode(&mut first);
    world.feed(first);
    if honest_first {
        // Answer requests with the true pieces until the metadata is in, then play the
        // driver: storage "checked", nothing on disk.
        for _ in 0..8 {
            let Some(piece) = world.asked.pop() else {
                break;
            };
            let piece = u8::try_from(piece).expect("two metadata pieces");
            world.step(
                Step::Data {
                    piece,
                    corrupt: None,
                    total: None,
                },
                info,
            );
        }
        assert_eq!(world.received, 1, "honest answers gave no metadata");
        world
            .session
            .metadata_ready(world.torrent, None, world.now)
            .expect("metadata_ready after MetadataReceived");
        world.fetching = false;
        let (info, _) = info_bytes();
        world.drain(info);
    }
    for step in steps {
        if !world.open {
            break;
        }
        world.step(step, info);
    }
}

fn handshake(size: Option<u32>, id: u8) -> Message {
    ExtensionHandshake {
        m: [(UT_METADATA.to_owned(), id)].into_iter().collect(),
        metadata_size: size.map(u64::from),
        ..ExtensionHandshake::default()
    }
    .to_message()
}

impl World {
    fn step(&mut self, step: Step, info: &Bytes) {
        let mut buf = BytesMut::new();
        let message = |m: MetadataMessage| m.to_message(OUR_ID);
        match step {
            Step::Data {
                piece,
                corrupt,
                total,
            } => {
                let total_size = total.map_or(info.len() as u64, u64::from);
                let start = usize::from(piece) * METADATA_PIECE_LEN as usize;
                let len = metadata_piece_len(total_size, u32::from(piece)).unwrap_or(0) as usize;
                let mut bytes: Vec<u8> = info.get(start..).unwrap_or(&[]).to_vec();
                bytes.resize(len, 0);
                if let Some(i) = corrupt {
                    if let Some(b) = bytes.get_mut(usize::from(i)) {
                        *b ^= 0x5a;
                    }
                }
                message(MetadataMessage::Data {
                    piece: u32::from(piece),
                    total_size,
                    data: Bytes::from(bytes),
                })
                .encode(&mut buf);
            }
            Step::Reject { piece } => message(MetadataMessage::Reject {
                piece: u32::from(piece),
            })
            .encode(&mut buf),
            Step::Request { piece } => message(MetadataMessage::Request {
                piece: u32::from(piece),
            })
            .encode(&mut buf),
            Step::Payload(p) => Message::Extended {
                id: OUR_ID,
                payload: Bytes::from(p),
            }
            .encode(&mut buf),
            Step::Raw(raw) => buf.extend_from_slice(&raw),
            Step::Handshake { size, id } => {
                let size = size.or(Some(info.len() as u32));
                handshake(size, id).encode(&mut buf);
            }
            Step::Tick(secs) => {
                self.now += std::time::Duration::from_secs(u64::from(secs));
                self.session.handle_timeout(self.now);
                self.drain(info);
                return;
            }
        }
        self.feed(buf);
    }

    fn feed(&mut self, mut buf: BytesMut) {
        self.session.handle_bytes(self.conn, &mut buf, self.now);
        let (info, _) = info_bytes();
        self.drain(info);
    }

    fn drain(&mut self, info: &Bytes) {
        assert!(self.session.poll_timeout().is_some());
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send { conn, data } if conn == self.conn => {
                    self.out.extend_from_slice(&data);
                }
                Action::Disconnect { conn, .. } if conn == self.conn => self.open = false,
                Action::Event(Event::MetadataReceived { metainfo, .. }) => {
                    assert!(self.fetching, "a ready torrent received metadata");
                    assert!(self.open, "metadata from a closed connection");
                    assert_eq!(metainfo.info_bytes, *info, "unverified metadata accepted");
                    assert_eq!(
                        InfoHash::of_info_bytes(&metainfo.info_bytes),
                        metainfo.info_hash
                    );
                    self.received += 1;
                    assert_eq!(self.received, 1, "metadata received twice");
                }
                _ => {}
            }
        }
        self.check_output(info);
    }

    /// Decodes what the session sent and checks its `ut_metadata` messages.
    fn check_output(&mut self, info: &Bytes) {
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
                Ok(Some(Message::Extended {
                    id: PEER_ID_FOR_METADATA,
                    payload,
                })) => self.check_metadata_message(&payload, info),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("the session sent an undecodable stream: {e}"),
            }
        }
    }

    fn check_metadata_message(&mut self, payload: &Bytes, info: &Bytes) {
        let m = MetadataMessage::decode(payload)
            .expect("our ut_metadata message decodes")
            .expect("of a known type");
        match m {
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                assert!(!self.fetching, "served metadata we do not have");
                assert_eq!(total_size, info.len() as u64);
                let start = piece as usize * METADATA_PIECE_LEN as usize;
                assert_eq!(&data[..], &info[start..start + data.len()]);
                self.served += 1;
                let windows = (self.now - self.start).as_secs() + 1;
                assert!(
                    self.served <= SERVE_PER_SECOND * windows,
                    "served {} pieces in {windows} s",
                    self.served
                );
            }
            MetadataMessage::Request { piece } => {
                assert!(self.fetching, "a ready torrent requested metadata");
                self.asked.push(piece);
                // Requests only for sizes up to the 16 MiB default limit.
                assert!(u64::from(piece) < (16 << 20) / u64::from(METADATA_PIECE_LEN));
            }
            MetadataMessage::Reject { .. } => {}
        }
    }
}
