#!/usr/bin/python3
"""A libtorrent peer driven from the command line, for integration tests and benchmarks.

  lt_peer.py seed  TORRENT SAVE_DIR --listen 127.0.0.x [--port P] [--seed-mode]
                   [--connect HOST:PORT]... [--timeout SECS] [--high-performance]
  lt_peer.py leech TORRENT SAVE_DIR --listen 127.0.0.x [--port P] --connect HOST:PORT [...]
                   [--timeout SECS] [--keep-seeding SECS] [--high-performance]
  either mode also takes [--encryption forced|enabled|disabled] [--enc-level rc4|plaintext|both]
  (libtorrent's MSE/PE policy in and out, and what may follow the handshake)
  either mode also takes [--transport tcp|utp|both] (default tcp: which of TCP and uTP
  (BEP 29) it dials and accepts) and [--socket-buffer BYTES] (libtorrent's
  recv_socket_buffer_size and send_socket_buffer_size; uTP needs them raised on loopback)
  either mode also takes [--upload-limit BYTES_PER_SEC] [--download-limit BYTES_PER_SEC]
  (session-wide caps, loopback peers included)
  either mode also takes [--tracker URL]... [--tracker-events]; a leech with --tracker or
  --tracker-events may omit --connect (its peers then come from trackers alone)
  either mode also takes [--dht] [--dht-bootstrap HOST:PORT]...: libtorrent's DHT on the
  --listen address and port (UDP), bootstrapped only from the nodes given, with the
  settings that let it use loopback nodes (see make_session); a leech with --dht may omit
  --connect. A leech's TORRENT may be a magnet link: the metadata then comes from peers
  (BEP 9), and a "metadata" event is printed when it has arrived.
  either mode also takes [--lsd]: libtorrent's local service discovery (BEP 14) on the
  --listen address's interface, announcing every 2 s instead of 5 min; a leech with --lsd
  may omit --connect (its peers then come from the LAN's multicast group). Only in a
  network namespace of the test's own: it multicasts.

Run with /usr/bin/python3: Debian's libtorrent module is not visible to other pythons.

stdout carries one JSON object per line (flushed at once), each with an "event" key:

  {"event":"listening","addr":"127.0.0.x:PORT"}   the real bound port (seed: once checked);
                                                  an IPv6 --listen gives "[::1]:PORT"
  {"event":"checked","pieces_have":N,"piece_count":M,"seconds":S}
  {"event":"status", "state":..., "pieces_have":..., "piece_count":..., "progress":...,
   "downloaded":..., "uploaded":..., "download_rate":..., "upload_rate":..., "peers":...,
   "hash_failures":..., "failed_bytes":...}               about once a second
  {"event":"hash_failed","piece":N}                      a piece failed its hash check
  {"event":"peer_connected","addr":...} / {"event":"peer_disconnected","addr":...,"reason":...}
  {"event":"finished","seconds":S}                       leech: every piece verified
  {"event":"peers","peers":[{"addr":"ip:port","ip":"ip","client":"...","downloaded":B,
   "uploaded":B,"uploaded_polled":B,"connections":N,"encryption":"rc4|plaintext|none",
   "ever_unchoked":BOOL, "transport":"utp|tcp"}, ...],
   "unattributed_downloaded":B,
   "unattributed_uploaded":B,"alerts_dropped":N}     per-peer payload totals (see below)
  {"event":"stopped", ...same counters as status..., "reason":"signal|stdin|timeout|done"}
  {"event":"error","message":"..."}                      also written to stderr
  with --tracker-events, one line per announce outcome (libtorrent's tracker alerts):
  {"event":"tracker_reply","url":...,"peers":N}           an announce was accepted; N peers
  {"event":"tracker_error","url":...,"message":...,"times_in_row":N}
  {"event":"tracker_warning","url":...,"message":...}
  with --dht, libtorrent's DHT alerts:
  {"event":"dht_bootstrap"}                              its bootstrap lookup finished (the
                                                         torrent then announces at once)
  {"event":"dht_announce_in","addr":...,"info_hash":...} a node announced to us
  {"event":"dht_peers","info_hash":...,"peers":N}         a get_peers lookup returned N peers
  {"event":"metadata","seconds":S}                       a magnet leech received the info dict

Trackers: like any libtorrent client, the peer announces to the trackers named in the
torrent (and, with --tracker, to every tier: the torrent's and each --tracker URL as a tier
of its own) from its --listen address; the tracker sees that address as the peer's.
--tracker-events only makes the outcomes visible, so a test can wait until a tracker has
registered this peer before starting the next one.

Which addresses: the session listens on, and dials from, --listen only. `--connect` peers
are dialled at start and re-dialled every few seconds while no connection to that IP exists
(the other side may not be listening yet); one client per 127.0.0.x address is assumed.

Seed: the data must already be in SAVE_DIR. Without --seed-mode libtorrent checks it and the
seed refuses to start (exit 2) unless every piece is valid. With --seed-mode libtorrent trusts
the data without checking it, and hash checks are disabled in this session, so a corrupted
copy is served as it is: that is how a test builds a peer that sends bad data.

Per-peer accounting ("peers" event), keyed by the connection's remote ip:port:
- by default (--accounting blocks) from libtorrent's block_finished / block_uploaded alerts,
  one per 16 KiB block, so the counts survive disconnects. block_finished is posted when a
  block has arrived (it counts even if its piece later fails the hash check): "downloaded"
  is exact. block_uploaded is posted when a block is handed to the send buffer, not when it
  has left: "uploaded" is exact when connections end cleanly but can exceed what the peer
  received when a connection drops with data still queued ("uploaded_polled" is the lower
  bound from polling). The alert queue is raised to 500,000 entries; if libtorrent still
  drops alerts, "alerts_dropped" in the "peers" event is non-zero.
- and always from peer_info, polled every 0.2 s, keeping the last values seen per ip:port
  (a new connection from the same ip:port, seen as the key missing from the previous poll or
  a counter going down, adds the old connection's totals to a running base). Polling alone
  (--accounting poll, cheaper: the benchmark uses it) misses bytes moved between the last
  poll and a disconnect, and so can miss a whole short transfer.
Each peer's "downloaded"/"uploaded" is the larger of the two sources. "unattributed_*" is
what the torrent's exact payload totals hold beyond the sum over peers. Incoming connections
come from a fresh ephemeral port each time: group by "ip" to total what one client moved.
"client" is libtorrent's name for the peer, or the printable start of its peer id.

Stops on SIGTERM/SIGINT, on --timeout (default 600 s), and on end of stdin when stdin is a
pipe or socket (a test closes it to stop the peer; /dev/null or a terminal is not watched).
Exit codes: 0 finished (leech) or stopped by signal/stdin (seed); 1 timeout, or leech stopped
before finishing; 2 bad arguments, listen failure or (seed) data not complete.
"""
import argparse
import os
import select
import signal
import sys
import time

