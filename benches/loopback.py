#!/usr/bin/python3
"""Loopback transfer benchmark: one seeder on 127.0.0.1, one leecher on 127.0.0.2.

  benches/loopback.py [--size-mib 1024] [--unchoke PATH] [--runtimes mio,smol]
                      [--skip-unchoke] [--skip-libtorrent] [--lt-profiles default,hp]
                      [--runs N] [--workdir DIR] [--piece-kib 1024] [--timeout SECS] [--json]
                      [--transport tcp|utp]

Contenders, each run as a seeder process and a leecher process of the same program:
  libtorrent      cli/tests/helpers/lt_peer.py (libtorrent-rasterbar 2.0.8), default settings
  libtorrent-hp   the same with lt.high_performance_seed() settings on both sides
  unchoke-mio     `unchoke seed` / `unchoke download`, both `--runtime mio` (a release
                  build, see --unchoke)
  unchoke-smol    the same, both `--runtime smol`
--runtimes picks which unchoke runtimes run (default both); each is compared with every
libtorrent profile that ran. --transport utp runs every contender over uTP only: unchoke
with `--transport utp` on both sides, libtorrent with TCP off and its UDP socket buffers
raised to 4 MiB (`recv_socket_buffer_size`/`send_socket_buffer_size`: with the default
208 KiB its uTP drops thousands of datagrams on loopback), so it is compared tuned.

For every run the seeder is started first and must report that it has checked its data and
is listening; the clock starts just before the leecher process is spawned and stops when it
reports completion (libtorrent: the "finished" event, unchoke: the "complete" event). The
leecher's file is then compared with the seed's by SHA-256: a run that did not produce the
right file is a failure, not a figure. See benches/LOOPBACK.md for what is measured.

Only processes this script started are signalled, by their pid; every wait is bounded.
"""
import argparse
import hashlib
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LT_PEER = os.path.join(REPO, "cli", "tests", "helpers", "lt_peer.py")
LT_PYTHON = "/usr/bin/python3"
SEED_ADDR = "127.0.0.1"
LEECH_ADDR = "127.0.0.2"
SAMPLE_SECONDS = 0.1
RUNTIMES = ("mio", "smol")
SEED_READY_SECONDS = 300.0
EXIT_WAIT_SECONDS = 30.0
STOP_WAIT_SECONDS = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


def log(message):
    sys.stderr.write("loopback: %s\n" % message)
    sys.stderr.flush()


class RunFailed(Exception):
    """A run that produced no figure: why, in one line."""


# ---------------------------------------------------------------- data and torrent


