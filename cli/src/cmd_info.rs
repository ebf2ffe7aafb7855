//! `unchoke info`: what a .torrent file or a magnet link holds, for people or (`--json`)
//! for scripts.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use unchoke_core::magnet::Magnet;
use unchoke_core::metainfo::{DEFAULT_MAX_FILES, Metainfo, ShapeLimits};

use crate::error::CliError;
use crate::human;
use crate::output::{print, printable};
use crate::torrent_file;

/// Arguments of `unchoke info`.
#[derive(clap::Args, Debug)]
pub(crate) struct InfoArgs {
    /// A .torrent file, or a magnet link (magnet:?xt=urn:btih:...).
    #[arg(value_name = "TORRENT_FILE|MAGNET")]
    target: std::ffi::OsString,

    /// Print one JSON object instead of text (docs/json-events.md). Keys (snake_case,
    /// stable): event ("info"), time (RFC 3339 UTC), kind ("torrent" or
    /// "magnet"), name, info_hash (v1, 40 hex digits; null for v2-only), info_hash_v2 (BEP 52,
    /// 64 hex digits; null for v1), meta_version (1 or 2; null for a magnet), hybrid
    /// (v1 and v2 together), total_size, piece_length, piece_count, private,
    /// trackers (list of tiers), url_list, comment, created_by, creation_date, files
    /// ([{path, size, padding}]), peers (magnet only), magnet. Unknown values are null.
    #[arg(long)]
    json: bool,

    /// The file count above which a warning (on stderr) says `download` and `seed` would
    /// refuse the torrent (their --max-files).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FILES)]
    max_files: usize,

    /// On an error, also show its internals (e.g. where a file stops being valid bencode).
    #[arg(short, long)]
    verbose: bool,
}

/// Runs `unchoke info`; the error is the one line to print.
pub(crate) fn run(args: &InfoArgs) -> Result<(), CliError> {
    crate::output::set_json_mode(args.json);
    if let Some(text) = args.target.to_str().filter(|t| t.starts_with("magnet:")) {
        let magnet = Magnet::parse(text).map_err(|e| e.to_string())?;
        let out = if args.json {
            crate::output::json_line(magnet_json(&magnet))
        } else {
            magnet_text(&magnet)
        };
        return Ok(print(&out)?);
    }
    let metainfo = torrent_file::load(Path::new(&args.target))?;
    // Shown anyway (the user asked what it holds), but say it would be refused.
    let limits = ShapeLimits {
        max_files: args.max_files,
        ..ShapeLimits::default()
    };
    if let Err(e) = metainfo.info.check_shape(&limits) {
        eprintln!("unchoke: warning: {e}; `download` and `seed` will refuse it");
    }
    let out = if args.json {
        crate::output::json_line(torrent_json(&metainfo))
    } else {
        torrent_text(&metainfo)
    };
    Ok(print(&out)?)
}

impl InfoArgs {
    /// Whether errors should carry their internals (`--verbose`).
    pub(crate) fn verbose(&self) -> bool {
        self.verbose
    }
}

/// Where each file lands below the download directory, components joined by `/`.
fn file_path(m: &Metainfo, components: &[String]) -> String {
    if m.info.multi_file {
        let mut p = m.info.name.clone();
        for c in components {
            p.push('/');
            p.push_str(c);
        }
        p
    } else {
        m.info.name.clone()
    }
}

fn torrent_json(m: &Metainfo) -> Value {
    let files: Vec<Value> = m
        .info
        .files
        .iter()
        .map(|f| {
            json!({
                "path": file_path(m, &f.path),
                "size": f.length,
                "padding": f.padding,
            })
        })
        .collect();
    json!({
        "event": "info",
        "kind": "torrent",
        "name": m.info.name,
        "info_hash": (!m.is_v2_only()).then(|| m.info_hash.to_hex()),
        "info_hash_v2": m.v2.as_ref().map(|v2| v2.info_hash.to_hex()),
        "meta_version": if m.v2.is_some() { 2 } else { 1 },
        "hybrid": m.is_hybrid(),
        "total_size": m.info.total_length,
        "piece_length": m.info.piece_length,
        "piece_count": piece_count(m),
        "private": m.info.private,
        "trackers": m.tracker_tiers(),
        "url_list": m.url_list,
        "comment": m.comment,
        "created_by": m.created_by,
        "creation_date": m.creation_date,
        "files": files,
        "peers": [],
        "magnet": Magnet::from_metainfo(m).to_uri(),
    })
}

/// v1 pieces, or for a v2-only torrent its v2 pieces (each file starts a piece).
fn piece_count(m: &Metainfo) -> u64 {
    match &m.v2 {
        Some(v2) if m.is_v2_only() => v2.piece_count(),
        _ => u64::from(m.info.piece_count()),
    }
}

