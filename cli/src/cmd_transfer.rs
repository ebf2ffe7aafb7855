//! `unchoke download` and `unchoke seed`: run one torrent on a driver until it is done (or
//! interrupted), reporting progress as a bar, plain lines or JSON.
//!
//! `download` also takes a magnet link: the metadata then comes from peers (BEP 9) — those
//! of the link's `x.pe`, its `tr` trackers, `--peer`, or the DHT — and is verified against
//! the info-hash before anything is downloaded.
//!
//! Exit status: `download` exits 0 only once every piece is verified; 2 for a usage error
//! (including a `--peer`, `--dht-bootstrap` or `--tracker` that cannot be used). Ctrl-C (or
//! SIGTERM) stops cleanly at any moment — during the check of existing data, the metadata
//! fetch or the transfer: pending writes finish, resume data is saved and its place is
//! printed, and the exit status is 130 (143 for SIGTERM), so the next run starts where this
//! one stopped. A second Ctrl-C exits at once.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::CliError;
use std::time::{Duration, Instant};

use unchoke_core::magnet::Magnet;
use unchoke_core::metainfo::{Metainfo, ShapeLimits};
use unchoke_core::session::{CryptoLevel, EncryptionPolicy, Event, Transport, metainfo_tiers};
use unchoke_driver::dht_node::DhtSettings;
use unchoke_driver::tls::{TrustRoots, load_ca_file};
use unchoke_driver::{AddMagnet, AddTorrent, ClientConfig, ClientError, ClientEvent};

use crate::give_up::{self, DialFailures};
use crate::progress::Reporter;
use crate::runtime::{Client, Runtime};

mod running;
use running::run;

/// The address `--listen` stands for when not given: every address, IPv6 and IPv4 (one
/// dual-stack socket); when its port is taken, any free port is used instead (and said),
/// and where the host has no IPv6, [`DEFAULT_LISTEN_V4`].
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 6881);

/// The default listen address on a host without IPv6.
const DEFAULT_LISTEN_V4: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 6881);

/// Options shared by `download` and `seed`.
#[derive(clap::Args, Debug)]
pub(crate) struct CommonArgs {
    /// Address and port to accept peers on (port 0: any free port; the chosen one is
    /// printed). Outgoing connections use the same address. Default: [::]:6881, every
    /// address IPv6 and IPv4 on one dual-stack socket (0.0.0.0:6881 on a host without
    /// IPv6), or any free port (said) when 6881 is taken.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,

    /// The driver to run on.
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,

    /// One JSON object per line on stdout instead of human output.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,

    /// No progress output; errors still go to stderr.
    #[arg(short, long)]
    quiet: bool,

    /// Also report each peer connection, failed dial and disconnection (with the reason).
    #[arg(short, long)]
    verbose: bool,

    /// Failed dials (refused, unreachable, dropped) after which a peer is given up; the
    /// wait between dials starts at 5 s and doubles. A download with no peer connected or
    /// left to try, no usable tracker and no DHT stops with an error 10 s later.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    peer_retries: u32,

    /// Hash all existing data, ignoring the resume file.
    #[arg(long)]
    recheck: bool,

    /// A peer to connect to; may be repeated.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,

    /// A tracker to announce to (http://, https:// or udp://) besides the torrent's own;
    /// may be repeated (each is a tier of its own, tried after the torrent's).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,

    /// Trust only the certificate authorities in FILE (PEM, one or more certificates) for
    /// https:// trackers, instead of the system's (/etc/ssl/certs): for a tracker with a
    /// private or self-made CA.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// Do not announce to the torrent's trackers (`--tracker` ones are still used).
    #[arg(long)]
    no_trackers: bool,

    /// A web seed (BEP 19: an http:// or https:// server holding the torrent's files) to
    /// download from besides the torrent's own `url-list`; may be repeated. For a
    /// multi-file torrent the URL is the directory holding the torrent's top directory.
    #[arg(long = "web-seed", value_name = "URL")]
    web_seeds: Vec<String>,

    /// Do not use the torrent's web seeds (its `url-list`, or a magnet link's `ws`;
    /// `--web-seed` ones are still used).
    #[arg(long)]
    no_web_seeds: bool,

