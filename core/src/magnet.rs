//! Magnet links (BEP 9): `magnet:?xt=urn:btih:<hash>&dn=<name>&tr=<tracker>&x.pe=<peer>`.
//!
//! Parsing rules:
//! - the link must start with `magnet:?` (the scheme in any case);
//! - parameters are `key=value` pairs separated by `&`; empty pairs (`&&`) are skipped and
//!   unknown keys are ignored, as BEP 9 asks;
//! - keys and values are percent-decoded strictly: a `%` not followed by two hex digits is an
//!   error, and `+` stands for a space (form encoding, as libtorrent and browsers write it);
//!   the decoded bytes must be UTF-8;
//! - `xt` (or the numbered `xt.1`, `xt.2`, …) is required: `urn:btih:` followed by 40 hex
//!   digits or 32 base32 characters (v1), and/or `urn:btmh:1220` followed by 64 hex digits
//!   (BEP 52's v2 info-hash as a SHA-256 multihash). A hybrid link carries both and both are
//!   kept; a v2-only link (`btmh` alone) parses, [`Magnet::v2_only`] set — downloading one
//!   is not built yet and the download commands refuse it. Other URNs (`urn:sha1:` …) are
//!   ignored. Two different `btih` (or `btmh`) hashes in one link are an error;
//! - `dn`: the first one is kept;
//! - `tr` (and `tr.N`): every one, in order, duplicates dropped;
//! - `x.pe`: peer addresses `host:port` or `[ipv6]:port`, checked, duplicates dropped;
//! - `ws`: web seeds (BEP 19 URLs, as libtorrent writes them), every `http://` or
//!   `https://` one in order, duplicates dropped; other schemes are ignored (no client
//!   here could fetch them).
//!
//! Printing ([`Magnet::to_uri`], [`std::fmt::Display`]) writes a canonical link: the
//! `btih` hash in lower-case hex (unless v2-only), the `btmh` one if known, then `dn`, every
//! `tr`, every `x.pe`, every `ws`, each value percent-encoded except
//! for the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`).

use std::fmt;
use std::net::Ipv6Addr;

use crate::info_hash::{InfoHash, InfoHashParseError, InfoHashV2};
use crate::metainfo::Metainfo;

/// A parsed magnet link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    /// The 20-byte hash the swarm goes by: the v1 info-hash from `xt=urn:btih:`, or for a
    /// v2-only link the truncated v2 info-hash ([`InfoHashV2::truncated`]).
    pub info_hash: InfoHash,
    /// The v2 info-hash from `xt=urn:btmh:1220…` (hybrid or v2-only links).
    pub info_hash_v2: Option<InfoHashV2>,
    /// The link has a v2 hash and no v1 hash (`btmh` without `btih`).
    pub v2_only: bool,
    /// The suggested name (`dn`), if given.
    pub display_name: Option<String>,
    /// Tracker URLs (`tr`), in link order, without duplicates.
    pub trackers: Vec<String>,
    /// Peer addresses (`x.pe`) as `host:port` or `[ipv6]:port`, without duplicates.
    pub peers: Vec<String>,
    /// Web seed URLs (`ws`, BEP 19), `http://` or `https://`, in link order, without
    /// duplicates. They serve pieces once the metadata is known; they cannot give it.
    pub web_seeds: Vec<String>,
}

