use super::*;

fn drain(c: &mut UtpConnection, now: Instant) -> Vec<Packet> {
    let mut out = Vec::new();
    while let Some(d) = c.poll_transmit(now) {
        out.push(Packet::decode(&d).unwrap());
    }
    out
}

fn pair(now: Instant) -> (UtpConnection, UtpConnection) {
    let mut a = UtpConnection::connect(100, now, UtpConfig::default());
    let syn = drain(&mut a, now);
    assert_eq!(syn.len(), 1);
    assert_eq!(syn[0].packet_type, PacketType::Syn);
    assert_eq!(syn[0].connection_id, 100);
    let cfg = UtpConfig {
        initial_seq_nr: 5000,
        ..UtpConfig::default()
    };
    let mut b = UtpConnection::accept(&syn[0], now, cfg).unwrap();
    let ack = drain(&mut b, now);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].packet_type, PacketType::State);
    assert_eq!(ack[0].connection_id, 100);
    assert_eq!(ack[0].ack_nr, 1);
    assert_eq!(ack[0].seq_nr, 5000);
    a.handle_packet(&ack[0], now);
    assert_eq!(a.state(), UtpState::Connected);
    assert_eq!(a.ack_nr(), 4999);
    (a, b)
}

#[test]
fn handshake_ids_and_numbers() {
    let (a, b) = pair(Instant::ZERO);
    assert_eq!((a.recv_id(), a.send_id()), (100, 101));
    assert_eq!((b.recv_id(), b.send_id()), (101, 100));
    assert_eq!(a.seq_nr(), 2);
}

#[test]
fn accept_refuses_non_syn() {
    let p = Packet::new(PacketType::Data);
    assert!(matches!(
        UtpConnection::accept(&p, Instant::ZERO, UtpConfig::default()),
        Err(AcceptError::NotSyn(PacketType::Data))
    ));
}

#[test]
fn writes_coalesce_into_full_packets() {
    let now = Instant::ZERO;
    let (mut a, _b) = pair(now);
    for _ in 0..3000 {
        assert_eq!(a.write(b"x"), 1);
    }
    let out = drain(&mut a, now);
    // Initial window of 3 packets: two full ones... and no one-byte packets.
    assert!(!out.is_empty());
    assert!(out.iter().all(|p| p.payload.len() == 1380), "{out:?}");
}

#[test]
fn out_of_order_data_is_held_then_delivered_with_selective_acks() {
    let now = Instant::ZERO;
    let (mut a, mut b) = pair(now);
    a.write(&[7u8; 1380 * 3]);
    let data = drain(&mut a, now);
    assert_eq!(data.len(), 3);
    b.handle_packet(&data[2], now);
    let acks = drain(&mut b, now);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].ack_nr, 1);
    // The third packet is ack_nr + 3: bit 1.
    assert!(!acks[0].sack_bit(0) && acks[0].sack_bit(1), "{:?}", acks[0]);
    assert_eq!(b.readable_bytes(), 0);
    // A duplicate is ignored.
    b.handle_packet(&data[2], now);
    assert_eq!(b.stats().duplicates_received, 1);
    b.handle_packet(&data[0], now);
    b.handle_packet(&data[1], now);
    assert_eq!(b.readable_bytes(), 1380 * 3);
    let mut buf = vec![0u8; 5000];
    assert_eq!(b.read(&mut buf), 1380 * 3);
    assert!(buf[..1380 * 3].iter().all(|&x| x == 7));
}

#[test]
fn acks_of_unsent_packets_are_dropped() {
    let now = Instant::ZERO;
    let (mut a, _b) = pair(now);
    let mut p = Packet::new(PacketType::State);
    p.connection_id = a.recv_id();
    p.ack_nr = 40;
    a.handle_packet(&p, now);
    assert_eq!(a.stats().dropped, 1);
    assert_eq!(a.state(), UtpState::Connected);
}

#[test]
fn syn_retransmits_then_times_out() {
    let mut a = UtpConnection::connect(1, Instant::ZERO, UtpConfig::default());
    assert_eq!(drain(&mut a, Instant::ZERO).len(), 1);
    let mut sends = Vec::new();
    while let Some(now) = a.poll_timeout() {
        a.handle_timeout(now);
        if !drain(&mut a, now).is_empty() {
            sends.push(now.as_micros() / 1000);
        }
    }
    assert_eq!(a.state(), UtpState::TimedOut);
    assert_eq!(sends, [1000, 3000, 7000]);
}

/// A STATE from `b`'s side acknowledging up to `ack_nr`, with a window.
fn state_from(b: &UtpConnection, ack_nr: u16, wnd: u32) -> Packet {
    let mut p = Packet::new(PacketType::State);
    p.connection_id = b.send_id();
    p.seq_nr = b.seq_nr();
    p.ack_nr = ack_nr;
    p.wnd_size = wnd;
    p
}

#[test]
fn keepalive_after_29_idle_seconds() {
    let now = Instant::ZERO;
    let (mut a, _b) = pair(now);
    assert!(drain(&mut a, now).is_empty());
    let t = a.poll_timeout().unwrap();
    assert_eq!(t, now + Duration::from_secs(29));
    a.handle_timeout(t);
    let out = drain(&mut a, t);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].packet_type, PacketType::State);
    assert!(out[0].payload.is_empty());
    assert_eq!(a.poll_timeout(), Some(t + Duration::from_secs(29)));
    assert_eq!(
        a.state(),
        UtpState::Connected,
        "no data outstanding: no time-out"
    );
}