    /// Run a DHT node (BEP 5) to find peers without a tracker and announce this torrent.
    /// On by default when there is a way in: the public DHT's routers (see
    /// --dht-routers), --dht-bootstrap nodes, or nodes saved by an earlier run in
    /// DIR/.unchoke/dht.nodes. Private torrents never use it.
    #[arg(long, conflicts_with = "no_dht")]
    dht: bool,

    /// No DHT, even with bootstrap nodes or routers.
    #[arg(long)]
    no_dht: bool,

    /// No local service discovery (BEP 14). By default the torrent is announced on the
    /// LAN's multicast groups (239.192.152.143:6771 for an IPv4 --listen address,
    /// [ff15::efc0:988f]:6771 for an IPv6 one, both for [::]; on the --listen address's
    /// interface) when it starts and every 5 minutes, and peers announcing it there are
    /// dialled. Private torrents never use it.
    #[arg(long)]
    no_lsd: bool,

    /// A DHT node to join through (e.g. another client's or `unchoke dht`'s address),
    /// resolved at start; may be repeated. Used beside the routers.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    dht_bootstrap: Vec<String>,

    /// DHT routers to join through, by name, comma-separated; `none` for none. Their names
    /// are resolved as the node starts, and a router that cannot be reached is reported
    /// without stopping anything. Default: the public DHT's routers (router.bittorrent.com,
    /// dht.transmissionbt.com, router.utorrent.com, dht.libtorrent.org), except when
    /// --listen is a loopback address, from which they cannot be reached.
    #[arg(
        long = "dht-routers",
        value_name = "HOST:PORT,...",
        env = "UNCHOKE_DHT_ROUTERS"
    )]
    dht_routers: Option<String>,

    /// UDP port of the DHT node, on the --listen address (0: the TCP listen port if free,
    /// else any).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    dht_port: u16,

    /// Refuse a torrent listing more files than this (padding files not counted), before
    /// anything is created: a torrent of a million tiny files would otherwise make a
    /// million files. Applies to metadata fetched for a magnet link too.
    #[arg(long, value_name = "N", default_value_t = unchoke_core::metainfo::DEFAULT_MAX_FILES)]
    max_files: usize,

    /// Protocol encryption (MSE/PE): `prefer` dials encrypted, accepts both and retries a
    /// peer that refuses once in plaintext; `require` talks to encrypting peers only;
    /// `disable` speaks plaintext only.
    #[arg(long, value_name = "POLICY", default_value = "prefer")]
    encryption: EncryptionPolicy,

    /// Transport of the peer connections we dial: `both` tries uTP (BEP 29, over the UDP
    /// socket on the --listen port) first and falls back to TCP when the peer answers
    /// with a reset or not within 3 s, as libtorrent does; `utp` dials uTP only; `tcp`
    /// TCP only (and refuses incoming uTP). Incoming TCP is always accepted.
    #[arg(long, value_name = "tcp|utp|both", default_value = "both")]
    transport: Transport,

    /// Most payload bytes per second sent to peers, all peers together: bytes per second,
    /// or with a unit and optionally `/s`: 4MiB/s, 500KiB/s, 1MB/s (MiB = 2^20 bytes, MB =
    /// 10^6). 0: unlimited (the default). The engine sends blocks only as the limit allows,
    /// taking turns between peers; the average holds over seconds.
    #[arg(long, value_name = "RATE", value_parser = crate::human::parse_rate)]
    upload_limit: Option<u64>,

    /// Most payload bytes per second received from peers, all together (same forms as
    /// --upload-limit; 0: unlimited, the default). The engine asks for blocks only as the
    /// limit allows.
    #[arg(long, value_name = "RATE", value_parser = crate::human::parse_rate)]
    download_limit: Option<u64>,

    /// What an encrypted handshake may settle on: `rc4` (everything encrypted; costs CPU
    /// on every byte), `plaintext` (only the handshake obfuscated) or `both` (plaintext
    /// after the handshake when the peer allows it, RC4 when it insists).
    #[arg(long, value_name = "LEVEL", default_value = "both")]
    crypto_level: CryptoLevel,
}

