#!/usr/bin/python3
"""Hostile BitTorrent peers for the real-process attack tests (cli/tests/attack.rs).

  hostile_peer.py idle    --target HOST:PORT --info-hash HEX --count N [--interested]
                          [--pieces P] --source-prefix A.B [--per-address K] [--rate R]
  hostile_peer.py partial --target HOST:PORT --info-hash HEX --count N
                          --source-prefix A.B [--per-address K] [--rate R]
  hostile_peer.py slow    --target HOST:PORT --info-hash HEX --count N --read-rate BYTES
                          --length L --piece-length PL [--pipeline Q]
                          --source-prefix A.B [--per-address K] [--rate R]
  hostile_peer.py poison  --listen IP --info-hash HEX --data FILE --piece-length PL
  every mode also takes --timeout SECS (default 300): the process's whole lifetime, after
  which it stops whatever happens, so it can never outlive the test that started it.

Python 3 standard library only; one thread, one selector, non-blocking sockets.

The three dialling modes keep N attacker connections to TARGET up at once, each one
re-opened when the victim drops it or refuses it (the attack is kept up, not fired once);
new connections start at most R per second (default 100), and a dropped one is re-dialled
after --reconnect-delay seconds (default 0.5; a dial unanswered for 5 s is retried), so a
victim refusing at once is not hammered in a busy loop:

  idle     the BitTorrent handshake (the right info-hash, a random peer id each time), then
           (--pieces P) an all-zero bitfield of P pieces, then (--interested) `interested`;
           never a request, never payload; a keep-alive every 30 s. What the victim sends is
           read and thrown away. "300 peers that handshake and idle".
  partial  the first 20 bytes of the handshake (length byte and protocol name), then
           nothing: a connection stalled before the victim knows the torrent. "500 partial
           handshakes kept refilled".
  slow     handshake, `interested`, and a pipeline of Q (default 10) requests for random
           blocks, refilled as blocks arrive and re-sent on each unchoke; but each socket
           is read at --read-rate bytes/s (a small SO_RCVBUF, small reads on a 0.1 s
           timer), so the victim's sends back up. "20 peers reading at 8 KiB/s".

Attackers come from many source addresses, as a real attacker's would (the victim caps
connections per IP): connection i binds to A.B.x.y (127.x.y.z is all loopback on Linux)
with K (default 2) connections per address; x and y run from 1 to 250.

  poison   a seed of the torrent on --listen (port 0: any; --port to choose): answers the
           handshake with a full bitfield and `unchoke`, and every request with the data of
           FILE (a one-file torrent's content, pieces of PL bytes), except that the first
           16 KiB block of every piece is garbage (the right bytes with every byte XOR
           0x5a): each piece it supplies that block of fails the victim's hash check.

stdout carries one JSON object per line (flushed at once), each with an "event" key:

  {"event":"listening","addr":"IP:PORT"}                  poison: accepting connections
  {"event":"ready","open":N,"handshaken":H,...counters}   dialling modes: every connection
      has been tried once and each is up or has been refused at least once: the attack is
      in place (it keeps going)
  {"event":"status","open":N,"handshaken":H,"opened":O,"dropped":D,"failed":F,
   "bytes_read":B,"requests":Q,"blocks":K,"unchoked":U}    about once a second
      open: connections up now; handshaken: of those, the ones the victim answered the
      handshake on; opened/dropped/failed: totals (failed: the dial itself failed);
      unchoked: (slow) connections the victim unchokes now
  {"event":"status","connections":N,"served":S,"poisoned":P}  poison, about once a second
  {"event":"stopped","reason":"signal|stdin|timeout",...counters}

Stops on SIGTERM/SIGINT, on --timeout, and on end of stdin when stdin is a pipe (see
peer_proc.py, whose conventions this follows).
"""
import argparse
import errno
import os
import random
import selectors
import signal
import socket
import struct
import time

from peer_proc import emit, request_stop, stop, stop_reason, watch_stdin

PROTOCOL = b"\x13BitTorrent protocol"
BLOCK = 16 * 1024
KEEPALIVE_SECS = 30.0
TICK = 0.1
CONNECT_TIMEOUT = 5.0

CHOKE, UNCHOKE, INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL = 0, 1, 2, 4, 5, 6, 7, 8
REJECT = 16


def handshake(info_hash):
    """A full 68-byte handshake with a fresh random peer id (no extension bits)."""
    peer_id = b"-XX0000-" + os.urandom(12)
    return PROTOCOL + bytes(8) + info_hash + peer_id


