//! What a simulation reports: its progress while it runs and the outcome at the end.

use std::time::Duration;

use super::{Role, Simulation};
use crate::SimReport;
use unchoke_core::bitfield::Bitfield;

impl Simulation {
    /// The outcome so far (final once [`Simulation::run_for`] returned `true`).
    pub fn report(&self) -> SimReport {
        let peers = self.config.peers;
        let bounds = self.config.bounds();
        let all_done = self.completed == peers
            && self
                .hosts
                .iter()
                .filter(|h| h.role == Role::Peer)
                .all(|h| h.have.is_full());
        let complete = all_done && self.violation_count == 0;
        let completion_times: Vec<Option<Duration>> = self
            .hosts
            .iter()
            .filter(|h| h.role == Role::Peer)
            .map(|h| h.completed_at.map(Duration::from_micros))
            .collect();
        let distribution_time = complete.then(|| {
            completion_times
                .iter()
                .flatten()
                .copied()
                .max()
                .unwrap_or(Duration::ZERO)
        });
        let ratio = distribution_time
            .filter(|_| bounds.p2p > 0.0)
            .map(|d| d.as_secs_f64() / bounds.p2p);
        let server_uploaded = self.hosts.first().map_or(0, |h| h.uploaded);
        let peers_uploaded: u64 = self.hosts.iter().skip(1).map(|h| h.uploaded).sum();
        let downloaded: u64 = self.hosts.iter().skip(1).map(|h| h.downloaded).sum();
        let useful: u64 = self
            .hosts
            .iter()
            .skip(1)
            .map(|h| self.bytes_of(&h.have))
            .sum();
        // Free riders' capacity uploads nothing by design: count the contributors' only.
        let capacity = self.contributor_capacity();
        // The swarm's own time: the final close is not part of the distribution.
        let stopped = self.stopped_at.unwrap_or(self.now);
        let span = distribution_time.map_or(stopped as f64 / 1e6, |d| d.as_secs_f64());
        let utilisation = if span > 0.0 {
            (server_uploaded + peers_uploaded) as f64 / (capacity * span)
        } else {
            0.0
        };
        // Capacity-time during which hosts had something to upload.
        let busy_capacity: f64 = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.free_rider)
            .map(|(i, h)| {
                let up = match h.role {
                    Role::Server => self.config.server_upload,
                    Role::Peer => h.up,
                };
                let busy = self.net.busy_time(i, stopped) as f64 / 1e6;
                up * busy.min(span)
            })
            .sum();
        let upload_busy = if span > 0.0 {
            busy_capacity / (capacity * span)
        } else {
            0.0
        };
        let mut violations = self.violations.clone();
        if self.violation_count > violations.len() {
            violations.push(format!(
                "… and {} more",
                self.violation_count - violations.len()
            ));
        }
        let mut digest = Fnv::default();
        for h in &self.hosts {
            digest.add(h.completed_at.unwrap_or(u64::MAX));
            digest.add(h.uploaded);
            digest.add(h.downloaded);
        }
        digest.add(self.events);
        digest.add(self.blocks);
        let p = &self.policies;
        for count in [
            p.peer_connected,
            p.peer_disconnected,
            p.slow_reader_drops,
            p.connect_failed,
            p.connect_timeouts,
            p.cancelled_dials,
            p.late_accepts_dropped,
            p.sent_reports,
            p.sent_bytes,
            p.saves,
            p.closes,
            p.drained,
        ] {
            digest.add(count);
        }
        for &took in &self.drain_times {
            digest.add(took);
        }
        digest.add(self.now);
        SimReport {
            peers,
            complete,
            distribution_time,
            download_times: self
                .hosts
                .iter()
                .filter(|h| h.role == Role::Peer)
                .map(|h| {
                    h.completed_at
                        .map(|c| Duration::from_micros(c.saturating_sub(h.arrived_at)))
                })
                .collect(),
            completion_times,
            bounds,
            ratio,
            utilisation,
            upload_busy,
            server_uploaded,
            peers_uploaded,
            wasted: downloaded.saturating_sub(useful),
            blocks: self.blocks,
            events: self.events,
            datagrams: self.datagrams,
            datagrams_lost: self.datagrams_lost,
            tracker_announces: self.tracker_announces,
            hash_failures: self.hash_failures,
            bans: self.bans,
            leaves: self.leaves,
            rejoins: self.rejoins,
            violations,
            policies: self.policies.clone(),
            digest: digest.0,
            end: Duration::from_micros(stopped),
            samples: self.samples.clone(),
            steady: self.steady(),
            free_riding: self.free_riding(),
            classes: self.class_outcomes(),
        }
    }

    pub(super) fn bytes_of(&self, have: &Bitfield) -> u64 {
        let count = u64::from(have.count_ones());
        let piece = u64::from(self.config.piece_length);
        let pieces = u64::from(self.payload.piece_count());
        let last = self.config.file_size - (pieces - 1) * piece;
        if pieces > 0 && have.get((pieces - 1) as u32) {
            (count - 1) * piece + last
        } else {
            count * piece
        }
    }
}

/// FNV-1a over 64-bit words: a fixed, platform-independent fingerprint.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(super) fn add(&mut self, word: u64) {
        for b in word.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
