//! Local Service Discovery messages (BEP 14): the `BT-SEARCH` datagram a client multicasts
//! on its LAN to say "I have these torrents, on this TCP port", built and parsed. Pure: no
//! socket, no clock. When to send and what to do with an announce is the session's
//! (`session/lsd.rs`).
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: <port>\r\n
//! Infohash: <40 hex digits>\r\n        (one line per torrent)
//! cookie: <opaque>\r\n                 (optional: tells a client its own announces)
//! \r\n
//! \r\n
//! ```
//!
//! The parser is bounded and forgiving where real clients differ: a datagram over
//! [`MAX_DATAGRAM`] bytes or with more than [`MAX_INFO_HASHES`] `Infohash` lines is refused
//! before anything is kept, header names match in any case, lines may end in `\n` alone,
//! the `Host` line is not checked (the socket it arrived on says which group it was), and an
//! `Infohash` value that is not 40 hex digits is skipped (a future format must not make the
//! whole announce unreadable). Any byte sequence gives a value or an [`LsdError`], never a
//! panic.
//!
//! Both BEP 14 groups are here: IPv4 [`group_v4`] (`Host: 239.192.152.143:6771`) and IPv6
//! [`group_v6`] (`Host: [ff15::efc0:988f]:6771`); the message is the same but for its
//! `Host` line. Which of them a session announces to is [`LsdFamilies`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::info_hash::InfoHash;

/// The port of both LSD groups.
pub const LSD_PORT: u16 = 6771;
/// The IPv4 multicast group (`239.192.152.143`, organisation-local scope).
pub const LSD_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// The IPv6 multicast group (`ff15::efc0:988f`, site-local scope).
pub const LSD_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);

/// The largest datagram read as an announce: a message fits well inside one Ethernet frame
/// (ours carry at most [`MAX_INFO_HASHES`] hashes, under 1,000 bytes); anything longer is
/// not a client's announce.
pub const MAX_DATAGRAM: usize = 1400;
/// Most `Infohash` lines one announce may carry; more is refused (the size bound allows
/// about 25 anyway, and we send at most this many).
pub const MAX_INFO_HASHES: usize = 16;
/// Longest cookie kept from an announce (ours is 16 characters).
pub const MAX_COOKIE: usize = 64;

/// The IPv4 group's address and port, where announces go.
pub fn group_v4() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(LSD_GROUP_V4, LSD_PORT))
}

/// The IPv6 group's address and port.
pub fn group_v6() -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(LSD_GROUP_V6, LSD_PORT, 0, 0))
}

/// The groups a session announces to: those the driver has a joined socket for
/// ([`crate::session::SessionConfig::lsd_families`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsdFamilies {
    /// The IPv4 group, [`group_v4`].
    pub v4: bool,
    /// The IPv6 group, [`group_v6`].
    pub v6: bool,
}

impl Default for LsdFamilies {
    /// IPv4 only, as before the IPv6 group was supported.
    fn default() -> Self {
        LsdFamilies {
            v4: true,
            v6: false,
        }
    }
}

impl LsdFamilies {
    /// The groups to send each announce to, IPv4 first.
    pub fn groups(self) -> impl Iterator<Item = SocketAddr> {
        [self.v4.then(group_v4), self.v6.then(group_v6)]
            .into_iter()
            .flatten()
    }
}

/// One `BT-SEARCH` announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsdAnnounce {
    /// The TCP port the sender takes peer connections on (never 0).
    pub port: u16,
    /// The torrents it announces (1 to [`MAX_INFO_HASHES`], in message order).
    pub info_hashes: Vec<InfoHash>,
    /// Its cookie, if it sent one (at most [`MAX_COOKIE`] bytes).
    pub cookie: Option<String>,
}

/// Why a datagram is not an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LsdError {
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram of {0} bytes is too long for an LSD announce")]
    TooLong(usize),
    /// The first line is not `BT-SEARCH * HTTP/1.1`.
    #[error("not a BT-SEARCH request")]
    NotSearch,
    /// No `Port` line, or its value is not a port from 1 to 65535.
    #[error("missing or invalid Port")]
    BadPort,
    /// No `Infohash` line with 40 hex digits.
    #[error("no info-hash")]
    NoInfoHash,
    /// More than [`MAX_INFO_HASHES`] `Infohash` lines.
    #[error("more than {MAX_INFO_HASHES} info-hashes")]
    TooManyInfoHashes,
    /// A header line without a colon, or a cookie over [`MAX_COOKIE`] bytes.
    #[error("malformed header line")]
    BadHeader,
}

