//! The command line of `unchoke simulate`: its clap arguments, the parsers of swarm-size
//! lists, rates, times and churn, and the textbook defaults for what the user left out.
//! Everything here is checked before any simulation starts, so a typo fails at once with
//! a clear message rather than after an hour of simulating.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use unchoke_sim::{Arrivals, BandwidthClass, Loss, study};

use super::runner::Plan;
use crate::human;

/// Most swarm sizes one study may list (a range typo such as `0..=10000000` would
/// otherwise queue ten million simulations).
const MAX_RUNS: usize = 10_000;
/// The largest swarm a study may ask for.
const MAX_PEERS: usize = 1_000_000;
/// How long peers that leave under `--churn F` stay away when no time is given.
const DEFAULT_CHURN_AWAY: Duration = Duration::from_secs(60);

/// Arguments of `unchoke simulate`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Rates take a size per second: 18KiB/s, 1.5MiB/s, 20000 (bytes/s) or \
                        8Mbit/s. As for sizes, K/KB/KiB, M/MB/MiB and G/GB/GiB are powers of \
                        1024; kbit, Mbit and Gbit are powers of 1000 bits.\n\
                        Defaults reproduce the textbook study: one peer needs F/u = 1 hour to \
                        upload the file, the server uploads u_s = 10u, peers download d = u_s.\n\n\
                        Exit status: 0 every run within its bounds; 1 failure; 2 usage \
                        error; 130/143 stopped by SIGINT/SIGTERM.\n\n\
                        Examples:\n  \
                        unchoke simulate\n  \
                        unchoke simulate --peers 0..=30,100 --out study\n  \
                        unchoke simulate --peers 10 --churn 0.2:30 --json"
)]
pub(crate) struct SimulateArgs {
    /// Swarm sizes N to simulate: a comma list of numbers and ranges a..b (b excluded) or
    /// a..=b, e.g. 0..=30,100,1000 [default: 0..=30].
    #[arg(long, value_name = "LIST", value_parser = parse_peer_list)]
    peers: Option<PeerCounts>,

    /// Size of the file F (e.g. 64MiB, 1G, 65536) [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_file_size)]
    file_size: Option<u64>,

    /// Piece length, a power of two of at least 16K [default: 64KiB].
    #[arg(long, value_name = "SIZE", value_parser = human::parse_piece_length)]
    piece_length: Option<u32>,

    /// Every peer's upload rate u [default: F / 1 hour].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    peer_upload: Option<f64>,

    /// The server's (the initial seed's) upload rate u_s [default: 10 × peer upload].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    server_upload: Option<f64>,

    /// Every peer's download rate d [default: the server upload].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    peer_download: Option<f64>,

    /// One-way latency of every host's link, e.g. 10ms, 0.2s, 0 [default: 10ms].
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    latency: Option<Duration>,

    /// Churn: a FRACTION (0 to 1) of the peers leaves once mid-download and rejoins after
    /// AWAY_SECS seconds [default away: 60].
    #[arg(long, value_name = "FRACTION[:AWAY_SECS]", value_parser = parse_churn)]
    churn: Option<ChurnArg>,

    /// Free riders: a FRACTION (0 to 1) of the peers, chosen from the seed, runs sessions
    /// that never upload (no regular upload slot, every request refused); the P2P bound
    /// then counts only the contributors' upload.
    #[arg(long, value_name = "FRACTION", value_parser = parse_free_riders)]
    free_riders: Option<f64>,

