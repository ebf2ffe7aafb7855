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
    if peers == 0 {
        return Bounds {
            client_server: 0.0,
            p2p: 0.0,
        };
    }
    let f = file_size as f64;
    let n = peers as f64;
    let server_alone = n * f / server_upload;
    let slowest_download = f / peer_download;
    let one_server_copy = f / server_upload;
    let whole_swarm = n * f / (server_upload + n * peer_upload);
    Bounds {
        client_server: server_alone.max(slowest_download),
        p2p: one_server_copy.max(slowest_download).max(whole_swarm),
    }
}

impl SimConfig {
    /// The bounds for this configuration's swarm (see [`bounds`]). With free riders
    /// ([`SimConfig::free_riders`]) the P2P bound counts only the contributors' upload:
    /// `N·F/(u_s + (N − n_free)·u)`, since a free rider's capacity uploads nothing.
    /// With bandwidth classes ([`SimConfig::classes`]) it is the same formula over each
    /// peer's own rates: `d_min` the slowest peer's download, `Σu_i` the contributors'
    /// uploads.
    pub fn bounds(&self) -> Bounds {
        if !self.classes.is_empty() && self.peers > 0 {
            let free = self.free_rider_hosts();
            let rates = self.peer_rates();
            let f = self.file_size as f64;
            let n = self.peers as f64;
            let d_min = rates.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
            let contributors_up: f64 = rates
                .iter()
                .enumerate()
                .filter(|(i, _)| free.binary_search(&(i + 1)).is_err())
                .map(|(_, r)| r.0)
                .sum();
            let slowest_download = f / d_min;
            return Bounds {
                client_server: (n * f / self.server_upload).max(slowest_download),
                p2p: (f / self.server_upload)
                    .max(slowest_download)
                    .max(n * f / (self.server_upload + contributors_up)),
            };
        }
        let mut b = bounds(
            self.file_size,
            self.peers,
            self.server_upload,
            self.peer_upload,
            self.peer_download,
        );
        let free = self.free_rider_count();
        if free > 0 {
            let f = self.file_size as f64;
            let n = self.peers as f64;
            let contributors = (self.peers - free) as f64;
            let whole_swarm = n * f / (self.server_upload + contributors * self.peer_upload);
            b.p2p = b.p2p.max(whole_swarm);
        }
        b
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
