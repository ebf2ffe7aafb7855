//! KRPC (BEP 5): the DHT's bencoded messages over UDP — queries, responses and errors.
//!
//! [`Message::decode`] turns one datagram into a typed [`Message`] or a [`KrpcError`]; it
//! never panics, and every length is checked before anything is allocated for it: the
//! datagram against a size limit first, then the bencode decoder's own limits (nesting
//! depth, string lengths within the input), then each field's exact size (20-byte ids,
//! 26-byte IPv4 and 38-byte IPv6 compact nodes, 6-byte IPv4 and 18-byte IPv6 compact
//! peers). [`Message::encode`] writes canonical bencode, and decoding what it wrote gives
//! back an equal `Message`.
//!
//! IPv6 (BEP 32): responses carry IPv6 nodes in `nodes6` beside the IPv4 `nodes`, peer
//! `values` may be 6 or 18 bytes each, and `find_node`/`get_peers` queries may name the
//! families wanted in the answer (`want: ["n4", "n6"]`, [`Want`]). A message without any
//! of these encodes exactly as before BEP 32 (no `want` key when nothing is wanted, no
//! `nodes6` key when there is no IPv6 node), so IPv4 traffic is byte-for-byte unchanged.
//!
//! BEP 42: a response may carry the requester's compact address in a top-level `ip` key
//! ([`Response::ip`]).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::bencode::{self, DecodeError, DecodeOptions, Dict, List, Value};

use super::node_id::NodeId;

/// The largest datagram decoded by default: the usual Ethernet MTU. Real KRPC messages are
/// far smaller; anything larger is dropped unread.
pub const DEFAULT_MAX_PACKET: usize = 1500;

/// The longest transaction id accepted from others. Ours are 2 bytes and common clients use
/// 2–4; a longer one is refused rather than echoed (an echo is free amplification).
pub const MAX_TRANSACTION_ID: usize = 16;

/// The longest write token accepted from others (ours are 8 bytes; libtorrent's 4, other
/// clients' up to 20).
pub const MAX_TOKEN: usize = 64;

/// The size of one compact IPv4 node: a 20-byte id, 4-byte address, 2-byte port.
pub const COMPACT_NODE_LEN: usize = 26;

/// The size of one compact IPv4 peer: a 4-byte address and a 2-byte port.
pub const COMPACT_PEER_LEN: usize = 6;

/// The size of one compact IPv6 node (BEP 32): a 20-byte id, 16-byte address, 2-byte port.
pub const COMPACT_NODE6_LEN: usize = 38;

/// The size of one compact IPv6 peer (BEP 32): a 16-byte address and a 2-byte port.
pub const COMPACT_PEER6_LEN: usize = 18;

/// The most entries of a `want` list looked at: BEP 32 defines two (`n4`, `n6`); a longer
/// list is not an error, its tail is just not read (bounded work per query).
const MAX_WANT_ITEMS: usize = 8;

/// KRPC error code 201: a generic error.
pub const ERROR_GENERIC: i64 = 201;
/// KRPC error code 202: a server error.
pub const ERROR_SERVER: i64 = 202;
/// KRPC error code 203: a protocol error (malformed packet, invalid arguments, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// KRPC error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// Lists and dictionaries nest at most two deep in KRPC (`e`, `values` inside the top
/// dictionary); a little slack tolerates extensions, a lot is refused cheaply.
const MAX_DEPTH: usize = 8;

/// One KRPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The transaction id (`t`): chosen by the querying node, echoed in the reply.
    pub transaction: Vec<u8>,
    /// What the message says.
    pub body: Body,
}

/// The three kinds of KRPC message (`y` = `q`, `r` or `e`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A query (`y: q`).
    Query(Query),
    /// A response (`y: r`). Which query it answers is known only from the transaction id,
    /// so every response field is optional here.
    Response(Response),
    /// An error (`y: e`).
    Error(ErrorMessage),
}

