//! The `tracker_udp` target: BEP 15 packet decoders and the `UdpAnnounce` client machine.
//!
//! Byte 0 chooses the machine's starting state (waiting for a connect reply, waiting for an
//! announce reply, after a retransmission, or finished) and whether the tracker is IPv6.
//! The rest is a list of packets `[len, flags, bytes…]`; flag bit 0 stamps the machine's
//! current transaction id into the packet (so packets are not all ignored), bit 1 lets the
//! deadline pass first. Invariants:
//! 1. Nothing panics.
//! 2. Every decoded request or response re-encodes to something that decodes the same.
//! 3. Once finished, the machine stays finished with the same result and sends nothing;
//!    while running, it always has a deadline in the future.

use unchoke_core::InfoHash;
use unchoke_core::time::Instant;
use unchoke_core::tracker::udp::{Request, Response, UdpAnnounce};
use unchoke_core::tracker::{AnnounceEvent, AnnounceRequest, AnnounceResponse};
use unchoke_core::wire::PeerId;

/// Runs every UDP-tracker invariant on `data`. Panics if one fails.
pub fn tracker_udp(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let ipv6 = mode & 4 != 0;
    let mut rng = fastrand::Rng::with_seed(u64::from(mode));
    let mut now = Instant::from_secs(1000);
    let mut m = UdpAnnounce::new(request(), ipv6, &mut rng, now);
    let _ = m.poll_transmit(now);
    match mode & 3 {
        0 => {}
        1 => connect(&mut m, now),
        2 => {
            now = m.poll_timeout().unwrap_or(now);
            m.handle_timeout(now);
            let _ = m.poll_transmit(now);
        }
        _ => {
            connect(&mut m, now);
            let reply = Response::Announce {
                transaction_id: m.transaction_id(),
                response: AnnounceResponse {
                    interval: 60,
                    ..AnnounceResponse::default()
                },
            };
            let _ = m.handle_packet(&reply.encode(ipv6), now);
            assert!(m.result().is_some(), "a valid announce reply finishes");
        }
    }

    while let Some((&[len, flags], tail)) = rest.split_first_chunk::<2>() {
        let n = usize::from(len).min(tail.len());
        let mut packet = tail[..n].to_vec();
        rest = &tail[n..];

        check_codecs(&packet, ipv6);

        if flags & 2 != 0 {
            if let Some(deadline) = m.poll_timeout() {
                now = deadline;
            }
            m.handle_timeout(now);
            let _ = m.poll_transmit(now);
        }
        if flags & 1 != 0 && packet.len() >= 8 {
            packet[4..8].copy_from_slice(&m.transaction_id().to_be_bytes());
        }
        let before = m.result();
        let _ = m.handle_packet(&packet, now);
        if before.is_some() {
            assert_eq!(m.result(), before, "a finished exchange changed its result");
        }
        let _ = m.poll_transmit(now);
        match m.result() {
            Some(_) => {
                assert_eq!(m.poll_timeout(), None, "a finished exchange has a deadline");
                assert_eq!(m.poll_transmit(now), None, "a finished exchange sends");
            }
            None => {
                let deadline = m.poll_timeout().expect("a running exchange has a deadline");
                assert!(deadline > now, "deadline {deadline:?} is not after {now:?}");
            }
        }
    }
}

fn connect(m: &mut UdpAnnounce, now: Instant) {
    let reply = Response::Connect {
        transaction_id: m.transaction_id(),
        connection_id: 42,
    };
    let _ = m.handle_packet(&reply.encode(false), now);
    let _ = m.poll_transmit(now);
}

fn check_codecs(packet: &[u8], ipv6: bool) {
    if let Ok(req) = Request::decode(packet) {
        assert_eq!(
            Request::decode(&req.encode()),
            Ok(req),
            "request re-encoding"
        );
    }
    if let Ok(resp) = Response::decode(packet, ipv6) {
        assert_eq!(
            Response::decode(&resp.encode(ipv6), ipv6),
            Ok(resp),
            "response re-encoding"
        );
    }
}

fn request() -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([2; 20]),
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 100,
        event: AnnounceEvent::Started,
        numwant: None,
        key: 7,
        ip: None,
        ipv6: None,
        tracker_id: None,
    }
}
