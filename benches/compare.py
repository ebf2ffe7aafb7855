#!/usr/bin/python3
"""Comparison harness: unchoke against libtorrent, rqbit and aria2 over loopback.

  benches/compare.py [--setup] [--scenarios 1,2,3,4,5] [--contenders NAME,...] [--runs 3]
                     [--size-mib 1024] [--many-size-mib 128] [--quick] [--ceiling]
                     [--markdown FILE] [--json] [--unchoke PATH] [--workdir DIR]

Every contender is a seed process and leecher processes of the same program that find each
other only through one opentracker on 127.0.0.1 (started once per session, stopped at the
end). Scenarios (each run interleaved: round r of every contender before round r+1, `sync`
and the leecher directories deleted between runs):
  1  one seed -> one leecher, 256 KiB and 1 MiB pieces (two tables)
  2  the same (1 MiB pieces) while 2 GiB of unrelated dirty pages are written back
  3  one seed and 8 leechers started together; time to the last leecher's completion
     (plus `unchoke swarm` with the same shape as extra rows)
  4  one seed serving 50 simultaneous leechers (--many-size-mib each)
  5  scenario 1 (1 MiB pieces) with both processes pinned to CPU 0 (taskset -c 0)
The table gives medians of the runs. See benches/README.md for what is measured exactly.

Only processes this script started are signalled, by their pid; every wait is bounded.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

BENCHES = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHES)
import loopback as lb  # noqa: E402
from loopback import MIB, Proc, RunFailed, Sampler, cpu_seconds, sha256_file  # noqa: E402

REPO = lb.REPO
GIB = 1024 * MIB
SEED_ADDR = "127.0.0.1"
CONTENDERS = ("libtorrent", "libtorrent-hp", "unchoke-mio", "unchoke-smol", "rqbit", "aria2")
SCENARIOS = ("1", "2", "3", "4", "5")
OPENTRACKER = "/usr/bin/opentracker"
SEED_READY_SECONDS = 300.0
POLL_SECONDS = 0.01
CARGO_BIN = os.path.expanduser("~/.cargo/bin")
RATIO_BASES = ("libtorrent", "libtorrent-hp")


def log(message):
    sys.stderr.write("compare: %s\n" % message)
    sys.stderr.flush()


def free_port(addr):
    """A port free for both TCP and UDP on `addr` right now."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind((addr, 0))
            port = tcp.getsockname()[1]
            udp.bind((addr, port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
    raise SystemExit("no free port on %s" % addr)


def leech_addr(i):
    """The i-th leecher's address: 127.0.0.2, 127.0.0.3, ..."""
    return "127.0.0.%d" % (2 + i)


def info_hash(torrent):
    """SHA-1 of the bencoded info dictionary (hex)."""
    import hashlib
    with open(torrent, "rb") as f:
        data = f.read()
    start = data.index(b"4:info") + 6
    end = bdecode_end(data, start)
    return hashlib.sha1(data[start:end]).hexdigest()


def bdecode_end(data, i):
    """The index just past the bencoded value starting at data[i]."""
    c = data[i:i + 1]
    if c == b"i":
        return data.index(b"e", i) + 1
    if c in (b"l", b"d"):
        i += 1
        while data[i:i + 1] != b"e":
            i = bdecode_end(data, i)
        return i + 1
    colon = data.index(b":", i)
    return colon + 1 + int(data[i:colon])


def rqbit_path():
    return shutil.which("rqbit") or (
        os.path.join(CARGO_BIN, "rqbit") if os.access(os.path.join(CARGO_BIN, "rqbit"),
                                                      os.X_OK) else None)


def have_libtorrent():
    if not os.access(lb.LT_PYTHON, os.X_OK):
        return False
    return subprocess.run([lb.LT_PYTHON, "-c", "import libtorrent"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=60).returncode == 0


# ---------------------------------------------------------------- set-up


def setup():
    """apt-get install what is missing; cargo install rqbit when it is not there."""
    need = [pkg for pkg, tool in (("aria2", "aria2c"), ("iperf3", "iperf3"),
                                  ("mktorrent", "mktorrent"), ("opentracker", "opentracker"))
            if not shutil.which(tool)]
    if not have_libtorrent():
        need.append("python3-libtorrent")
    if need:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        argv = sudo + ["apt-get", "install", "-y"] + need
        log("set-up: " + " ".join(argv))
        if subprocess.run(argv, env=env, timeout=1800).returncode != 0:
            log("set-up: apt-get install failed; running apt-get update and retrying")
            subprocess.run(sudo + ["apt-get", "update"], env=env, timeout=1800)
            if subprocess.run(argv, env=env, timeout=1800).returncode != 0:
                raise SystemExit("set-up: apt-get install %s failed" % " ".join(need))
    else:
        log("set-up: aria2, iperf3, mktorrent, opentracker, python3-libtorrent present")
    if rqbit_path() is None:
        cargo = shutil.which("cargo") or os.path.join(CARGO_BIN, "cargo")
        log("set-up: cargo install rqbit --locked (several minutes)")
        if subprocess.run([cargo, "install", "rqbit", "--locked"], timeout=7200).returncode:
            raise SystemExit("set-up: cargo install rqbit failed")
    else:
        log("set-up: rqbit present (%s)" % rqbit_path())


# ---------------------------------------------------------------- tracker


class Tracker:
    """opentracker on 127.0.0.1:PORT (Debian builds it whitelist-only: the whitelist holds
    every torrent of the session, written before it starts)."""

    def __init__(self, port, hashes, work, log_dir):
        self.port = port
        self.url = "http://127.0.0.1:%d/announce" % port
        tdir = os.path.join(work, "tracker")
        os.makedirs(tdir, exist_ok=True)
        os.chmod(tdir, 0o755)
        whitelist = os.path.join(tdir, "whitelist.txt")
        with open(whitelist, "w") as f:
            f.write("".join(h + "\n" for h in hashes))
        os.chmod(whitelist, 0o644)
        self.argv = [OPENTRACKER, "-i", "127.0.0.1", "-p", str(port), "-P", str(port),
                     "-w", whitelist]
        self.log_dir = log_dir
        self.probe = hashes[0]
        self.starts = 0
        self._start()

    def _start(self):
        self.starts += 1
        self.proc = Proc("opentracker-%d" % self.starts, self.argv, self.log_dir,
                         merge_stderr=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.scrape(self.probe)
                break
            except OSError:
                if self.proc.reap(time.monotonic()) or time.monotonic() > deadline:
                    self.proc.stop()
                    raise SystemExit("opentracker did not start: %s" % self.proc.stderr_tail())
                time.sleep(0.1)

    def restart(self):
        """A fresh tracker with no peers: opentracker keeps a peer that never announced
        `stopped` (a process stopped by signal) for its whole announce interval, and a
        leecher of a later run handed 80 of those dead addresses, without the seed's, waits
        until its next announce — tens of minutes."""
        self.proc.stop()
        self._start()

    def scrape(self, ih):
        """(complete, incomplete) for one info-hash."""
        q = urllib.parse.quote(bytes.fromhex(ih))
        with urllib.request.urlopen("http://127.0.0.1:%d/scrape?info_hash=%s" % (self.port, q),
                                    timeout=5) as r:
            body = r.read()
        if b"failure reason" in body:
            raise RunFailed("tracker: %s" % body.decode("latin-1"))
        c = re.search(rb"8:completei(\d+)e", body)
        n = re.search(rb"10:incompletei(\d+)e", body)
        return (int(c.group(1)) if c else 0, int(n.group(1)) if n else 0)

    def stop(self):
        self.proc.stop()


# ---------------------------------------------------------------- contenders


class Client:
    """How one program seeds and leeches; `done` is the event (JSON, or a text line turned
    into one) that means "complete"; None: complete = process exit."""

    def __init__(self, name, seed, leech, done, text_events=(), merge_stderr=False):
        self.name = name
        self.seed = seed        # (torrent, data_dir, addr) -> argv
        self.leech = leech      # (torrent, out_dir, addr) -> argv
        self.done = done
        self.text_events = text_events
        self.merge_stderr = merge_stderr


def unchoke_client(binary, runtime):
    rt = ["--runtime", runtime, "--json", "--no-dht"]
    return Client(
        "unchoke-" + runtime,
        lambda t, d, a: [binary, "seed", t, d, "--listen", a + ":0"] + rt,
        lambda t, d, a: [binary, "download", t, "-o", d, "--listen", a + ":0"] + rt,
        "complete")


def lt_client(name, timeout, extra):
    common = ["--accounting", "poll", "--timeout", str(int(timeout + SEED_READY_SECONDS))]
    return Client(
        name,
        lambda t, d, a: [lb.LT_PYTHON, lb.LT_PEER, "seed", t, d, "--listen", a] + common + extra,
        lambda t, d, a: [lb.LT_PYTHON, lb.LT_PEER, "leech", t, d, "--listen", a,
                         "--tracker-events"] + common + extra,
        "finished")


def aria2_client():
    def common(d, a):
        return ["aria2c", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
                "--enable-peer-exchange=false", "--disable-ipv6=true", "--enable-color=false",
                "--summary-interval=0", "--file-allocation=none", "--interface=" + a,
                "--listen-port=%d" % free_port(a), "--dir=" + d]
    return Client(
        "aria2",
        lambda t, d, a: common(d, a) + ["--check-integrity=true", "--seed-ratio=0.0", t],
        lambda t, d, a: common(d, a) + ["--seed-time=0", t],
        "complete",
        text_events=[(re.compile(r"Seeding is over\.|Download complete: "), "complete")],
        merge_stderr=True)


def rqbit_client(binary):
    # rqbit dials (and announces) from the default source address, 127.0.0.1 here: every
    # rqbit process listens on 127.0.0.1 at an ephemeral port of its own, which is what the
    # tracker sees. The seed is a `download` of data already there (--overwrite: use the
    # existing file; it is checked and found complete) that never exits.
    # Without --listen-port, `rqbit download` listens on an ephemeral port but announces
    # 4240 (the server's default): both are given.
    def common(d):
        port = str(free_port("127.0.0.1"))
        return [binary, "--disable-dht", "--disable-dht-persistence", "--disable-lsd",
                "--disable-upnp-port-forward", "--ipv4-only", "--listen-ip", "127.0.0.1",
                "--listen-port", port, "--announce-port", port,
                "download", "--disable-http-api", "-o", d]
    return Client(
        "rqbit",
        lambda t, d, a: common(d) + ["--overwrite", t],
        lambda t, d, a: common(d) + ["--exit-on-finish", t],
        "complete", text_events=[(re.compile(r"torrent finished downloading"), "complete")],
        merge_stderr=True)


def make_clients(args, names):
    out = []
    for name in names:
        if name == "libtorrent":
            out.append(lt_client(name, args.timeout, []))
        elif name == "libtorrent-hp":
            out.append(lt_client(name, args.timeout, ["--high-performance"]))
        elif name.startswith("unchoke-"):
            out.append(unchoke_client(args.unchoke, name.split("-", 1)[1]))
        elif name == "aria2":
            out.append(aria2_client())
        elif name == "rqbit":
            out.append(rqbit_client(rqbit_path()))
    return out


# ---------------------------------------------------------------- one run


class Scenario:
    def __init__(self, key, title, size_mib, piece_kib, leechers, pin=False, dirty_mib=0):
        self.key = key
        self.title = title
        self.size_mib = size_mib
        self.piece_kib = piece_kib
        self.leechers = leechers
        self.pin = pin
        self.dirty_mib = dirty_mib
        self.torrent = None
        self.file_name = "payload-%dMiB.bin" % size_mib
        self.info_hash = None
        self.sha = None


def run_once(sc, client, run_index, ctx):
    """One seed and sc.leechers leechers of `client`; the figures of a good run, else
    RunFailed."""
    leech_root = os.path.join(ctx["work"], "leech")
    shutil.rmtree(leech_root, ignore_errors=True)
    dirs = [os.path.join(leech_root, "l%02d" % i) for i in range(sc.leechers)]
    for d in dirs:
        os.makedirs(d)
    dirty_path = os.path.join(ctx["work"], "dirty.bin")
    if os.path.exists(dirty_path):
        os.remove(dirty_path)
    os.sync()
    tag = "s%s-%s-run%d" % (sc.key, client.name, run_index)
    log_dir = ctx["log_dir"]
    pin = ["taskset", "-c", "0"] if sc.pin else []
    size = sc.size_mib * MIB
    sampler = Sampler()
    seed = writeback = None
    leechers = []
    try:
        ctx["tracker"].restart()
        if sc.dirty_mib:
            # Unrelated dirty pages: written (into the page cache) now, flushed by a
            # `sync FILE` (fsync) started with the leechers.
            res = subprocess.run(["dd", "if=/dev/zero", "of=" + dirty_path, "bs=1M",
                                  "count=%d" % sc.dirty_mib], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, timeout=600)
            if res.returncode != 0:
                raise RunFailed("dd: %s" % res.stderr.decode(errors="replace").strip())
        tracker = ctx["tracker"]
        before = tracker.scrape(sc.info_hash)[0]
        seed = Proc(tag + "-seed", pin + client.seed(sc.torrent, ctx["data_dir"], SEED_ADDR),
                    log_dir, client.text_events, client.merge_stderr)
        sampler.watch(seed.pid)
        ready_deadline = time.monotonic() + SEED_READY_SECONDS
        while tracker.scrape(sc.info_hash)[0] <= before:
            if seed.reap(time.monotonic()):
                raise RunFailed("seed exited (%s) before announcing itself complete; %s"
                                % (seed.exit_code, seed.stderr_tail()))
            if time.monotonic() > ready_deadline:
                raise RunFailed("seed not registered as complete at the tracker in %.0f s"
                                % SEED_READY_SECONDS)
            time.sleep(0.05)
        seed_ready_s = time.monotonic() - seed.started
        if sc.dirty_mib:
            writeback = subprocess.Popen(["sync", dirty_path])
        seed_cpu0 = cpu_seconds(seed.pid)
        for i, d in enumerate(dirs):
            p = Proc("%s-leech%02d" % (tag, i), pin + client.leech(sc.torrent, d, leech_addr(i)),
                     log_dir, client.text_events, client.merge_stderr)
            p.complete_at = p.exited_at = None
            leechers.append(p)
            sampler.watch(p.pid)
        t0 = leechers[0].started
        deadline = t0 + ctx["timeout"]
        seed_cpu1 = None
        while True:
            now = time.monotonic()
            for p in leechers:
                while True:
                    try:
                        at, obj = p.lines.get_nowait()
                    except Exception:
                        break
                    if obj is None:
                        continue
                    ev = obj.get("event")
                    if ev == "error":
                        raise RunFailed("%s: %s" % (p.name, obj.get("message")))
                    if client.done and ev == client.done and p.complete_at is None:
                        p.complete_at = at
                if p.exited_at is None:
                    with sampler.lock:
                        if p.reap(now):
                            p.exited_at = now
                            if p.pid in sampler.pids:
                                sampler.pids.remove(p.pid)
                    if p.exited_at is not None:
                        if p.exit_code != 0:
                            raise RunFailed("%s exited with %s; %s" % (
                                p.name, p.exit_code, p.stderr_tail()))
                        if client.done is None:
                            p.complete_at = p.exited_at
            if seed_cpu1 is None and all(p.complete_at is not None for p in leechers):
                seed_cpu1 = cpu_seconds(seed.pid)
            if all(p.exited_at is not None for p in leechers):
                break
            if now > deadline:
                left = [p.name for p in leechers if p.exited_at is None]
                raise RunFailed("timeout after %.0f s: %d leecher(s) still running (%s)" % (
                    ctx["timeout"], len(left), left[0]))
            time.sleep(POLL_SECONDS)
        # Give the reader threads a moment to hand over a completion line printed last.
        for p in leechers:
            p.reader.join(timeout=2)
            while True:
                try:
                    at, obj = p.lines.get_nowait()
                except Exception:
                    break
                if obj and client.done and obj.get("event") == client.done \
                        and p.complete_at is None:
                    p.complete_at = at
            if p.complete_at is None:
                raise RunFailed("%s exited 0 without its completion line; %s" % (
                    p.name, p.stderr_tail()))
        if seed_cpu1 is None:
            seed_cpu1 = cpu_seconds(seed.pid)
        sampler.sample()
        sampler.unwatch(seed.pid)
        seed.stop()
        sampler.close()
        for p, d in zip(leechers, dirs):
            out = os.path.join(d, sc.file_name)
            if not os.path.isfile(out):
                raise RunFailed("%s: no output file %s" % (p.name, out))
            if os.path.getsize(out) != size:
                raise RunFailed("%s: output has %d bytes, expected %d" % (
                    p.name, os.path.getsize(out), size))
            if sha256_file(out, time.monotonic() + 300) != sc.sha:
                raise RunFailed("%s: output differs from the seed's data (SHA-256)" % p.name)
        total = size * len(leechers)
        t_complete = max(p.complete_at for p in leechers) - t0
        t_exit = max(p.exited_at for p in leechers) - t0
        leech_cpu = sum(p.rusage.ru_utime + p.rusage.ru_stime for p in leechers)
        seed_cpu = (seed_cpu1 - seed_cpu0) if None not in (seed_cpu0, seed_cpu1) else None
        gib = total / GIB
        return {
            "scenario": sc.key, "contender": client.name, "run": run_index, "ok": True,
            "bytes": total, "leechers": len(leechers),
            "seconds_complete": round(t_complete, 3), "seconds_exit": round(t_exit, 3),
            "mb_s_complete": round(total / 1e6 / t_complete, 1),
            "mb_s_exit": round(total / 1e6 / t_exit, 1),
            "leech_cpu_s": round(leech_cpu, 2),
            "seed_cpu_s": None if seed_cpu is None else round(seed_cpu, 2),
            "leech_cpu_s_per_gib": round(leech_cpu / gib, 2),
            "seed_cpu_s_per_gib": None if seed_cpu is None else round(seed_cpu / gib, 2),
            "leech_rss_anon_mib": round(max(sampler.peak_mib(p.pid, "RssAnon")
                                            for p in leechers), 1),
            "leech_rss_file_mib": round(max(sampler.peak_mib(p.pid, "RssFileShmem")
                                            for p in leechers), 1),
            "seed_rss_anon_mib": round(sampler.peak_mib(seed.pid, "RssAnon"), 1),
            "seed_rss_file_mib": round(sampler.peak_mib(seed.pid, "RssFileShmem"), 1),
            "seed_ready_s": round(seed_ready_s, 2),
        }
    finally:
        sampler.close()
        for p in leechers + ([seed] if seed else []):
            p.stop()
        if writeback is not None:
            try:
                writeback.wait(timeout=300)
            except subprocess.TimeoutExpired:
                writeback.kill()
                writeback.wait(timeout=30)
        shutil.rmtree(leech_root, ignore_errors=True)
        if os.path.exists(dirty_path):
            os.remove(dirty_path)


def run_swarm(sc, runtime, run_index, ctx):
    """`unchoke swarm` with scenario 3's shape: one process, its own tracker and payload."""
    d = os.path.join(ctx["work"], "swarm")
    shutil.rmtree(d, ignore_errors=True)
    os.sync()
    name = "unchoke-swarm-" + runtime
    argv = [ctx["unchoke"], "swarm", "--leechers", str(sc.leechers), "--size",
            "%dMiB" % sc.size_mib, "--piece-length", "%dK" % sc.piece_kib, "--runtime",
            runtime, "--dir", d, "--json", "--timeout", str(int(ctx["timeout"]))]
    p = Proc("s%s-%s-run%d" % (sc.key, name, run_index), argv, ctx["log_dir"])
    try:
        if not p.reap(time.monotonic() + ctx["timeout"] + 120):
            raise RunFailed("unchoke swarm still running after the timeout")
        p.reader.join(timeout=5)
        summary = None
        while not p.lines.empty():
            _, obj = p.lines.get_nowait()
            if obj and obj.get("event") == "summary":
                summary = obj
        if p.exit_code != 0 or summary is None:
            raise RunFailed("unchoke swarm exited %s; %s" % (p.exit_code, p.stderr_tail()))
        if summary.get("verified") != sc.leechers:
            raise RunFailed("unchoke swarm verified %s of %d copies" % (
                summary.get("verified"), sc.leechers))
        total = sc.size_mib * MIB * sc.leechers
        return {"scenario": sc.key, "contender": name, "run": run_index, "ok": True,
                "bytes": total, "leechers": sc.leechers,
                "seconds_complete": round(summary["seconds"], 3),
                "mb_s_complete": round(total / 1e6 / summary["seconds"], 1)}
    finally:
        p.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- ceiling


def ceiling(args, work, log_dir):
    """The machine's own limits: SHA-1 rate, loopback TCP, buffered disk write."""
    import hashlib
    rows = []
    buf = os.urandom(256 * MIB)
    t = time.monotonic()
    hashlib.sha1(buf).digest()
    rows.append(("SHA-1, Python hashlib over a 256 MiB buffer",
                 "%.0f MB/s" % (len(buf) / 1e6 / (time.monotonic() - t))))
    del buf
    if shutil.which("openssl"):
        res = subprocess.run(["openssl", "speed", "-evp", "sha1", "-bytes", "16384",
                              "-seconds", "3"], capture_output=True, text=True, timeout=120)
        m = re.search(r"^sha1\s+([\d.]+)k\s*$", res.stdout, re.M)
        rows.append(("SHA-1, openssl speed -evp sha1 -bytes 16384",
                     "%.0f MB/s" % (float(m.group(1)) / 1000) if m else "failed"))
    if shutil.which("iperf3"):
        port = free_port("127.0.0.1")
        server = Proc("ceiling-iperf3-server", ["iperf3", "-s", "-1", "-B", "127.0.0.1",
                                                "-p", str(port)], log_dir, merge_stderr=True)
        try:
            time.sleep(0.5)
            res = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t",
                                  "2" if args.quick else "5", "-J"],
                                 capture_output=True, text=True, timeout=60)
            try:
                bps = json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"]
                rows.append(("loopback TCP, iperf3 (one stream)", "%.0f MB/s" % (bps / 8e6)))
            except (ValueError, KeyError):
                rows.append(("loopback TCP, iperf3", "failed"))
        finally:
            server.stop()
    else:
        rows.append(("loopback TCP, iperf3", "not installed (--setup installs it)"))
    path = os.path.join(work, "ceiling.bin")
    for conv in (["conv=fdatasync"], []):
        if os.path.exists(path):
            os.remove(path)
        os.sync()
        t = time.monotonic()
        res = subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=1M",
                              "count=%d" % args.size_mib] + conv, capture_output=True,
                             timeout=1200)
        secs = time.monotonic() - t
        rows.append(("disk write %d MiB, dd bs=1M %s" % (args.size_mib, " ".join(conv)
                                                         or "(page cache)"),
                     "%.0f MB/s" % (args.size_mib * MIB / 1e6 / secs)
                     if res.returncode == 0 else "failed"))
    os.remove(path)
    os.sync()
    return rows


