//! Web seeds (BEP 19) in virtual time: requests map to the right file ranges (single and
//! multi-file, a piece spanning two files, padding files never asked), the in-flight bound
//! holds, failures back off and are retried, the session's time-out fails a silent request,
//! a 404 takes the file off the web seed, and a web seed sending wrong bytes is banned while
//! the download completes from another source.

use std::time::Duration;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use unchoke_core::embed::verify_piece;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    Action, Event, Session, SessionConfig, TorrentId, WebSeedError, WebSeedFailure, WebSeedId,
    WebSeedRange,
};
use unchoke_core::time::Instant;

/// An owned bencode value, enough to write a test torrent.
enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(Vec<(Vec<u8>, Value)>),
}

impl Value {
    fn dict(mut entries: Vec<(Vec<u8>, Value)>) -> Value {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Dict(entries)
    }
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    fn put(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Int(i) => out.extend(format!("i{i}e").bytes()),
            Value::Bytes(b) => {
                out.extend(format!("{}:", b.len()).bytes());
                out.extend(b);
            }
            Value::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| put(v, out));
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    put(&Value::Bytes(k.clone()), out);
                    put(v, out);
                }
                out.push(b'e');
            }
        }
    }
    put(v, &mut out);
    out
}

/// A file of a test torrent: its path components, its bytes, whether it is BEP 47 padding.
struct File {
    path: Vec<&'static str>,
    data: Vec<u8>,
    padding: bool,
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A torrent named `name` over `files` (one file without a path: single-file) with
/// `url-list` `urls`.
fn torrent(name: &str, files: &[File], piece_length: u32, urls: &[&str]) -> Metainfo {
    let all: Vec<u8> = files.iter().flat_map(|f| f.data.clone()).collect();
    let mut pieces = Vec::new();
    for chunk in all.chunks(piece_length as usize) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let mut info = vec![
        (b"name".to_vec(), Value::Bytes(name.as_bytes().to_vec())),
        (
            b"piece length".to_vec(),
            Value::Int(i64::from(piece_length)),
        ),
        (b"pieces".to_vec(), Value::Bytes(pieces)),
    ];
    if files.len() == 1 && files[0].path.is_empty() {
        info.push((b"length".to_vec(), Value::Int(files[0].data.len() as i64)));
    } else {
        let list = files
            .iter()
            .map(|f| {
                let mut d = vec![
                    (b"length".to_vec(), Value::Int(f.data.len() as i64)),
                    (
                        b"path".to_vec(),
                        Value::List(
                            f.path
                                .iter()
                                .map(|c| Value::Bytes(c.as_bytes().to_vec()))
                                .collect(),
                        ),
                    ),
                ];
                if f.padding {
                    d.push((b"attr".to_vec(), Value::Bytes(b"p".to_vec())));
                }
                Value::dict(d)
            })
            .collect();
        info.push((b"files".to_vec(), Value::List(list)));
    }
    let root = Value::dict(vec![
        (b"info".to_vec(), Value::dict(info)),
        (
            b"url-list".to_vec(),
            Value::List(
                urls.iter()
                    .map(|u| Value::Bytes(u.as_bytes().to_vec()))
                    .collect(),
            ),
        ),
    ]);
    Metainfo::from_bytes(&encode(&root)).expect("the test torrent parses")
}

/// A session with one torrent, answering its disk work at once, holding its web seed
/// requests for the test to answer.
struct World {
    s: Session,
    t: TorrentId,
    now: Instant,
    requests: Vec<(WebSeedId, u64, Vec<WebSeedRange>)>,
    events: Vec<Event>,
    complete: bool,
}

impl World {
    fn new(metainfo: &Metainfo, config: SessionConfig) -> World {
        let now = Instant::ZERO;
        let mut s = Session::new(config, 7, now);
        let t = s.add_torrent(metainfo, None, now).expect("added");
        s.set_trackers(t, Vec::new(), now);
        let mut w = World {
            s,
            t,
            now,
            requests: Vec::new(),
            events: Vec::new(),
            complete: false,
        };
        w.drain();
        w
    }