import libtorrent as lt

from peer_proc import emit, request_stop, watch_stdin
from peer_proc import stop as _stop
from peer_proc import stop_reason as _stop_reason

POLL_SECONDS = 0.2
# peer_info::utp_socket (libtorrent 2.0's peer flag bit 17): the binding does not name it.
UTP_SOCKET_FLAG = 1 << 17
STATUS_SECONDS = 1.0
REDIAL_SECONDS = 2.0
LISTEN_WAIT_SECONDS = 10.0



def fail(message, code=2):
    emit({"event": "error", "message": message})
    sys.stderr.write("lt_peer: %s\n" % message)
    sys.stderr.flush()
    sys.exit(code)


def bracketed(host):
    """An IPv6 literal in brackets, as HOST:PORT forms need; other hosts as they are."""
    return "[%s]" % host if ":" in host else host


def parse_hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("bad port in %r" % text) from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError("port out of range in %r" % text)
    return host.strip("[]"), number


def client_name(peer):
    name = peer.client
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return name


def peer_id_prefix(pid):
    """The printable start of a peer id ("-UC0001-"), for peers never seen in a poll."""
    try:
        raw = pid.to_bytes()
    except (AttributeError, RuntimeError):
        return ""
    prefix = []
    for byte in raw[:8]:
        if not 0x20 <= byte < 0x7F:
            break
        prefix.append(chr(byte))
    return "".join(prefix)


