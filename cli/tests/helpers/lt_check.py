#!/usr/bin/python3
"""Load a torrent in libtorrent, let it check the data under SAVE_PATH, report the result.

Usage: lt_check.py TORRENT SAVE_PATH [TIMEOUT_SECONDS]

Prints one line "name=<name> files=<n> pieces=<n> progress=<fraction> state=<state>
have=<n> v1=<40 hex|none> v2=<64 hex|none>" (v1 and v2: libtorrent's info-hashes) and exits 0
only when libtorrent finds every piece valid (progress 1.0 / seeding). The session
never talks to the network: DHT, local discovery, UPnP and NAT-PMP are off, it listens on
127.0.0.1 only, and the torrents it is given have no trackers.
"""
import sys
import time

import libtorrent as lt


def main():
    torrent, save_path = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    session = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
    })
    info = lt.torrent_info(torrent)
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = save_path
    # Not auto-managed, so the queue cannot hold it back; checking starts at once.
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = session.add_torrent(params)

    checking = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
    deadline = time.monotonic() + timeout
    status = handle.status()
    while time.monotonic() < deadline:
        status = handle.status()
        if status.state in (lt.torrent_status.seeding, lt.torrent_status.finished):
            break
        if status.state not in checking and status.has_metadata and status.progress >= 1.0:
            break
        # Checked, and not everything is there: no point waiting (nothing will download).
        if status.state == lt.torrent_status.downloading and status.num_pieces < info.num_pieces():
            time.sleep(0.5)
            status = handle.status()
            if status.state == lt.torrent_status.downloading:
                break
        time.sleep(0.05)

    hashes = info.info_hashes()
    print("name=%s files=%d pieces=%d progress=%.4f state=%s have=%d v1=%s v2=%s" % (
        info.name(), info.num_files(), info.num_pieces(), status.progress, status.state,
        status.num_pieces, hashes.v1 if hashes.has_v1() else "none",
        hashes.v2 if hashes.has_v2() else "none"))
    complete = status.num_pieces == info.num_pieces() and status.progress >= 1.0
    sys.exit(0 if complete else 1)


if __name__ == "__main__":
    main()