/// Why a magnet link was refused. Positions are byte offsets into the link text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The text does not start with `magnet:?`.
    #[error("not a magnet link: it must start with \"magnet:?\"")]
    NotMagnet,
    /// A `%` not followed by two hex digits.
    #[error("bad percent-escape at byte {position} of the magnet link")]
    BadEscape {
        /// Offset of the `%`.
        position: usize,
    },
    /// A key or value whose decoded bytes are not UTF-8.
    #[error("magnet parameter at byte {position} is not valid UTF-8 once decoded")]
    NotUtf8 {
        /// Offset of the key or value.
        position: usize,
    },
    /// No `xt=urn:btih:` parameter (and no `urn:btmh:` either).
    #[error("magnet link has no info-hash (xt=urn:btih:...)")]
    MissingInfoHash,
    /// A `btmh` value that is not `1220` (SHA-256, 32 bytes) and 64 hex digits.
    #[error(
        "magnet xt=urn:btmh: at byte {position}: expected 1220 and 64 hex digits (a SHA-256 multihash)"
    )]
    BadV2InfoHash {
        /// Offset of the `xt` value.
        position: usize,
    },
    /// Two `btmh` parameters name different torrents.
    #[error("magnet link names two different v2 info-hashes ({first} and {second})")]
    ConflictingV2InfoHashes {
        /// The first hash seen.
        first: InfoHashV2,
        /// A later, different hash.
        second: InfoHashV2,
    },
    /// The `btih` hash is neither 40 hex digits nor 32 base32 characters.
    #[error("magnet xt=urn:btih: at byte {position}: {source}")]
    BadInfoHash {
        /// Offset of the `xt` value.
        position: usize,
        /// What was wrong with the hash text.
        source: InfoHashParseError,
    },
    /// Two `btih` parameters name different torrents.
    #[error("magnet link names two different info-hashes ({first} and {second})")]
    ConflictingInfoHashes {
        /// The first hash seen.
        first: InfoHash,
        /// A later, different hash.
        second: InfoHash,
    },
    /// An `x.pe` value that is not `host:port` or `[ipv6]:port`.
    #[error("magnet x.pe at byte {position}: {value:?} is not host:port or [ipv6]:port")]
    BadPeer {
        /// Offset of the value.
        position: usize,
        /// The decoded value.
        value: String,
    },
}

/// The `xt` prefix for v1 info-hashes (compared case-insensitively).
const BTIH: &str = "urn:btih:";
/// The `xt` prefix for v2 multihashes (compared case-insensitively).
const BTMH: &str = "urn:btmh:";

impl Magnet {
    /// A magnet link with only an info-hash.
    pub fn new(info_hash: InfoHash) -> Self {
        Magnet {
            info_hash,
            info_hash_v2: None,
            v2_only: false,
            display_name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
            web_seeds: Vec::new(),
        }
    }

    /// Parses a magnet link (see the module documentation for the rules).
    pub fn parse(text: &str) -> Result<Magnet, MagnetError> {
        const SCHEME: &str = "magnet:?";
        let head = text.get(..SCHEME.len()).ok_or(MagnetError::NotMagnet)?;
        if !head.eq_ignore_ascii_case(SCHEME) {
            return Err(MagnetError::NotMagnet);
        }
        let mut info_hash: Option<InfoHash> = None;
        let mut info_hash_v2: Option<InfoHashV2> = None;
        let mut display_name = None;
        let mut trackers: Vec<String> = Vec::new();
        let mut peers: Vec<String> = Vec::new();
        let mut web_seeds: Vec<String> = Vec::new();

        let mut start = SCHEME.len();
        for pair in text[SCHEME.len()..].split('&') {
            let pair_start = start;
            start += pair.len() + 1;
            if pair.is_empty() {
                continue;
            }
            let (raw_key, raw_value, value_start) = match pair.find('=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..], pair_start + eq + 1),
                None => (pair, "", pair_start + pair.len()),
            };
            let key = percent_decode(raw_key, pair_start)?;
            let value = percent_decode(raw_value, value_start)?;
            match base_key(&key) {
                "xt" => {
                    if let Some(hash_text) = strip_prefix_ignore_case(&value, BTIH) {
                        let hash = InfoHash::parse(hash_text).map_err(|source| {
                            MagnetError::BadInfoHash {
                                position: value_start,
                                source,
                            }
                        })?;
                        match info_hash {
                            Some(first) if first != hash => {
                                return Err(MagnetError::ConflictingInfoHashes {
                                    first,
                                    second: hash,
                                });
                            }
                            _ => info_hash = Some(hash),
                        }
                    } else if let Some(hash_text) = strip_prefix_ignore_case(&value, BTMH) {
                        let bad = MagnetError::BadV2InfoHash {
                            position: value_start,
                        };
                        let hash = match strip_prefix_ignore_case(hash_text, "1220") {
                            Some(hex) => InfoHashV2::parse(hex).map_err(|_| bad)?,
                            None => return Err(bad),
                        };
                        match info_hash_v2 {
                            Some(first) if first != hash => {
                                return Err(MagnetError::ConflictingV2InfoHashes {
                                    first,
                                    second: hash,
                                });
                            }
                            _ => info_hash_v2 = Some(hash),
                        }
                    }
                    // Other URNs (sha1, ed2k, …) name other networks' content: ignored.
                }
                "dn" if display_name.is_none() => display_name = Some(value),
                "tr" if !value.is_empty() && !trackers.contains(&value) => trackers.push(value),
                "x.pe" => {
                    if !is_peer_address(&value) {
                        return Err(MagnetError::BadPeer {
                            position: value_start,
                            value,
                        });
                    }
                    if !peers.contains(&value) {
                        peers.push(value);
                    }
                }
                "ws" if is_web_seed_url(&value) && !web_seeds.contains(&value) => {
                    web_seeds.push(value);
                }
                _ => {}
            }
        }
        let (info_hash, v2_only) = match (info_hash, info_hash_v2) {
            (Some(h), _) => (h, false),
            (None, Some(v2)) => (v2.truncated(), true),
            (None, None) => return Err(MagnetError::MissingInfoHash),
        };
        Ok(Magnet {
            info_hash,
            info_hash_v2,
            v2_only,
            display_name,
            trackers,
            peers,
            web_seeds,
        })
    }