# ---------------------------------------------------------------- report


def machine():
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        model = m.group(1).strip() if m else "?"
    except (OSError, subprocess.SubprocessError):
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 1024 / 1024
    return "%s, %d cores, %.1f GiB RAM, Linux %s" % (model, os.cpu_count(), mem,
                                                      os.uname().release)


def versions(args, names):
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            return "?"
    out = []
    if any(n.startswith("unchoke") for n in names):
        out.append(first_line([args.unchoke, "--version"]))
    if any(n.startswith("libtorrent") for n in names):
        out.append("libtorrent " + first_line([lb.LT_PYTHON, "-c",
                                               "import libtorrent; print(libtorrent.__version__)"]))
    if "rqbit" in names:
        out.append(first_line([rqbit_path(), "--version"]))
    if "aria2" in names:
        out.append(first_line(["aria2c", "--version"]))
    out.append("opentracker " + first_line(["dpkg-query", "-W", "-f", "${Version}\n",
                                            "opentracker"]))
    return out


FIELDS = ("mb_s_complete", "mb_s_exit", "leech_cpu_s_per_gib", "seed_cpu_s_per_gib",
          "leech_rss_anon_mib", "leech_rss_file_mib", "seed_rss_anon_mib", "seed_rss_file_mib")


def medians(rows):
    out = {}
    for key in FIELDS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    return out


