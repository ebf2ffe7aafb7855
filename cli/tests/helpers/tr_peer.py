#!/usr/bin/python3
"""Transmission 3.00 as a seeder or leecher that a test can spawn and read.

  tr_peer.py seed  TORRENT SAVE_DIR --listen 127.0.0.x --port P --rpc-port R --config-dir DIR
                   [--timeout SECS] [--tracker-events]
  tr_peer.py leech TORRENT SAVE_DIR --listen 127.0.0.x --port P --rpc-port R --config-dir DIR
                   [--timeout SECS] [--keep-seeding SECS] [--tracker-events]

Writes DIR/settings.json (peer port P bound to 127.0.0.x, DHT/LPD/PEX/port mapping off, uTP
off unless --utp,
RPC on 127.0.0.1:R without authentication, download-dir SAVE_DIR, no speed/ratio/queue
limits, plaintext preferred), starts `transmission-daemon -f -g DIR` as its child (its log
goes to DIR/daemon.log), adds TORRENT through the RPC interface, lets it verify the data
already in SAVE_DIR (Transmission does so on add; it is asked explicitly if it does not)
and waits until every piece is valid. `--port 0` / `--rpc-port 0` pick free ports. Torrents
and resume files left in DIR by an earlier run are deleted first, so the data is always
verified afresh.

Leech: adds TORRENT to download into SAVE_DIR (which must exist), prints "listening" at
once and "finished" when every piece is valid, then seeds --keep-seeding SECS more (default
0) and exits. Its peers come from the torrent's trackers, or from peers that dial it.

stdout carries one JSON object per line (flushed at once), each with an "event" key:

  {"event":"checked","pieces_have":N,"piece_count":M,"seconds":S}
  {"event":"listening","addr":"127.0.0.x:P"}
  {"event":"status","state":"seeding","percent_done":1.0,"uploaded":B,"upload_rate":B/s,
   "downloaded":B,"download_rate":B/s,"peers":N,"peer_addrs":["ip:port",...],
   "encrypted_addrs":["ip:port",...],"utp_addrs":["ip:port",...]}
                                                       about once a second
  {"event":"finished","seconds":S}                     leech: every piece verified
  {"event":"stopped","reason":"signal|stdin|timeout|done","uploaded":B,"downloaded":B}
  {"event":"error","message":"..."}                    also written to stderr
  with --tracker-events, once per announce (from the RPC's trackerStats, polled each second):
  {"event":"tracker_reply","url":...,"peers":N}        the announce succeeded; N peers
  {"event":"tracker_error","url":...,"message":...}    it failed ("message": Transmission's)

Transmission 3.00 takes v1 torrents only: it rejects libtorrent's default hybrid v1+v2
torrents as "invalid or corrupt" (make them with lt.py create --v1-only, mktorrent or unchoke
create). A tracker named in the torrent may be unreachable: tracker errors are ignored.

Transmission never dials loopback peers, not even those a tracker names: the other side
must dial 127.0.0.x:P (a Transmission leecher in a loopback swarm gets its data only from
peers that dial it). It announces from --listen (the tracker sees that address). It keys
peers by IP, so give every other client its own 127.0.0.x address. It sends its first
`interested`/unchoke decisions from a 10 s timer and seeds at only 4-11 MB/s on loopback.

Stops on SIGTERM/SIGINT, on --timeout (default 600 s), and on end of stdin when stdin is a
pipe or socket; then it stops the daemon it started (SIGTERM to that pid, SIGKILL after
10 s) and exits. If this script is killed outright (SIGKILL), the kernel sends the daemon
SIGTERM (PR_SET_PDEATHSIG), so no daemon outlives its test. Exit codes: 0 stopped by
signal/stdin (seed) or finished (leech); 1 timeout, or leech stopped before finishing; 2
setup failure (bad arguments, daemon died, RPC unreachable, seed data incomplete).
"""
import argparse
import base64
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from peer_proc import emit, request_stop, watch_stdin
from peer_proc import stop as _stop
from peer_proc import stop_reason as _stop_reason

