//! uTP's LEDBAT beside a TCP-like flow on one bottleneck
//! (`cargo run --release -p unchoke-sim --example ledbat_vs_tcp [--csv]`). The figures of
//! `benches/RESULTS.md` ("LEDBAT beside TCP") come from here: three scenarios on a 2 MB/s
//! uplink with 25 ms each way, and with `--csv` the first one second by second.

use std::time::Duration;

use unchoke_sim::transport_study::{Bottleneck, FlowKind, FlowSpec, run};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn flow(kind: FlowKind, start: u64, stop: Option<u64>) -> FlowSpec {
    FlowSpec {
        kind,
        start: s(start),
        stop: stop.map(s),
    }
}

fn main() {
    let csv = std::env::args().any(|a| a == "--csv");
    let link = |buffer_ms: u64| Bottleneck {
        rate: 2_000_000,
        buffer: usize::try_from(2_000 * buffer_ms).unwrap_or(usize::MAX),
        delay: Duration::from_millis(25),
    };
    let scenarios = [
        (
            "uTP first, TCP from 30 s to 90 s, 250 ms buffer",
            link(250),
            [
                flow(FlowKind::Utp, 0, None),
                flow(FlowKind::TcpLike, 30, Some(90)),
            ],
        ),
        (
            "TCP first, uTP from 30 s (the latecomer), 250 ms buffer",
            link(250),
            [
                flow(FlowKind::Utp, 30, None),
                flow(FlowKind::TcpLike, 0, Some(90)),
            ],
        ),
        (
            "uTP first, TCP from 30 s to 90 s, 50 ms buffer (below LEDBAT's 100 ms target)",
            link(50),
            [
                flow(FlowKind::Utp, 0, None),
                flow(FlowKind::TcpLike, 30, Some(90)),
            ],
        ),
    ];
    for (i, (name, link, flows)) in scenarios.iter().enumerate() {
        let report = run(link, flows, s(120), s(1), 1);
        if csv && i == 0 {
            println!("t_s,utp_kB_s,tcp_kB_s,queue_ms");
            for x in &report.samples {
                println!(
                    "{},{:.0},{:.0},{:.1}",
                    x.at.as_secs(),
                    x.rates[0] / 1e3,
                    x.rates[1] / 1e3,
                    x.queue_delay.as_secs_f64() * 1e3
                );
            }
        }
        println!("## {name}");
        for (what, a, b) in [
            ("0-30 s", 0, 30),
            ("30-60 s", 30, 60),
            ("60-90 s", 60, 90),
            ("100-120 s", 100, 120),
        ] {
            println!(
                "{what}: uTP {:.0} kB/s, TCP {:.0} kB/s, queue {:.0} ms",
                report.mean_rate(0, s(a), s(b)) / 1e3,
                report.mean_rate(1, s(a), s(b)) / 1e3,
                report.mean_queue_delay(s(a), s(b)).as_secs_f64() * 1e3
            );
        }
        println!("dropped at the bottleneck: {}", report.dropped);
    }
}