    /// Bandwidth classes for a heterogeneous swarm: a comma list of SHARE:UPLOAD:DOWNLOAD,
    /// e.g. 0.2:180KiB/s:1MiB/s,0.8:18KiB/s:180KiB/s; the shares are normalised, peers are
    /// dealt to the classes from the seed, and the P2P bound uses every peer's own rates.
    /// Replaces --peer-upload and --peer-download.
    #[arg(
        long,
        value_name = "SHARE:UP:DOWN,...",
        value_parser = parse_classes,
        conflicts_with_all = ["peer_upload", "peer_download"]
    )]
    classes: Option<ClassesArg>,

    /// When the peers arrive: `flash` (all at once) or `poisson:SECS` (one after another,
    /// exponential gaps of mean SECS seconds) [default: flash].
    #[arg(long, value_name = "flash|poisson:SECS", value_parser = parse_arrivals)]
    arrivals: Option<Arrivals>,

    /// The server leaves for good once the online peers hold every piece between them
    /// (the swarm must then finish on its own).
    #[arg(long)]
    server_departs: bool,

    /// Packet loss on every path, a probability from 0 to below 1 (e.g. 0.01): DHT
    /// datagrams are lost with it, and each TCP connection's throughput is capped at what
    /// TCP sustains under it (the Mathis formula) [default: 0].
    #[arg(long, value_name = "P", value_parser = parse_packet_loss)]
    packet_loss: Option<f64>,

    /// The most extra one-way delay a DHT datagram may take, drawn uniformly (so datagrams
    /// are reordered), e.g. 50ms [default: 0].
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    jitter: Option<Duration>,

    /// Each peer seeds this long after it completes, then leaves for good, e.g. 0, 30s,
    /// 10m [default: every peer stays to the end].
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    seed_time: Option<Duration>,

    /// Peers find each other through the DHT (BEP 5) instead of the tracker: every host
    /// runs a DHT node joining through the server's.
    #[arg(long)]
    dht: bool,

    /// Seed of every random choice: the same seed gives the same results [default: 1].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Directory for study.csv and study.svg (created if missing).
    #[arg(long, value_name = "DIR", default_value = "simulate-out")]
    pub(super) out: PathBuf,

    /// Simulations to run at once [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// One JSON object per swarm size on stdout as it finishes, then a summary object.
    #[arg(long, conflicts_with = "quiet")]
    pub(super) json: bool,

    /// Only the summary (and errors).
    #[arg(short, long)]
    pub(super) quiet: bool,
}

impl SimulateArgs {
    /// What every run of the study shares: the user's choices, the rates they left out
    /// following the textbook.
    pub(super) fn plan(&self) -> Plan {
        let file_size = self.file_size.unwrap_or(study::DEFAULT_FILE_SIZE);
        let (server_upload, peer_upload, peer_download) = resolve_rates(
            file_size,
            self.server_upload,
            self.peer_upload,
            self.peer_download,
        );
        Plan {
            file_size,
            piece_length: self.piece_length,
            server_upload,
            peer_upload,
            peer_download,
            latency: self.latency,
            churn: self.churn,
            server_departs: self.server_departs,
            free_riders: self.free_riders.unwrap_or(0.0),
            dht: self.dht,
            seed: self.seed,
            classes: self.classes.clone().map(|c| c.0).unwrap_or_default(),
            arrivals: self.arrivals.unwrap_or_default(),
            seed_time: self.seed_time,
            loss: Loss {
                packet_loss: self.packet_loss.unwrap_or(0.0),
                jitter: self.jitter.unwrap_or(Duration::ZERO),
            },
        }
    }

    /// The swarm sizes to simulate, ascending and without duplicates; an error when there
    /// are none.
    pub(super) fn peer_counts(&self) -> Result<Vec<usize>, String> {
        let peers = self
            .peers
            .clone()
            .map_or_else(study::default_peer_counts, |p| p.0);
        if peers.is_empty() {
            return Err("--peers lists no swarm size".into());
        }
        Ok(peers)
    }

    /// How many simulations to run at once for `runs` swarm sizes: `--jobs` or one per
    /// CPU, but never more threads than runs.
    pub(super) fn jobs(&self, runs: usize) -> usize {
        let jobs = self.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            usize::from,
        );
        jobs.min(runs).max(1)
    }
}

/// The parsed `--peers` list: sorted, without duplicates (a newtype so clap takes the
/// whole list as one value).
#[derive(Clone, Debug, PartialEq)]
struct PeerCounts(Vec<usize>);

/// The parsed `--churn` value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct ChurnArg {
    /// The share of the peers that leave, from 0 to 1.
    pub(super) fraction: f64,
    /// How long they stay away before rejoining.
    pub(super) away: Duration,
}