class PeerBook:
    """Per ip:port payload totals that survive disconnects (see the module doc)."""

    def __init__(self, info):
        self.info = info
        self.records = {}
        self.previous_keys = set()
        self.alerts_dropped = 0

    def record(self, key, ip):
        rec = self.records.get(key)
        if rec is None:
            rec = {"ip": ip, "client": "", "id_client": "", "base_down": 0, "base_up": 0,
                   "last_down": 0, "last_up": 0, "connections": 0, "block_down": 0,
                   "block_up": 0}
            self.records[key] = rec
        return rec

    def block_size(self, piece, block):
        piece_size = self.info.piece_size(piece)
        return max(0, min(16384, piece_size - block * 16384))

    def block(self, alert, uploaded):
        """Count one block_finished (received) or block_uploaded (sent) alert."""
        ip, port = alert.ip
        rec = self.record("%s:%d" % (ip, port), ip)
        size = self.block_size(alert.piece_index, alert.block_index)
        rec["block_up" if uploaded else "block_down"] += size
        if not rec["id_client"]:
            rec["id_client"] = peer_id_prefix(alert.pid)

    def connected(self, alert):
        ip, port = alert.ip
        rec = self.record("%s:%d" % (ip, port), ip)
        if not rec["id_client"]:
            rec["id_client"] = peer_id_prefix(alert.pid)

    def observe(self, peers):
        keys = set()
        for peer in peers:
            key = "%s:%d" % (peer.ip[0], peer.ip[1])
            keys.add(key)
            down, up = peer.total_download, peer.total_upload
            rec = self.record(key, peer.ip[0])
            if rec["connections"] == 0:
                rec["connections"] = 1
            elif key not in self.previous_keys or down < rec["last_down"] or up < rec["last_up"]:
                # A new connection: the old one's counters are final.
                rec["base_down"] += rec["last_down"]
                rec["base_up"] += rec["last_up"]
                rec["last_down"] = rec["last_up"] = 0
                rec["connections"] += 1
            rec["last_down"], rec["last_up"] = down, up
            # Whether libtorrent ever unchoked the peer, as far as the polls saw.
            if not peer.flags & lt.peer_info.choked:
                rec["ever_unchoked"] = True
            # How the connection is protected (MSE/PE), as libtorrent saw it last.
            if peer.flags & lt.peer_info.rc4_encrypted:
                rec["encryption"] = "rc4"
            elif peer.flags & lt.peer_info.plaintext_encrypted:
                rec["encryption"] = "plaintext"
            else:
                rec["encryption"] = "none"
            # The transport of the connection, as libtorrent saw it last.
            rec["transport"] = "utp" if peer.flags & UTP_SOCKET_FLAG else "tcp"
            name = client_name(peer)
            if name:
                rec["client"] = name
        self.previous_keys = keys

    def report(self, status):
        peers = []
        total_down = total_up = 0
        for key in sorted(self.records):
            rec = self.records[key]
            down = max(rec["base_down"] + rec["last_down"], rec["block_down"])
            up = max(rec["base_up"] + rec["last_up"], rec["block_up"])
            total_down += down
            total_up += up
            peers.append({"addr": key, "ip": rec["ip"],
                          "client": rec["client"] or rec["id_client"],
                          "downloaded": down, "uploaded": up,
                          "uploaded_polled": rec["base_up"] + rec["last_up"],
                          "connections": max(1, rec["connections"]),
                          "encryption": rec.get("encryption", "unknown"),
                          "ever_unchoked": rec.get("ever_unchoked", False),
                          "transport": rec.get("transport", "unknown")})
        return {
            "event": "peers",
            "peers": peers,
            "unattributed_downloaded": max(0, status.total_payload_download - total_down),
            "unattributed_uploaded": max(0, status.total_payload_upload - total_up),
            "alerts_dropped": self.alerts_dropped,
        }


