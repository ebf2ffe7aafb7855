//! A structured generator of *valid-looking* `.torrent` files, so that fuzzing reaches the
//! metainfo parser's deep checks (file lists, piece counts, paths) instead of stopping at
//! "not a dictionary".
//!
//! [`TorrentSpec`] derives [`arbitrary::Arbitrary`]: the fuzzer's bytes choose the name, the
//! piece length, a single file or a tree of files, trackers and optional fields, and at most
//! one [`Flaw`] that breaks one rule. [`TorrentSpec::to_bytes`] writes it with a small
//! bencoder of its own (independent of the one under test), optionally with unsorted keys so
//! that the info-hash must come from the raw bytes, not from a re-encoding.
//!
//! A spec that is [`TorrentSpec::is_clean`] (no flaw, every name plain) describes a torrent
//! that any correct parser accepts; the `metainfo_structured` target asserts that it does and
//! that every field comes back as written.

use arbitrary::Arbitrary;

/// Most files a generated multi-file torrent lists (keeps inputs and piece lists small).
pub const MAX_FILES: usize = 64;

/// Plain names: ASCII and non-ASCII, all acceptable as a path component on any platform.
const WORDS: &[&str] = &[
    "a",
    "b",
    "data",
    "file.bin",
    "sub",
    "deep",
    "x.txt",
    "readme.md",
    "music",
    "track-01.flac",
    "données",
    "日本語",
    "ファイル.dat",
    "Ünïcødé",
    "with space",
    "v1.2.3",
    "ALPHA",
    "z",
];

/// Tracker and web-seed URLs.
const URLS: &[&str] = &[
    "http://127.0.0.1:6969/announce",
    "udp://127.0.0.1:6969",
    "http://tracker.example/announce?passkey=abc",
    "https://seed.example/files/",
    "udp://[::1]:1337/announce",
];

/// Path components no parser may let through to a file system.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// `..`
    DotDot,
    /// `.`
    Dot,
    /// The empty string.
    Empty,
    /// `a/b` (a separator inside one component).
    Slash,
    /// `/etc` (absolute).
    Absolute,
    /// `..\x` (a Windows separator).
    Backslash,
    /// `a\0b`
    Nul,
}

impl Hostile {
    fn text(self) -> &'static str {
        match self {
            Hostile::DotDot => "..",
            Hostile::Dot => ".",
            Hostile::Empty => "",
            Hostile::Slash => "a/b",
            Hostile::Absolute => "/etc",
            Hostile::Backslash => "..\\x",
            Hostile::Nul => "a\0b",
        }
    }
}

/// One path component (or the torrent's name). Mostly plain words, so that multi-file
/// torrents with every component acceptable are common (see the `Arbitrary` impl).
#[derive(Clone, Debug)]
pub enum Component {
    /// A plain name from a fixed list (index taken modulo its length).
    Word(u8),
    /// Any text the fuzzer likes; clean only if it passes [`is_plain`].
    Text(String),
    /// A component that must be refused or sanitised.
    Hostile(Hostile),
    /// Bytes that are not UTF-8.
    NotUtf8(u8),
}

impl<'a> Arbitrary<'a> for Component {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        // Weights: 200/256 plain words, then free text, hostile names, non-UTF-8.
        Ok(match u8::arbitrary(u)? {
            0..=199 => Component::Word(u.arbitrary()?),
            200..=229 => Component::Text(u.arbitrary()?),
            230..=249 => Component::Hostile(u.arbitrary()?),
            _ => Component::NotUtf8(u.arbitrary()?),
        })
    }
}

impl Component {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Component::Word(i) => WORDS[usize::from(*i) % WORDS.len()].as_bytes().to_vec(),
            Component::Text(s) => s.as_bytes().to_vec(),
            Component::Hostile(h) => h.text().as_bytes().to_vec(),
            Component::NotUtf8(b) => vec![b'n', 0xff, *b, 0xfe],
        }
    }

    /// The component as text, when it is plain.
    pub fn plain(&self) -> Option<String> {
        let text = String::from_utf8(self.bytes()).ok()?;
        is_plain(&text).then_some(text)
    }
}

/// Whether `text` is a path component every parser must accept unchanged: 1–200 bytes of
/// letters, digits, space, `-`, `_`, `.`, not starting or ending with a space or a dot, and
/// not a Windows device name (which portable parsers refuse on every system).
pub fn is_plain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && !is_windows_device(text)
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        && !text.starts_with([' ', '.'])
        && !text.ends_with([' ', '.'])
}