/// The four DHT queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `ping`: are you there?
    Ping {
        /// The querying node's id.
        id: NodeId,
    },
    /// `find_node`: the closest nodes you know to `target`.
    FindNode {
        /// The querying node's id.
        id: NodeId,
        /// The id sought.
        target: NodeId,
        /// The address families wanted in the answer (BEP 32; empty: the asker's own).
        want: Want,
    },
    /// `get_peers`: peers for `info_hash`, or else the closest nodes to it.
    GetPeers {
        /// The querying node's id.
        id: NodeId,
        /// The torrent.
        info_hash: NodeId,
        /// The address families wanted in the answer (BEP 32; empty: the asker's own).
        want: Want,
    },
    /// `announce_peer`: the querying node's peer is in the swarm of `info_hash`.
    AnnouncePeer {
        /// The querying node's id.
        id: NodeId,
        /// The torrent.
        info_hash: NodeId,
        /// The peer's TCP port (ignored when `implied_port` is set).
        port: u16,
        /// Use the UDP source port of the query instead of `port` (for peers behind NAT).
        implied_port: bool,
        /// The token from an earlier `get_peers` response of the queried node.
        token: Vec<u8>,
    },
}

impl Query {
    /// The querying node's id.
    pub fn id(&self) -> NodeId {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. } => *id,
        }
    }

    /// The method name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Query::Ping { .. } => "ping",
            Query::FindNode { .. } => "find_node",
            Query::GetPeers { .. } => "get_peers",
            Query::AnnouncePeer { .. } => "announce_peer",
        }
    }
}

/// The address families a `find_node`/`get_peers` query asks nodes of (BEP 32 `want`).
/// Both unset means no `want` key: the answer holds nodes of the family the query came
/// over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// `n4`: IPv4 nodes (`nodes`).
    pub n4: bool,
    /// `n6`: IPv6 nodes (`nodes6`).
    pub n6: bool,
}

impl Want {
    /// Whether the query named no family (no `want` key, or none BEP 32 knows).
    pub fn is_empty(&self) -> bool {
        !self.n4 && !self.n6
    }
}

/// A node in compact form: its id and IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactNode {
    /// The node's id.
    pub id: NodeId,
    /// Where it listens for UDP.
    pub addr: SocketAddrV4,
}

/// A node in compact IPv6 form (BEP 32 `nodes6`): its id and IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactNode6 {
    /// The node's id.
    pub id: NodeId,
    /// Where it listens for UDP.
    pub addr: SocketAddrV6,
}

/// A response's fields (`r`). `ping` and `announce_peer` answers carry only `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The responding node's id.
    pub id: NodeId,
    /// Closer IPv4 nodes (`find_node`, and `get_peers` without peers). Empty when absent.
    pub nodes: Vec<CompactNode>,
    /// Closer IPv6 nodes (BEP 32 `nodes6`). Empty when absent.
    pub nodes6: Vec<CompactNode6>,
    /// Peers (`get_peers`), IPv4 (6 bytes on the wire) or IPv6 (18 bytes). Empty when
    /// absent.
    pub values: Vec<SocketAddr>,
    /// The write token for a later `announce_peer` (`get_peers`).
    pub token: Option<Vec<u8>>,
    /// BEP 42 `ip`: the requester's address as the responder saw it (6 bytes for IPv4,
    /// 18 for IPv6, compact). On the wire it is a key of the *top-level* dictionary, not
    /// of `r`; it is kept here because only responses carry it. One of another length is
    /// read as absent (the rest of the answer is still good).
    pub ip: Option<SocketAddr>,
}

impl Response {
    /// A response carrying only the responder's id (answers `ping` and `announce_peer`).
    pub fn id_only(id: NodeId) -> Self {
        Response {
            id,
            nodes: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            token: None,
            ip: None,
        }
    }
}

/// An error message (`e`: `[code, text]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The code: [`ERROR_GENERIC`], [`ERROR_SERVER`], [`ERROR_PROTOCOL`],
    /// [`ERROR_METHOD_UNKNOWN`] or anything else a node sent.
    pub code: i64,
    /// The text, as sent (not necessarily UTF-8).
    pub message: Vec<u8>,
}