    /// The magnet link of a torrent: its info-hash, its name as `dn`, every tracker of
    /// every tier, in tier order, without duplicates, and its web seeds (`url-list`) as
    /// `ws`.
    pub fn from_metainfo(metainfo: &Metainfo) -> Magnet {
        let mut trackers: Vec<String> = Vec::new();
        for url in metainfo.tracker_tiers().into_iter().flatten() {
            if !url.is_empty() && !trackers.contains(&url) {
                trackers.push(url);
            }
        }
        Magnet {
            info_hash: metainfo.info_hash,
            info_hash_v2: metainfo.v2.as_ref().map(|v2| v2.info_hash),
            v2_only: metainfo.is_v2_only(),
            display_name: Some(metainfo.info.name.clone()),
            trackers,
            peers: Vec::new(),
            web_seeds: metainfo
                .url_list
                .iter()
                .filter(|u| is_web_seed_url(u))
                .fold(Vec::new(), |mut seen, u| {
                    if !seen.contains(u) {
                        seen.push(u.clone());
                    }
                    seen
                }),
        }
    }

    /// The canonical link text (see the module documentation).
    pub fn to_uri(&self) -> String {
        let mut out = String::from("magnet:?");
        if !self.v2_only {
            out.push_str("xt=urn:btih:");
            out.push_str(&self.info_hash.to_hex());
        }
        if let Some(v2) = &self.info_hash_v2 {
            if !self.v2_only {
                out.push('&');
            }
            out.push_str("xt=urn:btmh:1220");
            out.push_str(&v2.to_hex());
        }
        if let Some(name) = &self.display_name {
            out.push_str("&dn=");
            percent_encode_into(name, &mut out);
        }
        for tracker in &self.trackers {
            out.push_str("&tr=");
            percent_encode_into(tracker, &mut out);
        }
        for peer in &self.peers {
            out.push_str("&x.pe=");
            percent_encode_into(peer, &mut out);
        }
        for url in &self.web_seeds {
            out.push_str("&ws=");
            percent_encode_into(url, &mut out);
        }
        out
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// Whether `url` is a web seed this engine can fetch: `http://` or `https://`, with more
/// after the scheme.
fn is_web_seed_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|scheme| strip_prefix_ignore_case(url, scheme).is_some_and(|rest| !rest.is_empty()))
}