/// "1", "2 (v2-only)" or "2 (hybrid v1 + v2)".
fn meta_version(m: &Metainfo) -> &'static str {
    if m.is_hybrid() {
        "2 (hybrid v1 + v2)"
    } else if m.is_v2_only() {
        "2 (v2-only)"
    } else {
        "1"
    }
}

fn magnet_json(magnet: &Magnet) -> Value {
    json!({
        "event": "info",
        "kind": "magnet",
        "name": magnet.display_name,
        "info_hash": (!magnet.v2_only).then(|| magnet.info_hash.to_hex()),
        "info_hash_v2": magnet.info_hash_v2.map(|h| h.to_hex()),
        "meta_version": null,
        "hybrid": magnet.info_hash_v2.is_some() && !magnet.v2_only,
        "total_size": null,
        "piece_length": null,
        "piece_count": null,
        "private": null,
        "trackers": magnet_tiers(magnet),
        "url_list": [],
        "comment": null,
        "created_by": null,
        "creation_date": null,
        "files": null,
        "peers": magnet.peers,
        "magnet": magnet.to_uri(),
    })
}

/// A magnet link's trackers carry no tiers: each gets its own, in link order (as
/// libtorrent does), so they are tried in the order given.
fn magnet_tiers(magnet: &Magnet) -> Vec<Vec<String>> {
    magnet.trackers.iter().map(|t| vec![t.clone()]).collect()
}

fn push_field(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "{:<14} {}", format!("{label}:"), printable(value));
}

fn push_tiers(out: &mut String, tiers: &[Vec<String>]) {
    if tiers.iter().all(Vec::is_empty) {
        push_field(out, "trackers", "none");
        return;
    }
    out.push_str("trackers:\n");
    for (i, tier) in tiers.iter().filter(|t| !t.is_empty()).enumerate() {
        for (j, url) in tier.iter().enumerate() {
            let label = if j == 0 {
                format!("tier {}:", i + 1)
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {label:<8} {}", printable(url));
        }
    }
}

fn torrent_text(m: &Metainfo) -> String {
    let mut out = String::new();
    let info = &m.info;
    push_field(&mut out, "name", &info.name);
    if !m.is_v2_only() {
        push_field(&mut out, "info-hash", &m.info_hash.to_hex());
    }
    if let Some(v2) = &m.v2 {
        push_field(&mut out, "info-hash v2", &v2.info_hash.to_hex());
    }
    push_field(&mut out, "meta version", meta_version(m));
    push_field(
        &mut out,
        "total size",
        &format!(
            "{} ({} bytes)",
            human::size(info.total_length),
            info.total_length
        ),
    );
    push_field(
        &mut out,
        "piece length",
        &format!(
            "{} ({} bytes)",
            human::size(u64::from(info.piece_length)),
            info.piece_length
        ),
    );
    push_field(&mut out, "pieces", &piece_count(m).to_string());
    push_field(&mut out, "private", if info.private { "yes" } else { "no" });
    if let Some(by) = &m.created_by {
        push_field(&mut out, "created by", by);
    }
    if let Some(date) = m.creation_date {
        push_field(&mut out, "creation date", &human::unix_time(date));
    }
    if let Some(comment) = &m.comment {
        push_field(&mut out, "comment", comment);
    }
    push_tiers(&mut out, &m.tracker_tiers());
    for url in &m.url_list {
        push_field(&mut out, "web seed", url);
    }
    let pads = info.files.iter().filter(|f| f.padding).count();
    let real = info.files.len() - pads;
    let mut header = format!("files ({real})");
    if pads > 0 {
        let _ = write!(
            header,
            ", {pads} padding file{} not shown",
            if pads == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(out, "{header}:");
    for f in info.files.iter().filter(|f| !f.padding) {
        let _ = writeln!(
            out,
            "  {:>11}  {}",
            human::size(f.length),
            printable(&file_path(m, &f.path))
        );
    }
    push_field(&mut out, "magnet", &Magnet::from_metainfo(m).to_uri());
    out
}

fn magnet_text(magnet: &Magnet) -> String {
    let mut out = String::new();
    push_field(
        &mut out,
        "name",
        magnet.display_name.as_deref().unwrap_or("(not given)"),
    );
    if !magnet.v2_only {
        push_field(&mut out, "info-hash", &magnet.info_hash.to_hex());
    }
    if let Some(v2) = &magnet.info_hash_v2 {
        push_field(&mut out, "info-hash v2", &v2.to_hex());
    }
    push_tiers(&mut out, &magnet_tiers(magnet));
    for peer in &magnet.peers {
        push_field(&mut out, "peer", peer);
    }
    push_field(&mut out, "magnet", &magnet.to_uri());
    out.push_str(
        "(a magnet link carries no sizes, pieces or files: they come with the metadata)\n",
    );
    out
}