fn parse_peer_list(text: &str) -> Result<PeerCounts, String> {
    let mut counts = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let number = |s: &str| -> Result<usize, String> {
            let n = s.trim().parse::<usize>().map_err(|_| {
                format!("{s:?} is not a number of peers (expected e.g. 4, 0..=30 or 0..=30,100)")
            })?;
            if n > MAX_PEERS {
                return Err(format!("{n} peers: at most {MAX_PEERS} per swarm"));
            }
            Ok(n)
        };
        let (lo, hi) = if let Some((a, b)) = item.split_once("..=") {
            (number(a)?, number(b)?)
        } else if let Some((a, b)) = item.split_once("..") {
            let (a, b) = (number(a)?, number(b)?);
            if b == 0 {
                return Err(format!("the range {item} is empty"));
            }
            (a, b - 1)
        } else {
            let n = number(item)?;
            (n, n)
        };
        if lo > hi {
            return Err(format!("the range {item} is empty"));
        }
        if hi - lo >= MAX_RUNS || counts.len() + (hi - lo) >= MAX_RUNS {
            return Err(format!("--peers lists more than {MAX_RUNS} swarm sizes"));
        }
        counts.extend(lo..=hi);
    }
    if counts.is_empty() {
        return Err("lists no swarm size".into());
    }
    counts.sort_unstable();
    counts.dedup();
    Ok(PeerCounts(counts))
}

fn parse_file_size(text: &str) -> Result<u64, String> {
    human::parse_nonzero_size(text, "the file")
}

/// Splits `12.5MiB/s` into the number and the rest.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// A non-negative decimal number: digits with at most one point (no sign, exponent, `inf`
/// or `nan`, which `f64::from_str` would accept).
fn parse_decimal(digits: &str) -> Option<f64> {
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    digits.parse::<f64>().ok()
}

/// Parses a rate in bytes per second: `18KiB/s`, `1.5M`, `20000`, `8Mbit/s`.
fn parse_rate(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("ps"))
        .unwrap_or(trimmed);
    let (digits, unit) = split_number(body);
    let Some(value) = parse_decimal(digits) else {
        return Err(format!(
            "{text:?} is not a rate (expected e.g. 18KiB/s, 1.5MiB/s, 8Mbit/s or 20000 bytes/s)"
        ));
    };
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "bit" => 1.0 / 8.0,
        "kbit" => 1e3 / 8.0,
        "mbit" => 1e6 / 8.0,
        "gbit" => 1e9 / 8.0,
        other => {
            return Err(format!(
                "unknown rate unit {other:?} in {text:?} (use e.g. KiB/s, MiB/s, Mbit/s)"
            ));
        }
    };
    let rate = value * factor;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("{text:?}: a rate must be positive and finite"));
    }
    Ok(rate)
}

/// Parses a time: `10ms`, `250us`, `1.5s`, `2m`, `1h`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (digits, unit) = split_number(trimmed);
    let Some(value) = parse_decimal(digits) else {
        return Err(format!(
            "{text:?} is not a time (expected e.g. 10ms, 1.5s, 2m; a bare number is seconds)"
        ));
    };
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown time unit {other:?} in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is too long a time"))
}

/// Parses `FRACTION[:AWAY_SECS]`.
fn parse_churn(text: &str) -> Result<ChurnArg, String> {
    let (fraction_text, away) = match text.split_once(':') {
        Some((f, a)) => (f, parse_duration(a)?),
        None => (text, DEFAULT_CHURN_AWAY),
    };
    let fraction = parse_decimal(fraction_text.trim())
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| {
            format!(
                "the fraction of peers that leave must be a number from 0 to 1 (e.g. 0.5 or \
                 0.5:60), not {fraction_text:?}"
            )
        })?;
    Ok(ChurnArg { fraction, away })
}

/// Parses the `--free-riders` fraction.
fn parse_free_riders(text: &str) -> Result<f64, String> {
    parse_decimal(text.trim())
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| {
            format!(
                "the fraction of peers that free-ride must be a number from 0 to 1 (e.g. \
                 0.2), not {text:?}"
            )
        })
}

/// Parses the `--packet-loss` probability.
fn parse_packet_loss(text: &str) -> Result<f64, String> {
    parse_decimal(text.trim())
        .filter(|p| (0.0..1.0).contains(p))
        .ok_or_else(|| {
            format!("packet loss must be a probability from 0 to below 1 (e.g. 0.01), not {text:?}")
        })
}

/// Parses `flash` or `poisson:SECS` (SECS a positive number of seconds, at most a day).
fn parse_arrivals(text: &str) -> Result<Arrivals, String> {
    let text = text.trim();
    if text == "flash" {
        return Ok(Arrivals::FlashCrowd);
    }
    let secs = text
        .strip_prefix("poisson:")
        .and_then(|s| parse_decimal(s.trim()))
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .ok_or_else(|| {
            format!(
                "arrivals are `flash` or `poisson:SECS` with SECS the mean seconds between \
                 two arrivals (above 0, at most 86400), not {text:?}"
            )
        })?;
    Ok(Arrivals::Poisson {
        mean_gap: Duration::from_secs_f64(secs),
    })
}

