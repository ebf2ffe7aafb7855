//! LEDBAT beside a TCP-like flow on one drop-tail bottleneck, packet by packet
//! (`unchoke_sim::transport_study`): the core's uTP fills an idle uplink while keeping its
//! queue under the 100 ms target, yields to TCP when TCP arrives, and takes the link back
//! when TCP leaves. A buffer shallower than the target hides the queue LEDBAT steers by:
//! then it competes like TCP (RFC 6817, 4.4), which the last test pins down.

use std::time::Duration;

use unchoke_sim::transport_study::{Bottleneck, FlowKind, FlowSpec, TransportReport, run};

const RATE: f64 = 2_000_000.0;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// uTP from the start; TCP from 30 s to 90 s; 2 MB/s, 25 ms each way, `buffer_ms` of
/// buffer.
fn utp_then_tcp(buffer_ms: usize) -> TransportReport {
    let link = Bottleneck {
        rate: 2_000_000,
        buffer: 2_000 * buffer_ms,
        delay: Duration::from_millis(25),
    };
    let flows = [
        FlowSpec {
            kind: FlowKind::Utp,
            start: s(0),
            stop: None,
        },
        FlowSpec {
            kind: FlowKind::TcpLike,
            start: s(30),
            stop: Some(s(90)),
        },
    ];
    run(&link, &flows, s(120), s(1), 1)
}

#[test]
fn ledbat_fills_an_idle_link_yields_to_tcp_and_takes_the_link_back() {
    let r = utp_then_tcp(250);
    let alone = r.mean_rate(0, s(5), s(30));
    let queue = r.mean_queue_delay(s(5), s(30));
    assert!(alone >= 0.9 * RATE, "uTP alone: {alone:.0} B/s");
    assert!(
        queue <= Duration::from_millis(100),
        "uTP alone keeps the queue under its target: {queue:?}"
    );
    let (utp, tcp) = (r.mean_rate(0, s(60), s(90)), r.mean_rate(1, s(60), s(90)));
    assert!(
        utp <= 0.15 * RATE,
        "uTP yields: {utp:.0} B/s beside TCP's {tcp:.0}"
    );
    assert!(tcp >= 0.8 * RATE, "TCP takes the link: {tcp:.0} B/s");
    let back = r.mean_rate(0, s(100), s(120));
    assert!(back >= 0.9 * RATE, "uTP takes the link back: {back:.0} B/s");
    assert_eq!(r, utp_then_tcp(250), "same run, same samples");
}

#[test]
fn below_its_target_ledbat_competes_like_tcp() {
    let r = utp_then_tcp(50);
    let (utp, tcp) = (r.mean_rate(0, s(40), s(90)), r.mean_rate(1, s(40), s(90)));
    for (name, rate) in [("uTP", utp), ("TCP", tcp)] {
        assert!(
            (0.3 * RATE..=0.7 * RATE).contains(&rate),
            "{name}: {rate:.0} B/s (uTP {utp:.0}, TCP {tcp:.0})"
        );
    }
    assert!(r.mean_queue_delay(s(40), s(90)) <= Duration::from_millis(50));
}
