//! Replays every fuzz target on the stable toolchain, as part of `cargo test --workspace`:
//! each committed corpus file, then `UNCHOKE_FUZZ_ITERS` (default
//! `unchoke_fuzz::replay::DEFAULT_ITERS`) inputs generated from a fixed seed. A failed
//! invariant fails the test, names the input's origin and saves it under the target
//! directory so it can be replayed with `cargo run -p unchoke-fuzz --bin replay`.

use unchoke_fuzz::replay::{self, Summary};
use unchoke_fuzz::targets;

fn run(name: &str) {
    run_scaled(name, 1);
}

/// Like `run`, with `1/divisor` of the generated inputs (for targets whose one input costs
/// a whole session).
fn run_scaled(name: &str, divisor: usize) {
    let index = targets::ALL
        .iter()
        .position(|(n, _)| *n == name)
        .expect("a known target");
    let target = targets::ALL[index].1;
    let seed = replay::SEED + index as u64;
    let iters = (replay::iterations() / divisor).max(1);
    let Summary {
        corpus,
        generated,
        findings,
    } = replay::replay(name, target, seed, iters).expect("the corpus is readable");
    if let Some(f) = findings.first() {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings");
        std::fs::create_dir_all(&dir).expect("can create the findings directory");
        let path = dir.join(format!("{name}-finding"));
        std::fs::write(&path, &f.input).expect("can save the finding");
        panic!(
            "{name}: invariant failed on {}: {}\ninput saved to {}\n\
             replay: cargo run -p unchoke-fuzz --bin replay -- {name} {}",
            f.origin,
            f.message,
            path.display(),
            path.display()
        );
    }
    // The committed corpus must be there: an empty one means the replay lost its seeds.
    assert!(corpus > 0, "{name}: no corpus files in fuzz/corpus/{name}");
    assert_eq!(generated, iters);
    eprintln!("{name}: {corpus} corpus files and {generated} generated inputs, no finding");
}

#[test]
fn bencode() {
    run("bencode");
}

#[test]
fn metainfo() {
    run("metainfo");
}

/// Each generated torrent hashes up to 400 KB twice (SHA-1 and SHA-256 merkle trees): a
/// tenth of the count.
#[test]
fn metainfo_v2() {
    run_scaled("metainfo_v2", 10);
}

#[test]
fn metainfo_structured() {
    run("metainfo_structured");
}

#[test]
fn magnet() {
    run("magnet");
}

#[test]
fn wire() {
    run("wire");
}

#[test]
fn session_peer() {
    run_scaled("session_peer", 20);
}

#[test]
fn tracker_http() {
    run("tracker_http");
}

#[test]
fn tracker_udp() {
    run("tracker_udp");
}

/// About 0.2 ms an input in a debug build (a whole server per input): a tenth of the count.
#[test]
fn tracker_server() {
    run_scaled("tracker_server", 10);
}

/// A whole session per input: a tenth of the count.
#[test]
fn lsd() {
    run_scaled("lsd", 10);
}

#[test]
fn rpc() {
    run("rpc");
}

#[test]
fn utp_packet() {
    run("utp_packet");
}

/// One connection and up to a few hundred ops per input: a tenth of the count.
#[test]
fn utp_conn() {
    run_scaled("utp_conn", 10);
}

/// A whole session and four uTP peers per input: a hundredth of the count.
#[test]
fn utp_session() {
    run_scaled("utp_session", 100);
}

#[test]
fn the_utp_session_corpus_reaches_handshakes_fallbacks_and_resets() {
    // `utp_session` is only worth its time if its seeds get streams through the session's
    // handshake both ways, a `Both` dial to TCP, and a `Tcp` session's RESET.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/utp_session");
    let (mut handshakes, mut dialled, mut fallbacks, mut resets) = (0, 0, 0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let r = targets::utp_session_reached(&std::fs::read(entry.unwrap().path()).unwrap());
        handshakes += r.handshakes_read;
        dialled += usize::from(r.stats.dials_connected > 0);
        fallbacks += usize::from(r.stats.fallbacks_to_tcp > 0);
        resets += usize::from(r.stats.resets_sent > 0);
    }
    eprintln!(
        "utp_session corpus: {handshakes} handshakes read, {dialled} dials connected, {fallbacks} fall back, {resets} reset"
    );
    assert!(handshakes >= 3 && dialled >= 1 && fallbacks >= 1 && resets >= 1);
}

#[test]
fn the_utp_corpus_reaches_delivery_retransmission_and_every_ending() {
    // `utp_conn` is only worth its time if its seeds (and so their mutations) get past the
    // handshake: data delivered in order, packets resent, and each way a connection ends.
    use unchoke_core::utp::UtpState;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/utp_conn");
    let (mut delivered, mut resent, mut states) = (0, 0, Vec::new());
    for entry in std::fs::read_dir(dir).unwrap() {
        let r = targets::utp_conn_reached(&std::fs::read(entry.unwrap().path()).unwrap());
        delivered += usize::from(r.delivered > 0);
        resent += usize::from(r.retransmits > 0);
        states.extend(r.state);
    }
    eprintln!("utp_conn corpus: {delivered} deliver, {resent} resend, end states {states:?}");
    assert!(delivered >= 4 && resent >= 2, "{delivered} {resent}");
    for s in [UtpState::Connected, UtpState::Reset, UtpState::TimedOut] {
        assert!(states.contains(&s), "no seed ends {s:?}");
    }
}

/// A whole session per input: a tenth of the count.
#[test]
fn hash_exchange() {
    run_scaled("hash_exchange", 10);
}

