#!/usr/bin/python3
"""Make a v2-only or hybrid .torrent of a file or directory with libtorrent; report its hashes.

Usage: lt_make_v2.py (v2|hybrid) CONTENT OUT_TORRENT [PIECE_LENGTH]

Writes OUT_TORRENT and prints one JSON object: {"v1": <40 hex or null>, "v2": <64 hex>,
"files": <file count libtorrent sees, padding files included>}. Nothing touches the network.
"""
import json
import os
import sys

import libtorrent as lt


def main():
    kind, content, out = sys.argv[1], sys.argv[2], sys.argv[3]
    piece_length = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    fs = lt.file_storage()
    lt.add_files(fs, content)
    flags = lt.create_torrent.v2_only if kind == "v2" else 0
    ct = lt.create_torrent(fs, piece_length, flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(content)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    hashes = lt.torrent_info(out).info_hashes()
    v1 = str(hashes.v1) if hashes.has_v1() else None
    print(json.dumps({"v1": v1, "v2": str(hashes.v2), "files": fs.num_files()}))


if __name__ == "__main__":
    main()
