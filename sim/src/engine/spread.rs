//! Observing the swarm over time: the spread of the pieces' copies among the peers and the
//! upload used, sampled every [`SAMPLE_INTERVAL`] of virtual time, and what free riders got.
//!
//! Sampling only reads the simulation's state: it is done in the event loop as the clock
//! passes each sample's time, so it adds no event, and the run (its digest included) is
//! the same with or without it.

use std::time::Duration;

use super::{Role, Simulation};
use crate::{ClassOutcome, FreeRiding, SAMPLE_INTERVAL, Sample, Steady};

/// The sampling interval in microseconds.
pub(super) const SAMPLE_EVERY: u64 = SAMPLE_INTERVAL.as_micros() as u64;

impl Simulation {
    /// Takes every sample due at or before `at`, before the clock moves on to `at`: the
    /// state is constant between events, so a sample at `t` shows it after every event
    /// before `t`. Nothing is sampled once the swarm stopped (the final close is not part
    /// of the distribution).
    pub(super) fn sample_until(&mut self, at: u64) {
        while self.next_sample <= at && self.stopped_at.is_none() {
            let sample = self.sample(self.next_sample);
            self.samples.push(sample);
            self.next_sample += SAMPLE_EVERY;
        }
    }

    /// The swarm now, labelled with time `at`. O(pieces + hosts).
    fn sample(&mut self, at: u64) -> Sample {
        let min_copies = self.availability.iter().copied().min().unwrap_or(0);
        let max_copies = self.availability.iter().copied().max().unwrap_or(0);
        let total: f64 = self.availability.iter().map(|&c| f64::from(c)).sum();
        let pieces = self.availability.len();
        let entropy = if total <= 0.0 {
            0.0
        } else if pieces <= 1 {
            1.0
        } else {
            let h: f64 = self
                .availability
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| {
                    let p = f64::from(c) / total;
                    -p * p.ln()
                })
                .sum();
            (h / (pieces as f64).ln()).clamp(0.0, 1.0)
        };
        if self.completed == 0 && self.config.free_riders > 0.0 {
            let peers = || self.hosts.iter().filter(|h| h.role == Role::Peer);
            let free: u64 = peers().filter(|h| h.free_rider).map(|h| h.downloaded).sum();
            let all: u64 = peers().map(|h| h.downloaded).sum();
            self.leeching_received = Some((free, all));
        }
        // Payload moved up to `at`: delivered units plus what has flowed of those still on
        // their links, so an interval is credited with exactly the bytes it moved.
        let uploaded = self.hosts.iter().map(|h| h.uploaded).sum::<u64>() as f64
            + self.net.payload_in_flight(at);
        let sent = (uploaded - self.sampled_uploaded).max(0.0);
        self.sampled_uploaded = uploaded;
        let capacity = self.contributor_capacity() * SAMPLE_INTERVAL.as_secs_f64();
        Sample {
            at: Duration::from_micros(at),
            min_copies,
            max_copies,
            entropy,
            utilisation: if capacity > 0.0 { sent / capacity } else { 0.0 },
        }
    }

    /// The upload capacity of the server and every peer that is not a free rider, bytes
    /// per second.
    pub(super) fn contributor_capacity(&self) -> f64 {
        if !self.config.classes.is_empty() {
            let peers: f64 = self
                .hosts
                .iter()
                .filter(|h| h.role == Role::Peer && !h.free_rider)
                .map(|h| h.up)
                .sum();
            return self.config.server_upload + peers;
        }
        let contributors = self.config.peers - self.config.free_rider_count();
        self.config.server_upload + contributors as f64 * self.config.peer_upload
    }

    /// The samples' averages over the steady phase (see [`Steady`]).
    pub(super) fn steady(&self) -> Option<Steady> {
        let first_done = self
            .hosts
            .iter()
            .filter_map(|h| h.completed_at)
            .min()
            .map(Duration::from_micros);
        let start = self.samples.iter().position(|s| s.min_copies >= 1)?;
        let phase: Vec<&Sample> = self.samples[start..]
            .iter()
            .take_while(|s| first_done.is_none_or(|d| s.at <= d))
            .collect();
        let (first, last) = (phase.first()?, phase.last()?);
        let n = phase.len() as f64;
        let mean = |f: fn(&Sample) -> f64| phase.iter().map(|s| f(s)).sum::<f64>() / n;
        Some(Steady {
            from: first.at,
            until: last.at,
            samples: phase.len(),
            entropy: mean(|s| s.entropy),
            min_copies: mean(|s| f64::from(s.min_copies)),
            max_copies: mean(|s| f64::from(s.max_copies)),
            utilisation: mean(|s| s.utilisation),
        })
    }

    /// What the free riders received, against the contributors (`None` without free
    /// riders).
    pub(super) fn free_riding(&self) -> Option<FreeRiding> {
        let peers = || self.hosts.iter().filter(|h| h.role == Role::Peer);
        let free_riders = peers().filter(|h| h.free_rider).count();
        if free_riders == 0 {
            return None;
        }
        let received: u64 = peers().filter(|h| h.free_rider).map(|h| h.downloaded).sum();
        let all: u64 = peers().map(|h| h.downloaded).sum();
        let uploaded = peers().filter(|h| h.free_rider).map(|h| h.uploaded).sum();
        let median = |free: bool| {
            let mut times: Vec<u64> = peers()
                .filter(|h| h.free_rider == free)
                .filter_map(|h| h.completed_at)
                .collect();
            times.sort_unstable();
            times
                .get(times.len() / 2)
                .copied()
                .map(Duration::from_micros)
        };
        Some(FreeRiding {
            free_riders,
            received,
            share: if all > 0 {
                received as f64 / all as f64
            } else {
                0.0
            },
            uploaded,
            share_while_leeching: self
                .leeching_received
                .filter(|&(_, all)| all > 0)
                .map(|(free, all)| free as f64 / all as f64),
            median_completion: median(true),
            contributor_median_completion: median(false),
        })
    }

    /// How each bandwidth class fared (empty without classes).
    pub(super) fn class_outcomes(&self) -> Vec<ClassOutcome> {
        self.config
            .classes
            .iter()
            .enumerate()
            .map(|(k, class)| {
                let members = || self.hosts.iter().filter(move |h| h.class == Some(k));
                let mut times: Vec<u64> = members().filter_map(|h| h.completed_at).collect();
                times.sort_unstable();
                ClassOutcome {
                    peers: members().count(),
                    upload: class.upload,
                    download: class.download,
                    median_completion: times
                        .get(times.len() / 2)
                        .copied()
                        .map(Duration::from_micros),
                    uploaded: members().map(|h| h.uploaded).sum(),
                    downloaded: members().map(|h| h.downloaded).sum(),
                }
            })
            .collect()
    }
}
