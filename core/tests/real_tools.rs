//! `.torrent` files made by real tools — mktorrent, transmission-create and libtorrent
//! (through `tests/helpers/lt.py`) — parsed by `Metainfo::from_bytes` and checked against
//! libtorrent's own reading of the same file (info-hash, name, sizes, pieces, file list),
//! against the payload on disk, and by re-hashing every piece from the payload through
//! `Layout::piece_spans` (padding files read as zeros).
//!
//! The tools are required: a missing one fails the test with the package to install
//! (`apt-get install -y mktorrent transmission-cli python3-libtorrent`); CI installs them.
//! Every subprocess is bounded by [`TOOL_TIMEOUT`] and killed past it.
// Test code: a failed unwrap is a failed test (helpers outside `#[test]` fns included).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha1::Digest;
use unchoke_core::metainfo::Metainfo;

/// How long any tool may run; they take well under a second on these payloads.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

const ANNOUNCE: &str = "http://127.0.0.1:6969/announce";

/// The Debian package providing each program, for the failure message.
fn package_of(program: &str) -> &'static str {
    match program {
        "mktorrent" => "mktorrent",
        "transmission-create" => "transmission-cli",
        _ => "python3-libtorrent",
    }
}

/// Runs `program args…` in `dir` with a time limit; panics (naming the package to install
/// when the program is missing) unless it exits successfully. Returns its stdout.
fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let (status, out, err) = run_status(dir, program, args);
    assert!(
        status.success(),
        "`{program} {args:?}` failed ({status}):\nstdout: {out}\nstderr: {err}"
    );
    out
}

