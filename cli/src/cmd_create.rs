//! `unchoke create`: make a .torrent from a file or a directory.
//!
//! The directory is walked recursively. Hidden files are included. Symbolic links inside
//! it are skipped with a warning (following them could leave the tree or loop, and a
//! torrent cannot say "link"); so are sockets, FIFOs and devices. The PATH argument itself
//! may be a link. The output file is skipped if it lies inside the tree. Files are put in
//! the order of `unchoke_core::create::sort_files` (bytewise on the `/`-joined path, as
//! mktorrent does), then hashed on all cores: each worker takes the next piece number and
//! reads that piece's spans with positional reads (a piece may span files).
//!
//! With `--v2` or `--hybrid` (BEP 52) the files are put in `file tree` order instead
//! (`unchoke_core::create::V2Plan`) and a piece never spans files: each worker takes the
//! next piece, a run of one file, and one read gives its SHA-256 merkle root (and, for a
//! hybrid, the SHA-1 of the same bytes padded to a whole piece).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use unchoke_core::create::{
    Content, CreateOptions, InputFile, MAX_PIECE_LENGTH, MIN_PIECE_LENGTH, PieceDigests,
    TorrentPlan, V2Plan,
};
use unchoke_core::layout::FileSpan;
use unchoke_core::magnet::Magnet;
use unchoke_core::metainfo::{DEFAULT_MAX_FILES, Metainfo, check_component};

use crate::human;
use crate::output::{print, printable};

/// Arguments of `unchoke create`.
#[derive(clap::Args, Debug)]
pub(crate) struct CreateArgs {
    /// The file or directory to share.
    path: PathBuf,

    /// Where to write the .torrent file (refused if it exists, unless --force).
    #[arg(short, long, value_name = "OUT.torrent")]
    output: PathBuf,

    /// A tracker's announce URL. Each --tracker is a tier of its own, tried in order
    /// (BEP 12); "URL,URL" puts several trackers in one tier.
    #[arg(short, long = "tracker", value_name = "URL[,URL...]")]
    trackers: Vec<String>,

    /// A web seed URL (BEP 19); may be repeated.
    #[arg(long = "web-seed", value_name = "URL")]
    web_seeds: Vec<String>,

    /// Piece length in bytes (suffixes K, M accepted: 64K, 1M): a power of two from 16 KiB
    /// to 64 MiB (v1 and v2 alike; BEP 52 requires the power of two). Default: the smallest power of two from 16 KiB to 16 MiB that gives at
    /// most 2000 pieces (16 MiB for content over 31.25 GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_piece_length)]
    piece_length: Option<u32>,

    /// Mark the torrent private (BEP 27): peers only from its trackers, no DHT or PEX.
    #[arg(short, long)]
    private: bool,

    /// A comment to store in the torrent.
    #[arg(short, long)]
    comment: Option<String>,

    /// The torrent's name. Default: the file or directory's name.
    #[arg(short, long, value_parser = parse_name)]
    name: Option<String>,

    /// Do not store a creation date (makes the output reproducible).
    #[arg(long)]
    no_date: bool,

    /// Overwrite OUT.torrent if it exists.
    #[arg(short, long)]
    force: bool,

    /// No progress output (the result is still printed).
    #[arg(short, long)]
    quiet: bool,

    /// Make a BitTorrent v2-only torrent (BEP 52): each file hashed on its own into a
    /// SHA-256 merkle tree. Only v2-capable clients (libtorrent 2.0 and those built on it,
    /// such as qBittorrent 4.4+) can use it; `unchoke download` cannot download one yet.
    #[arg(long, conflicts_with = "hybrid")]
    v2: bool,

    /// Make a hybrid torrent: v1 and v2 (BEP 52) in one, usable by every client. Each file
    /// is padded to a piece boundary with a padding file (BEP 47, `.pad/<n>`), which clients
    /// that predate BEP 47 write to disk. v1 stays the default: every client reads it, it
    /// needs no padding files, and its info-hash is the one mktorrent gives the same files.
    #[arg(long)]
    hybrid: bool,

    /// Hashing threads. Default: one per core.
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
}

/// `--piece-length`: checked while parsing, so a bad value is a usage error (exit 2)
/// rather than a failure found after the walk.
fn parse_piece_length(text: &str) -> Result<u32, String> {
    let n = human::parse_size(text)?;
    u32::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two() && (MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(n))
        .ok_or_else(|| {
            format!(
                "{text}: a piece length must be a power of two from {} to {}",
                human::size(u64::from(MIN_PIECE_LENGTH)),
                human::size(u64::from(MAX_PIECE_LENGTH))
            )
        })
}