    fn drain(&mut self) {
        while let Some(a) = self.s.poll_action() {
            match a {
                Action::WebSeedRequest {
                    torrent,
                    seed,
                    request,
                    ranges,
                } => {
                    assert_eq!(torrent, self.t);
                    self.requests.push((seed, request, ranges));
                }
                Action::WriteBlock { torrent, piece, .. } => {
                    self.s.disk_write_done(torrent, piece, Ok(()), self.now);
                }
                Action::VerifyPiece {
                    torrent,
                    piece,
                    expected,
                    blocks,
                } => {
                    let ok = verify_piece(&blocks, &expected);
                    self.s.piece_hashed(torrent, piece, ok, self.now);
                }
                Action::SaveResume { torrent, .. } => self.s.resume_saved(torrent, true, self.now),
                Action::Event(e) => {
                    if matches!(e, Event::TorrentComplete { .. }) {
                        self.complete = true;
                    }
                    self.events.push(e);
                }
                _ => {}
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(t) = self.s.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.s.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.s.handle_timeout(self.now);
        self.drain();
    }

    /// Answers request `i` (in arrival order) with `serve`'s bytes for each range.
    fn answer(&mut self, i: usize, serve: &dyn Fn(&WebSeedRange) -> Vec<u8>) {
        let (seed, request, ranges) = self.requests.remove(i);
        let mut data = Vec::new();
        for r in &ranges {
            data.extend(serve(r));
        }
        self.s
            .web_seed_data(self.t, seed, request, Bytes::from(data), self.now);
        self.drain();
    }

    fn fail(&mut self, i: usize, failure: WebSeedFailure) {
        let (seed, request, _) = self.requests.remove(i);
        let error = WebSeedError { range: 0, failure };
        self.s
            .web_seed_failed(self.t, seed, request, error, self.now);
        self.drain();
    }

    fn failures(&self) -> Vec<(Option<String>, WebSeedFailure, Duration)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::WebSeedFailed {
                    file,
                    reason,
                    retry_in,
                    ..
                } => Some((file.clone(), reason.clone(), *retry_in)),
                _ => None,
            })
            .collect()
    }
}

/// A server holding `files` at the BEP 19 URLs under `base` (the torrent named `name`).
fn server<'a>(
    base: &'a str,
    name: &'a str,
    files: &'a [File],
) -> impl Fn(&WebSeedRange) -> Vec<u8> + 'a {
    move |r: &WebSeedRange| {
        let f = files
            .iter()
            .find(|f| {
                let url = if f.path.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}/{name}/{}", f.path.join("/").replace(' ', "%20"))
                };
                url == r.url
            })
            .unwrap_or_else(|| panic!("no file at {}", r.url));
        let start = r.start as usize;
        f.data[start..start + r.len as usize].to_vec()
    }
}

fn config(requests: usize) -> SessionConfig {
    SessionConfig {
        web_seed_requests: requests,
        ..SessionConfig::default()
    }
}

#[test]
fn multi_file_requests_map_to_per_file_ranges_and_complete() {
    // Piece 0 (32 KiB) holds all of a.bin (20000 bytes) and the first 12768 bytes of
    // "dir x/b.bin"; piece 1 the rest of b.bin (17232 bytes).
    let files = [
        File {
            path: vec!["a.bin"],
            data: content(20000, 1),
            padding: false,
        },
        File {
            path: vec!["dir x", "b.bin"],
            data: content(30000, 2),
            padding: false,
        },
    ];
    let m = torrent("set", &files, 32768, &["http://h/base"]);
    let mut w = World::new(&m, config(4));
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, Event::WebSeedAdded { url, .. } if url == "http://h/base"))
    );
    assert_eq!(
        w.requests.len(),
        2,
        "one request per piece, both pieces out"
    );
    let mut ranges: Vec<Vec<WebSeedRange>> = w.requests.iter().map(|r| r.2.clone()).collect();
    ranges.sort_by_key(|r| r.len());
    let a = "http://h/base/set/a.bin".to_string();
    let b = "http://h/base/set/dir%20x/b.bin".to_string();
    assert_eq!(
        ranges[0],
        vec![WebSeedRange {
            url: b.clone(),
            start: 12768,
            len: 17232
        }],
        "piece 1: the tail of b.bin"
    );
    assert_eq!(
        ranges[1],
        vec![
            WebSeedRange {
                url: a,
                start: 0,
                len: 20000
            },
            WebSeedRange {
                url: b,
                start: 0,
                len: 12768
            }
        ],
        "piece 0 spans two files: two ranges in content order"
    );
    let serve = server("http://h/base", "set", &files);
    w.answer(0, &serve);
    w.answer(0, &serve);
    assert!(w.complete, "the web seed alone completes the torrent");
    let stats = w.s.stats(w.t, w.now).expect("stats");
    assert_eq!(stats.web_seeds.len(), 1);
    assert_eq!(stats.web_seeds[0].downloaded, 50000);
    assert_eq!(stats.downloaded, 50000);
    assert!(w.requests.is_empty(), "nothing more asked once complete");
}

