//! The distribution-time study: the theoretical lower bounds of client-server and P2P
//! distribution, and the default parameters that reproduce the textbook comparison.
//!
//! With a server of upload rate `u_s`, `N` peers of upload `u` and download `d`, and a file
//! of `F` bytes:
//! - client-server: `D_cs = max{N·F/u_s, F/d_min}` — the server alone sends every copy;
//! - P2P: `D_p2p = max{F/u_s, F/d_min, N·F/(u_s + Σu_i)}` — the server must send at least one
//!   copy, the slowest peer must receive one, and all `N` copies must be uploaded by the whole
//!   swarm's capacity together.

use std::time::Duration;

use super::SimConfig;

/// The two lower bounds for one swarm size, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// `max{N·F/u_s, F/d_min}`; 0 for `N = 0`.
    pub client_server: f64,
    /// `max{F/u_s, F/d_min, N·F/(u_s + Σu_i)}`; 0 for `N = 0`.
    pub p2p: f64,
}

/// The bounds for `peers` peers that all upload `peer_upload` and download `peer_download`
/// bytes per second, a server uploading `server_upload`, and a file of `file_size` bytes.
pub fn bounds(
    file_size: u64,
    peers: usize,
    server_upload: f64,
    peer_upload: f64,
    peer_download: f64,
) -> Bounds {
    swarm_bounds(
        file_size,
        peers,
        server_upload,
        peers as f64 * peer_upload,
        peer_download,
    )
}

/// The one formula behind every bound: `peers` peers whose uploads add up to `peers_upload`
/// (`Σu_i`) and the slowest of which downloads `slowest_download` (`d_min`).
fn swarm_bounds(
    file_size: u64,
    peers: usize,
    server_upload: f64,
    peers_upload: f64,
    slowest_download: f64,
) -> Bounds {
    if peers == 0 {
        return Bounds {
            client_server: 0.0,
            p2p: 0.0,
        };
    }
    let f = file_size as f64;
    let n = peers as f64;
    let server_alone = n * f / server_upload;
    let one_download = f / slowest_download;
    let one_server_copy = f / server_upload;
    let whole_swarm = n * f / (server_upload + peers_upload);
    Bounds {
        client_server: server_alone.max(one_download),
        p2p: one_server_copy.max(one_download).max(whole_swarm),
    }
}

impl SimConfig {
    /// The bounds for this configuration's swarm (see [`bounds`]), over each peer's own
    /// rates: `d_min` the slowest peer's download (bandwidth classes,
    /// [`SimConfig::classes`]), and `Σu_i` the uploads of the contributors only — a free
    /// rider's capacity uploads nothing ([`SimConfig::free_riders`]).
    pub fn bounds(&self) -> Bounds {
        let free = self.free_rider_hosts();
        let (peers_upload, slowest_download) = if self.classes.is_empty() {
            // Kept as a product, not a sum of equal terms, so the default study's figures
            // stay the same to the last bit.
            let contributors = (self.peers - free.len()) as f64;
            (contributors * self.peer_upload, self.peer_download)
        } else {
            let rates = self.peer_rates();
            let up = rates
                .iter()
                .enumerate()
                .filter(|(i, _)| free.binary_search(&(i + 1)).is_err())
                .map(|(_, r)| r.0)
                .sum();
            let d_min = rates.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
            (up, d_min)
        };
        swarm_bounds(
            self.file_size,
            self.peers,
            self.server_upload,
            peers_upload,
            slowest_download,
        )
    }
}

/// The default study's file: 64 MiB in 64 KiB pieces (1,024 pieces).
pub const DEFAULT_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// The default study's piece length.
pub const DEFAULT_PIECE_LENGTH: u32 = 64 * 1024;
/// `F/u` in the default study: one peer alone needs one hour to upload the file.
pub const DEFAULT_PEER_UPLOAD_TIME: Duration = Duration::from_secs(3600);
/// `u_s = 10·u` in the default study.
pub const DEFAULT_SERVER_TO_PEER_UPLOAD: f64 = 10.0;
/// The swarm sizes of the default study: 0, 1, 2, …, 30.
pub fn default_peer_counts() -> Vec<usize> {
    (0..=30).collect()
}

/// The default study for a file of `file_size` bytes: `u = F / 1 h`, `u_s = 10·u`,
/// `d = u_s` (so `d_min ≥ u_s`).
pub fn default_rates(file_size: u64) -> (f64, f64, f64) {
    let peer_upload = file_size as f64 / DEFAULT_PEER_UPLOAD_TIME.as_secs_f64();
    let server_upload = DEFAULT_SERVER_TO_PEER_UPLOAD * peer_upload;
    (server_upload, peer_upload, server_upload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_comparison() {
        let f = DEFAULT_FILE_SIZE;
        let (us, u, d) = default_rates(f);
        // One peer: the server's upload binds both ways (F/u_s = 360 s).
        let b1 = bounds(f, 1, us, u, d);
        assert!((b1.client_server - 360.0).abs() < 1e-6, "{b1:?}");
        assert!((b1.p2p - 360.0).abs() < 1e-6, "{b1:?}");
        // Thirty peers: client-server grows linearly, P2P stays under an hour.
        let b30 = bounds(f, 30, us, u, d);
        assert!((b30.client_server - 30.0 * 360.0).abs() < 1e-6);
        assert!((b30.p2p - 30.0 * 3600.0 / 40.0).abs() < 1e-6, "{b30:?}");
        // Any N: the P2P bound stays below F/u = 1 hour.
        for n in [100, 1000, 100_000] {
            assert!(bounds(f, n, us, u, d).p2p < 3600.0);
        }
        assert_eq!(bounds(f, 0, us, u, d).p2p, 0.0);
    }

    #[test]
    fn slow_download_binds() {
        let b = bounds(1000, 2, 1000.0, 1000.0, 10.0);
        assert!((b.p2p - 100.0).abs() < 1e-9);
        assert!((b.client_server - 100.0).abs() < 1e-9);
    }
}