impl CommonArgs {
    /// The torrent shape accepted: `--max-files`, other bounds at their defaults.
    fn shape_limits(&self) -> ShapeLimits {
        ShapeLimits {
            max_files: self.max_files,
            ..ShapeLimits::default()
        }
    }
}

/// What `CommonArgs` name, checked before anything starts (a bad one is a usage error).
struct Checked {
    /// `--peer`, resolved.
    peers: Vec<SocketAddr>,
    /// `--dht-bootstrap`, resolved.
    dht_bootstrap: Vec<SocketAddr>,
    /// The DHT routers to join through (`--dht-routers` or the default).
    dht_routers: Vec<(String, u16)>,
    /// `--ca-file`, read and checked; else the system's authorities.
    tracker_roots: TrustRoots,
}

impl CommonArgs {
    /// Resolves the addresses given and checks the tracker URLs: anything wrong is a usage
    /// error, found before a runtime starts or a file is touched.
    fn check(&self) -> Result<Checked, CliError> {
        for url in &self.trackers {
            check_tracker_url(url).map_err(CliError::usage)?;
        }
        // Read now, so a missing or certificate-less file stops us before anything starts
        // instead of failing every https announce later.
        let tracker_roots = match &self.ca_file {
            Some(path) => TrustRoots::Only(
                load_ca_file(path).map_err(|e| CliError::usage(format!("--ca-file: {e}")))?,
            ),
            None => TrustRoots::System,
        };
        Ok(Checked {
            peers: resolve_addrs("--peer", &self.peers).map_err(CliError::usage)?,
            dht_bootstrap: resolve_addrs("--dht-bootstrap", &self.dht_bootstrap)
                .map_err(CliError::usage)?,
            dht_routers: self.dht_routers().map_err(CliError::usage)?,
            tracker_roots,
        })
    }

    /// The routers to join the DHT through: `--dht-routers` as given, else the public ones
    /// unless we listen on loopback (a node bound there cannot reach them, and asking
    /// for their names would only send DNS queries off the machine for nothing).
    fn dht_routers(&self) -> Result<Vec<(String, u16)>, String> {
        match &self.dht_routers {
            Some(list) => parse_routers(list),
            None if self.listen().ip().is_loopback() => Ok(Vec::new()),
            None => Ok(unchoke_core::dht::PUBLIC_ROUTERS
                .iter()
                .map(|(host, port)| (host.to_string(), *port))
                .collect()),
        }
    }

    /// The address to listen on: `--listen`, else the default.
    fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_LISTEN)
    }

    /// The tracker tiers to announce to.
    fn tracker_tiers(&self, metainfo: &Metainfo) -> Vec<Vec<String>> {
        let mut tiers = if self.no_trackers {
            Vec::new()
        } else {
            metainfo_tiers(metainfo)
        };
        tiers.extend(self.trackers.iter().map(|t| vec![t.clone()]));
        tiers
    }

    /// The DHT node to run, if any: see `--dht`. Saved nodes live under `save_path`.
    fn dht_settings(
        &self,
        save_path: &Path,
        bootstrap: Vec<SocketAddr>,
        routers: Vec<(String, u16)>,
    ) -> Result<Option<DhtSettings>, String> {
        if self.no_dht {
            return Ok(None);
        }
        let nodes_file = save_path.join(".unchoke").join("dht.nodes");
        let way_in = !bootstrap.is_empty() || !routers.is_empty() || nodes_file.is_file();
        if !self.dht && !way_in {
            return Ok(None);
        }
        let mut settings = DhtSettings::new(
            SocketAddr::new(self.listen().ip(), self.dht_port),
            bootstrap,
        );
        settings.routers = routers;
        settings.nodes_file = Some(nodes_file);
        Ok(Some(settings))
    }
}

/// What a download starts from.
enum Source {
    /// A .torrent file, loaded.
    Torrent(PathBuf, Box<Metainfo>),
    /// A magnet link: the metadata comes from peers.
    Magnet(Box<Magnet>),
}