/// What made a datagram unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KrpcErrorKind {
    /// The datagram is over the size limit; it was not parsed.
    #[error("packet of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The datagram's size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Not valid bencode.
    #[error("{0}")]
    Bencode(DecodeError),
    /// The top-level value is not a dictionary.
    #[error("message is not a dictionary")]
    NotADict,
    /// A required key is absent.
    #[error("missing key `{0}`")]
    Missing(&'static str),
    /// A key holds the wrong type of value.
    #[error("key `{0}` has the wrong type")]
    WrongType(&'static str),
    /// A byte string has the wrong length for its key (an id not 20 bytes, `nodes` not a
    /// multiple of 26, `nodes6` not a multiple of 38, a transaction id or token too long).
    #[error("key `{key}` has a bad length ({len} bytes)")]
    BadLength {
        /// The key.
        key: &'static str,
        /// The length found.
        len: usize,
    },
    /// An integer out of its range (a port outside 1..=65535).
    #[error("key `{0}` is out of range")]
    OutOfRange(&'static str),
    /// `y` is not `q`, `r` or `e`.
    #[error("unknown message type")]
    UnknownType,
    /// A query method this node does not know.
    #[error("unknown query method")]
    UnknownMethod,
}

/// A datagram that could not be decoded, and whether it deserves an error reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("krpc: {kind}")]
pub struct KrpcError {
    /// What was wrong.
    pub kind: KrpcErrorKind,
    /// Set when the datagram was recognisably a query (a dictionary with `y: q` and a
    /// usable `t`): the transaction id to answer with an error. BEP 5 answers a malformed
    /// query with error 203 and an unknown method with 204; anything else is dropped.
    pub reply_to: Option<Vec<u8>>,
}

impl KrpcError {
    fn plain(kind: KrpcErrorKind) -> Self {
        KrpcError {
            kind,
            reply_to: None,
        }
    }

    /// The KRPC error code to answer with (meaningful when [`KrpcError::reply_to`] is set).
    pub fn code(&self) -> i64 {
        match self.kind {
            KrpcErrorKind::UnknownMethod => ERROR_METHOD_UNKNOWN,
            _ => ERROR_PROTOCOL,
        }
    }
}

type Result<T, E = KrpcErrorKind> = std::result::Result<T, E>;

fn bytes_of<'a>(d: &Dict<'a>, key: &'static str) -> Result<Option<&'a [u8]>> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_bytes().map(Some).ok_or(KrpcErrorKind::WrongType(key)),
    }
}

fn required_bytes<'a>(d: &Dict<'a>, key: &'static str) -> Result<&'a [u8]> {
    bytes_of(d, key)?.ok_or(KrpcErrorKind::Missing(key))
}

fn required_id(d: &Dict<'_>, key: &'static str) -> Result<NodeId> {
    let b = required_bytes(d, key)?;
    NodeId::from_slice(b).ok_or(KrpcErrorKind::BadLength { key, len: b.len() })
}

fn int_of(d: &Dict<'_>, key: &'static str) -> Result<Option<i64>> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or(KrpcErrorKind::WrongType(key)),
    }
}

fn compact_addr(b: &[u8]) -> Option<SocketAddrV4> {
    let b: &[u8; 6] = b.try_into().ok()?;
    Some(SocketAddrV4::new(
        Ipv4Addr::new(b[0], b[1], b[2], b[3]),
        u16::from_be_bytes([b[4], b[5]]),
    ))
}

fn compact_addr6(b: &[u8]) -> Option<SocketAddrV6> {
    let b: &[u8; 18] = b.try_into().ok()?;
    let (ip, port) = b.split_at(16);
    let ip: [u8; 16] = ip.try_into().ok()?;
    Some(SocketAddrV6::new(
        Ipv6Addr::from(ip),
        u16::from_be_bytes([port[0], port[1]]),
        0,
        0,
    ))
}

/// A compact peer of either family: 6 bytes (IPv4) or 18 bytes (IPv6, BEP 32).
pub fn parse_compact_peer(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        COMPACT_PEER_LEN => compact_addr(b).map(SocketAddr::V4),
        COMPACT_PEER6_LEN => compact_addr6(b).map(SocketAddr::V6),
        _ => None,
    }
}