#[test]
fn single_file_urls_follow_bep_19() {
    let files = [File {
        path: vec![],
        data: content(40000, 3),
        padding: false,
    }];
    let m = torrent(
        "one file.iso",
        &files,
        65536,
        &["http://h/dir/", "http://h/x.iso", "ftp://h/x"],
    );
    let w = World::new(&m, config(4));
    let urls: Vec<&str> = w.requests.iter().map(|r| r.2[0].url.as_str()).collect();
    assert_eq!(urls.len(), 2, "one piece from each http web seed");
    assert!(urls.contains(&"http://h/dir/one%20file.iso"), "{urls:?}");
    assert!(urls.contains(&"http://h/x.iso"), "{urls:?}");
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, Event::WebSeedUnsupported { url, .. } if url == "ftp://h/x")),
        "an ftp web seed is named, not asked"
    );
}

#[test]
fn padding_files_are_never_requested() {
    let files = [
        File {
            path: vec!["a"],
            data: content(10000, 4),
            padding: false,
        },
        File {
            path: vec![".pad", "6384"],
            data: vec![0; 6384],
            padding: true,
        },
        File {
            path: vec!["b"],
            data: content(16384, 5),
            padding: false,
        },
    ];
    let m = torrent("p", &files, 16384, &["http://h/"]);
    let mut w = World::new(&m, config(4));
    assert_eq!(w.requests.len(), 2);
    for (_, _, ranges) in &w.requests {
        assert!(ranges.iter().all(|r| !r.url.contains(".pad")), "{ranges:?}");
    }
    let serve = server("http://h", "p", &files);
    w.answer(0, &serve);
    w.answer(0, &serve);
    assert!(
        w.complete,
        "the padding's zeros were filled in and piece 0 verified"
    );
}

fn many_pieces(pieces: usize) -> (Vec<File>, Metainfo) {
    let files = vec![File {
        path: vec![],
        data: content(pieces * 16384, 6),
        padding: false,
    }];
    let m = torrent("big", &files, 16384, &["http://h/big"]);
    (files, m)
}

#[test]
fn in_flight_requests_stay_within_the_bound() {
    let (files, m) = many_pieces(10);
    let mut w = World::new(&m, config(2));
    assert_eq!(w.requests.len(), 2, "two out at once");
    let serve = server("http://h/big", "big", &files);
    w.answer(0, &serve);
    assert_eq!(
        w.requests.len(),
        2,
        "an answer makes room for exactly one more"
    );
    w.advance(Duration::from_secs(5));
    assert_eq!(w.requests.len(), 2, "ticks add none while two are out");
    while !w.requests.is_empty() {
        assert!(w.requests.len() <= 2);
        w.answer(0, &serve);
    }
    assert!(w.complete);
}

#[test]
fn failures_back_off_exponentially_and_are_retried() {
    let (files, m) = many_pieces(4);
    let mut w = World::new(&m, config(1));
    assert_eq!(w.requests.len(), 1);
    w.fail(0, WebSeedFailure::Status(503));
    assert_eq!(w.failures()[0].2, Duration::from_secs(2), "first wait: 2 s");
    assert!(w.requests.is_empty(), "not asked again at once");
    w.advance(Duration::from_millis(1500));
    assert!(w.requests.is_empty(), "not before the back-off ends");
    w.advance(Duration::from_secs(1));
    assert_eq!(w.requests.len(), 1, "asked again after the back-off");
    w.fail(
        0,
        WebSeedFailure::Short {
            got: 100,
            expected: 16384,
        },
    );
    assert_eq!(w.failures()[1].2, Duration::from_secs(4), "doubled");
    w.advance(Duration::from_secs(3));
    assert!(w.requests.is_empty());
    w.advance(Duration::from_secs(2));
    assert_eq!(w.requests.len(), 1);
    let serve = server("http://h/big", "big", &files);
    while !w.requests.is_empty() {
        w.answer(0, &serve);
    }
    assert!(
        w.complete,
        "a success clears the back-off; the rest comes at once"
    );
}

