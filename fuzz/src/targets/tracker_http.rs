//! The `tracker_http` target: the HTTP tracker response reader and the announce-body parser.
//!
//! The first 2 input bytes choose two split points; the rest is a response stream. Invariants
//! checked on every input:
//! 1. Nothing panics: not the reader, not the announce or scrape parsers, not the URL parser
//!    given the input as text.
//! 2. The reader's outcome (body or error) is the same whether the stream comes whole or in
//!    three parts: framing is split-independent.
//! 3. A body never exceeds `MAX_BODY_LEN`.
//! 4. Parsed peers never have port 0 and never repeat.

use std::collections::HashSet;

use unchoke_core::InfoHash;
use unchoke_core::tracker::AnnounceResponse;
use unchoke_core::tracker::http::{
    HttpResponseReader, HttpTrackerError, MAX_BODY_LEN, parse_announce_response,
    parse_scrape_response, request_bytes,
};

/// Runs every HTTP-tracker invariant on `data`. Panics if one fails.
pub fn tracker_http(data: &[u8]) {
    let Some((head, stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let whole = read(&[stream]);
    let a = usize::from(head[0]).wrapping_mul(37) % (stream.len() + 1);
    let b = a + usize::from(head[1]).wrapping_mul(53) % (stream.len() - a + 1);
    let parts = read(&[&stream[..a], &stream[a..b], &stream[b..]]);
    assert_eq!(whole, parts, "splitting at {a} and {b} changed the outcome");

    if let Ok(body) = &whole {
        assert!(body.len() <= MAX_BODY_LEN, "body of {} bytes", body.len());
        check_announce(body);
    }
    // The parsers also see the raw input, so they are fuzzed without HTTP framing around.
    check_announce(stream);
    let _ = parse_scrape_response(stream, &InfoHash([0; 20]));
    let _ = request_bytes(&String::from_utf8_lossy(stream));
}

fn read(chunks: &[&[u8]]) -> Result<Vec<u8>, HttpTrackerError> {
    let mut reader = HttpResponseReader::new();
    for chunk in chunks {
        if let Some(body) = reader.push(chunk)? {
            return Ok(body);
        }
    }
    reader.finish()
}

fn check_announce(body: &[u8]) {
    if let Ok(AnnounceResponse { peers, .. }) = parse_announce_response(body) {
        let mut seen = HashSet::new();
        for p in &peers {
            assert_ne!(p.port(), 0, "peer {p} with port 0");
            assert!(seen.insert(*p), "peer {p} listed twice");
        }
    }
}
