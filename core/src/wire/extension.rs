//! The BEP 10 extension handshake: the bencoded dictionary sent as extended message id 0.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;

use super::message::EXTENDED_HANDSHAKE_ID;
use super::{Message, WireError};
use crate::bencode::{self, Dict, Value};

/// The extension handshake (BEP 10), the keys this engine uses typed.
///
/// Decoding is lenient, as BEP 10 asks: unknown keys are ignored, and a known key with the
/// wrong type or an out-of-range value is treated as absent. Only a payload that is not a
/// bencoded dictionary is an error. Keys not modelled here (for example `ipv4`, `ipv6`)
/// are dropped on decode and never sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtensionHandshake {
    /// `m`: extension name → the id the *sender* wants to receive that extension's messages
    /// under. Id 0 means the sender disabled the extension (see
    /// [`extension_id`](Self::extension_id)). Names that are not UTF-8 and ids outside
    /// 0..=255 are skipped on decode.
    pub m: BTreeMap<String, u8>,
    /// `v`: client name and version (invalid UTF-8 replaced).
    pub v: Option<String>,
    /// `p`: the sender's listen port (1..=65535).
    pub p: Option<u16>,
    /// `reqq`: how many outstanding requests the sender queues without dropping.
    pub reqq: Option<u32>,
    /// `metadata_size` (BEP 9): size of the info dictionary in bytes.
    pub metadata_size: Option<u64>,
    /// `yourip`: the address the sender sees us at (4 or 16 bytes on the wire).
    pub yourip: Option<IpAddr>,
    /// `upload_only` (BEP 21): the sender will not download (a seed, or a partial download
    /// that wants nothing more). Any non-zero integer is `true`; a later handshake may
    /// clear it with 0.
    pub upload_only: Option<bool>,
}

impl ExtensionHandshake {
    /// The id to send extension `name`'s messages under, if the peer supports it
    /// (present in `m` with a non-zero id).
    pub fn extension_id(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }

    /// Parses the payload of an extended message with id 0.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let value = bencode::decode(payload).map_err(WireError::ExtensionHandshakeBencode)?;
        let Some(dict) = value.as_dict() else {
            return Err(WireError::ExtensionHandshakeNotDict(value.type_name()));
        };
        let int = |key: &[u8]| dict.get(key).and_then(Value::as_int);
        let mut m = BTreeMap::new();
        if let Some(entries) = dict.get(b"m").and_then(Value::as_dict) {
            for (name, id) in entries.entries() {
                let id = id.as_int().and_then(|i| u8::try_from(i).ok());
                if let (Ok(name), Some(id)) = (std::str::from_utf8(name), id) {
                    // Lenient input may repeat a key; the first one wins, as in `Dict::get`.
                    m.entry(name.to_owned()).or_insert(id);
                }
            }
        }
        Ok(ExtensionHandshake {
            m,
            v: dict
                .get(b"v")
                .and_then(Value::as_bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            p: int(b"p")
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0),
            reqq: int(b"reqq").and_then(|n| u32::try_from(n).ok()),
            metadata_size: int(b"metadata_size").and_then(|n| u64::try_from(n).ok()),
            yourip: dict
                .get(b"yourip")
                .and_then(Value::as_bytes)
                .and_then(ip_from_bytes),
            upload_only: int(b"upload_only").map(|n| n != 0),
        })
    }

    /// Appends the bencoded dictionary (keys sorted, absent fields omitted) to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let m = Dict::new(
            self.m
                .iter()
                .map(|(name, &id)| (name.as_bytes(), Value::Int(i64::from(id))))
                .collect(),
        );
        let mut dict = Dict::new(vec![(b"m".as_slice(), Value::Dict(m))]);
        if let Some(v) = &self.v {
            dict.insert(b"v", Value::Bytes(v.as_bytes()));
        }
        if let Some(p) = self.p {
            dict.insert(b"p", Value::Int(i64::from(p)));
        }
        if let Some(reqq) = self.reqq {
            dict.insert(b"reqq", Value::Int(i64::from(reqq)));
        }
        if let Some(size) = self.metadata_size {
            // Sizes beyond i64 cannot be bencoded; no real metadata comes near that.
            dict.insert(
                b"metadata_size",
                Value::Int(i64::try_from(size).unwrap_or(i64::MAX)),
            );
        }
        let ip_v4;
        let ip_v6;
        if let Some(ip) = self.yourip {
            let bytes: &[u8] = match ip {
                IpAddr::V4(a) => {
                    ip_v4 = a.octets();
                    &ip_v4
                }
                IpAddr::V6(a) => {
                    ip_v6 = a.octets();
                    &ip_v6
                }
            };
            dict.insert(b"yourip", Value::Bytes(bytes));
        }
        if let Some(upload_only) = self.upload_only {
            dict.insert(b"upload_only", Value::Int(i64::from(upload_only)));
        }
        bencode::encode_into(&Value::Dict(dict), out);
    }

    /// The whole `extended` message (id 0) carrying this handshake.
    pub fn to_message(&self) -> Message {
        let mut payload = BytesMut::new();
        self.encode(&mut payload);
        Message::Extended {
            id: EXTENDED_HANDSHAKE_ID,
            payload: payload.freeze(),
        }
    }

    /// The handshake in `message`, if it is an extended message with id 0; `Ok(None)` for
    /// any other message.
    pub fn from_message(message: &Message) -> Result<Option<Self>, WireError> {
        match message {
            Message::Extended {
                id: EXTENDED_HANDSHAKE_ID,
                payload,
            } => Self::decode(payload).map(Some),
            _ => Ok(None),
        }
    }
}