impl Source {
    /// A magnet link, or a .torrent file loaded within `limits`; a magnet's metadata is
    /// checked against them when it arrives (by the driver's `prepare_torrent`).
    fn parse(text: &str, limits: &ShapeLimits) -> Result<Source, CliError> {
        if text.starts_with("magnet:") {
            let m = Magnet::parse(text).map_err(|e| CliError::failure(format!("{text}: {e}")))?;
            Ok(Source::Magnet(Box::new(m)))
        } else {
            Source::load(Path::new(text), limits)
        }
    }

    /// A .torrent file, read and parsed, refused before anything is created if its shape
    /// is beyond `limits`.
    fn load(path: &Path, limits: &ShapeLimits) -> Result<Source, CliError> {
        let metainfo = crate::torrent_file::load_within(path, limits)?;
        Ok(Source::Torrent(path.to_path_buf(), Box::new(metainfo)))
    }

    /// Where resume data for this torrent lives under `save_path`.
    fn resume_path(&self, save_path: &Path) -> PathBuf {
        match self {
            Source::Torrent(_, m) => unchoke_driver::default_resume_path(save_path, m),
            Source::Magnet(m) => save_path
                .join(".unchoke")
                .join(format!("{}.resume", m.info_hash.to_hex())),
        }
    }

    /// How the source is named in messages.
    fn describe(&self) -> String {
        match self {
            Source::Torrent(path, _) => path.display().to_string(),
            Source::Magnet(m) => format!("magnet {}", m.info_hash.to_hex()),
        }
    }
}

/// Arguments of `unchoke download`.
#[derive(clap::Args, Debug)]
pub(crate) struct DownloadArgs {
    /// The .torrent file, or a magnet link (`magnet:?xt=urn:btih:…`; quote it in a shell).
    #[arg(value_name = "TORRENT|MAGNET")]
    torrent: String,

    /// The save path: a single-file torrent's file becomes DIR/<name>, a multi-file
    /// torrent's tree DIR/<name>/... Default: the current directory.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    output: PathBuf,

    /// Keep seeding once complete, until interrupted.
    #[arg(long)]
    seed: bool,

    /// Cut an existing file that is longer than the torrent says to the torrent's size
    /// (its extra bytes are lost). Without it such a file is an error.
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    common: CommonArgs,
}

/// Arguments of `unchoke seed`.
#[derive(clap::Args, Debug)]
pub(crate) struct SeedArgs {
    /// The .torrent file.
    torrent: PathBuf,

    /// The save path holding the data (as given to `download -o`).
    data_dir: PathBuf,

    /// Serve the pieces present even if the data is incomplete.
    #[arg(long)]
    partial: bool,

    #[command(flatten)]
    common: CommonArgs,
}

/// What the run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// Exit when complete.
    Download,
    /// Serve until interrupted.
    Seed,
}

/// What one run is for, and what it may do to the data under its directory.
#[derive(Clone, Copy, Debug)]
struct Job {
    goal: Goal,
    access: unchoke_driver::Access,
    /// Refuse to start unless every piece is on disk (`seed` without `--partial`).
    require_complete: bool,
}

/// `unchoke download`.
pub(crate) fn download(args: &DownloadArgs) -> Result<(), CliError> {
    crate::output::set_json_mode(args.common.json);
    // First: a Ctrl-C from here on stops cleanly instead of killing the process.
    let interrupted = interrupt_flag()?;
    let checked = args.common.check()?;
    let goal = if args.seed {
        Goal::Seed
    } else {
        Goal::Download
    };
    let access = if args.force {
        unchoke_driver::Access::ReadWriteTruncate
    } else {
        unchoke_driver::Access::ReadWrite
    };
    let source = Source::parse(&args.torrent, &args.common.shape_limits())?;
    check_output_dir(&args.output)?;
    Ok(run(
        &source,
        &args.output,
        &args.common,
        checked,
        &interrupted,
        Job {
            goal,
            access,
            require_complete: false,
        },
    )?)
}