def make_session(args):
    settings = {}
    if args.high_performance:
        settings.update(lt.high_performance_seed())
    settings.update({
        "listen_interfaces": "%s:%d" % (bracketed(args.listen), args.port),
        "outgoing_interfaces": args.listen,
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": args.transport in ("utp", "both"),
        "enable_outgoing_utp": args.transport in ("utp", "both"),
        "enable_incoming_tcp": args.transport in ("tcp", "both"),
        "enable_outgoing_tcp": args.transport in ("tcp", "both"),
        "min_reconnect_time": 1,
        "max_failcount": 1000,
        "alert_mask": (lt.alert.category_t.error_notification
                       | lt.alert.category_t.status_notification
                       | lt.alert.category_t.connect_notification
                       | lt.alert.category_t.peer_notification
                       | lt.alert.category_t.storage_notification),
    })
    if args.socket_buffer:
        # The UDP socket's buffers (uTP): at the default 208 KiB libtorrent's uTP drops
        # thousands of datagrams on loopback (INTEROP-NOTES.md).
        settings["recv_socket_buffer_size"] = args.socket_buffer
        settings["send_socket_buffer_size"] = args.socket_buffer
    if args.accounting == "blocks":
        settings["alert_mask"] |= (lt.alert.category_t.block_progress_notification
                                   | lt.alert.category_t.upload_notification)
        settings["alert_queue_size"] = 500000
    if args.tracker_events:
        settings["alert_mask"] |= lt.alert.category_t.tracker_notification
    if args.dht:
        settings.update({
            "enable_dht": True,
            "dht_bootstrap_nodes": ",".join("%s:%d" % hp for hp in args.dht_bootstrap),
            # libtorrent's defaults keep one node per /24 in its routing table and in a
            # lookup, and ignore nodes whose id does not match their IP (BEP 42): on
            # 127.0.0.0/8 every node would collide. Loopback tests turn those off.
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_enforce_node_id": False,
            "dht_prefer_verified_node_ids": False,
            "dht_ignore_dark_internet": False,
        })
        settings["alert_mask"] |= lt.alert.category_t.dht_notification
    if args.lsd:
        settings.update({
            "enable_lsd": True,
            # The default 5 minutes is longer than a test: announce often.
            "local_service_announce_interval": 2,
        })
    if args.tracker:
        # libtorrent would only try a later tier once the earlier ones fail: announce to
        # every tier, so a --tracker URL is used alongside the torrent's own.
        settings["announce_to_all_tiers"] = True
    if args.upload_limit:
        # Session-wide cap in bytes per second: makes a download slow enough to interrupt
        # half-way, or a seed slow enough that leechers trade with each other.
        settings["upload_rate_limit"] = args.upload_limit
    if args.unchoke_slots >= 0:
        # How many peers libtorrent unchokes (0: nobody, not even optimistically: a
        # peer then gets only the allowed-fast pieces BEP 6 grants it).
        settings["unchoke_slots_limit"] = args.unchoke_slots
        settings["num_optimistic_unchoke_slots"] = args.unchoke_slots
    if args.download_limit:
        # Session-wide cap in bytes per second: keeps a leech incomplete (and connected to
        # its seed, which a finished libtorrent peer drops) for as long as a test needs.
        settings["download_rate_limit"] = args.download_limit
    if args.encryption != "default":
        # Protocol encryption (MSE/PE): "forced" refuses plaintext both ways, "disabled"
        # speaks only plaintext; --enc-level is what may follow the handshake.
        policy = {"forced": lt.enc_policy.pe_forced, "enabled": lt.enc_policy.pe_enabled,
                  "disabled": lt.enc_policy.pe_disabled}[args.encryption]
        level = {"rc4": lt.enc_level.pe_rc4, "plaintext": lt.enc_level.pe_plaintext,
                 "both": lt.enc_level.pe_both}[args.enc_level]
        settings.update({"out_enc_policy": int(policy), "in_enc_policy": int(policy),
                         "allowed_enc_level": int(level)})
    if getattr(args, "seed_mode", False):
        # seed_mode alone verifies each piece on its first request and drops out of seed
        # mode on a mismatch; turning hash checks off makes it serve the data as it is.
        settings["disable_hash_checks"] = True
    session = lt.session(settings)
    if args.upload_limit or args.download_limit or args.unchoke_slots >= 0:
        # Loopback peers fall in libtorrent's "local" peer class, which neither rate
        # limits nor unchoke slots apply to: put every address in the global class.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        session.set_peer_class_filter(f)
    return session