/// `CON`, `aux.txt`, `com1.tar`…: the part before the first dot, in any case.
fn is_windows_device(text: &str) -> bool {
    let stem = text.split('.').next().unwrap_or("").to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit())
}

/// One file of a multi-file torrent.
#[derive(Arbitrary, Clone, Debug)]
pub struct FileSpec {
    /// Directories below the torrent's directory.
    pub dirs: Vec<Component>,
    /// The file's own name.
    pub file: Component,
    /// Prefix the file's name with its index (`3-name`), which keeps paths distinct; without
    /// it, two files may collide (a conflict the parser must refuse).
    pub numbered: bool,
    /// Length before scaling.
    pub length: u16,
    /// The length is multiplied by `2^(scale % 8)`.
    pub scale: u8,
}

impl FileSpec {
    /// The bytes of each path component of file number `index`.
    pub fn path(&self, index: usize) -> Vec<Vec<u8>> {
        let mut last = self.file.bytes();
        if self.numbered {
            last.splice(0..0, format!("{index}-").into_bytes());
        }
        let mut path: Vec<Vec<u8>> = self.dirs.iter().map(Component::bytes).collect();
        path.push(last);
        path
    }

    /// The path of file number `index` as text, when every component is plain.
    pub fn plain_path(&self, index: usize) -> Option<Vec<String>> {
        self.path(index)
            .into_iter()
            .map(|c| String::from_utf8(c).ok().filter(|t| is_plain(t)))
            .collect()
    }

    /// The file's length in bytes.
    pub fn length(&self) -> u64 {
        u64::from(self.length) << (self.scale % 8)
    }
}

/// A single file or a list of files.
#[derive(Arbitrary, Clone, Debug)]
pub enum Layout {
    /// `length` in the info dictionary; the name is the file's name. Length is taken modulo
    /// 8 MiB.
    Single(u32),
    /// `files` in the info dictionary (at most [`MAX_FILES`] are written).
    Multi(Vec<FileSpec>),
}

/// One rule broken on purpose.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// The `pieces` string holds this many hashes more (or fewer) than the length needs.
    PieceCount(i8),
    /// `pieces` is not a multiple of 20 bytes long.
    PiecesRagged(u8),
    /// `piece length` is 0.
    ZeroPieceLength,
    /// `piece length` is negative.
    NegativePieceLength,
    /// `piece length` does not fit a u32.
    HugePieceLength,
    /// A file length (or the single length) is negative.
    NegativeLength,
    /// A file length near `i64::MAX` (sums overflow).
    HugeLength,
    /// No `name`.
    MissingName,
    /// No `piece length`.
    MissingPieceLength,
    /// No `pieces`.
    MissingPieces,
    /// Both `length` and `files`.
    LengthAndFiles,
    /// Neither `length` nor `files`.
    NoLength,
    /// `files` is an empty list.
    EmptyFiles,
    /// The first file's `path` is an empty list.
    EmptyPath,
    /// `info` is a list, not a dictionary.
    InfoNotDict,
    /// No `info` at all.
    MissingInfo,
    /// `name` is an integer.
    NameNotString,
    /// `files` holds an integer.
    FileNotDict,
    /// The whole file is cut short by this many bytes (at least one).
    Truncate(u16),
    /// A byte of the output is overwritten.
    Overwrite(u16, u8),
}

