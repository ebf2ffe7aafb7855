//! The dual-stack listener (the default, `[::]`): one `unchoke seed` on `--listen [::]:0`
//! serves an IPv4 downloader (dialling 127.0.0.1) and an IPv6 one (dialling ::1) at once;
//! the IPv4 peer is seen under its IPv4 address, not the socket's IPv4-mapped form
//! (`::ffff:127.0.x.y`), so one peer has one address however it arrived. Loopback only:
//! the wildcard listener is dialled on 127.0.0.1 and ::1.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::runtime::Runtime;
use common::{
    assert_same_file, completes, create_torrent, data, unchoke_download, unchoke_seed, write,
};

per_runtime!(a_dual_stack_seed_serves_ipv4_and_ipv6_downloaders_under_their_own_addresses);

fn a_dual_stack_seed_serves_ipv4_and_ipv6_downloaders_under_their_own_addresses(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let file = write(&src, "d.bin", &data(41, 2 * 1024 * 1024 + 77));
    let torrent = dir.path().join("d.torrent");
    create_torrent(&file, &torrent);

    let (mut seed, addr) = unchoke_seed(rt, &torrent, &src, "[::]", &["--no-dht"]);
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    assert!(addr.starts_with("[::]:"), "{addr}");

    let v4_ip = rt.ip(61);
    let out4 = dir.path().join("out4");
    let mut dl4 = unchoke_download(
        rt,
        &torrent,
        &out4,
        &v4_ip,
        &["--no-dht", "--peer", &format!("127.0.0.1:{port}")],
    );
    let out6 = dir.path().join("out6");
    let mut dl6 = unchoke_download(
        rt,
        &torrent,
        &out6,
        "[::1]",
        &["--no-dht", "--peer", &format!("[::1]:{port}")],
    );
    completes(&mut dl4);
    completes(&mut dl6);
    assert_same_file(&file, &out4.join("d.bin"));
    assert_same_file(&file, &out6.join("d.bin"));
    // Everything the seed said so far, then let it go.
    seed.signal("INT");
    seed.wait_exit(common::TRANSFER_WAIT);

    let inbound: Vec<String> = seed
        .seen
        .iter()
        .filter(|v| v["event"] == "peer_connected" && v["detail"] == "inbound")
        .filter_map(|v| v["addr"].as_str().map(str::to_owned))
        .collect();
    assert!(
        inbound.iter().any(|a| a.starts_with(&format!("{v4_ip}:"))),
        "the IPv4 peer under its IPv4 address: {inbound:?}\n{}",
        seed.dump()
    );
    assert!(
        inbound.iter().any(|a| a.starts_with("[::1]:")),
        "the IPv6 peer: {inbound:?}"
    );
    assert!(
        !inbound.iter().any(|a| a.contains("::ffff:")),
        "no IPv4-mapped address reaches the session: {inbound:?}"
    );
}