_alert_pipe = None


def wait_alerts(session, ms):
    """Sleep up to `ms` or until libtorrent posts an alert. Not session.wait_for_alert: it
    returns a pointer into the alert queue that the binding converts after the queue may
    have grown (and moved) on the network thread: an intermittent SIGSEGV."""
    global _alert_pipe
    if _alert_pipe is None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        session.set_alert_fd(w)
        _alert_pipe = r
    ready, _, _ = select.select([_alert_pipe], [], [], ms / 1000.0)
    if ready:
        try:
            os.read(_alert_pipe, 4096)
        except BlockingIOError:
            pass


def wait_listening(session, args):
    """Wait for the TCP listen socket and return its port."""
    deadline = time.monotonic() + LISTEN_WAIT_SECONDS
    while time.monotonic() < deadline:
        wait_alerts(session, 100)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.listen_failed_alert):
                fail("cannot listen on %s:%d: %s" % (args.listen, args.port, alert.message()))
            if isinstance(alert, lt.listen_succeeded_alert):
                if alert.socket_type == lt.listen_succeded_alert_socket_type_t.tcp:
                    return alert.port
        port = session.listen_port()
        if port:
            return port
    fail("no listen socket on %s after %.0f s" % (args.listen, LISTEN_WAIT_SECONDS))
    return 0


def status_fields(status, info, hash_failures):
    return {
        "state": str(status.state),
        "pieces_have": status.num_pieces,
        "piece_count": info.num_pieces(),
        "progress": round(status.progress, 6),
        "downloaded": status.total_payload_download,
        "uploaded": status.total_payload_upload,
        "download_rate": status.download_payload_rate,
        "upload_rate": status.upload_payload_rate,
        "peers": status.num_peers,
        "hash_failures": hash_failures,
        "failed_bytes": status.total_failed_bytes,
    }


