//! What the simulator's integration tests share: a small swarm quick enough for debug builds,
//! and running one to its report.

use unchoke_sim::{SimConfig, SimReport, Simulation};

/// `peers` peers and a file of `file_mib` MiB in 64 KiB pieces, peers uploading
/// `peer_upload_kib` KiB/s, a server ten times faster, downloads as fast as the server.
pub(crate) fn small_swarm(peers: usize, file_mib: u64, peer_upload_kib: f64) -> SimConfig {
    let mut c = SimConfig::study(peers, file_mib * 1024 * 1024);
    c.piece_length = 64 * 1024;
    c.peer_upload = peer_upload_kib * 1024.0;
    c.server_upload = 10.0 * c.peer_upload;
    c.peer_download = c.server_upload;
    c
}

/// Runs `config` to the end.
pub(crate) fn run(config: SimConfig) -> SimReport {
    Simulation::new(config).expect("valid configuration").run()
}