/// `xt.1` → `xt`, `tr.2` → `tr` (the numbered forms some writers use); other keys unchanged.
fn base_key(key: &str) -> &str {
    match key.split_once('.') {
        Some((base @ ("xt" | "tr"), n))
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => key,
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// Decodes `%XX` escapes and `+` (space). `offset` is where `text` starts in the link, for
/// error positions.
fn percent_decode(text: &str, offset: usize) -> Result<String, MagnetError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_value(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                    _ => {
                        return Err(MagnetError::BadEscape {
                            position: offset + i,
                        });
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| MagnetError::NotUtf8 { position: offset })
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Appends `text` with every byte outside the RFC 3986 unreserved set written as `%XX`.
fn percent_encode_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

/// `host:port` (host a DNS name or IPv4 address) or `[ipv6]:port`, port 1–65535.
fn is_peer_address(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && matches!(port.parse::<u16>(), Ok(p) if p != 0);
    if !port_ok {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<Ipv6Addr>().is_ok());
    }
    // A DNS name or dotted IPv4: letters, digits, '-' and '.', at most 253 characters.
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    fn hash() -> InfoHash {
        InfoHash::parse(HEX).unwrap()
    }

    #[test]
    fn full_link_parses() {
        let link = format!(
            "magnet:?xt=urn:btih:{HEX}&dn=Some+Name%20%C3%A9&tr=http%3A%2F%2Ft.example%2Fann\
             &tr=udp://t2.example:80&x.pe=10.0.0.1:6881&x.pe=%5B::1%5D:51413&foo=bar"
        );
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hash, hash());
        assert_eq!(m.display_name.as_deref(), Some("Some Name é"));
        assert_eq!(
            m.trackers,
            vec!["http://t.example/ann", "udp://t2.example:80"]
        );
        assert_eq!(m.peers, vec!["10.0.0.1:6881", "[::1]:51413"]);
    }

    #[test]
    fn base32_hash_and_case_insensitive_prefixes() {
        let link = format!("MAGNET:?xt=URN:BTIH:{}", hash().to_base32());
        assert_eq!(Magnet::parse(&link).unwrap().info_hash, hash());
        let upper = format!("magnet:?xt=urn:btih:{}", HEX.to_uppercase());
        assert_eq!(Magnet::parse(&upper).unwrap().info_hash, hash());
    }

    #[test]
    fn canonical_print_and_round_trip() {
        let m = Magnet {
            info_hash: hash(),
            info_hash_v2: None,
            v2_only: false,
            display_name: Some("a b+c/é&=%".into()),
            trackers: vec!["http://t.example/a?x=1&y=2".into(), "udp://u:1".into()],
            peers: vec!["[2001:db8::1]:6881".into(), "host.example:1".into()],
            web_seeds: vec!["https://w.example/files/".into()],
        };
        let uri = m.to_uri();
        assert_eq!(
            uri,
            format!(
                "magnet:?xt=urn:btih:{HEX}&dn=a%20b%2Bc%2F%C3%A9%26%3D%25\
                 &tr=http%3A%2F%2Ft.example%2Fa%3Fx%3D1%26y%3D2&tr=udp%3A%2F%2Fu%3A1\
                 &x.pe=%5B2001%3Adb8%3A%3A1%5D%3A6881&x.pe=host.example%3A1\
                 &ws=https%3A%2F%2Fw.example%2Ffiles%2F"
            )
        );
        assert_eq!(Magnet::parse(&uri).unwrap(), m);
        assert_eq!(m.to_string(), uri);
        // Printing what we parsed from a non-canonical link gives the canonical one, which
        // parses back to the same value.
        let loose = format!("magnet:?dn=x&xt=urn:btih:{}&tr=a&tr=a", hash().to_base32());
        let parsed = Magnet::parse(&loose).unwrap();
        assert_eq!(
            parsed.to_uri(),
            format!("magnet:?xt=urn:btih:{HEX}&dn=x&tr=a")
        );
        assert_eq!(Magnet::parse(&parsed.to_uri()).unwrap(), parsed);
    }

    /// `ws`: http(s) web seeds kept in order once each; other schemes and empty URLs
    /// ignored (nothing here could fetch them).
    #[test]
    fn web_seeds_are_kept_once_and_only_http_or_https() {
        let link = format!(
            "magnet:?xt=urn:btih:{HEX}&ws=http%3A%2F%2Fa%2Fx&ws=ftp%3A%2F%2Fb%2Fy\
             &ws=HTTPS://c/z&ws=http%3A%2F%2Fa%2Fx&ws=http://&ws="
        );
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.web_seeds, vec!["http://a/x", "HTTPS://c/z"]);
    }

    #[test]
    fn minimal_link_round_trips() {
        let m = Magnet::new(hash());
        assert_eq!(m.to_uri(), format!("magnet:?xt=urn:btih:{HEX}"));
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
    }

    #[test]
    fn numbered_keys_and_empty_pairs() {
        let link = format!("magnet:?&&xt.1=urn:sha1:XYZ&xt.2=urn:btih:{HEX}&tr.1=a&tr.2=b&");
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hash, hash());
        assert_eq!(m.trackers, vec!["a", "b"]);
    }

    #[test]
    fn bad_escapes_are_errors_with_position() {
        let link = format!("magnet:?xt=urn:btih:{HEX}&dn=ab%2");
        let pos = link.len() - 2;
        assert_eq!(
            Magnet::parse(&link),
            Err(MagnetError::BadEscape { position: pos })
        );
        let link = format!("magnet:?xt=urn:btih:{HEX}&dn=%zz1");
        assert!(matches!(
            Magnet::parse(&link),
            Err(MagnetError::BadEscape { .. })
        ));
        // An escape in a key is checked too.
        let link = format!("magnet:?x%t=1&xt=urn:btih:{HEX}");
        assert_eq!(
            Magnet::parse(&link),
            Err(MagnetError::BadEscape { position: 9 })
        );
        // Decoded bytes that are not UTF-8.
        let link = format!("magnet:?xt=urn:btih:{HEX}&dn=%FF%FE");
        assert!(matches!(
            Magnet::parse(&link),
            Err(MagnetError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn missing_or_bad_hashes() {
        assert_eq!(
            Magnet::parse("magnet:?dn=x"),
            Err(MagnetError::MissingInfoHash)
        );
        assert_eq!(Magnet::parse("magnet:?"), Err(MagnetError::MissingInfoHash));
        assert_eq!(
            Magnet::parse("magnet:?xt"),
            Err(MagnetError::MissingInfoHash)
        );
        assert_eq!(Magnet::parse("magnet"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("http://x/?xt=1"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse(""), Err(MagnetError::NotMagnet));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:abc"),
            Err(MagnetError::BadInfoHash { position: 11, .. })
        ));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:"),
            Err(MagnetError::BadInfoHash { .. })
        ));
        let other = "0".repeat(40);
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{other}")),
            Err(MagnetError::ConflictingInfoHashes { .. })
        ));
        // The same hash twice (hex and base32) is fine.
        let same = format!(
            "magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}",
            hash().to_base32()
        );
        assert_eq!(Magnet::parse(&same).unwrap().info_hash, hash());
    }

    #[test]
    fn v2_links() {
        let v2 = InfoHashV2([0xab; 32]);
        let btmh = format!("urn:btmh:1220{}", "ab".repeat(32));
        let m = Magnet::parse(&format!("magnet:?xt={btmh}&dn=x")).unwrap();
        assert!(m.v2_only);
        assert_eq!(m.info_hash_v2, Some(v2));
        assert_eq!(m.info_hash, v2.truncated());
        assert_eq!(m.to_uri(), format!("magnet:?xt={btmh}&dn=x"));
        assert_eq!(Magnet::parse(&m.to_uri()), Ok(m));
        // A hybrid link carries both: both kept, the v1 hash is the wire hash.
        let hybrid = format!("magnet:?xt={btmh}&xt=urn:btih:{HEX}");
        let m = Magnet::parse(&hybrid).unwrap();
        assert_eq!(
            (m.info_hash, m.info_hash_v2, m.v2_only),
            (hash(), Some(v2), false)
        );
        assert_eq!(m.to_uri(), format!("magnet:?xt=urn:btih:{HEX}&xt={btmh}"));
        assert_eq!(Magnet::parse(&m.to_uri()), Ok(m));
        // Bad multihashes: another hash function, a short digest, bad hex.
        for bad in [
            format!("urn:btmh:1120{}", "ab".repeat(32)),
            format!("urn:btmh:1220{}", "ab".repeat(31)),
            format!("urn:btmh:1220{}zz", "ab".repeat(31)),
            "urn:btmh:".to_string(),
        ] {
            assert_eq!(
                Magnet::parse(&format!("magnet:?xt={bad}")),
                Err(MagnetError::BadV2InfoHash { position: 11 }),
                "{bad}"
            );
        }
        let other = format!("urn:btmh:1220{}", "cd".repeat(32));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt={btmh}&xt.2={other}")),
            Err(MagnetError::ConflictingV2InfoHashes { .. })
        ));
    }

    #[test]
    fn peer_addresses_are_checked() {
        for bad in [
            "host",
            "host:",
            ":80",
            "host:0",
            "host:65536",
            "host:+1",
            "[::1]",
            "[::1:80",
            "[zz]:80",
            "::1:80",
            "a b:1",
            "host:123456",
        ] {
            let link = format!("magnet:?xt=urn:btih:{HEX}&x.pe={bad}");
            assert!(
                matches!(Magnet::parse(&link), Err(MagnetError::BadPeer { .. })),
                "{bad} accepted"
            );
        }
        for good in ["1.2.3.4:1", "peer.example:65535", "[fe80::1]:6881"] {
            let link = format!("magnet:?xt=urn:btih:{HEX}&x.pe={good}");
            assert_eq!(Magnet::parse(&link).unwrap().peers, vec![good]);
        }
    }

    #[test]
    fn from_metainfo_flattens_tiers_in_order() {
        use crate::create::{Content, CreateOptions, TorrentPlan};
        use crate::layout::FileSpan;
        let mut options = CreateOptions::new("my file.txt");
        options.trackers = vec![
            vec!["http://a/".into(), "http://b/".into()],
            vec!["http://b/".into(), "udp://c:1".into()],
        ];
        options.url_list = vec!["http://w/".into(), "http://w/".into()];
        let plan = TorrentPlan::new(Content::SingleFile { length: 5 }, None).unwrap();
        let hash = plan
            .hash_piece(0, &mut Vec::new(), |_: &FileSpan, dst| {
                dst.copy_from_slice(b"hello");
                Ok::<(), ()>(())
            })
            .unwrap();
        let bytes = plan.finish(&[hash], &options).unwrap();
        let metainfo = Metainfo::from_bytes(&bytes).unwrap();
        let m = Magnet::from_metainfo(&metainfo);
        assert_eq!(m.info_hash, metainfo.info_hash);
        assert_eq!(m.display_name.as_deref(), Some("my file.txt"));
        assert_eq!(m.trackers, vec!["http://a/", "http://b/", "udp://c:1"]);
        assert!(m.peers.is_empty());
        assert_eq!(m.web_seeds, vec!["http://w/"], "the url-list as ws, once");
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        // Multi-byte characters where the scheme or an escape would be, stray separators,
        // and huge repeated parameters: all give a value or an error.
        let long = format!("magnet:?xt=urn:btih:{HEX}{}", "&tr=x".repeat(10_000));
        assert_eq!(Magnet::parse(&long).unwrap().trackers, vec!["x"]);
        for text in [
            "magnét:?",
            "magnet:?é",
            "magnet:?=&=&=",
            "magnet:?xt=%",
            "magnet:?xt=%é1",
            "magnet:?xt=urn:btih:ééééé",
            "magnet:?%",
            "magnet:?xt=urn:btmh",
        ] {
            assert!(Magnet::parse(text).is_err(), "{text} accepted");
        }
    }
}