/// The bandwidth classes of `--classes`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ClassesArg(Vec<BandwidthClass>);

/// Parses `SHARE:UPLOAD:DOWNLOAD[,…]`, e.g. `0.2:180KiB/s:1MiB/s,0.8:18KiB/s:180KiB/s`.
fn parse_classes(text: &str) -> Result<ClassesArg, String> {
    let classes = text
        .split(',')
        .map(|part| {
            let fields: Vec<&str> = part.split(':').collect();
            let [share, up, down] = fields[..] else {
                return Err(format!(
                    "a bandwidth class is SHARE:UPLOAD:DOWNLOAD (e.g. 0.2:180KiB/s:1MiB/s), \
                     not {part:?}"
                ));
            };
            let share = parse_decimal(share.trim())
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    format!("a class's share must be a positive number, not {share:?}")
                })?;
            Ok(BandwidthClass {
                share,
                upload: parse_rate(up)?,
                download: parse_rate(down)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if classes.len() > unchoke_sim::MAX_CLASSES {
        return Err(format!(
            "{} bandwidth classes: at most {}",
            classes.len(),
            unchoke_sim::MAX_CLASSES
        ));
    }
    Ok(ClassesArg(classes))
}

/// The rates of the study: `(server_upload, peer_upload, peer_download)` in bytes per
/// second. What the user did not give follows the textbook: `u = F / 1 h`, `u_s = 10·u`,
/// `d = u_s`.
fn resolve_rates(
    file_size: u64,
    server_upload: Option<f64>,
    peer_upload: Option<f64>,
    peer_download: Option<f64>,
) -> (f64, f64, f64) {
    let (default_server, default_peer, _) = study::default_rates(file_size);
    let peer_upload = peer_upload.unwrap_or(default_peer);
    // The study's server-to-peer ratio (10), kept when only the peers' rate is given.
    let server_upload = server_upload.unwrap_or(peer_upload * default_server / default_peer);
    (
        server_upload,
        peer_upload,
        peer_download.unwrap_or(server_upload),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists() {
        assert_eq!(parse_peer_list("5"), Ok(PeerCounts(vec![5])));
        assert_eq!(
            parse_peer_list("0..=3, 10,2"),
            Ok(PeerCounts(vec![0, 1, 2, 3, 10]))
        );
        assert_eq!(parse_peer_list("1..4"), Ok(PeerCounts(vec![1, 2, 3])));
        assert_eq!(
            parse_peer_list("0..=30,100,1000").map(|p| p.0.len()),
            Ok(33)
        );
        assert_eq!(parse_peer_list("3..=3"), Ok(PeerCounts(vec![3])));
        for bad in [
            "x", "", "1,,2", "4..2", "3..3", "0..0", "-1", "1..=x", "2..=1",
        ] {
            assert!(parse_peer_list(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_peer_list("0..=10000000").is_err());
        assert!(parse_peer_list("2000000").is_err());
        let e = parse_peer_list("x").expect_err("x");
        assert!(e.contains("not a number of peers"), "{e}");
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("20000"), Ok(20000.0));
        assert_eq!(parse_rate("18KiB/s"), Ok(18.0 * 1024.0));
        assert_eq!(parse_rate("1MB/s"), Ok(1024.0 * 1024.0));
        assert_eq!(parse_rate("1.5mib"), Ok(1.5 * 1024.0 * 1024.0));
        assert_eq!(parse_rate("8Mbit/s"), Ok(1e6));
        assert_eq!(parse_rate("100 K/s"), Ok(102_400.0));
        for bad in [
            "0",
            "0KiB/s",
            "-5",
            "",
            "/s",
            "fast",
            "1e9",
            "inf",
            "nan",
            "1.2.3",
            "5 furlongs/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_rate(&"9".repeat(400)).is_err(),
            "infinite rate accepted"
        );
        assert!(parse_rate("0").expect_err("0").contains("positive"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "ms", "-1s", "10 parsecs", "1e3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration(&format!("{}h", "9".repeat(30))).is_err());
    }

    #[test]
    fn churn() {
        assert_eq!(
            parse_churn("0.5"),
            Ok(ChurnArg {
                fraction: 0.5,
                away: DEFAULT_CHURN_AWAY
            })
        );
        assert_eq!(
            parse_churn("0.25:30"),
            Ok(ChurnArg {
                fraction: 0.25,
                away: Duration::from_secs(30)
            })
        );
        assert_eq!(
            parse_churn("1:500ms").map(|c| c.away),
            Ok(Duration::from_millis(500))
        );
        for bad in ["2", "-0.1", "1.01", "x", "0.5:", "0.5:x", ":5"] {
            assert!(parse_churn(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_churn("2").expect_err("2").contains("from 0 to 1"));
    }

    #[test]
    fn packet_loss() {
        assert_eq!(parse_packet_loss("0.01"), Ok(0.01));
        assert_eq!(parse_packet_loss("0"), Ok(0.0));
        for bad in ["1", "-0.1", "x", "NaN"] {
            let e = parse_packet_loss(bad).expect_err(bad);
            assert!(e.contains("probability"), "{e}");
        }
    }

    #[test]
    fn free_riders() {
        assert_eq!(parse_free_riders("0.2"), Ok(0.2));
        assert_eq!(parse_free_riders("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "x", "", "nan"] {
            let e = parse_free_riders(bad).expect_err(bad);
            assert!(e.contains("from 0 to 1"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn arrivals() {
        assert_eq!(parse_arrivals("flash"), Ok(Arrivals::FlashCrowd));
        assert_eq!(
            parse_arrivals("poisson:2.5"),
            Ok(Arrivals::Poisson {
                mean_gap: Duration::from_millis(2500)
            })
        );
        for bad in [
            "poisson:0",
            "poisson:-1",
            "poisson:x",
            "poisson:",
            "poisson:100000",
            "uniform",
        ] {
            let e = parse_arrivals(bad).expect_err(bad);
            assert!(e.contains("poisson:SECS"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn bandwidth_classes() {
        let ClassesArg(classes) =
            parse_classes("0.2:180KiB/s:1MiB/s, 0.8:18KiB/s:180KiB/s").expect("valid");
        assert_eq!(classes.len(), 2);
        assert_eq!(classes[0].share, 0.2);
        assert_eq!(classes[0].upload, 180.0 * 1024.0);
        assert_eq!(classes[0].download, 1024.0 * 1024.0);
        assert_eq!(classes[1].upload, 18.0 * 1024.0);
        for bad in [
            "0.2:180KiB/s",
            "0:1K/s:1K/s",
            "-1:1K/s:1K/s",
            "x:1K/s:1K/s",
            "1:fast:1K/s",
            "",
        ] {
            let e = parse_classes(bad).expect_err(bad);
            assert!(e.contains("class") || e.contains("rate"), "{bad:?}: {e}");
        }
        let many = vec!["1:1K/s:1K/s"; unchoke_sim::MAX_CLASSES + 1].join(",");
        assert!(
            parse_classes(&many)
                .expect_err("too many")
                .contains("at most")
        );
    }

    #[test]
    fn sizes_and_pieces() {
        assert_eq!(parse_file_size("2MiB"), Ok(2 << 20));
        assert!(parse_file_size("0").is_err());
        assert_eq!(human::parse_piece_length("64KiB"), Ok(65536));
        assert!(human::parse_piece_length("48K").is_err());
        assert!(human::parse_piece_length("8K").is_err());
        assert!(human::parse_piece_length("8G").is_err());
    }

    #[test]
    fn default_rates_follow_the_textbook() {
        let f = study::DEFAULT_FILE_SIZE;
        let (us, u, d) = resolve_rates(f, None, None, None);
        assert!((f as f64 / u - 3600.0).abs() < 1e-6);
        assert!((us - 10.0 * u).abs() < 1e-6);
        assert_eq!(d, us);
        // Only the peers' upload given: the server uploads ten times that, peers download
        // as fast as the server uploads.
        assert_eq!(
            resolve_rates(f, None, Some(1000.0), None),
            (10_000.0, 1000.0, 10_000.0)
        );
        assert_eq!(
            resolve_rates(f, Some(5000.0), Some(1000.0), None),
            (5000.0, 1000.0, 5000.0)
        );
        assert_eq!(
            resolve_rates(f, Some(5000.0), Some(1000.0), Some(700.0)),
            (5000.0, 1000.0, 700.0)
        );
    }
}
