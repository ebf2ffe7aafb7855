//! `/metrics`: the daemon's state in Prometheus' text exposition format (version 0.0.4),
//! for a scraper next to the daemon. Built from the same [`Engine`] view the RPC answers
//! from, so it adds no state of its own.
//!
//! Session-wide gauges and counters, then per-torrent series labelled by info-hash and
//! name (label values escaped as the format says: `\\`, `\"`, `\n`).

use std::fmt::Write as _;

use super::{Engine, Status};

/// The text a `GET /metrics` answers, or why the engine could not be asked.
pub fn metrics(engine: &mut dyn Engine) -> Result<String, String> {
    let torrents = engine.torrents(&[])?;
    let mut out = String::new();
    let name = family(
        &mut out,
        "unchoke_torrents",
        "gauge",
        "Torrents in the session, by status.",
    );
    let mut lines = String::new();
    for (status, label) in [
        (Status::Stopped, "stopped"),
        (Status::Checking, "checking"),
        (Status::DownloadQueued, "download_queued"),
        (Status::Downloading, "downloading"),
        (Status::SeedQueued, "seed_queued"),
        (Status::Seeding, "seeding"),
    ] {
        let n = torrents.iter().filter(|t| t.status == status).count();
        let _ = writeln!(lines, "{name}{{status=\"{label}\"}} {n}");
    }
    out.push_str(&lines);
    let sums: [(&str, &str, &str, u64); 5] = [
        (
            "unchoke_download_rate_bytes",
            "gauge",
            "Payload received now, bytes per second, all torrents.",
            torrents.iter().map(|t| t.rate_down).sum(),
        ),
        (
            "unchoke_upload_rate_bytes",
            "gauge",
            "Payload sent now, bytes per second, all torrents.",
            torrents.iter().map(|t| t.rate_up).sum(),
        ),
        (
            "unchoke_downloaded_bytes_total",
            "counter",
            "Payload received since the daemon started, all torrents.",
            torrents.iter().map(|t| t.downloaded).sum(),
        ),
        (
            "unchoke_uploaded_bytes_total",
            "counter",
            "Payload sent since the daemon started, all torrents.",
            torrents.iter().map(|t| t.uploaded).sum(),
        ),
        (
            "unchoke_peers",
            "gauge",
            "Connected peers, all torrents.",
            torrents.iter().map(|t| t.peers as u64).sum(),
        ),
    ];
    for (name, kind, help, value) in sums {
        let name = family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    let per: [(&str, &str, &str); 3] = [
        (
            "unchoke_torrent_verified_bytes",
            "gauge",
            "Bytes of verified pieces, per torrent.",
        ),
        (
            "unchoke_torrent_size_bytes",
            "gauge",
            "The torrent's size (its files' bytes), per torrent.",
        ),
        (
            "unchoke_torrent_peers",
            "gauge",
            "Connected peers, per torrent.",
        ),
    ];
    for (i, (name, kind, help)) in per.into_iter().enumerate() {
        let name = family(&mut out, name, kind, help);
        for t in &torrents {
            let value = match i {
                0 => t.have,
                1 => t.total_size,
                _ => t.peers as u64,
            };
            let _ = writeln!(
                out,
                "{name}{{hash=\"{}\",name=\"{}\"}} {value}",
                escape(&t.hash),
                escape(&t.name)
            );
        }
    }
    Ok(out)
}

/// Writes a metric family's `HELP` and `TYPE` lines; returns its name.
fn family(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    name.to_owned()
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("plain name.iso"), "plain name.iso");
    }
}
