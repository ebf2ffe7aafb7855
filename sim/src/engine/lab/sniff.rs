//! The lab's wire sniffer: every message a lab host sends, decoded, in order; off until a
//! test turns it on, and absent from the study.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use super::super::Simulation;
use crate::lab::Sniffed;
use crate::network::HostId;
use unchoke_core::session::ConnId;
use unchoke_core::time::Instant;
use unchoke_core::wire::{self, Decoder, Limits};

/// What the sniffer saw, and each sending end's bytes not decoded yet.
#[derive(Debug, Default)]
pub(crate) struct Sniffer {
    /// Whether it decodes what is sent (a test turns it on).
    pub(crate) on: bool,
    /// Every message seen, in the order it was sent.
    pub(crate) seen: Vec<Sniffed>,
    /// Each sending end's undecoded stream: whether the handshake passed, and the bytes.
    streams: BTreeMap<(HostId, ConnId), (bool, BytesMut)>,
}

impl Sniffer {
    /// Decodes what `from` sent to `to` (handshake first, then framed messages); an error
    /// when the bytes are no stream of messages (a session bug the caller reports).
    fn feed(
        &mut self,
        at: Instant,
        (from, conn): (HostId, ConnId),
        to: HostId,
        data: &[u8],
    ) -> Result<(), String> {
        let (handshaken, buf) = self.streams.entry((from, conn)).or_default();
        buf.extend_from_slice(data);
        if !*handshaken && buf.len() >= wire::HANDSHAKE_LEN {
            let _ = buf.split_to(wire::HANDSHAKE_LEN);
            *handshaken = true;
        }
        if !*handshaken {
            return Ok(());
        }
        let decoder = Decoder::new(None, Limits::default());
        loop {
            match decoder.decode(buf) {
                Ok(Some(message)) => self.seen.push(Sniffed {
                    at,
                    from,
                    to,
                    message: Some(message),
                }),
                Ok(None) => return Ok(()),
                Err(e) => {
                    buf.clear();
                    return Err(format!("host {from} sent an undecodable stream: {e}"));
                }
            }
        }
    }

    /// The connection between ends `a` and `b` closed: in both directions that implies
    /// choked (recorded as a `None` message).
    pub(crate) fn close(&mut self, at: Instant, a: (HostId, ConnId), b: (HostId, ConnId)) {
        self.streams.remove(&a);
        self.streams.remove(&b);
        if self.on {
            for (from, to) in [(a.0, b.0), (b.0, a.0)] {
                self.seen.push(Sniffed {
                    at,
                    from,
                    to,
                    message: None,
                });
            }
        }
    }
}

impl Simulation {
    /// Feeds what lab host `host` sends on `conn` to the sniffer, when it is on.
    pub(super) fn lab_sniff(&mut self, host: HostId, conn: ConnId, chunks: &[&Bytes]) {
        if !self.lab_ref().sniffer.on {
            return;
        }
        // Only bytes that go somewhere: an accepting end's flow exists once the dial opened.
        let Some(to) = self.hosts[host]
            .online
            .as_ref()
            .and_then(|on| on.links.get(&conn))
            .filter(|l| l.out.is_some())
            .and_then(|l| l.remote)
            .map(|r| r.0)
        else {
            return;
        };
        let now = Instant::from_micros(self.now);
        let sniffer = &mut self.lab_mut().sniffer;
        let failed = chunks
            .iter()
            .find_map(|c| sniffer.feed(now, (host, conn), to, c).err());
        if let Some(what) = failed {
            self.violation(what);
        }
    }
}
