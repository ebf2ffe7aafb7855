//! The `swarm` target: a whole small swarm on the simulator under an arbitrary schedule of
//! departures, returns, stalled links and corrupting peers.
//!
//! The input (decoded with `arbitrary`) picks the swarm — 1 to 6 peers, 2 to 12 pieces of
//! 16 KiB with a ragged last piece, link speeds, latency, seed — and up to 16 disruptions.
//! Every departure is paired with a return, so every host is present at the end. The
//! simulator itself checks, on every event, the rules no schedule may break: at most 4 + 1
//! peers unchoked, no upload of a piece the host lacks, no piece verified twice (a verified
//! piece is never lost), no complete message left unread in a receive buffer, no hash
//! failure or ban unless a peer corrupts data.
//!
//! Invariants checked at the end:
//! 1. No violation reported by the simulator.
//! 2. A complete run is never faster than the P2P lower bound.
//! 3. Without a corrupting peer, every peer completes with every piece verified (liveness:
//!    departures, returns and stalls only delay the swarm). With one, the run may end
//!    incomplete — honest peers can ban the server after mixed pieces fail — but never
//!    unsoundly.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use unchoke_sim::{Disruption, DisruptionKind, SimConfig, Simulation};

const BLOCK: u64 = 16 * 1024;

#[derive(Arbitrary, Debug)]
struct Spec {
    peers: u8,
    pieces: u8,
    short_last: u16,
    upload_kib: u8,
    server_factor: u8,
    download_factor: u8,
    latency_ms: u8,
    seed: u64,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Step {
    at_s: u16,
    host: u8,
    kind: u8,
    length_s: u8,
}

/// The simulation an input describes.
fn config(spec: &Spec) -> SimConfig {
    let peers = 1 + usize::from(spec.peers % 6);
    let pieces = 2 + u64::from(spec.pieces % 11);
    let file_size = pieces * BLOCK - u64::from(spec.short_last) % BLOCK;
    let mut c = SimConfig::study(peers, file_size);
    c.piece_length = BLOCK as u32;
    // At least 16 KiB/s per peer: a block per unchoke slot within the request time-out.
    c.peer_upload = f64::from(16 + u32::from(spec.upload_kib % 112)) * 1024.0;
    c.server_upload = c.peer_upload * f64::from(1 + spec.server_factor % 10);
    c.peer_download = c.peer_upload * f64::from(1 + spec.download_factor % 12);
    c.latency = Duration::from_millis(u64::from(spec.latency_ms % 200));
    c.seed = spec.seed;
    c.time_limit = Duration::from_secs(4 * 3600);
    for step in spec.steps.iter().take(16) {
        let at = Duration::from_secs(u64::from(step.at_s % 600));
        let host = usize::from(step.host) % (peers + 1);
        let length = Duration::from_secs(1 + u64::from(step.length_s % 120));
        match step.kind % 5 {
            0 => {
                c.disruptions.push(Disruption {
                    at,
                    host,
                    kind: DisruptionKind::Leave,
                });
                c.disruptions.push(Disruption {
                    at: at + length,
                    host,
                    kind: DisruptionKind::Rejoin,
                });
            }
            1 if host != 0 => c.disruptions.push(Disruption {
                at,
                host,
                kind: DisruptionKind::Corrupt,
            }),
            // Dials to it neither succeed nor fail: the sessions' connect time-outs and
            // `CancelConnect` run.
            2 => c.disruptions.push(Disruption {
                at,
                host,
                kind: DisruptionKind::BlackHole(length),
            }),
            // It stops reading: its senders' sessions see nothing accepted and drop it as
            // a slow reader; it must still complete once it reads again.
            3 => c.disruptions.push(Disruption {
                at,
                host,
                kind: DisruptionKind::StopReading(length),
            }),
            _ => c.disruptions.push(Disruption {
                at,
                host,
                kind: DisruptionKind::Stall(length.min(Duration::from_secs(60))),
            }),
        }
    }
    c
}

/// Runs one input; panics when an invariant fails.
pub fn swarm(data: &[u8]) {
    let Ok(spec) = Unstructured::new(data).arbitrary::<Spec>() else {
        return;
    };
    let config = config(&spec);
    let corrupt = config
        .disruptions
        .iter()
        .any(|d| d.kind == DisruptionKind::Corrupt);
    let Ok(sim) = Simulation::new(config) else {
        panic!("a configuration built within the limits was refused: {spec:?}");
    };
    let report = sim.run();
    assert!(
        report.violations.is_empty(),
        "rules broken: {:#?}\nspec: {spec:?}",
        report.violations
    );
    if let Some(measured) = report.distribution_time {
        assert!(
            measured.as_secs_f64() >= report.bounds.p2p,
            "measured {measured:?} beats the bound {} s\nspec: {spec:?}",
            report.bounds.p2p
        );
    }
    if !corrupt {
        assert!(
            report.complete,
            "not every peer completed although every host came back: {report:#?}\nspec: {spec:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_schedule_completes() {
        swarm(&[0u8; 64]);
    }

    #[test]
    fn inputs_map_into_the_limits() {
        let spec = Spec {
            peers: 255,
            pieces: 255,
            short_last: u16::MAX,
            upload_kib: 255,
            server_factor: 255,
            download_factor: 255,
            latency_ms: 255,
            seed: 3,
            steps: (0..40)
                .map(|i| Step {
                    at_s: u16::MAX,
                    host: 255,
                    kind: i,
                    length_s: 255,
                })
                .collect(),
        };
        let c = config(&spec);
        assert!(c.peers <= 6 && c.file_size <= 12 * BLOCK && c.file_size > BLOCK);
        assert!(c.disruptions.len() <= 32);
        assert!(c.disruptions.iter().all(|d| d.host <= c.peers));
        assert!(Simulation::new(c).is_ok());
    }
}
