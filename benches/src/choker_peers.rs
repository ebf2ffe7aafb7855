//! A torrent's peers as the choker sees them each round, for the `choker` bench.
//!
//! Keys ascend, as the torrent hands them over (its peers live in a `BTreeMap` by
//! connection id, and keys are given out in connection order). 70 % of the peers are
//! interested in us; 10 % have been waiting on our requests for two minutes without a block
//! (snubbed); 5 % connected in the last 30 s (they weigh more in the optimistic draw); rates
//! are spread over 0–10 MB/s, with a quarter of the peers at 0 B/s (the ties the choker
//! breaks at random).

use unchoke_core::choker::PeerChokeInfo;
use unchoke_core::time::Instant;

/// When the snapshot is taken: the choker bench starts its rounds here.
pub const NOW: Instant = Instant::from_secs(3_600);

/// `n` peers (keys `0..n`) as of [`NOW`]; deterministic for a given `seed`.
pub fn peers(n: usize, seed: u64) -> Vec<PeerChokeInfo> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let seconds_ago = |s: u64| Instant::from_micros(NOW.as_micros() - s * 1_000_000);
    (0..n)
        .map(|i| {
            let rate = |rng: &mut fastrand::Rng| {
                if rng.u32(..4) == 0 {
                    0
                } else {
                    rng.u64(..10_000_000)
                }
            };
            let snubbed = rng.u32(..10) == 0;
            let new = rng.u32(..20) == 0;
            PeerChokeInfo {
                key: u32::try_from(i).unwrap_or(u32::MAX),
                interested: rng.u32(..10) < 7,
                download_rate: if snubbed { 0 } else { rate(&mut rng) },
                upload_rate: rate(&mut rng),
                wasted_slot: false,
                connected_at: if new {
                    seconds_ago(rng.u64(..30))
                } else {
                    seconds_ago(rng.u64(60..3_600))
                },
                last_block_received: snubbed.then(|| seconds_ago(180)),
                requests_outstanding_since: snubbed.then(|| seconds_ago(120)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn shares_are_as_documented() {
        let p = peers(10_000, 1);
        let share = |f: &dyn Fn(&PeerChokeInfo) -> bool| {
            p.iter().filter(|x| f(x)).count() as f64 / p.len() as f64
        };
        let snub = Duration::from_secs(60);
        assert!((0.67..0.73).contains(&share(&|x| x.interested)));
        assert!((0.08..0.12).contains(&share(&|x| x.is_snubbed(NOW, snub))));
        let new = |x: &PeerChokeInfo| NOW.saturating_duration_since(x.connected_at) < snub / 2;
        assert!((0.03..0.07).contains(&share(&new)));
        assert!(p.windows(2).all(|w| w[0].key < w[1].key));
    }
}