/// `unchoke seed`.
pub(crate) fn seed(args: &SeedArgs) -> Result<(), CliError> {
    crate::output::set_json_mode(args.common.json);
    let interrupted = interrupt_flag()?;
    let checked = args.common.check()?;
    let source = Source::load(&args.torrent, &args.common.shape_limits())
        .map_err(|e| swapped_hint(e, args))?;
    if args.data_dir.is_file() {
        return Err(CliError::failure(format!(
            "`{}` is a file; give the directory that holds the torrent's data (the -o DIR \
             of the download)",
            args.data_dir.display()
        )));
    }
    Ok(run(
        &source,
        &args.data_dir,
        &args.common,
        checked,
        &interrupted,
        Job {
            goal: Goal::Seed,
            // Seeding never changes the data.
            access: unchoke_driver::Access::ReadOnly,
            require_complete: !args.partial,
        },
    )?)
}

impl DownloadArgs {
    /// Whether errors should carry their internals (`--verbose`).
    pub(crate) fn verbose(&self) -> bool {
        self.common.verbose
    }
}

impl SeedArgs {
    /// Whether errors should carry their internals (`--verbose`).
    pub(crate) fn verbose(&self) -> bool {
        self.common.verbose
    }
}

/// `unchoke seed DIR TORRENT`: the torrent named is a directory and the directory named a
/// file; say what was probably meant.
fn swapped_hint(e: CliError, args: &SeedArgs) -> CliError {
    if args.torrent.is_dir() && args.data_dir.is_file() {
        CliError {
            message: format!(
                "{}; did you mean `unchoke seed {} {}`?",
                e.message,
                args.data_dir.display(),
                args.torrent.display()
            ),
            ..e
        }
    } else {
        e
    }
}

/// `-o DIR` must be a directory or not exist yet (it is created), and so must everything
/// on the way to it.
fn check_output_dir(dir: &Path) -> Result<(), CliError> {
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::failure(format!(
            "`-o {}` is a file; give a directory",
            dir.display()
        )));
    }
    // The nearest existing ancestor must be a directory too, or nothing can be created.
    if let Some(blocker) = dir
        .ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && a.symlink_metadata().is_ok())
        .filter(|a| !a.is_dir())
    {
        return Err(CliError::failure(format!(
            "`-o {}`: `{}` is a file, not a directory",
            dir.display(),
            blocker.display()
        )));
    }
    Ok(())
}

/// A `--tracker` URL the client can announce to: `http://`, `https://` or `udp://` with a
/// host.
fn check_tracker_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = ["http://", "https://", "udp://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
    else {
        let scheme = lower.split_once("://").map(|(s, _)| s);
        return Err(match scheme {
            Some(s) => format!(
                "--tracker {url}: {s}:// trackers are not supported; give an http://, \
                 https:// or udp:// URL"
            ),
            None => format!("--tracker {url}: not a URL; give an http://, https:// or udp:// one"),
        });
    };
    if rest.is_empty() || rest.starts_with('/') || rest.starts_with(':') {
        return Err(format!("--tracker {url}: the URL names no host"));
    }
    Ok(())
}

/// `HOST:PORT` strings to addresses, with a clear error (naming `option`) for each that
/// does not resolve.
pub(crate) fn resolve_addrs(option: &str, addrs: &[String]) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for p in addrs {
        let mut resolved = p
            .to_socket_addrs()
            .map_err(|e| format!("{option} {p}: {e} (expected HOST:PORT)"))?;
        let addr = resolved
            .next()
            .ok_or_else(|| format!("{option} {p}: the name has no address"))?;
        out.push(addr);
    }
    Ok(out)
}

/// `--dht-routers`: `HOST:PORT` items separated by commas (`[v6]:PORT` for an IPv6
/// literal); `none` (or nothing) for no router.
pub(crate) fn parse_routers(list: &str) -> Result<Vec<(String, u16)>, String> {
    let list = list.trim();
    if list.is_empty() || list.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(str::trim)
        .map(|item| {
            let bad = || format!("--dht-routers {item}: expected HOST:PORT");
            let (host, port) = item.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok((host.to_string(), port))
        })
        .collect()
}

/// A flag raised by Ctrl-C or SIGTERM (see [`crate::signals`]: a second one exits at once).
pub(crate) fn interrupt_flag() -> Result<Arc<AtomicBool>, String> {
    crate::signals::install()
}