STATUS_SECONDS = 1.0
PR_SET_PDEATHSIG = 1
RPC_WAIT_SECONDS = 15.0
VERIFY_WAIT_SECONDS = 300.0
DAEMON_STOP_SECONDS = 10.0
RPC_TIMEOUT_SECONDS = 10.0

# Transmission's torrent status codes (RPC "status").
STATES = {0: "stopped", 1: "check_wait", 2: "checking", 3: "download_wait", 4: "downloading",
          5: "seed_wait", 6: "seeding"}

_daemon = [None]


class SetupError(Exception):
    """Something that keeps the seeder from starting."""


def free_port(address):
    """A port free right now on address (the daemon binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def write_settings(args):
    settings = {
        "alt-speed-enabled": False,
        "alt-speed-time-enabled": False,
        "bind-address-ipv4": args.listen,
        "bind-address-ipv6": "::1",
        "blocklist-enabled": False,
        "cache-size-mb": 32,
        "dht-enabled": False,
        "download-dir": os.path.abspath(args.save_dir),
        "download-queue-enabled": False,
        # 0 = tolerated (plaintext preferred), 1 = preferred (the default: incoming
        # plaintext handshakes are accepted), 2 = required (plaintext refused).
        "encryption": {"tolerated": 0, "preferred": 1, "required": 2}[args.encryption],
        "idle-seeding-limit-enabled": False,
        "incomplete-dir-enabled": False,
        "lpd-enabled": False,
        "message-level": 2,
        "peer-limit-global": 200,
        "peer-limit-per-torrent": 50,
        "peer-port": args.port,
        "peer-port-random-on-start": False,
        "pex-enabled": False,
        "port-forwarding-enabled": False,
        "queue-stalled-enabled": False,
        "ratio-limit-enabled": False,
        "rename-partial-files": False,
        "rpc-authentication-required": False,
        "rpc-bind-address": "127.0.0.1",
        "rpc-enabled": True,
        "rpc-host-whitelist-enabled": False,
        "rpc-port": args.rpc_port,
        "rpc-whitelist": "127.0.0.1",
        "rpc-whitelist-enabled": True,
        "scrape-paused-torrents-enabled": False,
        "script-torrent-done-enabled": False,
        "seed-queue-enabled": False,
        "speed-limit-down-enabled": False,
        "speed-limit-up-enabled": False,
        "start-added-torrents": True,
        "trash-original-torrent-files": False,
        "upload-slots-per-torrent": 14,
        # uTP (Transmission's libutp, BEP 29) only when asked: it then answers uTP dials on
        # the peer port's UDP side (TCP stays on: Transmission cannot turn it off).
        "utp-enabled": bool(args.utp),
        "watch-dir-enabled": False,
    }
    os.makedirs(args.config_dir, exist_ok=True)
    # A torrent remembered from an earlier run would come back without a fresh check.
    for sub, suffix in (("torrents", ".torrent"), ("resume", ".resume")):
        folder = os.path.join(args.config_dir, sub)
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.endswith(suffix):
                    os.remove(os.path.join(folder, name))
    with open(os.path.join(args.config_dir, "settings.json"), "w") as f:
        json.dump(settings, f, indent=2)


class Rpc:
    """Transmission RPC over HTTP, with the X-Transmission-Session-Id exchange."""

    def __init__(self, port):
        self.url = "http://127.0.0.1:%d/transmission/rpc" % port
        self.session_id = ""

    def call(self, method, arguments=None):
        body = json.dumps({"method": method, "arguments": arguments or {}}).encode()
        for _ in range(3):
            request = urllib.request.Request(self.url, data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            if self.session_id:
                request.add_header("X-Transmission-Session-Id", self.session_id)
            try:
                with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_SECONDS) as response:
                    reply = json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                if err.code == 409:
                    self.session_id = err.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise SetupError("RPC %s: HTTP %d" % (method, err.code)) from None
            if reply.get("result") != "success":
                raise SetupError("RPC %s: %s" % (method, reply.get("result")))
            return reply.get("arguments", {})
        raise SetupError("RPC %s: no session id accepted" % method)


def die_with_parent():
    """In the child before exec: get SIGTERM when this script dies, even by SIGKILL (a Rust
    test's Child::kill), so the daemon never outlives its test."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def start_daemon(args):
    log = open(os.path.join(args.config_dir, "daemon.log"), "ab")
    try:
        return subprocess.Popen(
            ["transmission-daemon", "-f", "-g", args.config_dir, "--log-info"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C meant for the test reaches us, and we stop it.
            start_new_session=True, preexec_fn=die_with_parent)
    except OSError as err:
        raise SetupError("cannot start transmission-daemon: %s" % err) from None
    finally:
        log.close()


def stop_daemon():
    daemon = _daemon[0]
    if daemon is None or daemon.poll() is not None:
        return
    daemon.terminate()
    try:
        daemon.wait(timeout=DAEMON_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait(timeout=DAEMON_STOP_SECONDS)


def check_daemon():
    daemon = _daemon[0]
    if daemon is not None and daemon.poll() is not None:
        raise SetupError("transmission-daemon exited with status %s (see daemon.log)"
                         % daemon.returncode)


def wait_rpc(rpc, deadline):
    last = None
    while time.monotonic() < deadline and not _stop.is_set():
        check_daemon()
        try:
            return rpc.call("session-get")
        except (urllib.error.URLError, ConnectionError, socket.timeout) as err:
            last = err
        time.sleep(0.1)
    raise SetupError("RPC on 127.0.0.1 not reachable: %s" % last)


FIELDS = ["id", "status", "percentDone", "recheckProgress", "haveValid", "sizeWhenDone",
          "pieceCount", "error", "errorString", "uploadedEver", "rateUpload",
          "downloadedEver", "rateDownload", "peersConnected", "peers", "trackerStats"]


def torrent_get(rpc, torrent_id):
    torrents = rpc.call("torrent-get", {"ids": [torrent_id], "fields": FIELDS})["torrents"]
    if not torrents:
        raise SetupError("torrent %s vanished from the daemon" % torrent_id)
    return torrents[0]


def add_torrent(rpc, args):
    """Adds TORRENT (started, saving into SAVE_DIR); returns its RPC id."""
    with open(args.torrent, "rb") as f:
        metainfo = base64.b64encode(f.read()).decode("ascii")
    added = rpc.call("torrent-add", {"metainfo": metainfo,
                                     "download-dir": os.path.abspath(args.save_dir),
                                     "paused": False})
    entry = added.get("torrent-added") or added.get("torrent-duplicate")
    if not entry:
        raise SetupError("torrent-add returned no torrent: %s" % added)
    return entry["id"]


class TrackerWatch:
    """Turns trackerStats polls into one event per announce (--tracker-events)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.last = {}

    def observe(self, t):
        if not self.enabled:
            return
        for stat in t.get("trackerStats", []):
            url = stat.get("announce", "")
            when = stat.get("lastAnnounceTime", 0)
            if not stat.get("hasAnnounced") or when == self.last.get(url):
                continue
            self.last[url] = when
            if stat.get("lastAnnounceSucceeded"):
                emit({"event": "tracker_reply", "url": url,
                      "peers": stat.get("lastAnnouncePeerCount", 0)})
            else:
                emit({"event": "tracker_error", "url": url,
                      "message": stat.get("lastAnnounceResult", "")})


def add_and_verify(rpc, args, deadline):
    torrent_id = add_torrent(rpc, args)
    started = time.monotonic()
    verify_asked = None
    seen_checking = False
    verify_deadline = min(deadline, started + VERIFY_WAIT_SECONDS)
    while time.monotonic() < verify_deadline and not _stop.is_set():
        check_daemon()
        now = time.monotonic()
        t = torrent_get(rpc, torrent_id)
        # 1 and 2 are tracker warnings/errors (a test's torrent may name an unreachable
        # tracker); 3 is a local error such as unreadable data.
        if t.get("error") == 3:
            raise SetupError("transmission: %s" % t.get("errorString"))
        complete = t["haveValid"] == t["sizeWhenDone"]
        if t["status"] in (1, 2):
            # Transmission 3.00 verifies data it finds on add by itself.
            seen_checking = True
        elif complete and t["status"] == 6:
            pieces = t["pieceCount"]
            emit({"event": "checked", "pieces_have": pieces, "piece_count": pieces,
                  "seconds": round(now - started, 3)})
            return torrent_id
        elif complete and t["status"] == 0:
            rpc.call("torrent-start-now", {"ids": [torrent_id]})
        elif complete:
            pass  # seed_wait or similar: it becomes "seeding" in a moment
        elif seen_checking or (verify_asked is not None and now - verify_asked > 2.0):
            raise SetupError("data in %s is incomplete: %d of %d bytes valid" % (
                args.save_dir, t["haveValid"], t["sizeWhenDone"]))
        elif verify_asked is None and now - started > 1.0:
            # It did not start checking on its own: ask once.
            rpc.call("torrent-verify", {"ids": [torrent_id]})
            verify_asked = now
        time.sleep(0.1)
    if _stop.is_set():
        return None
    raise SetupError("verification did not finish in time")


def status_line(t):
    return {
        "event": "status",
        "state": STATES.get(t["status"], str(t["status"])),
        "percent_done": t["percentDone"],
        "uploaded": t["uploadedEver"],
        "upload_rate": t["rateUpload"],
        "downloaded": t["downloadedEver"],
        "download_rate": t["rateDownload"],
        "peers": t["peersConnected"],
        "peer_addrs": ["%s:%d" % (p["address"], p["port"]) for p in t.get("peers", [])],
        # Which of them speak MSE/PE (RC4) with it.
        "encrypted_addrs": ["%s:%d" % (p["address"], p["port"]) for p in t.get("peers", [])
                            if p.get("isEncrypted")],
        # Which of them are connected over uTP: Transmission's peer flag 'T'.
        "utp_addrs": ["%s:%d" % (p["address"], p["port"]) for p in t.get("peers", [])
                      if p.get("isUTP") or "T" in p.get("flagStr", "")],
    }


def final_counts(rpc, torrent_id, counts):
    """The torrent's last totals, if the daemon still answers (else the last polled)."""
    try:
        t = torrent_get(rpc, torrent_id)
        counts["uploaded"], counts["downloaded"] = t["uploadedEver"], t["downloadedEver"]
    except (SetupError, urllib.error.URLError, ConnectionError, socket.timeout):
        pass


def seed(rpc, args, deadline, counts):
    """Verifies the data, then serves it until stopped. Returns the exit code."""
    watch = TrackerWatch(args.tracker_events)
    torrent_id = add_and_verify(rpc, args, deadline)
    if torrent_id is not None:
        emit({"event": "listening", "addr": "%s:%d" % (args.listen, args.port)})
        last_status = 0.0
        while not _stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                request_stop("timeout")
                break
            check_daemon()
            if now - last_status >= STATUS_SECONDS:
                last_status = now
                t = torrent_get(rpc, torrent_id)
                counts["uploaded"], counts["downloaded"] = t["uploadedEver"], t["downloadedEver"]
                watch.observe(t)
                emit(status_line(t))
            _stop.wait(0.1)
        final_counts(rpc, torrent_id, counts)
    return 1 if _stop_reason[0] == "timeout" else 0


def leech(rpc, args, deadline, counts):
    """Downloads until every piece is valid, seeds --keep-seeding SECS, returns the exit
    code: 0 finished, 1 stopped (timeout, signal, stdin) before that."""
    watch = TrackerWatch(args.tracker_events)
    torrent_id = add_torrent(rpc, args)
    started = time.monotonic()
    emit({"event": "listening", "addr": "%s:%d" % (args.listen, args.port)})
    last_status = 0.0
    finished_at = None
    while not _stop.is_set():
        now = time.monotonic()
        if finished_at is not None and now - finished_at >= args.keep_seeding:
            break
        if now >= deadline:
            request_stop("timeout")
            break
        check_daemon()
        t = torrent_get(rpc, torrent_id)
        if t.get("error") == 3:
            raise SetupError("transmission: %s" % t.get("errorString"))
        counts["uploaded"], counts["downloaded"] = t["uploadedEver"], t["downloadedEver"]
        watch.observe(t)
        if now - last_status >= STATUS_SECONDS:
            last_status = now
            emit(status_line(t))
        if finished_at is None and 0 < t["sizeWhenDone"] == t["haveValid"]:
            finished_at = now
            emit({"event": "finished", "seconds": round(now - started, 3)})
            continue
        _stop.wait(0.2)
    final_counts(rpc, torrent_id, counts)
    if finished_at is None:
        if _stop_reason[0] == "timeout":
            sys.stderr.write("tr_peer: leech timed out after %.0f s\n" % args.timeout)
        return 1
    return 0


def run(args):
    deadline = time.monotonic() + args.timeout
    if args.port == 0:
        args.port = free_port(args.listen)
    if args.rpc_port == 0:
        args.rpc_port = free_port("127.0.0.1")
    if not os.path.isdir(args.save_dir):
        raise SetupError("save directory %s does not exist" % args.save_dir)
    write_settings(args)
    _daemon[0] = start_daemon(args)
    rpc = Rpc(args.rpc_port)
    wait_rpc(rpc, min(deadline, time.monotonic() + RPC_WAIT_SECONDS))
    counts = {"uploaded": 0, "downloaded": 0}
    if args.mode == "seed":
        code = seed(rpc, args, deadline, counts)
        reason = _stop_reason[0]
    else:
        code = leech(rpc, args, deadline, counts)
        reason = _stop_reason[0] if _stop.is_set() else "done"
    emit({"event": "stopped", "reason": reason, "uploaded": counts["uploaded"],
          "downloaded": counts["downloaded"]})
    if args.mode == "seed" and reason == "timeout":
        sys.stderr.write("tr_peer: timed out after %.0f s\n" % args.timeout)
    return code


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("seed", "leech"):
        p = sub.add_parser(mode)
        p.add_argument("torrent")
        p.add_argument("save_dir")
        p.add_argument("--listen", required=True, help="IPv4 address for the peer port")
        p.add_argument("--port", type=int, required=True,
                       help="peer port (0 = pick a free one)")
        p.add_argument("--rpc-port", type=int, required=True,
                       help="RPC port on 127.0.0.1 (0 = pick a free one)")
        p.add_argument("--config-dir", required=True, help="Transmission's config directory")
        p.add_argument("--timeout", type=float, default=600.0, help="give up after SECS")
        p.add_argument("--encryption", choices=("tolerated", "preferred", "required"),
                       default="preferred",
                       help="Transmission's protocol encryption setting (MSE/PE)")
        p.add_argument("--tracker-events", action="store_true",
                       help="print tracker_reply / tracker_error events")
        p.add_argument("--utp", action="store_true",
                       help="enable Transmission's uTP (utp-enabled); status lines then list "
                       "the peers connected over it in utp_addrs")
        if mode == "leech":
            p.add_argument("--keep-seeding", type=float, default=0.0, metavar="SECS",
                           help="keep seeding this long after finishing")
    args = parser.parse_args()
    for name in ("port", "rpc_port"):
        if not 0 <= getattr(args, name) < 65536:
            parser.error("--%s out of range" % name.replace("_", "-"))

    signal.signal(signal.SIGTERM, lambda *_: request_stop("signal"))
    signal.signal(signal.SIGINT, lambda *_: request_stop("signal"))
    watch_stdin()
    try:
        code = run(args)
    except (SetupError, OSError, ValueError, KeyError) as err:
        emit({"event": "error", "message": str(err)})
        sys.stderr.write("tr_peer: %s\n" % err)
        code = 2
    finally:
        stop_daemon()
    sys.exit(code)


if __name__ == "__main__":
    main()