def fmt(v, digits=1):
    return "–" if v is None else ("%.*f" % (digits, v))


def scenario_table(sc_rows, names):
    """Markdown for one scenario: medians per contender, then the failed runs."""
    meds = {}
    for name in names:
        good = [r for r in sc_rows if r["contender"] == name and r["ok"]]
        if good:
            meds[name] = (medians(good), len(good),
                          len([r for r in sc_rows if r["contender"] == name]))
    head = ["contender", "runs ok", "MB/s to complete", "MB/s to exit", "leech CPU-s/GiB",
            "seed CPU-s/GiB", "leech RssAnon / RssFile MiB", "seed RssAnon / RssFile MiB",
            "× libtorrent", "× libtorrent-hp"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        if name not in meds:
            continue
        m, good, total = meds[name]
        ratios = []
        for base in RATIO_BASES:
            b = meds.get(base)
            ratios.append("%.2f" % (m["mb_s_complete"] / b[0]["mb_s_complete"])
                          if b and m["mb_s_complete"] and b[0]["mb_s_complete"] else "–")
        lines.append("| " + " | ".join([
            name, "%d/%d" % (good, total), fmt(m["mb_s_complete"]), fmt(m["mb_s_exit"]),
            fmt(m["leech_cpu_s_per_gib"], 2), fmt(m["seed_cpu_s_per_gib"], 2),
            "%s / %s" % (fmt(m["leech_rss_anon_mib"]), fmt(m["leech_rss_file_mib"])),
            "%s / %s" % (fmt(m["seed_rss_anon_mib"]), fmt(m["seed_rss_file_mib"]))]
            + ratios) + " |")
    for r in sc_rows:
        if not r["ok"]:
            error = " ".join(r["error"].split()).replace("|", "\\|")[:300]
            lines.append("| %s | run %d FAILED: %s |%s" % (r["contender"], r["run"], error,
                                                         " |" * (len(head) - 2)))
    return "\n".join(lines), {k: v[0] for k, v in meds.items()}


WORKDIR_MARK = ".unchoke-compare"


def claim_workdir(work):
    """Makes `work` ours, or refuses: runs delete `leech/`, `swarm/`, `dirty.bin` and
    `ceiling.bin` inside it, so a directory that already holds something and was not made
    by this harness (a mistyped `--workdir ~`) is never used."""
    if os.path.isdir(work) and os.listdir(work) \
            and not os.path.isfile(os.path.join(work, WORKDIR_MARK)):
        raise SystemExit("compare.py: %s is not empty and was not made by this harness; "
                         "give --workdir a new or empty directory" % work)
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, WORKDIR_MARK), "a"):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See benches/README.md.")
    parser.add_argument("--setup", action="store_true",
                        help="first apt-get install aria2 iperf3 mktorrent opentracker "
                        "python3-libtorrent (those missing) and cargo install rqbit (if absent)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma list of 1..5 (default all); 'none' with --ceiling")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma list (default: all installed): " + ", ".join(CONTENDERS))
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (default 3)")
    parser.add_argument("--size-mib", type=int, default=1024,
                        help="payload of scenarios 1, 2, 3, 5 (default 1024)")
    parser.add_argument("--many-size-mib", type=int, default=None,
                        help="payload of scenario 4, per leecher (default 128; 16 with --quick)")
    parser.add_argument("--dirty-mib", type=int, default=None,
                        help="unrelated dirty data of scenario 2 (default 2048; 256 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 64 MiB, 1 run (explicit options still win)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also measure SHA-1, loopback TCP and disk write rates")
    parser.add_argument("--unchoke", default=os.path.join(REPO, "target", "release", "unchoke"),
                        help="the unchoke binary (a release build; default target/release)")
    parser.add_argument("--workdir", default="/tmp/unchoke-compare")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up on one run after SECS (default 600)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the report to FILE")
    parser.add_argument("--results", action="store_true",
                        help="also append the report to benches/RESULTS.md (as one section)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    # SIGTERM unwinds like an exception, so every process started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        if "--size-mib" not in " ".join(argv):
            args.size_mib = 64
        if "--runs" not in " ".join(argv):
            args.runs = 1
    if args.many_size_mib is None:
        args.many_size_mib = 16 if args.quick else 128
    if args.dirty_mib is None:
        args.dirty_mib = 256 if args.quick else 2048
    if min(args.size_mib, args.many_size_mib, args.runs) <= 0:
        parser.error("--size-mib, --many-size-mib and --runs must be positive")
    keys = [] if args.scenarios.strip() == "none" else [
        s.strip() for s in args.scenarios.split(",") if s.strip()]
    if any(k not in SCENARIOS for k in keys):
        parser.error("--scenarios takes 1..5 (comma list) or none")
    names = []
    for n in (n.strip() for n in args.contenders.split(",")):
        if n and n not in names:
            if n not in CONTENDERS:
                parser.error("unknown contender %r (known: %s)" % (n, ", ".join(CONTENDERS)))
            names.append(n)

    if args.setup:
        setup()
    for tool in ("mktorrent", "opentracker", "taskset", "dd", "sync"):
        if not shutil.which(tool):
            parser.error("%s is missing (run with --setup)" % tool)
    skipped = []
    args.unchoke = os.path.abspath(args.unchoke)
    if not os.access(args.unchoke, os.X_OK):
        skipped += [(n, "no unchoke binary at %s" % args.unchoke)
                    for n in names if n.startswith("unchoke")]
    if any(n.startswith("libtorrent") for n in names) and not have_libtorrent():
        skipped += [(n, "python3-libtorrent not installed") for n in names
                    if n.startswith("libtorrent")]
    if "rqbit" in names and rqbit_path() is None:
        skipped.append(("rqbit", "not installed (--setup runs cargo install rqbit)"))
    if "aria2" in names and not shutil.which("aria2c"):
        skipped.append(("aria2", "not installed (--setup installs aria2)"))
    for n, why in skipped:
        log("leaving out %s: %s" % (n, why))
    names = [n for n in names if n not in dict(skipped)]

    work = os.path.abspath(args.workdir)
    claim_workdir(work)
    os.chmod(work, 0o755)
    log_dir = os.path.join(work, "logs")
    data_dir = os.path.join(work, "data")
    os.makedirs(log_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    header = ["# unchoke comparison, %s" % started.strftime("%Y-%m-%d %H:%M UTC"), "",
              "- machine: %s" % machine(),
              "- load average at start: %.2f %.2f %.2f" % load,
              "- %d run(s) per contender, median shown; payload %d MiB (scenario 4: %d MiB "
              "per leecher); MB = 10^6 bytes, GiB = 2^30 bytes" % (
                  args.runs, args.size_mib, args.many_size_mib),
              "- versions: " + "; ".join(versions(args, names))]
    if skipped:
        header.append("- left out: " + "; ".join("%s (%s)" % s for s in skipped))
    report = {"date": started.isoformat(), "machine": machine(), "load_average": load,
              "runs": args.runs, "size_mib": args.size_mib,
              "many_size_mib": args.many_size_mib, "contenders": names,
              "skipped": dict(skipped), "scenarios": {}, "results": []}
    sections = []
    failed = False

    if args.ceiling:
        log("ceiling measurements")
        rows = ceiling(args, work, log_dir)
        report["ceiling"] = dict(rows)
        sections.append("## Machine ceiling (same session)\n\n| measure | rate |\n|---|---|\n"
                        + "\n".join("| %s | %s |" % r for r in rows))

    scenarios = []
    for k in keys:
        if k == "1":
            scenarios.append(Scenario("1a", "1a: one seed -> one leecher, 256 KiB pieces",
                                      args.size_mib, 256, 1))
            scenarios.append(Scenario("1b", "1b: one seed -> one leecher, 1 MiB pieces",
                                      args.size_mib, 1024, 1))
        elif k == "2":
            scenarios.append(Scenario("2", "2: as 1b while %d MiB of unrelated dirty pages "
                                      "are written back" % args.dirty_mib, args.size_mib,
                                      1024, 1, dirty_mib=args.dirty_mib))
        elif k == "3":
            scenarios.append(Scenario("3", "3: one seed, 8 leechers started together "
                                      "(aggregate MB/s to the last completion)",
                                      args.size_mib, 1024, 8))
        elif k == "4":
            scenarios.append(Scenario("4", "4: one seed serving 50 simultaneous leechers, "
                                      "%d MiB each (aggregate MB/s)" % args.many_size_mib,
                                      args.many_size_mib, 1024, 50))
        elif k == "5":
            scenarios.append(Scenario("5", "5: as 1b with both processes pinned to CPU 0 "
                                      "(taskset -c 0)", args.size_mib, 1024, 1, pin=True))

    tracker = None
    try:
        if scenarios and names:
            port = free_port("127.0.0.1")
            url = "http://127.0.0.1:%d/announce" % port
            shas = {}
            for sc in scenarios:
                data_path = os.path.join(data_dir, sc.file_name)
                lb.make_data(data_path, sc.size_mib * MIB)
                sc.torrent = os.path.join(work, "payload-%dMiB-%dK.torrent" % (
                    sc.size_mib, sc.piece_kib))
                if os.path.exists(sc.torrent):
                    os.remove(sc.torrent)
                lb.make_torrent(data_path, sc.torrent, sc.piece_kib, announce=url)
                sc.info_hash = info_hash(sc.torrent)
                if data_path not in shas:
                    log("SHA-256 of %s (also warms the page cache)" % data_path)
                    shas[data_path] = sha256_file(data_path)
                sc.sha = shas[data_path]
            tracker = Tracker(port, sorted({sc.info_hash for sc in scenarios}), work, log_dir)
            log("opentracker (pid %d) on %s" % (tracker.proc.pid, url))
        ctx = {"work": work, "data_dir": data_dir, "log_dir": log_dir, "tracker": tracker,
               "timeout": args.timeout, "unchoke": args.unchoke}
        clients = make_clients(args, names)
        for sc in scenarios:
            extra = []
            if sc.key == "3":
                extra = [n.split("-", 1)[1] for n in names if n.startswith("unchoke-")]
            sc_rows = []
            for r in range(1, args.runs + 1):
                for client in clients:
                    log("scenario %s, run %d/%d: %s" % (sc.key, r, args.runs, client.name))
                    try:
                        row = run_once(sc, client, r, ctx)
                        log("  %.1f MB/s to complete, %.1f to exit" % (
                            row["mb_s_complete"], row["mb_s_exit"]))
                    except RunFailed as err:
                        log("  FAILED: %s" % err)
                        row = {"scenario": sc.key, "contender": client.name, "run": r,
                               "ok": False, "error": str(err)}
                    sc_rows.append(row)
                for runtime in extra:
                    name = "unchoke-swarm-" + runtime
                    log("scenario %s, run %d/%d: %s" % (sc.key, r, args.runs, name))
                    try:
                        row = run_swarm(sc, runtime, r, ctx)
                        log("  %.1f MB/s to complete" % row["mb_s_complete"])
                    except RunFailed as err:
                        log("  FAILED: %s" % err)
                        row = {"scenario": sc.key, "contender": name, "run": r, "ok": False,
                               "error": str(err)}
                    sc_rows.append(row)
            failed |= not all(row["ok"] for row in sc_rows)
            order = names + ["unchoke-swarm-" + rt for rt in extra]
            table, meds = scenario_table(sc_rows, order)
            report["results"] += sc_rows
            report["scenarios"][sc.key] = {"title": sc.title, "medians": meds}
            sections.append("## Scenario %s\n\n%s" % (sc.title, table))
    finally:
        if tracker is not None:
            tracker.stop()

    notes = ("MB/s to complete: payload bytes (all leechers) / 10^6 / seconds from the first "
             "leecher's spawn to the last leecher's completion line; "
             "MB/s to exit: the same to the last leecher's exit. CPU-s/GiB: user+sys CPU per "
             "GiB delivered (leechers summed; the seed's between the first leecher's start and "
             "the last completion). RSS: peak of 100 ms samples of /proc/PID/status, RssAnon "
             "and RssFile+RssShmem (leech: the largest leecher). × libtorrent: ratio of "
             "MB/s to complete. unchoke-swarm rows: `unchoke swarm`, one process with its own "
             "tracker (time from its summary; CPU and RSS not separable).")
    text = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    if scenarios:
        text += "\n" + notes + "\n"
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.results:
        # One level down, to sit under RESULTS.md's own title.
        section = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M).replace(
            "## unchoke comparison, ", "## Comparison harness (`benches/compare.py`), ", 1)
        with open(os.path.join(BENCHES, "RESULTS.md"), "a") as f:
            f.write("\n" + section)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(text)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