def message(msg_id, payload=b""):
    """One length-prefixed peer-wire message."""
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def source_ip(prefix, index, per_address):
    """The source address of attacker connection `index`: PREFIX.x.y, x and y in 1..250."""
    a = index // per_address
    x, y = divmod(a, 250)
    if x >= 250:
        raise SystemExit(f"too many connections for {per_address} per address")
    return f"{prefix}.{x + 1}.{y + 1}"


class Attacker:
    """One attacker connection slot: kept connected, re-dialled when it drops."""

    def __init__(self, index, src):
        self.index = index
        self.src = src
        self.sock = None
        self.state = "down"  # down | connecting | open
        self.tried = False
        self.refused_once = False
        self.out = bytearray()
        self.inbuf = bytearray()
        self.handshaken = False
        self.choked = True
        self.outstanding = 0
        self.last_send = 0.0
        self.since = 0.0  # when the dial started (connecting) or the slot went down


class Dialler:
    """The idle / partial / slow modes: N connections to the victim, kept up."""

    def __init__(self, args):
        self.args = args
        host, port = args.target.rsplit(":", 1)
        self.target = (host, int(port))
        self.info_hash = bytes.fromhex(args.info_hash)
        self.sel = selectors.DefaultSelector()
        self.slots = [
            Attacker(i, source_ip(args.source_prefix, i, args.per_address))
            for i in range(args.count)
        ]
        self.counters = dict(opened=0, dropped=0, failed=0, bytes_read=0, requests=0, blocks=0)
        self.tokens = float(args.rate)
        self.ready_said = False
        self.cursor = 0
        self.last_read = time.monotonic()
        if args.mode == "slow":
            if not args.length or not args.piece_length:
                raise SystemExit("slow needs --length and --piece-length")
            self.pieces = (args.length + args.piece_length - 1) // args.piece_length

    # --- connection life -------------------------------------------------------------
    def dial(self, slot):
        slot.tried = True
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setblocking(False)
            if self.args.mode == "slow":
                # A small receive window so the victim's sends back up in its own buffers.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind((slot.src, 0))
            rc = s.connect_ex(self.target)
        except OSError:
            s.close()
            self.counters["failed"] += 1
            slot.refused_once = True
            return
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self.counters["failed"] += 1
            slot.refused_once = True
            return
        slot.sock = s
        slot.since = time.monotonic()
        slot.state = "connecting"
        slot.out = bytearray()
        slot.inbuf = bytearray()
        slot.handshaken = False
        slot.choked = True
        slot.outstanding = 0
        self.sel.register(s, selectors.EVENT_WRITE, slot)

    def connected(self, slot):
        err = slot.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.counters["failed"] += 1
            self.drop(slot, counted=False)
            return
        slot.state = "open"
        self.counters["opened"] += 1
        mode = self.args.mode
        if mode == "partial":
            slot.out += handshake(self.info_hash)[:20]
        else:
            slot.out += handshake(self.info_hash)
            if mode == "idle" and self.args.pieces:
                slot.out += message(BITFIELD, bytes((self.args.pieces + 7) // 8))
            if mode == "slow" or self.args.interested:
                slot.out += message(INTERESTED)
        # The slow readers are read on the timer only; the others as data comes.
        events = 0 if mode == "slow" else selectors.EVENT_READ
        self.sel.unregister(slot.sock)
        if events:
            self.sel.register(slot.sock, events, slot)
        self.flush(slot)

    def drop(self, slot, counted=True):
        if slot.sock is not None:
            try:
                self.sel.unregister(slot.sock)
            except (KeyError, ValueError):
                pass
            slot.sock.close()
        if counted:
            self.counters["dropped"] += 1
        slot.sock = None
        slot.state = "down"
        slot.since = time.monotonic()
        slot.refused_once = True

    def flush(self, slot):
        """Sends what is queued; waits for writability if the socket is full."""
        if slot.state != "open":
            return
        try:
            while slot.out:
                n = slot.sock.send(slot.out)
                del slot.out[:n]
            slot.last_send = time.monotonic()
        except BlockingIOError:
            pass
        except OSError:
            self.drop(slot)
            return
        want = selectors.EVENT_WRITE if slot.out else 0
        if self.args.mode != "slow":
            want |= selectors.EVENT_READ
        try:
            if want:
                self.sel.modify(slot.sock, want, slot)
            else:
                self.sel.unregister(slot.sock)
        except KeyError:
            if want:
                self.sel.register(slot.sock, want, slot)

    def read(self, slot, limit):
        """Reads at most `limit` bytes; False when the connection is gone."""
        try:
            data = slot.sock.recv(limit)
        except BlockingIOError:
            return True
        except OSError:
            self.drop(slot)
            return False
        if not data:
            self.drop(slot)
            return False
        self.counters["bytes_read"] += len(data)
        if self.args.mode == "slow":
            slot.inbuf += data
            self.parse(slot)
        elif not slot.handshaken:
            slot.inbuf += data
            if len(slot.inbuf) >= 68:
                slot.handshaken = True
                slot.inbuf = bytearray()
        return True

    # --- the slow reader's protocol ----------------------------------------------------
    def parse(self, slot):
        buf = slot.inbuf
        if not slot.handshaken:
            if len(buf) < 68:
                return
            slot.handshaken = True
            del buf[:68]
        while len(buf) >= 4:
            (n,) = struct.unpack_from(">I", buf)
            if len(buf) < 4 + n:
                break
            msg_id = buf[4] if n else None
            del buf[: 4 + n]
            if msg_id == CHOKE:
                slot.choked = True
                slot.outstanding = 0
            elif msg_id == UNCHOKE:
                slot.choked = False
                slot.outstanding = 0
            elif msg_id == PIECE:
                self.counters["blocks"] += 1
                slot.outstanding = max(0, slot.outstanding - 1)
            elif msg_id == REJECT:
                slot.outstanding = max(0, slot.outstanding - 1)
        if not slot.choked:
            while slot.outstanding < self.args.pipeline:
                slot.out += self.random_request()
                slot.outstanding += 1
                self.counters["requests"] += 1
            self.flush(slot)

    def random_request(self):
        piece = random.randrange(self.pieces)
        plen = min(self.args.piece_length, self.args.length - piece * self.args.piece_length)
        begin = random.randrange((plen + BLOCK - 1) // BLOCK) * BLOCK
        return message(REQUEST, struct.pack(">III", piece, begin, min(BLOCK, plen - begin)))

    # --- the loop --------------------------------------------------------------------
    def summary(self):
        open_ = sum(1 for s in self.slots if s.state == "open")
        hs = sum(1 for s in self.slots if s.state == "open" and s.handshaken)
        unchoked = sum(1 for s in self.slots if s.state == "open" and not s.choked)
        return dict(open=open_, handshaken=hs, unchoked=unchoked, **self.counters)

    def run(self, deadline):
        next_status = time.monotonic() + 1.0
        last = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                request_stop("timeout")
                break
            self.tokens = min(float(self.args.rate), self.tokens + (now - last) * self.args.rate)
            last = now
            # Round robin from where the last pass stopped: with more slots than the
            # dial rate allows, every slot still gets its turn.
            n = len(self.slots)
            order = [self.slots[(self.cursor + k) % n] for k in range(n)]
            for slot in order:
                if slot.state == "connecting" and now - slot.since >= CONNECT_TIMEOUT:
                    # A dial the victim's full backlog leaves unanswered: try again.
                    self.counters["failed"] += 1
                    self.drop(slot, counted=False)
                elif (
                    slot.state == "down"
                    and self.tokens >= 1.0
                    and (not slot.tried or now - slot.since >= self.args.reconnect_delay)
                ):
                    self.tokens -= 1.0
                    self.cursor = slot.index + 1
                    self.dial(slot)
            for key, mask in self.sel.select(timeout=TICK):
                slot = key.data
                if slot.state == "connecting":
                    self.connected(slot)
                    continue
                if mask & selectors.EVENT_READ:
                    if not self.read(slot, 65536):
                        continue
                if mask & selectors.EVENT_WRITE:
                    self.flush(slot)
            now = time.monotonic()
            if self.args.mode == "slow" and now - self.last_read >= TICK:
                # Each socket gets read_rate bytes per second of elapsed time, no more.
                budget = max(1, int(self.args.read_rate * (now - self.last_read)))
                self.last_read = now
                for slot in self.slots:
                    if slot.state == "open":
                        self.read(slot, budget)
            for slot in self.slots:
                if (
                    slot.state == "open"
                    and self.args.mode != "partial"
                    and now - slot.last_send >= KEEPALIVE_SECS
                ):
                    slot.out += bytes(4)
                    self.flush(slot)
            if not self.ready_said and all(
                s.tried and (s.state == "open" or s.refused_once) for s in self.slots
            ):
                self.ready_said = True
                emit(dict(event="ready", **self.summary()))
            if now >= next_status:
                next_status = now + 1.0
                emit(dict(event="status", **self.summary()))
        for slot in self.slots:
            if slot.sock is not None:
                slot.sock.close()
        emit(dict(event="stopped", reason=stop_reason[0], **self.summary()))


class Poisoner:
    """The poison mode: a seed whose first block of every piece is garbage."""

    def __init__(self, args):
        self.args = args
        self.info_hash = bytes.fromhex(args.info_hash)
        self.data = open(args.data, "rb")
        self.length = os.fstat(self.data.fileno()).st_size
        self.pieces = (self.length + args.piece_length - 1) // args.piece_length
        bits = bytearray((self.pieces + 7) // 8)
        for i in range(self.pieces):
            bits[i // 8] |= 0x80 >> (i % 8)
        self.bitfield = bytes(bits)
        self.sel = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((args.listen, args.port))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.conns = {}
        self.served = 0
        self.poisoned = 0

    def block(self, index, begin, length):
        self.data.seek(index * self.args.piece_length + begin)
        bytes_ = self.data.read(length)
        if begin == 0:
            self.poisoned += 1
            return bytes(b ^ 0x5A for b in bytes_)
        return bytes_

    def handle(self, sock, st):
        buf = st["in"]
        if not st["hs"]:
            if len(buf) < 68:
                return True
            if bytes(buf[:20]) != PROTOCOL or bytes(buf[28:48]) != self.info_hash:
                return False
            st["hs"] = True
            del buf[:68]
            st["out"] += handshake(self.info_hash) + message(BITFIELD, self.bitfield)
            st["out"] += message(UNCHOKE)
        while len(buf) >= 4:
            (n,) = struct.unpack_from(">I", buf)
            if n > 1 << 20:
                return False
            if len(buf) < 4 + n:
                break
            body = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            if n >= 13 and body[0] == REQUEST:
                index, begin, length = struct.unpack_from(">III", body, 1)
                end = index * self.args.piece_length + begin + length
                if index < self.pieces and 0 < length <= 128 * 1024 and end <= self.length:
                    self.served += 1
                    payload = struct.pack(">II", index, begin) + self.block(index, begin, length)
                    st["out"] += message(PIECE, payload)
        return True

    def close(self, sock):
        self.sel.unregister(sock)
        sock.close()
        del self.conns[sock]

    def run(self, deadline):
        host, port = self.listener.getsockname()
        emit({"event": "listening", "addr": f"{host}:{port}"})
        next_status = time.monotonic() + 1.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                request_stop("timeout")
                break
            for key, mask in self.sel.select(timeout=TICK):
                if key.data is None:
                    try:
                        c, _ = self.listener.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    self.conns[c] = {"in": bytearray(), "out": bytearray(), "hs": False}
                    self.sel.register(c, selectors.EVENT_READ, "peer")
                    continue
                sock = key.fileobj
                st = self.conns.get(sock)
                if st is None:
                    continue
                if mask & selectors.EVENT_READ:
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        data = b""
                    if data == b"":
                        self.close(sock)
                        continue
                    if data:
                        st["in"] += data
                        if not self.handle(sock, st):
                            self.close(sock)
                            continue
                try:
                    while st["out"]:
                        n = sock.send(st["out"][: 1 << 20])
                        del st["out"][:n]
                except BlockingIOError:
                    pass
                except OSError:
                    self.close(sock)
                    continue
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0)
                self.sel.modify(sock, want, "peer")
            if now >= next_status:
                next_status = now + 1.0
                emit(self.summary("status"))
        for sock in list(self.conns):
            self.close(sock)
        out = self.summary("stopped")
        out["reason"] = stop_reason[0]
        emit(out)

    def summary(self, event):
        return {
            "event": event,
            "connections": len(self.conns),
            "served": self.served,
            "poisoned": self.poisoned,
        }


def main():
    p = argparse.ArgumentParser(description="hostile BitTorrent peers for attack tests")
    p.add_argument("mode", choices=["idle", "partial", "slow", "poison"])
    p.add_argument("--target")
    p.add_argument("--info-hash", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--interested", action="store_true")
    p.add_argument("--pieces", type=int, default=0)
    p.add_argument("--source-prefix", default="127.10")
    p.add_argument("--per-address", type=int, default=2)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--reconnect-delay", type=float, default=0.5)
    p.add_argument("--read-rate", type=int, default=8192)
    p.add_argument("--pipeline", type=int, default=10)
    p.add_argument("--length", type=int, default=0)
    p.add_argument("--piece-length", type=int, default=0)
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--data")
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args()

    deadline = time.monotonic() + args.timeout
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: request_stop("signal"))
    watch_stdin()
    if args.mode == "poison":
        if not args.data or not args.piece_length:
            raise SystemExit("poison needs --data and --piece-length")
        Poisoner(args).run(deadline)
    else:
        if not args.target:
            raise SystemExit(f"{args.mode} needs --target")
        Dialler(args).run(deadline)


if __name__ == "__main__":
    main()