/// `--name`: a name loading would refuse is a usage error, found before any hashing.
fn parse_name(text: &str) -> Result<String, String> {
    check_component(text)
        .map(|()| text.to_owned())
        .map_err(|problem| format!("name {text:?}: {problem}"))
}

/// Runs `unchoke create`; the error is the one line to print.
pub(crate) fn run(args: &CreateArgs) -> Result<(), String> {
    let out_shown = args.output.display();
    // Fail before hours of hashing, not after.
    if !args.force && fs::symlink_metadata(&args.output).is_ok() {
        return Err(format!(
            "{out_shown}: already exists (use --force to overwrite)"
        ));
    }
    let shown = args.path.display();
    let meta = fs::metadata(&args.path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!("{shown}: no such file or directory"),
        _ => format!("{shown}: cannot read it: {e}"),
    })?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(&args.path)?,
    };
    // Checked now rather than after hashing: loading would refuse such a name.
    check_component(&name)
        .map_err(|problem| format!("name {name:?}: {problem}; give another with --name"))?;
    let warn = |msg: String| {
        if !args.quiet {
            eprintln!("unchoke: warning: {msg}");
        }
    };
    let content = if meta.is_file() {
        Content::SingleFile { length: meta.len() }
    } else if meta.is_dir() {
        let skip = fs::metadata(&args.output).ok().map(|m| (m.dev(), m.ino()));
        let mut files = Vec::new();
        walk(&args.path, &mut Vec::new(), skip, &mut files, &warn)?;
        if files.is_empty() {
            return Err(format!("{shown}: the directory holds no files"));
        }
        // Made anyway (the user asked), but say that default clients will refuse it.
        if files.len() > DEFAULT_MAX_FILES {
            warn(format!(
                "{shown} holds {} files; `unchoke download` and `seed` refuse more than {} \
                 unless given --max-files",
                unchoke_storage::thousands(files.len() as u64),
                unchoke_storage::thousands(DEFAULT_MAX_FILES as u64)
            ));
        }
        Content::Directory(files)
    } else {
        return Err(format!("{shown}: not a regular file or a directory"));
    };
    let plan = if args.v2 || args.hybrid {
        Plan::V2(
            V2Plan::new(content, args.piece_length, args.hybrid)
                .map_err(|e| format!("{shown}: {e}"))?,
        )
    } else {
        Plan::V1(TorrentPlan::new(content, args.piece_length).map_err(|e| format!("{shown}: {e}"))?)
    };
    let (total_length, piece_count, piece_length) = plan.geometry();

    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
        .min(piece_count as usize)
        .max(1);
    let progress = Progress::new(args.quiet, total_length, piece_count, piece_length, threads);
    let result = match &plan {
        Plan::V1(plan) => hash_pieces(
            plan.files(),
            &args.path,
            piece_count,
            threads,
            &progress,
            |r, buf, piece| {
                plan.hash_piece(piece, buf, |span, dst| r.read(span, dst))
                    .map(|hash| (hash, plan.piece_len(piece)))
            },
        )
        .map(Hashes::V1),
        Plan::V2(plan) => hash_pieces(
            plan.files(),
            &args.path,
            piece_count,
            threads,
            &progress,
            |r, buf, piece| {
                plan.hash_piece(piece, buf, |span, dst| r.read(span, dst))
                    .map(|hash| (hash, plan.piece_len(piece)))
            },
        )
        .map(Hashes::V2),
    };
    progress.finish(result.is_ok());
    let hashes = result?;

    let options = CreateOptions {
        trackers: args
            .trackers
            .iter()
            .map(|tier| tier.split(',').map(|u| u.trim().to_owned()).collect())
            .collect(),
        private: args.private,
        comment: args.comment.clone(),
        creation_date: if args.no_date { None } else { now_unix() },
        url_list: args.web_seeds.clone(),
        piece_length: Some(piece_length),
        ..CreateOptions::new(name)
    };
    let bytes = match (&plan, &hashes) {
        (Plan::V1(plan), Hashes::V1(hashes)) => plan.finish(hashes, &options),
        (Plan::V2(plan), Hashes::V2(hashes)) => plan.finish(hashes, &options),
        _ => return Err("internal error: hashes of the wrong kind".to_owned()),
    }
    .map_err(|e| e.to_string())?;
    // Parse what we made, as any client will: this catches a name or path that loading
    // would refuse, before anything is written.
    let metainfo = Metainfo::from_bytes(&bytes)
        .map_err(|e| format!("the torrent made would not load: {e}"))?;
    write_output(&args.output, &bytes, args.force).map_err(|e| format!("{out_shown}: {e}"))?;
    // A v2-only torrent has no v1 info-hash (its truncated v2 hash only names it on the
    // wire), so only the v2 one is shown; a hybrid has both.
    let (kind, hashes_shown) = match &metainfo.v2 {
        None => ("", format!("info-hash: {}\n", metainfo.info_hash.to_hex())),
        Some(v2) if metainfo.is_hybrid() => (
            " (hybrid v1 + v2)",
            format!(
                "info-hash: {}\ninfo-hash v2: {}\n",
                metainfo.info_hash.to_hex(),
                v2.info_hash.to_hex()
            ),
        ),
        Some(v2) => (
            " (v2)",
            format!("info-hash v2: {}\n", v2.info_hash.to_hex()),
        ),
    };
    print(&format!(
        "wrote {}{kind}: {} in {} piece{} of {}\n{hashes_shown}magnet: {}\n",
        printable(&out_shown.to_string()),
        human::size(total_length),
        piece_count,
        if piece_count == 1 { "" } else { "s" },
        human::size(u64::from(piece_length)),
        Magnet::from_metainfo(&metainfo).to_uri(),
    ))
}

