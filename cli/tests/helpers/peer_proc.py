"""What lt_peer.py and tr_peer.py share as test-spawned processes: one JSON object per line
on stdout, and one stop flag raised by a signal, the end of stdin, or a time-out.

Imported from the scripts' own directory (Python puts it first on sys.path).
"""
import json
import os
import stat
import sys
import threading

# Raised once; `stop_reason[0]` says why ("timeout" until something else stops us).
stop = threading.Event()
stop_reason = ["timeout"]


def emit(obj):
    """One JSON line on stdout, flushed at once (a test reads it as it comes)."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def request_stop(reason):
    """Raise the stop flag; the first reason given is kept."""
    if not stop.is_set():
        stop_reason[0] = reason
        stop.set()


def watch_stdin():
    """Stop when stdin reaches end of file, but only if it is a pipe or a socket (a test
    closes it to stop the peer; /dev/null or a terminal is not watched)."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def reader():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        request_stop("stdin")

    threading.Thread(target=reader, daemon=True).start()
