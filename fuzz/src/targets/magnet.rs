//! The `magnet` target: `Magnet::parse` and `Magnet::to_uri` against each other.
//!
//! Invariants checked on every input:
//! 1. Parsing never panics, whether the input is UTF-8 or (lossily converted) not.
//! 2. A parsed link prints ([`Magnet::to_uri`]) to a canonical link that parses back to the
//!    same value, and printing that value again gives the same text (printing is a fixed
//!    point).
//! 3. A parsed link holds no empty tracker and no repeated tracker or peer (the parser drops
//!    them), and `Display` prints what `to_uri` prints.
//! 4. Error positions (`BadEscape`, `NotUtf8`, `BadInfoHash`, `BadPeer`) lie within the text.

use unchoke_core::magnet::{Magnet, MagnetError};

/// Runs every magnet-link invariant on `data` (as text). Panics if one fails.
pub fn magnet(data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(text) => check(text),
        Err(_) => check(&String::from_utf8_lossy(data)),
    }
}

fn check(text: &str) {
    let m = match Magnet::parse(text) {
        Ok(m) => m,
        Err(e) => {
            let position = match &e {
                MagnetError::BadEscape { position }
                | MagnetError::NotUtf8 { position }
                | MagnetError::BadInfoHash { position, .. }
                | MagnetError::BadPeer { position, .. } => Some(*position),
                _ => None,
            };
            if let Some(p) = position {
                assert!(
                    p <= text.len(),
                    "error position {p} past {} bytes: {e}",
                    text.len()
                );
            }
            return;
        }
    };
    assert!(
        m.trackers.iter().all(|t| !t.is_empty()),
        "an empty tracker was kept"
    );
    assert!(!has_repeats(&m.trackers), "a repeated tracker was kept");
    assert!(!has_repeats(&m.peers), "a repeated peer was kept");
    let uri = m.to_uri();
    assert_eq!(m.to_string(), uri, "Display and to_uri differ");
    match Magnet::parse(&uri) {
        Ok(again) => {
            assert_eq!(again, m, "printed link {uri:?} parses to a different value");
            assert_eq!(again.to_uri(), uri, "printing is not a fixed point");
        }
        Err(e) => panic!("printed link {uri:?} does not parse: {e}"),
    }
}

fn has_repeats(items: &[String]) -> bool {
    let mut sorted: Vec<&String> = items.iter().collect();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_links_hold_the_invariants() {
        let hex = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
        for link in [
            format!("magnet:?xt=urn:btih:{hex}&dn=a+b%20c&tr=x&tr=x&x.pe=[::1]:1"),
            format!("MAGNET:?xt.1=urn:btih:{hex}&tr.2=&dn="),
            "magnet:?xt=urn:btih:%".to_string(),
            "not a link".to_string(),
        ] {
            magnet(link.as_bytes());
        }
        magnet(b"magnet:?xt=urn:btih:\xff");
    }
}
