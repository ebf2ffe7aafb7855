#!/usr/bin/python3
"""`unchoke daemon` with many torrents: add N small torrents through the Transmission RPC,
then measure what a client sees.

Usage: benches/daemon_scale.py UNCHOKE_BINARY [N] [--runtime mio|smol]

Makes N single-file torrents of 4 KiB each (one 16 KiB piece; the data is present, so each
is checked and seeds), starts `unchoke daemon` on loopback (no DHT, no LSD, no trackers:
nothing leaves the machine), and reports as one JSON object:
  add_seconds          wall time to add all N through `torrent-add` (base64 `metainfo`)
  add_ms_median/p99    per-call latency of `torrent-add`
  get_ms_median/max    latency of a `torrent-get` of every torrent with the fields
                       `transmission-remote -l` asks for (20 calls)
  rss_mib / hwm_mib    the daemon's resident memory after the adds (VmRSS) and its peak (VmHWM)
  restart_seconds      after a SIGTERM, from starting the daemon again on the same session
                       directory until `torrent-get` lists all N torrents
  rss_after_restart_mib
Stdlib only; every wait is bounded; the daemon it starts is stopped at the end.
"""
import base64
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

LIST_FIELDS = ["id", "name", "status", "percentDone", "rateDownload", "rateUpload",
               "sizeWhenDone", "leftUntilDone", "eta", "uploadRatio", "peersConnected",
               "error", "errorString"]


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, str):
        return bencode(v.encode())
    if isinstance(v, dict):
        out = b"d"
        for k in sorted(v, key=lambda k: k.encode() if isinstance(k, str) else k):
            out += bencode(k) + bencode(v[k])
        return out + b"e"
    raise TypeError(type(v))


class Rpc:
    def __init__(self, addr):
        self.url = f"http://{addr}/transmission/rpc"
        self.session_id = ""

    def call(self, method, arguments):
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _ in range(2):
            req = urllib.request.Request(self.url, data=body, method="POST", headers={
                "X-Transmission-Session-Id": self.session_id,
                "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    answer = json.load(r)
            except urllib.error.HTTPError as e:
                if e.code == 409:
                    self.session_id = e.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise
            if answer.get("result") != "success":
                raise RuntimeError(f"{method}: {answer}")
            return answer.get("arguments", {})
        raise RuntimeError("session id refused twice")


def start(binary, session, downloads, runtime):
    p = subprocess.Popen(
        [binary, "daemon", "--no-lsd", "--no-dht", "--runtime", runtime,
         "--rpc", "127.0.0.1:0", "--listen", "127.0.0.1:0",
         "--session-dir", session, "--download-dir", downloads],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=dict(os.environ, UNCHOKE_DHT_ROUTERS="none"), text=True)
    line = p.stdout.readline()
    addr = line.split("http://")[1].split("/")[0]
    return p, addr


def memory(pid):
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return rss, hwm


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else 1000
    runtime = sys.argv[sys.argv.index("--runtime") + 1] if "--runtime" in sys.argv else "mio"
    with tempfile.TemporaryDirectory() as tmp:
        session = os.path.join(tmp, "session")
        downloads = os.path.join(tmp, "downloads")
        os.makedirs(downloads)
        metas = []
        for i in range(n):
            name = f"t{i:05}.bin"
            content = hashlib.sha256(b"%d" % i).digest() * 128  # 4 KiB
            with open(os.path.join(downloads, name), "wb") as f:
                f.write(content)
            info = {"length": len(content), "name": name, "piece length": 16384,
                    "pieces": hashlib.sha1(content).digest()}
            metas.append(base64.b64encode(bencode({"info": info})).decode())
        p, addr = start(binary, session, downloads, runtime)
        try:
            rpc = Rpc(addr)
            add_ms = []
            t0 = time.monotonic()
            for m in metas:
                t = time.monotonic()
                rpc.call("torrent-add", {"metainfo": m})
                add_ms.append((time.monotonic() - t) * 1000)
            add_seconds = time.monotonic() - t0
            # Bounded wait until every torrent has checked its data and seeds.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                ts = rpc.call("torrent-get", {"fields": ["percentDone"]})["torrents"]
                if len(ts) == n and all(t["percentDone"] == 1.0 for t in ts):
                    break
                time.sleep(0.5)
            seeding = sum(1 for t in ts if t["percentDone"] == 1.0)
            get_ms = []
            for _ in range(20):
                t = time.monotonic()
                ts = rpc.call("torrent-get", {"fields": LIST_FIELDS})["torrents"]
                get_ms.append((time.monotonic() - t) * 1000)
                assert len(ts) == n
            rss, hwm = memory(p.pid)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
        t0 = time.monotonic()
        p, addr = start(binary, session, downloads, runtime)
        try:
            rpc = Rpc(addr)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                ts = rpc.call("torrent-get", {"fields": ["id"]})["torrents"]
                if len(ts) == n:
                    break
                time.sleep(0.2)
            restart_seconds = time.monotonic() - t0
            rss_after, _ = memory(p.pid)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
        add_ms.sort()
        print(json.dumps({
            "torrents": n, "runtime": runtime, "seeding": seeding,
            "add_seconds": round(add_seconds, 2),
            "add_ms_median": round(statistics.median(add_ms), 2),
            "add_ms_p99": round(add_ms[int(len(add_ms) * 0.99) - 1], 2),
            "get_ms_median": round(statistics.median(get_ms), 2),
            "get_ms_max": round(max(get_ms), 2),
            "rss_mib": round(rss, 1), "hwm_mib": round(hwm, 1),
            "restart_seconds": round(restart_seconds, 2),
            "rss_after_restart_mib": round(rss_after, 1),
        }))


if __name__ == "__main__":
    main()