/// Runs `program args…` in `dir`, killed after [`TOOL_TIMEOUT`]; returns its exit status,
/// stdout and stderr. Panics, naming the package to install, if the program is missing.
fn run_status(dir: &Path, program: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let out_path = dir.join(format!(".{}.stdout", program.replace('/', "_")));
    let err_path = dir.join(format!(".{}.stderr", program.replace('/', "_")));
    // Output goes to files, not pipes, so a chatty tool can never block on a full pipe
    // while we poll it.
    let stdout = fs::File::create(&out_path).unwrap();
    let stderr = fs::File::create(&err_path).unwrap();
    let mut child = match Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed; these tests need it: \
             apt-get install -y {}",
            package_of(program)
        ),
        Err(e) => panic!("could not start `{program}`: {e}"),
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TOOL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{program} {args:?}` still running after {TOOL_TIMEOUT:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    fs::File::open(&out_path)
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let err = fs::read_to_string(&err_path).unwrap_or_default();
    (status, out, err)
}

fn lt_helper() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers/lt.py")
        .to_string_lossy()
        .into_owned()
}

/// Runs the libtorrent helper with Debian's python (the only one that sees the module).
fn lt(dir: &Path, args: &[&str]) -> String {
    let python = "/usr/bin/python3";
    assert!(
        Path::new(python).exists(),
        "{python} is missing; these tests need it: apt-get install -y python3-libtorrent"
    );
    let helper = lt_helper();
    let (status, _, err) = run_status(dir, python, &[helper.as_str(), "check"]);
    assert!(
        status.success(),
        "{python} cannot import libtorrent; these tests need it: \
         apt-get install -y python3-libtorrent\n{err}"
    );
    let mut full = vec![helper.as_str()];
    full.extend_from_slice(args);
    run(dir, python, &full)
}

/// libtorrent's reading of a torrent (from `lt.py show`).
#[derive(Debug, Default)]
struct LtView {
    v1: String,
    name: String,
    total_size: u64,
    piece_length: u32,
    num_pieces: u32,
    /// (size, flags, path with `/`, relative to the name's parent).
    files: Vec<(u64, String, String)>,
}

fn lt_show(dir: &Path, torrent: &Path) -> LtView {
    let out = lt(dir, &["show", torrent.to_str().unwrap()]);
    let mut v = LtView::default();
    for line in out.lines() {
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        match fields.as_slice() {
            ["v1", h] => v.v1 = h.to_string(),
            ["name", n] => v.name = n.to_string(),
            ["total_size", n] => v.total_size = n.parse().unwrap(),
            ["piece_length", n] => v.piece_length = n.parse().unwrap(),
            ["num_pieces", n] => v.num_pieces = n.parse().unwrap(),
            ["file", size, flags, path] => {
                v.files
                    .push((size.parse().unwrap(), flags.to_string(), path.to_string()))
            }
            _ => panic!("unexpected line from lt.py: {line:?}"),
        }
    }
    assert_eq!(v.v1.len(), 40, "lt.py show printed no v1 hash: {out}");
    v
}

/// A payload on disk: its root (a file or a directory) and every file under it as
/// (path relative to the root's parent, with `/`; length), sorted.
struct Payload {
    root: PathBuf,
    files: Vec<(String, u64)>,
}

fn write_file(path: &Path, len: usize, rng: &mut fastrand::Rng) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
    fs::write(path, data).unwrap();
}

/// A directory `payload/` with odd-sized files, a zero-length file, an executable file and
/// a nested directory.
fn multi_payload(dir: &Path) -> Payload {
    let mut rng = fastrand::Rng::with_seed(7);
    let root = dir.join("payload");
    let files: Vec<(&str, usize)> = vec![
        ("a.bin", 100_000),
        ("empty", 0),
        ("sub/b.txt", 40_001),
        ("sub/deeper/c", 7),
        ("z-exact-block", 16_384),
    ];
    for (p, len) in &files {
        write_file(&root.join(p), *len, &mut rng);
    }
    set_executable(&root.join("sub/b.txt"));
    let mut listed: Vec<(String, u64)> = files
        .iter()
        .map(|(p, len)| (format!("payload/{p}"), *len as u64))
        .collect();
    listed.sort();
    Payload {
        root,
        files: listed,
    }
}

fn single_payload(dir: &Path) -> Payload {
    let mut rng = fastrand::Rng::with_seed(8);
    let root = dir.join("single.bin");
    write_file(&root, 70_001, &mut rng);
    Payload {
        root,
        files: vec![("single.bin".to_owned(), 70_001)],
    }
}

#[cfg(unix)]
fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) {}

/// The relative path of file `i` with `/` separators.
fn rel(m: &Metainfo, i: usize) -> String {
    m.save_path_of(i)
        .unwrap()
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses `torrent` and checks it against libtorrent's view, the payload and the piece
/// hashes. `drops_empty`: the tool leaves zero-length files out (transmission does).
fn check(dir: &Path, torrent: &Path, payload: &Payload, drops_empty: bool) -> Metainfo {
    let bytes = fs::read(torrent).unwrap();
    let m = Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", torrent.display()));
    let lt = lt_show(dir, torrent);
    let what = torrent.display();

    assert_eq!(m.info_hash.to_hex(), lt.v1, "{what}: info-hash");
    assert_eq!(m.info.name, lt.name, "{what}: name");
    assert_eq!(m.info.total_length, lt.total_size, "{what}: total length");
    assert_eq!(m.info.piece_length, lt.piece_length, "{what}: piece length");
    assert_eq!(m.info.piece_count(), lt.num_pieces, "{what}: piece count");
    assert_eq!(
        m.tracker_tiers(),
        vec![vec![ANNOUNCE.to_owned()]],
        "{what}: trackers"
    );

    // The same files, in the same order, as libtorrent sees them, pads included.
    let ours: Vec<(u64, bool, bool, String)> = (0..m.info.files.len())
        .map(|i| {
            let f = &m.info.files[i];
            (f.length, f.padding, f.executable, rel(&m, i))
        })
        .collect();
    let theirs: Vec<(u64, bool, bool, String)> = lt
        .files
        .iter()
        .map(|(size, flags, path)| {
            (
                *size,
                flags.contains('p'),
                flags.contains('x'),
                path.clone(),
            )
        })
        .collect();
    assert_eq!(ours, theirs, "{what}: file list");

    // Offsets are the running sum, and total_length counts pads.
    let mut offset = 0;
    for f in &m.info.files {
        assert_eq!(f.offset, offset, "{what}: offsets");
        offset += f.length;
    }
    assert_eq!(offset, m.info.total_length);

    // The non-pad files are exactly the payload.
    let mut real: Vec<(String, u64)> = (0..m.info.files.len())
        .filter(|&i| !m.info.files[i].padding)
        .map(|i| (rel(&m, i), m.info.files[i].length))
        .collect();
    real.sort();
    let expect: Vec<(String, u64)> = payload
        .files
        .iter()
        .filter(|(_, len)| !(drops_empty && *len == 0))
        .cloned()
        .collect();
    assert_eq!(real, expect, "{what}: files vs payload");
    assert_eq!(
        m.info.multi_file,
        payload.root.is_dir(),
        "{what}: multi-file"
    );

    // Every piece re-hashed from the payload through the layout matches the torrent.
    let layout = m.info.layout();
    assert_eq!(layout.piece_count(), m.info.piece_count());
    assert_eq!(layout.total_length(), m.info.total_length);
    let base = payload.root.parent().unwrap();
    let contents: Vec<Vec<u8>> = (0..m.info.files.len())
        .map(|i| {
            if m.info.files[i].padding {
                vec![0; m.info.files[i].length as usize]
            } else {
                fs::read(base.join(m.save_path_of(i).unwrap())).unwrap()
            }
        })
        .collect();
    for piece in 0..layout.piece_count() {
        let mut h = sha1::Sha1::new();
        let mut n = 0u64;
        for s in layout.piece_spans(piece) {
            let start = s.file_offset as usize;
            h.update(&contents[s.file][start..start + s.len as usize]);
            n += s.len;
        }
        assert_eq!(n, u64::from(layout.piece_len(piece)));
        let digest: [u8; 20] = h.finalize().into();
        assert_eq!(
            Some(&digest),
            m.info.piece_hash(piece),
            "{what}: piece {piece} hash"
        );
    }
    m
}

#[test]
fn mktorrent_single_and_multi_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for payload in [multi_payload(dir), single_payload(dir)] {
        let out = dir.join("mk.torrent");
        let _ = fs::remove_file(&out);
        let src = payload.root.to_str().unwrap();
        run(
            dir,
            "mktorrent",
            &["-l", "15", "-a", ANNOUNCE, "-o", out.to_str().unwrap(), src],
        );
        let m = check(dir, &out, &payload, false);
        assert_eq!(m.info.piece_length, 1 << 15);
        assert!(m.created_by.as_deref().unwrap_or("").contains("mktorrent"));
        assert!(m.creation_date.is_some());
    }
}

#[test]
fn transmission_create_single_and_multi_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for payload in [multi_payload(dir), single_payload(dir)] {
        let out = dir.join("tr.torrent");
        let _ = fs::remove_file(&out);
        let src = payload.root.to_str().unwrap();
        run(
            dir,
            "transmission-create",
            &["-o", out.to_str().unwrap(), "-t", ANNOUNCE, src],
        );
        // Transmission 3.00 leaves zero-length files out of the torrent.
        let m = check(dir, &out, &payload, true);
        assert!(m.info.files.iter().all(|f| !f.padding));
    }
}

#[test]
fn libtorrent_hybrid_multi_file_has_pads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let payload = multi_payload(dir);
    let out = dir.join("lt.torrent");
    lt(
        dir,
        &[
            "create",
            payload.root.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    let m = check(dir, &out, &payload, false);
    // It really is a hybrid: v2 keys inside info, BEP 47 pad files in the v1 list.
    let info = &m.info_bytes[..];
    let has = |needle: &[u8]| info.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"9:file tree"), "no v2 file tree: not a hybrid torrent");
    assert!(has(b"12:meta version"), "no meta version");
    // Both parts read (BEP 52): the v2 files are the v1 ones without the pads.
    assert!(m.is_hybrid(), "not read as a hybrid");
    let v2 = m.v2.as_ref().unwrap();
    assert!(v2.piece_layers_known);
    let real = m.info.files.iter().filter(|f| !f.padding).count();
    assert_eq!(v2.files.len(), real);
    let pads: Vec<_> = m.info.files.iter().filter(|f| f.padding).collect();
    assert!(
        !pads.is_empty(),
        "hybrid multi-file torrent without pad files"
    );
    for p in &pads {
        assert_eq!(p.path[0], ".pad");
    }
    // Pads align every real non-empty file after the first to a piece boundary.
    let pl = u64::from(m.info.piece_length);
    for f in m.info.files.iter().filter(|f| !f.padding && f.length > 0) {
        assert_eq!(f.offset % pl, 0, "{:?} not piece-aligned", f.path);
    }
    // The executable bit survives as BEP 47 `x`.
    let b = m
        .info
        .files
        .iter()
        .find(|f| f.path == ["sub", "b.txt"])
        .unwrap();
    assert!(cfg!(not(unix)) || b.executable, "sub/b.txt lost its x flag");
}

#[test]
fn libtorrent_v1_only_and_single_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let payload = multi_payload(dir);
    let out = dir.join("lt1.torrent");
    lt(
        dir,
        &[
            "create",
            payload.root.to_str().unwrap(),
            out.to_str().unwrap(),
            "--v1-only",
        ],
    );
    let m = check(dir, &out, &payload, false);
    assert!(m.info.files.iter().all(|f| !f.padding));

    let payload = single_payload(dir);
    let out = dir.join("lts.torrent");
    lt(
        dir,
        &[
            "create",
            payload.root.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    let m = check(dir, &out, &payload, false);
    assert!(!m.info.multi_file);
    assert_eq!(m.info.files.len(), 1);
}