/// An address from its 4 or 16 network-order bytes.
fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Some(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn sample() -> ExtensionHandshake {
        ExtensionHandshake {
            m: BTreeMap::from([("ut_metadata".to_owned(), 3), ("ut_pex".to_owned(), 1)]),
            v: Some("unchoke 0.1".to_owned()),
            p: Some(6881),
            reqq: Some(250),
            metadata_size: Some(31_235),
            yourip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
            upload_only: Some(true),
        }
    }

    #[test]
    fn round_trip_and_canonical_encoding() {
        let mut out = BytesMut::new();
        sample().encode(&mut out);
        assert_eq!(
            &out[..],
            &b"d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e\
               4:reqqi250e11:upload_onlyi1e1:v11:unchoke 0.16:yourip4:\x0a\x00\x00\x07e"[..]
        );
        // Canonical: the strict decoder accepts it (keys sorted, none repeated).
        assert!(bencode::decode_strict(&out).is_ok());
        assert_eq!(ExtensionHandshake::decode(&out).unwrap(), sample());
    }

    #[test]
    fn ipv6_yourip_round_trips() {
        let mut h = sample();
        h.yourip = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let message = h.to_message();
        assert_eq!(ExtensionHandshake::from_message(&message).unwrap(), Some(h));
    }

    #[test]
    fn empty_handshake_sends_empty_m() {
        let mut out = BytesMut::new();
        ExtensionHandshake::default().encode(&mut out);
        assert_eq!(&out[..], b"d1:mdee");
    }

    #[test]
    fn lenient_decoding_skips_bad_and_unknown_fields() {
        // Unsorted keys, unknown keys, wrong types, out-of-range values, a 5-byte yourip,
        // a disabled extension (id 0), a non-UTF-8 name and an id above 255.
        let payload = b"d1:v3:\xffab1:pi70000e4:reqqi-1e6:yourip5:abcde\
            7:unknownli1ee1:md6:ut_pexi0e2:\xff\xffi4e5:ut_hti300e11:ut_metadatai2ee\
            13:metadata_size3:abce";
        let h = ExtensionHandshake::decode(payload).unwrap();
        assert_eq!(
            h.m,
            BTreeMap::from([("ut_metadata".to_owned(), 2), ("ut_pex".to_owned(), 0)])
        );
        assert_eq!(h.extension_id("ut_metadata"), Some(2));
        assert_eq!(h.extension_id("ut_pex"), None, "id 0 means disabled");
        assert_eq!(h.v.as_deref(), Some("\u{fffd}ab"));
        assert_eq!(
            (h.p, h.reqq, h.metadata_size, h.yourip),
            (None, None, None, None)
        );
    }

    #[test]
    fn non_dictionary_payloads_are_errors() {
        assert_eq!(
            ExtensionHandshake::decode(b"li1ee"),
            Err(WireError::ExtensionHandshakeNotDict("list"))
        );
        let err = ExtensionHandshake::decode(b"d1:m").unwrap_err();
        assert!(matches!(err, WireError::ExtensionHandshakeBencode(_)));
        assert!(err.to_string().starts_with("extension handshake: bencode:"));
        assert_eq!(
            ExtensionHandshake::from_message(&Message::Extended {
                id: 3,
                payload: Bytes::from_static(b"garbage"),
            }),
            Ok(None)
        );
    }
}