/// The whole torrent, as the fuzzer chooses it.
#[derive(Arbitrary, Clone, Debug)]
pub struct TorrentSpec {
    /// The torrent's `name`.
    pub name: Component,
    /// `piece length` is `16 KiB << (this % 9)` (16 KiB … 4 MiB).
    pub piece_length_shift: u8,
    /// Files.
    pub layout: Layout,
    /// `private`: absent, 0 or 1.
    pub private: Option<bool>,
    /// `announce`, an index into a list of URLs.
    pub announce: Option<u8>,
    /// `announce-list` tiers, indices into a list of URLs.
    pub announce_list: Vec<Vec<u8>>,
    /// `url-list` (web seeds), indices into a list of URLs.
    pub url_list: Vec<u8>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date`.
    pub creation_date: Option<i64>,
    /// An unknown key in `info` (must be kept in the info-hash): which of a few spellings,
    /// and its integer value.
    pub extra_info_key: Option<(u8, i64)>,
    /// Write dictionary keys in reverse order (legal for lenient parsers; the info-hash
    /// must still be taken over the bytes as written).
    pub reverse_keys: bool,
    /// Seed for the piece hashes' bytes.
    pub piece_seed: u64,
    /// At most one broken rule.
    pub flaw: Option<Flaw>,
}

/// An owned bencode value for the generator's own encoder.
#[derive(Clone, Debug)]
enum B {
    I(i64),
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(&'static str, B)>),
}

impl B {
    fn str(s: &str) -> B {
        B::S(s.as_bytes().to_vec())
    }

    fn encode(&self, reverse: bool, out: &mut Vec<u8>) {
        match self {
            B::I(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            B::S(s) => {
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(s);
            }
            B::L(items) => {
                out.push(b'l');
                items.iter().for_each(|v| v.encode(reverse, out));
                out.push(b'e');
            }
            B::D(entries) => {
                let mut entries: Vec<&(&str, B)> = entries.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                if reverse {
                    entries.reverse();
                }
                out.push(b'd');
                for (k, v) in entries {
                    B::str(k).encode(reverse, out);
                    v.encode(reverse, out);
                }
                out.push(b'e');
            }
        }
    }

    fn set(&mut self, key: &'static str, value: B) {
        if let B::D(entries) = self {
            entries.retain(|(k, _)| *k != key);
            entries.push((key, value));
        }
    }

    fn remove(&mut self, key: &str) {
        if let B::D(entries) = self {
            entries.retain(|(k, _)| *k != key);
        }
    }
}

/// What a clean spec must parse to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The torrent's name.
    pub name: String,
    /// Bytes per piece.
    pub piece_length: u32,
    /// The SHA-1 of every piece, as written.
    pub piece_hashes: Vec<[u8; 20]>,
    /// Whether `private` is 1.
    pub private: bool,
    /// Whether the torrent lists `files`.
    pub multi_file: bool,
    /// `(path, length)` of every file, in order; a single file's path is `[name]`.
    pub files: Vec<(Vec<String>, u64)>,
    /// Sum of the file lengths.
    pub total_length: u64,
    /// The `announce` URL.
    pub announce: Option<String>,
    /// The exact bytes of the info dictionary as written.
    pub info_bytes: Vec<u8>,
}

impl TorrentSpec {
    /// Bytes per piece.
    pub fn piece_length(&self) -> u32 {
        (16 * 1024) << (self.piece_length_shift % 9)
    }

    fn files(&self) -> Vec<&FileSpec> {
        match &self.layout {
            Layout::Single(_) => Vec::new(),
            Layout::Multi(files) => files.iter().take(MAX_FILES).collect(),
        }
    }

    /// Sum of the file lengths (as generated, before any flaw).
    pub fn total_length(&self) -> u64 {
        match &self.layout {
            Layout::Single(len) => u64::from(*len % (8 << 20)),
            Layout::Multi(_) => self.files().iter().map(|f| f.length()).sum(),
        }
    }

    /// Whether every rule holds and every name is plain, so a correct parser must accept the
    /// torrent and return exactly what was written (see [`TorrentSpec::expected`]).
    pub fn is_clean(&self) -> bool {
        self.expected().is_some()
    }

    /// What a correct parser returns for this spec, or `None` when the spec is not clean.
    pub fn expected(&self) -> Option<Expected> {
        if self.flaw.is_some() || self.total_length() == 0 {
            return None;
        }
        let name = self.name.plain()?;
        let (multi_file, files) = match &self.layout {
            Layout::Single(_) => (false, vec![(vec![name.clone()], self.total_length())]),
            Layout::Multi(list) => {
                if list.is_empty() {
                    return None;
                }
                let mut files = Vec::new();
                for (i, f) in self.files().into_iter().enumerate() {
                    files.push((f.plain_path(i)?, f.length()));
                }
                // Two files at one path, or a file that is also a directory of another,
                // is a conflict a parser may refuse.
                let mut paths: Vec<&Vec<String>> = files.iter().map(|(p, _)| p).collect();
                paths.sort();
                if paths.windows(2).any(|w| w[1].starts_with(w[0])) {
                    return None;
                }
                (true, files)
            }
        };
        let info = self.info_dict();
        let mut info_bytes = Vec::new();
        info.encode(self.reverse_keys, &mut info_bytes);
        Some(Expected {
            name,
            piece_length: self.piece_length(),
            piece_hashes: self.piece_hashes(),
            private: self.private == Some(true),
            multi_file,
            files,
            total_length: self.total_length(),
            announce: self.announce.map(url),
            info_bytes,
        })
    }

    fn piece_hashes(&self) -> Vec<[u8; 20]> {
        let count = self.total_length().div_ceil(u64::from(self.piece_length()));
        let mut rng = fastrand::Rng::with_seed(self.piece_seed);
        (0..count)
            .map(|_| {
                let mut h = [0u8; 20];
                rng.fill(&mut h);
                h
            })
            .collect()
    }

    fn info_dict(&self) -> B {
        let mut pieces: Vec<u8> = self.piece_hashes().concat();
        let mut piece_length = B::I(i64::from(self.piece_length()));
        match self.flaw {
            Some(Flaw::PieceCount(delta)) => {
                let target = (pieces.len() / 20) as i64 + i64::from(delta);
                pieces.resize(target.clamp(0, 4096) as usize * 20, 0xab);
            }
            Some(Flaw::PiecesRagged(n)) => {
                let cut = usize::from(n % 19) + 1;
                if pieces.len() >= cut {
                    pieces.truncate(pieces.len() - cut);
                } else {
                    pieces.extend(std::iter::repeat_n(0u8, cut));
                }
            }
            Some(Flaw::ZeroPieceLength) => piece_length = B::I(0),
            Some(Flaw::NegativePieceLength) => piece_length = B::I(-16384),
            Some(Flaw::HugePieceLength) => piece_length = B::I(1 << 33),
            _ => {}
        }
        let mut info = B::D(vec![
            ("name", B::S(self.name.bytes())),
            ("piece length", piece_length),
            ("pieces", B::S(pieces)),
        ]);
        match self.private {
            Some(true) => info.set("private", B::I(1)),
            Some(false) => info.set("private", B::I(0)),
            None => {}
        }
        let huge = i64::MAX - 5;
        match &self.layout {
            Layout::Single(_) => {
                let length = match self.flaw {
                    Some(Flaw::NegativeLength) => -1,
                    Some(Flaw::HugeLength) => huge,
                    _ => self.total_length() as i64,
                };
                info.set("length", B::I(length));
            }
            Layout::Multi(_) => {
                let mut files: Vec<B> = self
                    .files()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        B::D(vec![
                            ("length", B::I(f.length() as i64)),
                            ("path", B::L(f.path(i).into_iter().map(B::S).collect())),
                        ])
                    })
                    .collect();
                if let Some(first) = files.first_mut() {
                    match self.flaw {
                        Some(Flaw::NegativeLength) => first.set("length", B::I(-1)),
                        Some(Flaw::HugeLength) => first.set("length", B::I(huge)),
                        Some(Flaw::EmptyPath) => first.set("path", B::L(Vec::new())),
                        _ => {}
                    }
                }
                match self.flaw {
                    Some(Flaw::EmptyFiles) => files.clear(),
                    Some(Flaw::FileNotDict) => files.push(B::I(7)),
                    Some(Flaw::HugeLength) => files.push(B::D(vec![
                        ("length", B::I(huge)),
                        ("path", B::L(vec![B::str("overflow")])),
                    ])),
                    _ => {}
                }
                info.set("files", B::L(files));
            }
        }
        if let Some((key, value)) = self.extra_info_key {
            // Keys that no v1 parser interprets, so the torrent keeps its meaning.
            let keys = ["source", "x-cross-seed", "md5sum", "similar", "zzz"];
            info.set(keys[usize::from(key) % keys.len()], B::I(value));
        }
        match self.flaw {
            Some(Flaw::MissingName) => info.remove("name"),
            Some(Flaw::MissingPieceLength) => info.remove("piece length"),
            Some(Flaw::MissingPieces) => info.remove("pieces"),
            Some(Flaw::LengthAndFiles) => {
                if matches!(self.layout, Layout::Single(_)) {
                    info.set("files", B::L(Vec::new()));
                } else {
                    info.set("length", B::I(1));
                }
            }
            Some(Flaw::NoLength) => {
                info.remove("length");
                info.remove("files");
            }
            Some(Flaw::NameNotString) => info.set("name", B::I(42)),
            _ => {}
        }
        info
    }

    /// The bencoded `.torrent` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut top = B::D(Vec::new());
        match self.flaw {
            Some(Flaw::InfoNotDict) => top.set("info", B::L(vec![B::I(1)])),
            Some(Flaw::MissingInfo) => {}
            _ => top.set("info", self.info_dict()),
        }
        if let Some(a) = self.announce {
            top.set("announce", B::str(url(a).as_str()));
        }
        if !self.announce_list.is_empty() {
            let tiers = self
                .announce_list
                .iter()
                .take(8)
                .map(|tier| B::L(tier.iter().take(8).map(|&u| B::str(&url(u))).collect()))
                .collect();
            top.set("announce-list", B::L(tiers));
        }
        if !self.url_list.is_empty() {
            let urls = self.url_list.iter().take(8).map(|&u| B::str(&url(u)));
            top.set("url-list", B::L(urls.collect()));
        }
        if let Some(c) = &self.comment {
            top.set("comment", B::str(c));
        }
        if let Some(c) = &self.created_by {
            top.set("created by", B::str(c));
        }
        if let Some(d) = self.creation_date {
            top.set("creation date", B::I(d));
        }
        let mut out = Vec::new();
        top.encode(self.reverse_keys, &mut out);
        match self.flaw {
            Some(Flaw::Truncate(n)) => {
                let cut = (usize::from(n) % out.len().max(1)).max(1);
                out.truncate(out.len().saturating_sub(cut));
            }
            Some(Flaw::Overwrite(at, byte)) if !out.is_empty() => {
                let i = usize::from(at) % out.len();
                out[i] = byte;
            }
            _ => {}
        }
        out
    }
}

fn url(i: u8) -> String {
    URLS[usize::from(i) % URLS.len()].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layout: Layout) -> TorrentSpec {
        TorrentSpec {
            name: Component::Word(2),
            piece_length_shift: 0,
            layout,
            private: Some(true),
            announce: Some(0),
            announce_list: vec![vec![0, 1], vec![2]],
            url_list: vec![3],
            comment: Some("c".into()),
            created_by: None,
            creation_date: Some(1_700_000_000),
            extra_info_key: None,
            reverse_keys: false,
            piece_seed: 7,
            flaw: None,
        }
    }

    #[test]
    fn clean_single_file_is_canonical_bencode() {
        let s = spec(Layout::Single(40_000));
        let bytes = s.to_bytes();
        let v = unchoke_core::bencode::decode_strict(&bytes).unwrap();
        let info = v
            .as_dict()
            .unwrap()
            .get(b"info")
            .unwrap()
            .as_dict()
            .unwrap();
        assert_eq!(info.get(b"length").unwrap().as_int(), Some(40_000));
        // 40 000 bytes in 16 KiB pieces: 3 pieces.
        assert_eq!(info.get(b"pieces").unwrap().as_bytes().unwrap().len(), 60);
        let e = s.expected().unwrap();
        assert_eq!(info.raw().unwrap(), &e.info_bytes[..]);
        assert_eq!(e.files, vec![(vec!["data".to_string()], 40_000)]);
    }

    #[test]
    fn reversed_keys_are_not_canonical_and_flaws_are_not_clean() {
        let mut s = spec(Layout::Multi(vec![FileSpec {
            dirs: vec![Component::Word(4)],
            file: Component::Word(0),
            numbered: true,
            length: 100,
            scale: 1,
        }]));
        s.reverse_keys = true;
        let bytes = s.to_bytes();
        assert!(unchoke_core::bencode::decode_strict(&bytes).is_err());
        assert!(unchoke_core::bencode::decode(&bytes).is_ok());
        assert_eq!(s.expected().unwrap().total_length, 200);
        s.flaw = Some(Flaw::EmptyPath);
        assert!(!s.is_clean());
        s.flaw = None;
        s.name = Component::Hostile(Hostile::DotDot);
        assert!(!s.is_clean());
    }

    #[test]
    fn plain_names() {
        assert!(is_plain("a.txt") && is_plain("données") && is_plain("with space"));
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "trailing.",
            " lead",
            "a\0",
            "con",
            "Aux.txt",
            "LPT1",
        ] {
            assert!(!is_plain(bad), "{bad:?}");
        }
    }
}