impl LsdAnnounce {
    /// The datagram for `group` (its `Host` line): the request line, `Host`, `Port`, one
    /// `Infohash` line per hash (lower-case hex), the cookie if any, then the two empty
    /// lines BEP 14 and libtorrent end with. The caller keeps to [`MAX_INFO_HASHES`].
    pub fn encode(&self, group: SocketAddr) -> Vec<u8> {
        let mut s = String::with_capacity(80 + 52 * self.info_hashes.len());
        s.push_str("BT-SEARCH * HTTP/1.1\r\n");
        s.push_str(&format!("Host: {group}\r\n"));
        s.push_str(&format!("Port: {}\r\n", self.port));
        for h in &self.info_hashes {
            s.push_str("Infohash: ");
            s.push_str(&h.to_hex());
            s.push_str("\r\n");
        }
        if let Some(c) = &self.cookie {
            s.push_str(&format!("cookie: {c}\r\n"));
        }
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    /// Reads one datagram (see the module docs for what is tolerated).
    pub fn parse(bytes: &[u8]) -> Result<Self, LsdError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(LsdError::TooLong(bytes.len()));
        }
        let mut lines = bytes
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let first = lines.next().map(trim).unwrap_or_default();
        if !first.eq_ignore_ascii_case(b"BT-SEARCH * HTTP/1.1") {
            return Err(LsdError::NotSearch);
        }
        let mut port = None;
        let mut info_hashes = Vec::new();
        let mut lines_seen = 0usize;
        let mut cookie = None;
        for line in lines {
            if trim(line).is_empty() {
                break; // the end of the headers; what follows is ignored
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(LsdError::BadHeader)?;
            let (name, value) = (trim(&line[..colon]), trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"port") {
                // The first Port counts; a later one is ignored like any unknown header.
                if port.is_none() {
                    port = Some(parse_port(value).ok_or(LsdError::BadPort)?);
                }
            } else if name.eq_ignore_ascii_case(b"infohash") {
                lines_seen += 1;
                if lines_seen > MAX_INFO_HASHES {
                    return Err(LsdError::TooManyInfoHashes);
                }
                if let Some(h) = parse_hex_hash(value) {
                    if !info_hashes.contains(&h) {
                        info_hashes.push(h);
                    }
                }
            } else if name.eq_ignore_ascii_case(b"cookie") && cookie.is_none() {
                // Checked after the lossy conversion (which may lengthen it), so what is
                // kept always fits and encodes back to an announce that parses.
                let text = String::from_utf8_lossy(value).into_owned();
                if text.len() > MAX_COOKIE {
                    return Err(LsdError::BadHeader);
                }
                cookie = Some(text);
            }
        }
        let port = port.ok_or(LsdError::BadPort)?;
        if info_hashes.is_empty() {
            return Err(LsdError::NoInfoHash);
        }
        Ok(LsdAnnounce {
            port,
            info_hashes,
            cookie,
        })
    }
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

/// A decimal port from 1 to 65535 (at most 5 digits, so no overflow).
fn parse_port(value: &[u8]) -> Option<u16> {
    if value.is_empty() || value.len() > 5 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = value.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).ok().filter(|&p| p != 0)
}