/// Appends `addr` in compact form (4 address bytes, 2 port bytes, big-endian).
pub fn put_compact_addr(out: &mut Vec<u8>, addr: &SocketAddrV4) {
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Appends `addr` in compact IPv6 form (16 address bytes, 2 port bytes, big-endian; flow
/// and scope ids are not sent).
pub fn put_compact_addr6(out: &mut Vec<u8>, addr: &SocketAddrV6) {
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Appends a peer of either family in compact form (6 or 18 bytes).
pub fn put_compact_peer(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => put_compact_addr(out, a),
        SocketAddr::V6(a) => put_compact_addr6(out, a),
    }
}

/// Parses a compact node list; its length must be a multiple of 26.
pub fn parse_compact_nodes(b: &[u8]) -> Option<Vec<CompactNode>> {
    if b.len() % COMPACT_NODE_LEN != 0 {
        return None;
    }
    // The count is bounded by the datagram size, already checked.
    let mut nodes = Vec::with_capacity(b.len() / COMPACT_NODE_LEN);
    for chunk in b.chunks_exact(COMPACT_NODE_LEN) {
        let (id, addr) = chunk.split_at(NodeId::LEN);
        nodes.push(CompactNode {
            id: NodeId::from_slice(id)?,
            addr: compact_addr(addr)?,
        });
    }
    Some(nodes)
}

/// Parses a compact IPv6 node list (`nodes6`); its length must be a multiple of 38.
pub fn parse_compact_nodes6(b: &[u8]) -> Option<Vec<CompactNode6>> {
    if b.len() % COMPACT_NODE6_LEN != 0 {
        return None;
    }
    // The count is bounded by the datagram size, already checked.
    let mut nodes = Vec::with_capacity(b.len() / COMPACT_NODE6_LEN);
    for chunk in b.chunks_exact(COMPACT_NODE6_LEN) {
        let (id, addr) = chunk.split_at(NodeId::LEN);
        nodes.push(CompactNode6 {
            id: NodeId::from_slice(id)?,
            addr: compact_addr6(addr)?,
        });
    }
    Some(nodes)
}

impl Message {
    /// Decodes one datagram, refusing it unread if it is over `max_len` bytes.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<Message, KrpcError> {
        if bytes.len() > max_len {
            return Err(KrpcError::plain(KrpcErrorKind::TooLarge {
                len: bytes.len(),
                limit: max_len,
            }));
        }
        let options = DecodeOptions {
            max_depth: MAX_DEPTH,
            strict: false,
        };
        let value = bencode::decode_with(bytes, options)
            .map_err(|e| KrpcError::plain(KrpcErrorKind::Bencode(e)))?;
        let dict = value
            .as_dict()
            .ok_or(KrpcError::plain(KrpcErrorKind::NotADict))?;
        let t = required_bytes(dict, "t").map_err(KrpcError::plain)?;
        if t.len() > MAX_TRANSACTION_ID {
            return Err(KrpcError::plain(KrpcErrorKind::BadLength {
                key: "t",
                len: t.len(),
            }));
        }
        let y = required_bytes(dict, "y").map_err(KrpcError::plain)?;
        let body = match y {
            b"q" => Body::Query(decode_query(dict).map_err(|kind| KrpcError {
                kind,
                reply_to: Some(t.to_vec()),
            })?),
            b"r" => {
                let mut r = decode_response(dict).map_err(KrpcError::plain)?;
                // BEP 42's `ip` is top-level; a malformed one is ignored, not an error.
                r.ip = bytes_of(dict, "ip")
                    .ok()
                    .flatten()
                    .and_then(parse_compact_peer);
                Body::Response(r)
            }
            b"e" => Body::Error(decode_error(dict).map_err(KrpcError::plain)?),
            _ => return Err(KrpcError::plain(KrpcErrorKind::UnknownType)),
        };
        Ok(Message {
            transaction: t.to_vec(),
            body,
        })
    }

    /// Encodes the message as canonical bencode.
    pub fn encode(&self) -> Vec<u8> {
        // Compact strings are built first so the value tree below can borrow them.
        let mut nodes = Vec::new();
        let mut nodes6 = Vec::new();
        let mut values = Vec::new();
        let mut ip = Vec::new();
        if let Body::Response(r) = &self.body {
            if let Some(addr) = &r.ip {
                put_compact_peer(&mut ip, addr);
            }
            for n in &r.nodes {
                nodes.extend_from_slice(&n.id.0);
                put_compact_addr(&mut nodes, &n.addr);
            }
            for n in &r.nodes6 {
                nodes6.extend_from_slice(&n.id.0);
                put_compact_addr6(&mut nodes6, &n.addr);
            }
            for v in &r.values {
                let mut b = Vec::with_capacity(COMPACT_PEER6_LEN);
                put_compact_peer(&mut b, v);
                values.push(b);
            }
        }
        // `want` only when the query names a family: a plain IPv4 query stays as before.
        let want_items = |w: &Want| -> Vec<Value<'static>> {
            let mut items = Vec::new();
            if w.n4 {
                items.push(Value::Bytes(b"n4"));
            }
            if w.n6 {
                items.push(Value::Bytes(b"n6"));
            }
            items
        };
        let mut top: Vec<(&[u8], Value<'_>)> = vec![(b"t", Value::Bytes(&self.transaction))];
        match &self.body {
            Body::Query(q) => {
                top.push((b"y", Value::Bytes(b"q")));
                top.push((b"q", Value::Bytes(q.method().as_bytes())));
                let mut a: Vec<(&[u8], Value<'_>)> = Vec::new();
                match q {
                    Query::Ping { id } => a.push((b"id", Value::Bytes(&id.0))),
                    Query::FindNode { id, target, want } => {
                        a.push((b"id", Value::Bytes(&id.0)));
                        a.push((b"target", Value::Bytes(&target.0)));
                        if !want.is_empty() {
                            a.push((b"want", Value::List(List::new(want_items(want)))));
                        }
                    }
                    Query::GetPeers {
                        id,
                        info_hash,
                        want,
                    } => {
                        a.push((b"id", Value::Bytes(&id.0)));
                        a.push((b"info_hash", Value::Bytes(&info_hash.0)));
                        if !want.is_empty() {
                            a.push((b"want", Value::List(List::new(want_items(want)))));
                        }
                    }
                    Query::AnnouncePeer {
                        id,
                        info_hash,
                        port,
                        implied_port,
                        token,
                    } => {
                        a.push((b"id", Value::Bytes(&id.0)));
                        a.push((b"info_hash", Value::Bytes(&info_hash.0)));
                        a.push((b"port", Value::Int(i64::from(*port))));
                        a.push((b"token", Value::Bytes(token)));
                        if *implied_port {
                            a.push((b"implied_port", Value::Int(1)));
                        }
                    }
                }
                top.push((b"a", Value::Dict(Dict::new(a))));
            }
            Body::Response(r) => {
                top.push((b"y", Value::Bytes(b"r")));
                let mut d: Vec<(&[u8], Value<'_>)> = vec![(b"id", Value::Bytes(&r.id.0))];
                if !nodes.is_empty() {
                    d.push((b"nodes", Value::Bytes(&nodes)));
                }
                if !nodes6.is_empty() {
                    d.push((b"nodes6", Value::Bytes(&nodes6)));
                }
                if !values.is_empty() {
                    let items = values.iter().map(|v| Value::Bytes(v)).collect();
                    d.push((b"values", Value::List(List::new(items))));
                }
                if let Some(token) = &r.token {
                    d.push((b"token", Value::Bytes(token)));
                }
                top.push((b"r", Value::Dict(Dict::new(d))));
                // BEP 42: at the top level, beside `r`.
                if r.ip.is_some() {
                    top.push((b"ip", Value::Bytes(&ip)));
                }
            }
            Body::Error(e) => {
                top.push((b"y", Value::Bytes(b"e")));
                let items = vec![Value::Int(e.code), Value::Bytes(&e.message)];
                top.push((b"e", Value::List(List::new(items))));
            }
        }
        bencode::encode(&Value::Dict(Dict::new(top)))
    }
}

fn decode_query(dict: &Dict<'_>) -> Result<Query> {
    let method = required_bytes(dict, "q")?;
    let a = dict
        .get(b"a")
        .ok_or(KrpcErrorKind::Missing("a"))?
        .as_dict()
        .ok_or(KrpcErrorKind::WrongType("a"))?;
    let id = required_id(a, "id")?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: required_id(a, "target")?,
            want: decode_want(a)?,
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: required_id(a, "info_hash")?,
            want: decode_want(a)?,
        },
        b"announce_peer" => {
            let info_hash = required_id(a, "info_hash")?;
            let token = required_bytes(a, "token")?;
            if token.len() > MAX_TOKEN {
                return Err(KrpcErrorKind::BadLength {
                    key: "token",
                    len: token.len(),
                });
            }
            let implied_port = int_of(a, "implied_port")?.is_some_and(|v| v != 0);
            let port = match int_of(a, "port")? {
                Some(p) => u16::try_from(p).map_err(|_| KrpcErrorKind::OutOfRange("port"))?,
                None if implied_port => 0,
                None => return Err(KrpcErrorKind::Missing("port")),
            };
            if port == 0 && !implied_port {
                return Err(KrpcErrorKind::OutOfRange("port"));
            }
            Query::AnnouncePeer {
                id,
                info_hash,
                port,
                implied_port,
                token: token.to_vec(),
            }
        }
        _ => return Err(KrpcErrorKind::UnknownMethod),
    })
}