#[test]
fn a_silent_request_times_out_and_its_late_answer_is_ignored() {
    let (files, m) = many_pieces(2);
    let mut w = World::new(&m, config(1));
    let first = w.requests[0].clone();
    w.advance(Duration::from_secs(61));
    let f = w.failures();
    assert_eq!(f.len(), 1);
    assert!(matches!(f[0].1, WebSeedFailure::TimedOut(_)), "{f:?}");
    // Late: the session no longer waits for it.
    let serve = server("http://h/big", "big", &files);
    let data: Vec<u8> = first.2.iter().flat_map(&serve).collect();
    let before = w.s.stats(w.t, w.now).expect("stats").downloaded;
    w.s.web_seed_data(w.t, first.0, first.1, Bytes::from(data), w.now);
    w.drain();
    assert_eq!(w.s.stats(w.t, w.now).expect("stats").downloaded, before);
}

#[test]
fn a_404_takes_the_file_off_the_web_seed() {
    let files = [
        File {
            path: vec!["a"],
            data: content(16384, 7),
            padding: false,
        },
        File {
            path: vec!["b"],
            data: content(16384, 8),
            padding: false,
        },
    ];
    let m = torrent("two", &files, 16384, &["http://h"]);
    let mut w = World::new(&m, config(1));
    let asked_b = w.requests[0].2[0].url.ends_with("/b");
    let missing = if asked_b { 1 } else { 0 };
    // Fail whichever file it asked first with 404; the other is served.
    let (seed, request, ranges) = w.requests.remove(0);
    let error = WebSeedError {
        range: 0,
        failure: WebSeedFailure::Status(404),
    };
    w.s.web_seed_failed(w.t, seed, request, error, w.now);
    w.drain();
    let f = w.failures();
    let name = if asked_b { "b" } else { "a" };
    assert_eq!(f[0].0.as_deref(), Some(name), "the event names the file");
    assert!(ranges[0].url.ends_with(name));
    // A missing file is an answer, not a failing server: the other file is asked for at
    // once, with no back-off.
    assert!(
        w.requests
            .first()
            .is_some_and(|r| !r.2[0].url.ends_with(&format!("/{name}"))),
        "the other file is asked for at once: {:?}",
        w.requests
    );
    let serve = server("http://h", "two", &files);
    for _ in 0..6 {
        w.advance(Duration::from_secs(60));
        while let Some(i) = (!w.requests.is_empty()).then_some(0) {
            assert!(
                !w.requests[i].2[0].url.ends_with(&format!("/{name}")),
                "the 404'd file is not asked again"
            );
            w.answer(i, &serve);
        }
    }
    let have = w.s.have(w.t).expect("have");
    assert!(have.get(1 - missing) && !have.get(missing));
}

#[test]
fn a_web_seed_sending_wrong_bytes_is_banned_and_another_source_completes() {
    let (files, mut m) = many_pieces(12);
    m.url_list = vec!["http://liar/big".into(), "http://good/big".into()];
    let mut w = World::new(&m, config(2));
    let honest = server("http://good/big", "big", &files);
    let lying = |r: &WebSeedRange| {
        let mut d = server("http://liar/big", "big", &files)(r);
        d[100] ^= 0xff;
        d
    };
    let mut rounds = 0;
    while !w.complete {
        rounds += 1;
        assert!(rounds < 500, "no progress");
        if w.requests.is_empty() {
            w.advance(Duration::from_secs(1));
            continue;
        }
        if w.requests[0].2[0].url.starts_with("http://liar/") {
            w.answer(0, &lying);
        } else {
            w.answer(0, &honest);
        }
    }
    let banned: Vec<&str> = w
        .events
        .iter()
        .filter_map(|e| match e {
            Event::WebSeedBanned { url, .. } => Some(url.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(banned, vec!["http://liar/big"], "only the liar is banned");
    let stats = w.s.stats(w.t, w.now).expect("stats");
    assert!(stats.web_seeds[0].banned && !stats.web_seeds[1].banned);
    assert!(stats.hash_failures >= 1);
    // Never asked again once banned.
    let ban_at = w
        .events
        .iter()
        .position(|e| matches!(e, Event::WebSeedBanned { .. }))
        .expect("banned");
    assert!(
        w.events[ban_at..].iter().all(
            |e| !matches!(e, Event::WebSeedFailed { url, .. } if url.starts_with("http://liar"))
        )
    );
}