/// Exactly 40 hex digits, either case.
fn parse_hex_hash(value: &[u8]) -> Option<InfoHash> {
    if value.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, pair) in value.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = ((hi << 4) | lo) as u8;
    }
    Some(InfoHash(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    #[test]
    fn encodes_byte_exact_and_parses_back() {
        let a = LsdAnnounce {
            port: 6881,
            info_hashes: vec![hash(0xab), hash(0x01)],
            cookie: Some("c0ffee".into()),
        };
        let bytes = a.encode(group_v4());
        let expected = "BT-SEARCH * HTTP/1.1\r\n\
                        Host: 239.192.152.143:6771\r\n\
                        Port: 6881\r\n\
                        Infohash: abababababababababababababababababababab\r\n\
                        Infohash: 0101010101010101010101010101010101010101\r\n\
                        cookie: c0ffee\r\n\
                        \r\n\
                        \r\n";
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(LsdAnnounce::parse(&bytes), Ok(a));
        let v6 = String::from_utf8(
            LsdAnnounce {
                port: 1,
                info_hashes: vec![hash(0)],
                cookie: None,
            }
            .encode(group_v6()),
        )
        .unwrap();
        assert!(v6.contains("Host: [ff15::efc0:988f]:6771\r\n"), "{v6}");
        assert!(!v6.contains("cookie"));
    }

    #[test]
    fn tolerates_case_bare_newlines_spaces_and_unknown_headers() {
        let text = "bt-search * http/1.1\nHOST: whatever\nport:51413 \n\
                    X-Other: 1\ninfohash:   ABABABABABABABABABABABABABABABABABABABAB\n\
                    Infohash: not-a-hash\nCOOKIE: x\n\n";
        let a = LsdAnnounce::parse(text.as_bytes()).unwrap();
        assert_eq!(a.port, 51413);
        assert_eq!(a.info_hashes, vec![hash(0xab)]);
        assert_eq!(a.cookie.as_deref(), Some("x"));
    }

    #[test]
    fn refuses_garbage_and_bounds() {
        let ok_head = "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n";
        let ih = format!("Infohash: {}\r\n", hash(1).to_hex());
        assert_eq!(
            LsdAnnounce::parse(&[b'x'; MAX_DATAGRAM + 1]),
            Err(LsdError::TooLong(MAX_DATAGRAM + 1))
        );
        assert_eq!(LsdAnnounce::parse(b""), Err(LsdError::NotSearch));
        assert_eq!(
            LsdAnnounce::parse(b"M-SEARCH * HTTP/1.1\r\n\r\n"),
            Err(LsdError::NotSearch)
        );
        for port in ["0", "65536", "-1", "", "99999999999999999999", "1a"] {
            let m = format!("BT-SEARCH * HTTP/1.1\r\nPort: {port}\r\n{ih}\r\n");
            assert_eq!(LsdAnnounce::parse(m.as_bytes()), Err(LsdError::BadPort));
        }
        let m = format!("BT-SEARCH * HTTP/1.1\r\n{ih}\r\n");
        assert_eq!(LsdAnnounce::parse(m.as_bytes()), Err(LsdError::BadPort));
        let m = format!("{ok_head}\r\n{ih}");
        assert_eq!(LsdAnnounce::parse(m.as_bytes()), Err(LsdError::NoInfoHash));
        let m = format!("{ok_head}no colon here\r\n{ih}\r\n");
        assert_eq!(LsdAnnounce::parse(m.as_bytes()), Err(LsdError::BadHeader));
        let m = format!("{ok_head}{}\r\n", ih.repeat(MAX_INFO_HASHES + 1));
        assert_eq!(
            LsdAnnounce::parse(m.as_bytes()),
            Err(LsdError::TooManyInfoHashes)
        );
        let m = format!(
            "{ok_head}{ih}cookie: {}\r\n\r\n",
            "c".repeat(MAX_COOKIE + 1)
        );
        assert_eq!(LsdAnnounce::parse(m.as_bytes()), Err(LsdError::BadHeader));
        // Repeated hashes count once; invalid UTF-8 elsewhere does not matter.
        let m = format!("{ok_head}{ih}{ih}X: \u{fffd}\r\n\r\n");
        assert_eq!(
            LsdAnnounce::parse(m.as_bytes()).unwrap().info_hashes.len(),
            1
        );
        let mut raw = m.into_bytes();
        raw.extend_from_slice(&[0xff, 0xfe, 0]);
        assert!(LsdAnnounce::parse(&raw).is_ok());
    }

    #[test]
    fn a_full_announce_fits_the_bound() {
        let a = LsdAnnounce {
            port: 65535,
            info_hashes: (0..MAX_INFO_HASHES as u8).map(hash).collect(),
            cookie: Some("f".repeat(MAX_COOKIE)),
        };
        let bytes = a.encode(group_v6());
        assert!(bytes.len() <= MAX_DATAGRAM, "{}", bytes.len());
        assert_eq!(LsdAnnounce::parse(&bytes), Ok(a));
    }

    #[test]
    fn families_name_their_groups() {
        let both = LsdFamilies { v4: true, v6: true };
        assert_eq!(both.groups().collect::<Vec<_>>(), [group_v4(), group_v6()]);
        let v6 = LsdFamilies {
            v4: false,
            v6: true,
        };
        assert_eq!(v6.groups().collect::<Vec<_>>(), [group_v6()]);
        assert_eq!(
            LsdFamilies::default().groups().collect::<Vec<_>>(),
            [group_v4()]
        );
        assert_eq!(group_v6().to_string(), "[ff15::efc0:988f]:6771");
    }
}