/// The `want` list of a query (BEP 32): a list of strings, of which `n4` and `n6` mean
/// something; other strings (and non-string items) are ignored, as BEP 32 leaves room for
/// more families. A `want` that is not a list is refused.
fn decode_want(a: &Dict<'_>) -> Result<Want> {
    let Some(v) = a.get(b"want") else {
        return Ok(Want::default());
    };
    let list = v.as_list().ok_or(KrpcErrorKind::WrongType("want"))?;
    let mut want = Want::default();
    for item in list.items().iter().take(MAX_WANT_ITEMS) {
        match item.as_bytes() {
            Some(b"n4") => want.n4 = true,
            Some(b"n6") => want.n6 = true,
            _ => {}
        }
    }
    Ok(want)
}

fn decode_response(dict: &Dict<'_>) -> Result<Response> {
    let r = dict
        .get(b"r")
        .ok_or(KrpcErrorKind::Missing("r"))?
        .as_dict()
        .ok_or(KrpcErrorKind::WrongType("r"))?;
    let id = required_id(r, "id")?;
    let nodes = match bytes_of(r, "nodes")? {
        None => Vec::new(),
        Some(b) => parse_compact_nodes(b).ok_or(KrpcErrorKind::BadLength {
            key: "nodes",
            len: b.len(),
        })?,
    };
    let nodes6 = match bytes_of(r, "nodes6")? {
        None => Vec::new(),
        Some(b) => parse_compact_nodes6(b).ok_or(KrpcErrorKind::BadLength {
            key: "nodes6",
            len: b.len(),
        })?,
    };
    let values = match r.get(b"values") {
        None => Vec::new(),
        Some(v) => {
            let list = v.as_list().ok_or(KrpcErrorKind::WrongType("values"))?;
            let mut out = Vec::with_capacity(list.items().len());
            for item in list.items() {
                let b = item.as_bytes().ok_or(KrpcErrorKind::WrongType("values"))?;
                // 6-byte IPv4 and 18-byte IPv6 peers (BEP 32) may be mixed; an item of any
                // other length is skipped, not an error: the rest of the answer is good.
                if let Some(addr) = parse_compact_peer(b) {
                    out.push(addr);
                }
            }
            out
        }
    };
    let token = match bytes_of(r, "token")? {
        None => None,
        Some(t) if t.len() > MAX_TOKEN => {
            return Err(KrpcErrorKind::BadLength {
                key: "token",
                len: t.len(),
            });
        }
        Some(t) => Some(t.to_vec()),
    };
    Ok(Response {
        id,
        nodes,
        nodes6,
        values,
        token,
        ip: None,
    })
}

fn decode_error(dict: &Dict<'_>) -> Result<ErrorMessage> {
    let e = dict
        .get(b"e")
        .ok_or(KrpcErrorKind::Missing("e"))?
        .as_list()
        .ok_or(KrpcErrorKind::WrongType("e"))?;
    match e.items() {
        [code, message, ..] => Ok(ErrorMessage {
            code: code.as_int().ok_or(KrpcErrorKind::WrongType("e"))?,
            message: message
                .as_bytes()
                .ok_or(KrpcErrorKind::WrongType("e"))?
                .to_vec(),
        }),
        _ => Err(KrpcErrorKind::Missing("e")),
    }
}