/// The last component of PATH (resolved, so `.` gives the directory's real name).
fn default_name(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let resolved =
        fs::canonicalize(path).map_err(|e| format!("{shown}: cannot resolve the path: {e}"))?;
    let name = resolved
        .file_name()
        .ok_or_else(|| format!("{shown}: has no name to use; give one with --name"))?;
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{shown}: the name is not UTF-8; give one with --name"))
}

/// Appends every regular file under `dir` (with `rel`, its path below the root) to `files`.
fn walk(
    dir: &Path,
    rel: &mut Vec<String>,
    skip: Option<(u64, u64)>,
    files: &mut Vec<InputFile>,
    warn: &dyn Fn(String),
) -> Result<(), String> {
    let entries = fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot list the directory: {e}", dir.display()))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("{}: cannot list the directory: {e}", dir.display()))?;
        let path = entry.path();
        let shown = path.display();
        let meta = fs::symlink_metadata(&path)
            .map_err(|e| format!("{shown}: cannot read its metadata: {e}"))?;
        let Some(component) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(format!("{shown}: the file name is not UTF-8"));
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            warn(format!("skipping symbolic link {shown}"));
        } else if kind.is_dir() {
            rel.push(component);
            walk(&path, rel, skip, files, warn)?;
            rel.pop();
        } else if kind.is_file() {
            if skip == Some((meta.dev(), meta.ino())) {
                continue;
            }
            let mut file_path = rel.clone();
            file_path.push(component);
            files.push(InputFile {
                path: file_path,
                length: meta.len(),
            });
        } else {
            warn(format!("skipping {shown}: not a regular file"));
        }
    }
    Ok(())
}

/// The torrent being made: v1 (pieces across files) or v2/hybrid (pieces within a file).
enum Plan {
    V1(TorrentPlan),
    V2(V2Plan),
}

impl Plan {
    /// Total content bytes, piece count and piece length.
    fn geometry(&self) -> (u64, u32, u32) {
        match self {
            Plan::V1(p) => (p.total_length(), p.piece_count(), p.piece_length()),
            Plan::V2(p) => (p.total_length(), p.piece_count(), p.piece_length()),
        }
    }
}

/// Every piece's hashes, in piece order, of the plan's kind.
enum Hashes {
    V1(Vec<[u8; 20]>),
    V2(Vec<PieceDigests>),
}

