#!/usr/bin/python3
"""Write a hybrid .torrent whose v1 and v2 hashes describe different data, for tests that a
peer serving data which matches one of a hybrid's hashes but not the other is caught.

Usage: mix_hybrid.py GOOD.torrent OTHER.torrent OUT.torrent (v1|v2)

Both inputs are hybrid torrents of files with the same names and sizes. OUT is GOOD with
its v1 `pieces` (v1) or its v2 `file tree` and `piece layers` (v2) taken from OTHER. Uses
libtorrent's bencode only; nothing touches the network. Prints nothing.
"""
import sys

import libtorrent as lt


def main():
    good_path, other_path, out, part = sys.argv[1:5]
    good = lt.bdecode(open(good_path, "rb").read())
    other = lt.bdecode(open(other_path, "rb").read())
    if part == "v1":
        good[b"info"][b"pieces"] = other[b"info"][b"pieces"]
    elif part == "v2":
        good[b"info"][b"file tree"] = other[b"info"][b"file tree"]
        good[b"piece layers"] = other[b"piece layers"]
    else:
        raise SystemExit("the last argument is v1 or v2")
    with open(out, "wb") as f:
        f.write(lt.bencode(good))


if __name__ == "__main__":
    main()