#[test]
fn random_hash_schedules_reach_answers_and_fetched_layers() {
    // Worth its time only if random schedules get a request answered with hashes
    // (serving) and a whole set of layers accepted (fetching).
    let mut rng = fastrand::Rng::with_seed(replay::SEED);
    let (mut answered, mut received) = (0, 0);
    for i in 0..200u32 {
        let mut raw: Vec<u8> = vec![(i % 2) as u8];
        raw.extend((0..rng.usize(16..1500)).map(|_| rng.u8(..)));
        let (a, r) = targets::hash_exchange_reached(&raw);
        answered += usize::from(a > 0);
        received += r;
    }
    // Measured: 7 of the 100 serving runs, and 11 completed fetches.
    assert!(answered >= 3, "only {answered} serving runs got hashes");
    assert!(received >= 1, "no fetching run accepted the layers");
    eprintln!("hash_exchange: {answered} serving runs answered, {received} fetches completed");
}

#[test]
fn every_target_is_replayed() {
    // A new target added to `targets::ALL` needs a test above and a corpus directory.
    let names: Vec<&str> = targets::ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "bencode",
            "metainfo",
            "metainfo_structured",
            "magnet",
            "wire",
            "session_peer",
            "tracker_http",
            "tracker_udp",
            "tracker_server",
            "swarm",
            "krpc",
            "ut_metadata",
            "ut_pex",
            "session_hostile",
            "mse",
            "lsd",
            "metainfo_v2",
            "hash_exchange",
            "rpc",
            "utp_packet",
            "utp_conn",
            "utp_session"
        ]
    );
}

#[test]
fn a_failing_invariant_is_caught_and_reported() {
    // The harness itself must notice a panic rather than abort or pass.
    fn broken(data: &[u8]) {
        assert!(data.len() < 3, "too long");
    }
    assert!(replay::run_one(broken, b"ab").is_ok());
    let err = replay::run_one(broken, b"abcd").unwrap_err();
    assert!(err.contains("too long"), "{err}");
}

#[test]
fn the_structured_generator_reaches_accepted_torrents() {
    // The point of `metainfo_structured` is to get past the parser's first checks: a fair
    // share of generated specs must be clean and accepted, else the generator has rotted.
    use unchoke_core::metainfo::Metainfo;
    use unchoke_fuzz::torrent::TorrentSpec;
    let mut rng = fastrand::Rng::with_seed(replay::SEED);
    let (mut clean, mut accepted, mut multi) = (0, 0, 0);
    for _ in 0..2000 {
        let raw: Vec<u8> = (0..rng.usize(16..800)).map(|_| rng.u8(..)).collect();
        let Ok(spec) = arbitrary::Unstructured::new(&raw).arbitrary::<TorrentSpec>() else {
            continue;
        };
        clean += usize::from(spec.is_clean());
        if let Ok(m) = Metainfo::from_bytes(&spec.to_bytes()) {
            accepted += 1;
            multi += usize::from(m.info.files.len() > 1);
        }
        targets::check_spec(&spec);
    }
    eprintln!("of 2000 specs: {clean} clean, {accepted} accepted, {multi} multi-file accepted");
    assert!(clean >= 100, "only {clean} of 2000 specs were clean");
    assert!(accepted >= clean, "{accepted} accepted < {clean} clean");
    assert!(
        multi >= 20,
        "only {multi} accepted torrents had several files"
    );
}

#[test]
fn swarm() {
    // One input is a whole simulated swarm (a few milliseconds in a debug build).
    run_scaled("swarm", 200);
}

/// About 0.2 ms an input in a debug build (a whole DHT node per input): a tenth of the count.
#[test]
fn krpc() {
    run_scaled("krpc", 10);
}

/// A whole session per input in the session modes: a tenth of the count.
#[test]
fn ut_metadata() {
    run_scaled("ut_metadata", 10);
}

#[test]
fn ut_pex() {
    run("ut_pex");
}

/// A whole session with several connections and up to 600 steps per input (about 15 ms
/// in a debug build): a thousandth of the count.
#[test]
fn session_hostile() {
    run_scaled("session_hostile", 1000);
}

/// Two Diffie-Hellman key pairs and one or two modexps per input (about 1 ms in a debug
/// build): a tenth of the count.
#[test]
fn mse() {
    run_scaled("mse", 10);
}

#[test]
fn the_hostile_schedules_reach_the_policies() {
    // `session_hostile` is only worth its time if random schedules get past the handshakes
    // into the policies: pieces verified, corrupters banned, peers evicted, duplicates and
    // slow readers dropped, blocks uploaded. Of 100 seeded schedules, each must happen in
    // at least 10 (measured: 26 to 62).
    let mut rng = fastrand::Rng::with_seed(replay::SEED);
    let mut runs_with = [0usize; 6];
    for _ in 0..100 {
        let raw: Vec<u8> = (0..rng.usize(16..2000)).map(|_| rng.u8(..)).collect();
        let r = targets::session_hostile_reached(&raw);
        let hits = [
            r.verified,
            r.banned,
            r.evicted,
            r.duplicates,
            r.slow,
            r.uploaded,
        ];
        for (n, h) in runs_with.iter_mut().zip(hits) {
            *n += usize::from(h > 0);
        }
    }
    eprintln!(
        "of 100 schedules, runs that verified/banned/evicted/dup/slow/uploaded: {runs_with:?}"
    );
    for (what, n) in [
        "verified",
        "banned",
        "evicted",
        "dropped a duplicate",
        "dropped a slow reader",
        "uploaded",
    ]
    .into_iter()
    .zip(runs_with)
    {
        assert!(n >= 10, "only {n} of 100 schedules {what}");
    }
}