/// Hashes pieces `0..count` on `threads` workers with `hash(reader, buf, piece)`, which
/// returns the piece's hash and its length (for the progress). Each worker takes the next
/// piece number from a shared counter, so pieces are read roughly in order overall and no
/// worker idles while another has a backlog.
fn hash_pieces<T: Send>(
    files: &[InputFile],
    root: &Path,
    count: u32,
    threads: usize,
    progress: &Progress,
    hash: impl Fn(&mut Reader<'_>, &mut Vec<u8>, u32) -> Result<(T, u32), String> + Sync,
) -> Result<Vec<T>, String> {
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|f| f.path.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
        .collect();
    let next = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let error: Mutex<Option<String>> = Mutex::new(None);
    let results: Vec<Vec<(u32, T)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut reader = Reader {
                        paths: &paths,
                        open: None,
                    };
                    let mut buf = Vec::new();
                    let mut done = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let piece = next.fetch_add(1, Ordering::Relaxed);
                        if piece >= count {
                            break;
                        }
                        match hash(&mut reader, &mut buf, piece) {
                            Ok((hash, len)) => {
                                done.push((piece, hash));
                                progress.add(u64::from(len));
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                if let Ok(mut slot) = error.lock() {
                                    slot.get_or_insert(e);
                                }
                                break;
                            }
                        }
                    }
                    done
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            progress.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    if let Some(e) = error.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut hashes: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for (piece, hash) in results.into_iter().flatten() {
        if let Some(slot) = hashes.get_mut(piece as usize) {
            *slot = Some(hash);
        }
    }
    // A missing hash means a worker died without reporting (a panic): say so rather than
    // write a wrong torrent.
    hashes
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "a hashing thread failed unexpectedly".to_owned())
}

/// One hashing thread's reader: the file it has open.
struct Reader<'a> {
    paths: &'a [PathBuf],
    open: Option<(usize, File)>,
}

impl Reader<'_> {
    /// Fills `dst` from the span's file at its offset.
    fn read(&mut self, span: &FileSpan, dst: &mut [u8]) -> Result<(), String> {
        let path = self
            .paths
            .get(span.file)
            .map_or(Path::new("?"), PathBuf::as_path);
        // Keep the last file open: consecutive spans are mostly in the same file.
        let file = match self.open.take() {
            Some((index, file)) if index == span.file => file,
            _ => {
                File::open(path).map_err(|e| format!("{}: cannot open it: {e}", path.display()))?
            }
        };
        let read = file.read_exact_at(dst, span.file_offset);
        self.open = Some((span.file, file));
        read.map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                format!(
                    "{}: the file got shorter while it was being hashed",
                    path.display()
                )
            } else {
                format!("{}: cannot read it: {e}", path.display())
            }
        })
    }
}

/// Hashing progress: a bar on a terminal, a line per 10% otherwise, nothing with --quiet.
struct Progress {
    bytes: AtomicU64,
    total: u64,
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    last_tenth: AtomicU64,
}

impl Progress {
    fn new(
        quiet: bool,
        total: u64,
        piece_count: u32,
        piece_length: u32,
        threads: usize,
    ) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "hashing [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let plain = !quiet && !terminal;
        if plain {
            eprintln!(
                "hashing {} in {} piece{} of {} on {threads} thread{}",
                human::size(total),
                piece_count,
                if piece_count == 1 { "" } else { "s" },
                human::size(u64::from(piece_length)),
                if threads == 1 { "" } else { "s" }
            );
        }
        Progress {
            bytes: AtomicU64::new(0),
            total,
            bar,
            plain,
            last_tenth: AtomicU64::new(0),
        }
    }

    /// Called by workers after each piece.
    fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Called by the main thread while the workers run.
    fn tick(&self) {
        let done = self.bytes.load(Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        } else if self.plain && self.total > 0 {
            let tenth = done.saturating_mul(10) / self.total;
            let last = self.last_tenth.swap(tenth, Ordering::Relaxed);
            if tenth > last && tenth < 10 {
                eprintln!("hashing: {}%", tenth * 10);
            }
        }
    }

    fn finish(&self, ok: bool) {
        if let Some(bar) = &self.bar {
            if ok {
                bar.finish_and_clear();
            } else {
                bar.abandon();
            }
        } else if self.plain && ok {
            eprintln!("hashing: 100%");
        }
    }
}

fn now_unix() -> Option<i64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}

/// Writes the torrent. Without `force` the file must not exist (checked atomically by
/// `create_new`); with it, the bytes go to a temporary file in the same directory that is
/// then renamed over the old one, so a failure never leaves a half-written torrent.
fn write_output(out: &Path, bytes: &[u8], force: bool) -> Result<(), String> {
    if !force {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => "already exists (use --force to overwrite)".into(),
                _ => format!("cannot create it: {e}"),
            })?;
        return file.write_all(bytes).map_err(|e| {
            let _ = fs::remove_file(out);
            format!("cannot write it: {e}")
        });
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = out
        .file_name()
        .ok_or_else(|| "not a file name".to_owned())?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, out));
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write it: {e}")
    })
}