def make_data(path, size):
    """Random data of exactly `size` bytes at `path`, reusing a file of that size."""
    if os.path.isfile(path) and os.path.getsize(path) == size:
        log("reusing %s" % path)
        return
    log("writing %d MiB of random data to %s" % (size // MIB, path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    chunk = 4 * MIB
    with open(tmp, "wb") as f:
        left = size
        while left > 0:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
    os.replace(tmp, path)


def make_torrent(data_path, torrent_path, piece_kib, announce=None):
    """A v1 single-file torrent (mktorrent), rebuilt when the data is newer; `announce`:
    a tracker URL to put in it (none by default)."""
    if (os.path.isfile(torrent_path)
            and os.path.getmtime(torrent_path) >= os.path.getmtime(data_path)):
        log("reusing %s" % torrent_path)
        return
    log_piece = (piece_kib * 1024).bit_length() - 1
    if 1 << log_piece != piece_kib * 1024:
        raise SystemExit("--piece-kib must be a power of two")
    if os.path.exists(torrent_path):
        os.remove(torrent_path)
    log("hashing %s into %s (mktorrent, %d KiB pieces)" % (data_path, torrent_path, piece_kib))
    tracker = ["-a", announce] if announce else []
    res = subprocess.run(["mktorrent", "-l", str(log_piece)] + tracker
                         + ["-o", torrent_path, data_path],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    if res.returncode != 0:
        raise SystemExit("mktorrent failed: %s" % res.stderr.decode(errors="replace"))


def sha256_file(path, deadline=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(4 * MIB)
            if not block:
                break
            h.update(block)
            if deadline is not None and time.monotonic() > deadline:
                raise RunFailed("hashing %s took too long" % path)
    return h.hexdigest()


# ---------------------------------------------------------------- processes


class Proc:
    """A child we started: JSON lines from stdout (timestamped), stderr to a log file."""

    def __init__(self, name, argv, log_dir, text_events=(), merge_stderr=False):
        """`text_events`: (compiled regex, event name) pairs; a stdout line that is not a
        JSON object and matches one becomes {"event": name, "text": line} (for clients
        without JSON output). `merge_stderr`: stderr goes to stdout (and is read there)."""
        self.name = name
        self.argv = argv
        self.text_events = list(text_events)
        self.lines = queue.Queue()
        self.events = []
        self.stderr_path = os.path.join(log_dir, name + ".stderr")
        self.stdout_path = os.path.join(log_dir, name + ".stdout")
        if merge_stderr:
            self.stderr_path = self.stdout_path
        self.rusage = None
        self.exit_code = None
        stderr = subprocess.STDOUT if merge_stderr else open(self.stderr_path, "wb")
        try:
            self.started = time.monotonic()
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=stderr)
        finally:
            if not merge_stderr:
                stderr.close()
        self.pid = self.popen.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(self.stdout_path, "w") as out:
            for raw in self.popen.stdout:
                at = time.monotonic()
                text = raw.decode("utf-8", "replace")
                out.write(text)
                out.flush()
                try:
                    obj = json.loads(text)
                except ValueError:
                    obj = None
                if isinstance(obj, dict):
                    self.lines.put((at, obj))
                    continue
                for pattern, event in self.text_events:
                    if pattern.search(text):
                        self.lines.put((at, {"event": event, "text": text.strip()}))
                        break
        self.lines.put((time.monotonic(), None))

    def wait_event(self, names, deadline):
        """The first event whose name is in `names`: (time, obj). Raises on EOF/timeout."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunFailed("%s: no %s before the deadline" % (self.name, "/".join(names)))
            try:
                at, obj = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if obj is None:
                self.reap(time.monotonic() + EXIT_WAIT_SECONDS)
                raise RunFailed("%s exited (%s) before %s; stderr: %s" % (
                    self.name, self.exit_code, "/".join(names), self.stderr_tail()))
            self.events.append(obj)
            if obj.get("event") == "error":
                raise RunFailed("%s: %s" % (self.name, obj.get("message")))
            if obj.get("event") in names:
                return at, obj

    def stderr_tail(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()[-400:].decode("utf-8", "replace").strip() or "(empty)"
        except OSError:
            return "(unreadable)"

    def reap(self, deadline):
        """Wait for exit with os.wait4 (for its rusage); False if it is still running."""
        if self.exit_code is not None:
            return True
        while True:
            try:
                pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exit_code = self.popen.poll()
                return True
            if pid == self.pid:
                self.rusage = rusage
                self.exit_code = os.waitstatus_to_exitcode(status)
                # Popen must not wait for a pid that is gone (and maybe reused).
                self.popen.returncode = self.exit_code
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self):
        """SIGTERM, then SIGKILL if it does not exit in time. Only ever this child's pid."""
        if self.exit_code is not None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not self.reap(time.monotonic() + STOP_WAIT_SECONDS):
            log("%s (pid %d) ignored SIGTERM; killing it" % (self.name, self.pid))
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.reap(time.monotonic() + STOP_WAIT_SECONDS)


def cpu_seconds(pid):
    """utime + stime of every thread of a live process, from /proc/<pid>/stat."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the ")" field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


MEMORY_KEYS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")


def memory_kib(pid):
    """VmHWM, VmRSS, RssAnon, RssFile and RssShmem (KiB) of a live process."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in MEMORY_KEYS:
                    out[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return out


class Sampler:
    """Every 100 ms: the largest VmHWM, VmRSS, RssAnon, RssFile, RssShmem and
    RssFile + RssShmem ("RssFileShmem") seen for each watched pid."""

    def __init__(self):
        self.peaks = {}
        self.pids = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def watch(self, pid):
        with self.lock:
            self.pids.append(pid)
            self.peaks.setdefault(pid, dict.fromkeys(MEMORY_KEYS + ("RssFileShmem",), 0))
        self.sample()

    def unwatch(self, pid):
        """Stop sampling a pid about to be reaped (its number may be reused)."""
        with self.lock:
            if pid in self.pids:
                self.pids.remove(pid)

    def sample(self):
        with self.lock:
            for pid in self.pids:
                mem = memory_kib(pid)
                if mem:
                    mem["RssFileShmem"] = mem.get("RssFile", 0) + mem.get("RssShmem", 0)
                    peak = self.peaks[pid]
                    for key, value in mem.items():
                        peak[key] = max(peak[key], value)

    def _run(self):
        while not self.done.wait(SAMPLE_SECONDS):
            self.sample()

    def close(self):
        self.done.set()
        self.thread.join(timeout=5)

    def peak_mib(self, pid, key):
        return self.peaks.get(pid, {}).get(key, 0) / 1024.0


# ---------------------------------------------------------------- contenders


class Contender:
    """How to start one program as seeder and as leecher, and what 'done' looks like."""

    def __init__(self, name, seed_argv, leech_argv, done_event, output_path):
        self.name = name
        self.seed_argv = seed_argv
        self.leech_argv = leech_argv
        self.done_event = done_event
        self.output_path = output_path


# libtorrent's UDP socket buffers in a uTP run: the system maximum on the bench machine.
LT_UTP_SOCKET_BUFFER = 4 * MIB


def lt_contender(name, args, torrent, seed_dir, leech_dir, file_name, extra):
    common = ["--accounting", "poll", "--timeout", str(int(args.timeout + SEED_READY_SECONDS))]
    if args.transport == "utp":
        common += ["--transport", "utp", "--socket-buffer", str(LT_UTP_SOCKET_BUFFER)]
    return Contender(
        name,
        lambda: [LT_PYTHON, LT_PEER, "seed", torrent, seed_dir, "--listen", SEED_ADDR]
        + common + extra,
        lambda seed_addr: [LT_PYTHON, LT_PEER, "leech", torrent, leech_dir,
                           "--listen", LEECH_ADDR, "--connect", seed_addr] + common + extra,
        "finished",
        os.path.join(leech_dir, file_name))


# `--unchoke-encryption` modes: the extra arguments both unchoke sides get. `default` is
# what a user gets (`--encryption prefer`, `--crypto-level both`: between two unchokes an
# MSE handshake, then a plaintext stream); `rc4` encrypts the whole stream
# (`--crypto-level rc4`); `disable` is plaintext BitTorrent.
ENCRYPTION_MODES = {
    "default": [],
    "rc4": ["--crypto-level", "rc4"],
    "disable": ["--encryption", "disable"],
}


def unchoke_contender(args, runtime, torrent, seed_dir, leech_dir, file_name, mode="default",
                      offload="on"):
    """`unchoke-RUNTIME[-MODE][-offload-off]`: seeder and leecher both on `--runtime
    RUNTIME`; `offload` off runs both with UNCHOKE_UDP_OFFLOAD=off (one datagram per system
    call; `env` execs the binary, so the timed process is still unchoke)."""
    binary = args.unchoke
    if offload == "off":
        binary_argv = ["env", "UNCHOKE_UDP_OFFLOAD=off", binary]
    else:
        binary_argv = [binary]
    rt = ["--runtime", runtime] + ENCRYPTION_MODES[mode] + ["--transport", args.transport]
    return Contender(
        "unchoke-" + runtime + ("" if mode == "default" else "-" + mode)
        + ("" if offload == "on" else "-offload-off"),
        lambda: binary_argv + ["seed", torrent, seed_dir] + rt
        + ["--listen", SEED_ADDR + ":0", "--json"],
        lambda seed_addr: binary_argv + ["download", torrent, "-o", leech_dir] + rt
        + ["--peer", seed_addr, "--listen", LEECH_ADDR + ":0", "--json"],
        "complete",
        os.path.join(leech_dir, file_name))


def one_run(contender, run_index, size, seed_sha, leech_dir, log_dir, timeout):
    """Seed, leech, verify. Returns the figures of a good run; raises RunFailed otherwise."""
    shutil.rmtree(leech_dir, ignore_errors=True)
    os.makedirs(leech_dir)
    # Flush the previous run's dirty pages now rather than during this measurement.
    os.sync()
    tag = "%s-run%d" % (contender.name, run_index)
    sampler = Sampler()
    seeder = leecher = None
    try:
        seeder = Proc(tag + "-seed", contender.seed_argv(), log_dir)
        sampler.watch(seeder.pid)
        ready_deadline = time.monotonic() + SEED_READY_SECONDS
        seen = {}
        while not ("checked" in seen and "listening" in seen):
            _, obj = seeder.wait_event(("checked", "listening"), ready_deadline)
            seen[obj["event"]] = obj
        checked = seen["checked"]
        if checked.get("pieces_have") != checked.get("piece_count"):
            raise RunFailed("seeder has %s of %s pieces" % (
                checked.get("pieces_have"), checked.get("piece_count")))
        seed_addr = seen["listening"]["addr"]
        seed_ready_s = time.monotonic() - seeder.started

        seed_cpu_before = cpu_seconds(seeder.pid)
        leecher = Proc(tag + "-leech", contender.leech_argv(seed_addr), log_dir)
        started = leecher.started
        sampler.watch(leecher.pid)
        done_at, done = leecher.wait_event((contender.done_event,), started + timeout)
        seconds = done_at - started
        seed_cpu_after = cpu_seconds(seeder.pid)
        sampler.sample()
        # Sampled until just before it is reaped: ru_maxrss covers what came after.
        sampler.unwatch(leecher.pid)
        if not leecher.reap(time.monotonic() + EXIT_WAIT_SECONDS):
            raise RunFailed("leecher did not exit within %.0f s of completing"
                            % EXIT_WAIT_SECONDS)
        if leecher.exit_code != 0:
            raise RunFailed("leecher exited with %s; stderr: %s" % (
                leecher.exit_code, leecher.stderr_tail()))
        sampler.sample()
        sampler.unwatch(seeder.pid)
        seeder.stop()
        sampler.close()

        if not os.path.isfile(contender.output_path):
            raise RunFailed("no output file %s" % contender.output_path)
        got = os.path.getsize(contender.output_path)
        if got != size:
            raise RunFailed("output has %d bytes, expected %d" % (got, size))
        if sha256_file(contender.output_path, time.monotonic() + 300) != seed_sha:
            raise RunFailed("output differs from the seed's data (SHA-256 mismatch)")

        ru = leecher.rusage
        leech_peak_rss = max(ru.ru_maxrss / 1024.0,
                             sampler.peak_mib(leecher.pid, "VmHWM"))
        return {
            "contender": contender.name,
            "run": run_index,
            "ok": True,
            "bytes": size,
            "seconds": round(seconds, 3),
            "mb_per_s": round(size / 1e6 / seconds, 1),
            "leecher_cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
            "seeder_cpu_s": (round(seed_cpu_after - seed_cpu_before, 2)
                             if seed_cpu_before is not None and seed_cpu_after is not None
                             else None),
            "leecher_peak_rss_mib": round(leech_peak_rss, 1),
            "leecher_rss_anon_peak_mib": round(sampler.peak_mib(leecher.pid, "RssAnon"), 1),
            "seeder_peak_rss_mib": round(sampler.peak_mib(seeder.pid, "VmHWM"), 1),
            "seeder_rss_anon_peak_mib": round(sampler.peak_mib(seeder.pid, "RssAnon"), 1),
            "seeder_ready_s": round(seed_ready_s, 2),
            "reported_seconds": done.get("seconds"),
        }
    finally:
        sampler.close()
        for proc in (leecher, seeder):
            if proc is not None:
                proc.stop()
        shutil.rmtree(leech_dir, ignore_errors=True)


# ---------------------------------------------------------------- report


COLUMNS = [
    ("contender", "contender"), ("run", "run"), ("MB/s", "mb_per_s"), ("seconds", "seconds"),
    ("leecher CPU s", "leecher_cpu_s"), ("seeder CPU s", "seeder_cpu_s"),
    ("leecher peak RSS MiB", "leecher_peak_rss_mib"),
    ("leecher RssAnon peak MiB", "leecher_rss_anon_peak_mib"),
    ("seeder peak RSS MiB", "seeder_peak_rss_mib"),
    ("seeder RssAnon peak MiB", "seeder_rss_anon_peak_mib"),
]


def median_row(name, rows):
    out = {"contender": name, "run": "median"}
    for _, key in COLUMNS[2:]:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    return out


def summarize(results, names):
    """Median row per contender (all its runs good) and, for every unchoke runtime, its
    throughput ratio against every libtorrent profile (e.g. "unchoke-smol/libtorrent-hp")."""
    medians = {}
    for name in names:
        rows = [r for r in results if r["contender"] == name]
        if rows and all(r["ok"] for r in rows):
            medians[name] = median_row(name, rows)
    ratios = {}
    for ours in names:
        if not ours.startswith("unchoke-") or ours not in medians:
            continue
        for theirs in names:
            if theirs.startswith("libtorrent") and theirs in medians:
                ratios["%s/%s" % (ours, theirs)] = round(
                    medians[ours]["mb_per_s"] / medians[theirs]["mb_per_s"], 2)
    return medians, ratios


def markdown(results, medians, ratios, runs):
    head = [title for title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if r["ok"]:
            cells = ["" if r.get(key) is None else str(r[key]) for _, key in COLUMNS]
        else:
            # One table row: the error (often a multi-line stderr tail) on one line.
            error = " ".join(r["error"].split()).replace("|", "\\|")
            cells = [r["contender"], str(r["run"]), "FAILED: " + error] + [""] * (
                len(COLUMNS) - 3)
        lines.append("| " + " | ".join(cells) + " |")
    if runs > 1:
        for m in medians.values():
            cells = ["" if m.get(key) is None else str(m[key]) for _, key in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines)
    for key, value in ratios.items():
        out += "\n\nthroughput ratio %s (median MB/s): %.2f" % (key, value)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="data size (default 1024)")
    parser.add_argument("--piece-kib", type=int, default=1024, help="piece size (default 1024)")
    parser.add_argument("--unchoke", default=os.path.join(REPO, "target", "release", "unchoke"),
                        help="the unchoke binary, a release build (default: target/release)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help="unchoke runtimes to run: mio, smol or both (comma list; "
                        "default both)")
    parser.add_argument("--skip-unchoke", action="store_true",
                        help="run no unchoke contender (whatever --runtimes says)")
    parser.add_argument("--skip-libtorrent", action="store_true")
    parser.add_argument("--lt-profiles", default="default,hp",
                        help="libtorrent settings to run: default, hp or both (comma list)")
    parser.add_argument("--runs", type=int, default=1, help="runs per contender")
    parser.add_argument("--workdir", default="/tmp/unchoke-loopback",
                        help="data, torrent, logs; the seed data is kept between invocations")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up on one transfer after SECS")
    parser.add_argument("--unchoke-encryption", default="default",
                        help="unchoke encryption modes to run, comma list of %s "
                        "(default: default)" % ", ".join(ENCRYPTION_MODES))
    parser.add_argument("--unchoke-udp-offload", default="on",
                        help="unchoke UDP batching to run, comma list of on, off (off: "
                        "UNCHOKE_UDP_OFFLOAD=off, one datagram per system call; default on)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--transport", choices=("tcp", "utp"), default="tcp",
                        help="the peer connection's transport for every contender "
                        "(default tcp)")
    args = parser.parse_args()
    if args.size_mib <= 0 or args.runs <= 0 or args.piece_kib < 16:
        parser.error("--size-mib and --runs must be positive, --piece-kib at least 16")

    profiles = [p.strip() for p in args.lt_profiles.split(",") if p.strip()]
    if any(p not in ("default", "hp") for p in profiles):
        parser.error("--lt-profiles takes default and/or hp")
    modes = [m.strip() for m in args.unchoke_encryption.split(",") if m.strip()]
    if not modes or any(m not in ENCRYPTION_MODES for m in modes):
        parser.error("--unchoke-encryption takes %s (comma list)" % ", ".join(ENCRYPTION_MODES))
    offloads = [m.strip() for m in args.unchoke_udp_offload.split(",") if m.strip()]
    if not offloads or any(m not in ("on", "off") for m in offloads):
        parser.error("--unchoke-udp-offload takes on and/or off (comma list)")
    runtimes = []
    for r in (r.strip() for r in args.runtimes.split(",")):
        if r and r not in runtimes:
            runtimes.append(r)
    if any(r not in RUNTIMES for r in runtimes):
        parser.error("--runtimes takes %s (comma list)" % " and/or ".join(RUNTIMES))
    if not runtimes and not args.skip_unchoke:
        parser.error("--runtimes is empty: name mio and/or smol, or pass --skip-unchoke")
    if not args.skip_unchoke:
        args.unchoke = os.path.abspath(args.unchoke)
        if not os.access(args.unchoke, os.X_OK):
            parser.error("no unchoke binary at %s: build it with `cargo build --release -p "
                         "unchoke` (or pass --unchoke PATH, or --skip-unchoke)" % args.unchoke)
    if not args.skip_libtorrent and not os.access(LT_PYTHON, os.X_OK):
        parser.error("%s not found (needed for libtorrent)" % LT_PYTHON)

    size = args.size_mib * MIB
    work = os.path.abspath(args.workdir)
    seed_dir = os.path.join(work, "seed")
    leech_dir = os.path.join(work, "leech")
    log_dir = os.path.join(work, "logs")
    os.makedirs(log_dir, exist_ok=True)
    file_name = "loopback-%dMiB.bin" % args.size_mib
    data_path = os.path.join(seed_dir, file_name)
    torrent = os.path.join(work, "loopback-%dMiB-%dK.torrent" % (args.size_mib, args.piece_kib))
    make_data(data_path, size)
    make_torrent(data_path, torrent, args.piece_kib)
    log("hashing the seed data (SHA-256; this also warms the page cache)")
    seed_sha = sha256_file(data_path)

    contenders = []
    if not args.skip_libtorrent:
        for profile in profiles:
            if profile == "default":
                contenders.append(lt_contender("libtorrent", args, torrent, seed_dir,
                                               leech_dir, file_name, []))
            else:
                contenders.append(lt_contender("libtorrent-hp", args, torrent, seed_dir,
                                               leech_dir, file_name, ["--high-performance"]))
    if not args.skip_unchoke:
        for runtime in runtimes:
            for mode in modes:
                for offload in offloads:
                    contenders.append(unchoke_contender(args, runtime, torrent, seed_dir,
                                                        leech_dir, file_name, mode, offload))
    if not contenders:
        parser.error("nothing to run")

    results = []
    for run_index in range(1, args.runs + 1):
        for contender in contenders:
            log("run %d/%d: %s, %d MiB" % (run_index, args.runs, contender.name, args.size_mib))
            try:
                row = one_run(contender, run_index, size, seed_sha, leech_dir, log_dir,
                              args.timeout)
                log("  %.1f MB/s in %.2f s" % (row["mb_per_s"], row["seconds"]))
            except RunFailed as err:
                log("  FAILED: %s" % err)
                row = {"contender": contender.name, "run": run_index, "ok": False,
                       "error": str(err)}
            results.append(row)

    names = [c.name for c in contenders]
    medians, ratios = summarize(results, names)
    if args.json:
        print(json.dumps({
            "size_bytes": size, "piece_bytes": args.piece_kib * 1024, "runs": args.runs,
            "seed": SEED_ADDR, "leech": LEECH_ADDR, "results": results,
            "medians": list(medians.values()), "ratios": ratios,
        }, indent=2))
    else:
        print("%d MiB over loopback (%s), %d KiB pieces, %s -> %s; MB = 10^6 bytes\n" % (
            args.size_mib, args.transport, args.piece_kib, SEED_ADDR, LEECH_ADDR))
        print(markdown(results, medians, ratios, args.runs))
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