class Peer:
    """One session with one torrent, listening on --listen, and its bookkeeping."""

    def __init__(self, args):
        self.args = args
        self.magnet = args.torrent.startswith("magnet:")
        if self.magnet:
            # Known once the metadata has arrived (see pump).
            self.info = None
        else:
            try:
                self.info = lt.torrent_info(args.torrent)
            except RuntimeError as err:
                fail("cannot load torrent %s: %s" % (args.torrent, err))
        if not os.path.isdir(args.save_dir):
            fail("save directory %s does not exist" % args.save_dir)
        self.session = make_session(args)
        self.port = wait_listening(self.session, args)
        self.book = PeerBook(self.info)
        self.hash_failures = 0
        self.handle = None
        self.added_at = None
        self.last_status = 0.0
        self.last_dial = 0.0

    def add(self, seed_mode):
        if self.magnet:
            try:
                params = lt.parse_magnet_uri(self.args.torrent)
            except RuntimeError as err:
                fail("bad magnet link %s: %s" % (self.args.torrent, err))
        else:
            params = lt.add_torrent_params()
            params.ti = self.info
        params.save_path = self.args.save_dir
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        if seed_mode:
            params.flags |= lt.torrent_flags.seed_mode
        self.added_at = time.monotonic()
        self.handle = self.session.add_torrent(params)
        # Each --tracker URL is a tier of its own, after the torrent's tiers.
        tier = 1 + max([t.tier for t in self.info.trackers()], default=-1) if self.info else 0
        for n, url in enumerate(self.args.tracker):
            self.handle.add_tracker({"url": url, "tier": tier + n})

    def listening(self):
        emit({"event": "listening", "addr": "%s:%d" % (bracketed(self.args.listen), self.port)})

    def dial(self, now, force=False):
        """(Re)dial every --connect peer whose IP has no connection."""
        if not self.args.connect or (not force and now - self.last_dial < REDIAL_SECONDS):
            return
        self.last_dial = now
        connected_ips = {p.ip[0] for p in self.handle.get_peer_info()}
        for host, port in self.args.connect:
            if host not in connected_ips:
                try:
                    self.handle.connect_peer((host, port))
                except RuntimeError as err:
                    sys.stderr.write("lt_peer: connect_peer %s:%d: %s\n" % (host, port, err))

    def pump(self, now):
        """Handle alerts, poll peers, print a status line when one is due."""
        for alert in self.session.pop_alerts():
            if isinstance(alert, lt.hash_failed_alert):
                self.hash_failures += 1
                emit({"event": "hash_failed", "piece": alert.piece_index})
            elif isinstance(alert, lt.block_finished_alert):
                self.book.block(alert, uploaded=False)
            elif isinstance(alert, lt.block_uploaded_alert):
                self.book.block(alert, uploaded=True)
            elif isinstance(alert, lt.alerts_dropped_alert):
                self.book.alerts_dropped += 1
                emit({"event": "alerts_dropped"})
            elif isinstance(alert, lt.peer_connect_alert):
                self.book.connected(alert)
                emit({"event": "peer_connected", "addr": "%s:%d" % alert.ip})
            elif isinstance(alert, lt.peer_disconnected_alert):
                emit({"event": "peer_disconnected", "addr": "%s:%d" % alert.ip,
                      "reason": alert.error.message()})
            elif isinstance(alert, (lt.file_error_alert, lt.torrent_error_alert)):
                emit({"event": "torrent_error", "message": alert.message()})
            elif isinstance(alert, lt.tracker_reply_alert):
                emit({"event": "tracker_reply", "url": alert.tracker_url(),
                      "peers": alert.num_peers})
            elif isinstance(alert, lt.tracker_error_alert):
                emit({"event": "tracker_error", "url": alert.tracker_url(),
                      "message": alert.message(), "times_in_row": alert.times_in_row})
            elif isinstance(alert, lt.tracker_warning_alert):
                emit({"event": "tracker_warning", "url": alert.tracker_url(),
                      "message": alert.message()})
            elif isinstance(alert, lt.dht_bootstrap_alert):
                emit({"event": "dht_bootstrap"})
                # The DHT node starts after the listen sockets, often after the torrent
                # was added; a torrent added before it skips its first DHT announce and
                # waits for the next one (dht_announce_interval, 15 min). Announce now.
                self.handle.force_dht_announce()
            elif isinstance(alert, lt.dht_announce_alert):
                emit({"event": "dht_announce_in", "addr": "%s:%d" % (alert.ip, alert.port),
                      "info_hash": str(alert.info_hash)})
            elif isinstance(alert, lt.dht_reply_alert):
                emit({"event": "dht_peers", "info_hash": str(alert.handle.info_hash()),
                      "peers": alert.num_peers})
            elif isinstance(alert, lt.metadata_received_alert) and self.info is None:
                self.info = self.handle.torrent_file()
                self.book.info = self.info
                emit({"event": "metadata",
                      "seconds": round(time.monotonic() - self.added_at, 3)})
        self.book.observe(self.handle.get_peer_info())
        status = self.handle.status()
        if self.info is None:
            # A magnet leech without metadata yet: nothing to count pieces against.
            return status
        if now - self.last_status >= STATUS_SECONDS:
            self.last_status = now
            line = {"event": "status"}
            line.update(status_fields(status, self.info, self.hash_failures))
            emit(line)
        return status

    def run_until(self, deadline, done=None):
        """Pump until stop/deadline, or until done(status) is true. Returns the status."""
        status = self.handle.status()
        while not _stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                request_stop("timeout")
                break
            self.dial(now)
            status = self.pump(now)
            if done is not None and done(status):
                return status
            wait_alerts(self.session, int(POLL_SECONDS * 1000))
        return status

    def finish(self, reason):
        status = self.pump(time.monotonic())
        emit(self.book.report(status))
        line = {"event": "stopped", "reason": reason}
        if self.info is not None:
            line.update(status_fields(status, self.info, self.hash_failures))
        emit(line)
        # Remove the torrent so libtorrent closes (unmaps) its files before we exit.
        self.session.remove_torrent(self.handle)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(isinstance(a, lt.torrent_removed_alert) for a in self.session.pop_alerts()):
                break
            wait_alerts(self.session, 100)