#[test]
fn three_duplicate_acks_resend_the_first_packet() {
    let now = Instant::ZERO;
    let (mut a, b) = pair(now);
    a.write(&[1u8; 1380 * 3]);
    let data = drain(&mut a, now);
    assert_eq!(data.len(), 3);
    let cwnd = a.cwnd();
    // A peer without selective ACKs: the first packet lost, the other two (and a
    // window update) each answered with an ACK of the SYN only.
    let dup = state_from(&b, 1, 1 << 20);
    for _ in 0..2 {
        a.handle_packet(&dup, now);
        assert!(drain(&mut a, now).is_empty());
    }
    a.handle_packet(&dup, now);
    let out = drain(&mut a, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seq_nr, data[0].seq_nr);
    assert_eq!(a.stats().fast_retransmits, 1);
    assert!(a.cwnd() < cwnd);
}

#[test]
fn selectively_acknowledged_packets_are_not_resent() {
    let now = Instant::ZERO;
    let (mut a, b) = pair(now);
    a.write(&[1u8; 1380 * 3]);
    assert_eq!(drain(&mut a, now).len(), 3);
    // Packets 3 and 4 arrived, 2 did not; then the time-out resends only 2.
    let mut p = state_from(&b, 1, 1 << 20);
    p.selective_ack = Some(Bytes::from_static(&[0b11, 0, 0, 0]));
    a.handle_packet(&p, now);
    assert_eq!(a.bytes_in_flight(), 1380);
    let t = a.poll_timeout().unwrap();
    a.handle_timeout(t);
    let out = drain(&mut a, t);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seq_nr, 2);
}

#[test]
fn a_shut_window_is_probed_with_one_byte() {
    let now = Instant::ZERO;
    let (mut a, b) = pair(now);
    a.handle_packet(&state_from(&b, 1, 0), now);
    a.write(b"blocked until the peer reads");
    assert!(drain(&mut a, now).is_empty(), "nothing fits a window of 0");
    let t = a.poll_timeout().unwrap();
    assert!(t > now && t <= now + Duration::from_secs(1));
    a.handle_timeout(t);
    let out = drain(&mut a, t);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload.len(), 1);
    // The window opens: the rest follows in one packet once the probe is acknowledged.
    a.handle_packet(&state_from(&b, 2, 1 << 20), t);
    let out = drain(&mut a, t);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].payload[..], b"locked until the peer reads");
}

#[test]
fn a_fin_before_its_data_waits_for_it() {
    let now = Instant::ZERO;
    let (mut a, mut b) = pair(now);
    a.write(b"last words");
    a.close();
    let out = drain(&mut a, now);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].packet_type, PacketType::Fin);
    b.handle_packet(&out[1], now);
    assert!(!b.is_peer_finished());
    b.handle_packet(&out[0], now);
    assert!(b.is_peer_finished());
    assert_eq!(b.recv().as_deref(), Some(&b"last words"[..]));
    // Data after the FIN's number is never delivered.
    let mut late = out[0].clone();
    late.seq_nr = out[1].seq_nr.wrapping_add(1);
    b.handle_packet(&late, now);
    assert_eq!(b.recv(), None);
}

#[test]
fn too_many_timeouts_end_the_connection() {
    let now = Instant::ZERO;
    let cfg = UtpConfig {
        idle_timeout: Duration::from_secs(3600),
        max_rto: Duration::from_secs(2),
        ..UtpConfig::default()
    };
    let mut a = UtpConnection::connect(9, now, cfg.clone());
    let syn = drain(&mut a, now);
    let mut b = UtpConnection::accept(&syn[0], now, cfg).unwrap();
    for p in drain(&mut b, now) {
        a.handle_packet(&p, now);
    }
    a.write(b"x");
    drain(&mut a, now);
    let mut n = 0;
    while let Some(t) = a.poll_timeout() {
        a.handle_timeout(t);
        drain(&mut a, t);
        n += 1;
        assert!(n < 100);
    }
    assert_eq!(a.state(), UtpState::TimedOut);
    assert_eq!(
        a.stats().timeouts,
        9,
        "eight back-offs, then the ninth time-out ends it"
    );
}

#[test]
fn a_repeated_syn_is_answered_again() {
    let now = Instant::ZERO;
    let mut a = UtpConnection::connect(300, now, UtpConfig::default());
    let syn = drain(&mut a, now).remove(0);
    let mut b = UtpConnection::accept(&syn, now, UtpConfig::default()).unwrap();
    assert_eq!(drain(&mut b, now).len(), 1);
    // The STATE was lost; the SYN comes again.
    b.handle_packet(&syn, now);
    let again = drain(&mut b, now);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].packet_type, PacketType::State);
    assert_eq!(again[0].ack_nr, syn.seq_nr);
}

#[test]
fn reads_split_chunks_and_stale_acks_still_carry_data() {
    let now = Instant::ZERO;
    let (mut a, mut b) = pair(now);
    b.write(b"0123456789");
    let first = drain(&mut b, now);
    a.handle_packet(&first[0], now);
    let mut buf = [0u8; 4];
    assert_eq!(a.read(&mut buf), 4);
    assert_eq!(&buf, b"0123");
    assert_eq!(a.read(&mut buf), 4);
    assert_eq!(a.read(&mut buf), 2);
    assert_eq!(&buf[..2], b"89");
    assert_eq!(a.read(&mut buf), 0);
    // A later DATA packet carrying an older ACK (reordered) still delivers its data.
    let mut late = first[0].clone();
    late.seq_nr = first[0].seq_nr.wrapping_add(1);
    late.ack_nr = first[0].ack_nr.wrapping_sub(1);
    late.payload = Bytes::from_static(b"more");
    a.handle_packet(&late, now);
    assert_eq!(a.recv().as_deref(), Some(&b"more"[..]));
}
