#!/usr/bin/python3
"""A delay line for kernels without `sch_netem`: every packet netfilter hands to NFQUEUE
QUEUE is held DELAY_MS milliseconds, then let through, in arrival order. Hook it where
packets have left their sending socket (INPUT on loopback): a packet held on its way out
still counts against its TCP socket's small-queue budget, which throttles the sender to a
couple of packets per delay.

Used by `benches/utp_netem.sh` (IMPAIR=nfqueue) inside its own network namespace:

    iptables -A INPUT -i lo -j NFQUEUE --queue-num 0
    benches/delay_line.py --delay-ms 50 --seconds 600 &

Needs root and the NetfilterQueue module (`pip install NetfilterQueue`, which builds
against libnetfilter-queue-dev). Runs at most --seconds, then lets every held packet go
and exits (the rule then drops, so the caller removes it first). Prints the packets it
held and the most it held at once when it ends.
"""

import argparse
import collections
import select
import signal
import socket
import sys
import time

from netfilterqueue import COPY_META, NetfilterQueue


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", type=int, default=0, help="NFQUEUE number (default 0)")
    parser.add_argument("--delay-ms", type=float, required=True, help="delay per packet")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help="stop after this long at the latest (default 600)")
    args = parser.parse_args()
    delay = args.delay_ms / 1000.0

    # One delay for every packet: a FIFO is ordered by release time already.
    held = collections.deque()
    stats = {"packets": 0, "most_held": 0}

    def hold(packet):
        held.append((time.monotonic() + delay, packet))
        stats["packets"] += 1
        stats["most_held"] = max(stats["most_held"], len(held))

    stop = {"now": False}

    def on_signal(_sig, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    nfq = NetfilterQueue()
    # Metadata only: the verdict needs the packet's id, not its bytes. A long queue, so
    # the kernel does not drop what waits for its delay (queue drops would be extra loss).
    nfq.bind(args.queue, hold, max_len=1 << 16, mode=COPY_META)
    sock = socket.fromfd(nfq.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    print("delay line: queue %d, %.1f ms" % (args.queue, args.delay_ms), flush=True)
    deadline = time.monotonic() + args.seconds
    try:
        while not stop["now"] and time.monotonic() < deadline:
            now = time.monotonic()
            wait = 0.05 if not held else max(0.0, min(0.05, held[0][0] - now))
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                nfq.run(block=False)
            now = time.monotonic()
            while held and held[0][0] <= now:
                held.popleft()[1].accept()
    finally:
        while held:
            held.popleft()[1].accept()
        nfq.unbind()
        print("delay line: %d packets held, at most %d at once"
              % (stats["packets"], stats["most_held"]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