def is_complete(status, info):
    if info is None:
        return False
    return status.num_pieces == info.num_pieces() and status.state not in (
        lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)


def checked(status):
    return status.state not in (lt.torrent_status.checking_files,
                                lt.torrent_status.checking_resume_data,
                                lt.torrent_status.allocating) and status.has_metadata


def run_seed(args, deadline):
    peer = Peer(args)
    peer.add(args.seed_mode)
    status = peer.run_until(deadline, checked)
    if _stop.is_set():
        peer.finish(_stop_reason[0])
        return 1 if _stop_reason[0] == "timeout" else 0
    emit({"event": "checked", "pieces_have": status.num_pieces,
          "piece_count": peer.info.num_pieces(),
          "seconds": round(time.monotonic() - peer.added_at, 3)})
    if not is_complete(status, peer.info):
        fail("data in %s is incomplete: %d of %d pieces valid" % (
            args.save_dir, status.num_pieces, peer.info.num_pieces()))
    peer.listening()
    peer.dial(time.monotonic(), force=True)
    peer.run_until(deadline)
    reason = _stop_reason[0]
    peer.finish(reason)
    if reason == "timeout":
        sys.stderr.write("lt_peer: seed timed out after %.0f s\n" % args.timeout)
        return 1
    return 0


def run_leech(args, deadline):
    peer = Peer(args)
    peer.listening()
    peer.add(False)
    peer.dial(time.monotonic(), force=True)

    def finished(status):
        return status.is_seeding or (status.is_finished and is_complete(status, peer.info))

    status = peer.run_until(deadline, finished)
    if _stop.is_set():
        reason = _stop_reason[0]
        peer.finish(reason)
        total = peer.info.num_pieces() if peer.info is not None else "?"
        if reason == "timeout":
            sys.stderr.write("lt_peer: leech timed out after %.0f s with %d of %s pieces\n" % (
                args.timeout, status.num_pieces, total))
        else:
            sys.stderr.write("lt_peer: leech stopped (%s) before finishing: %d of %s pieces\n" % (
                reason, status.num_pieces, total))
        return 1
    emit({"event": "finished", "seconds": round(time.monotonic() - peer.added_at, 3)})
    if args.keep_seeding > 0:
        peer.run_until(min(deadline, time.monotonic() + args.keep_seeding))
    # The --keep-seeding period ends through the deadline: that is "done", not a timeout.
    stopped_early = _stop.is_set() and _stop_reason[0] != "timeout"
    peer.finish(_stop_reason[0] if stopped_early else "done")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("seed", "leech"):
        p = sub.add_parser(mode)
        p.add_argument("torrent")
        p.add_argument("save_dir")
        p.add_argument("--listen", required=True,
                       help="address to listen on and dial from (IPv4, or IPv6 such as ::1)")
        p.add_argument("--port", type=int, default=0, help="listen port (0 = pick a free one)")
        p.add_argument("--connect", type=parse_hostport, action="append", default=[],
                       metavar="HOST:PORT", help="peer to dial (repeatable)")
        p.add_argument("--timeout", type=float, default=600.0, help="give up after SECS")
        p.add_argument("--transport", choices=("tcp", "utp", "both"), default="tcp",
                       help="peer transports dialled and accepted (default tcp)")
        p.add_argument("--socket-buffer", type=int, default=0, metavar="BYTES",
                       help="libtorrent's recv/send_socket_buffer_size (0: its default)")
        p.add_argument("--high-performance", action="store_true",
                       help="apply lt.high_performance_seed() settings")
        p.add_argument("--upload-limit", type=int, default=0, metavar="BYTES_PER_SEC",
                       help="cap the upload rate (0 = unlimited)")
        p.add_argument("--download-limit", type=int, default=0, metavar="BYTES_PER_SEC",
                       help="cap the download rate (0 = unlimited)")
        p.add_argument("--tracker", action="append", default=[], metavar="URL",
                       help="announce to this tracker too, after the torrent's (repeatable)")
        p.add_argument("--tracker-events", action="store_true",
                       help="print tracker_reply / tracker_error / tracker_warning events")
        p.add_argument("--dht", action="store_true",
                       help="run libtorrent's DHT on the --listen address and port")
        p.add_argument("--lsd", action="store_true",
                       help="local service discovery (BEP 14), announcing every 2 s")
        p.add_argument("--dht-bootstrap", type=parse_hostport, action="append", default=[],
                       metavar="HOST:PORT", help="DHT node to bootstrap from (repeatable)")
        p.add_argument("--unchoke-slots", type=int, default=-1, metavar="N",
                       help="unchoke at most N peers, optimistic ones included (default: "
                       "libtorrent's own)")
        p.add_argument("--encryption", choices=("default", "forced", "enabled", "disabled"),
                       default="default",
                       help="MSE/PE policy, in and out (default: libtorrent's own, enabled)")
        p.add_argument("--enc-level", choices=("rc4", "plaintext", "both"), default="both",
                       help="with --encryption: what may follow the MSE handshake")
        p.add_argument("--accounting", choices=("blocks", "poll"), default="blocks",
                       help="per-peer byte counts from block alerts (exact) or polling only")
        if mode == "seed":
            p.add_argument("--seed-mode", action="store_true",
                           help="trust the data without checking it (serves it as it is)")
        else:
            p.add_argument("--keep-seeding", type=float, default=0.0, metavar="SECS",
                           help="keep seeding this long after finishing")
    args = parser.parse_args()
    if args.mode == "leech" and not (args.connect or args.tracker or args.tracker_events
                                     or args.dht or args.lsd
                                     or args.torrent.startswith("magnet:")):
        parser.error("leech needs a peer source: --connect HOST:PORT, --tracker URL / "
                     "--tracker-events to rely on trackers, --dht, or a magnet link")
    if args.mode == "seed" and args.torrent.startswith("magnet:"):
        parser.error("a seed needs the .torrent file, not a magnet link")
    if not 0 <= args.port < 65536:
        parser.error("--port out of range")

    signal.signal(signal.SIGTERM, lambda *_: request_stop("signal"))
    signal.signal(signal.SIGINT, lambda *_: request_stop("signal"))
    watch_stdin()
    deadline = time.monotonic() + args.timeout
    if args.mode == "seed":
        code = run_seed(args, deadline)
    else:
        code = run_leech(args, deadline)
    sys.exit(code)


if __name__ == "__main__":
    main()
