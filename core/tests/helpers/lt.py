#!/usr/bin/python3
"""libtorrent side of core/tests/real_tools.rs.

  lt.py check                         exit 0 if libtorrent imports (prints its version)
  lt.py create PATH OUT [--v1-only]   make a torrent of PATH with libtorrent's defaults
                                      (hybrid v1+v2 with BEP 47 pad files unless --v1-only)
  lt.py show TORRENT                  print libtorrent's view, one `key<TAB>value` a line:
      v1 <hex>, name <name>, total_size <n>, piece_length <n>, num_pieces <n>,
      file <size>\t<flags>\t<path relative to name's parent> (flags: p, x, h or -)

Run with /usr/bin/python3: Debian's libtorrent module is not visible to other pythons.
"""
import os
import sys

import libtorrent as lt


def create(path, out, v1_only):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    flags = lt.create_torrent.v1_only if v1_only else 0
    ct = lt.create_torrent(fs, 0, flags=flags)
    ct.add_tracker("http://127.0.0.1:6969/announce")
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))


def show(torrent):
    ti = lt.torrent_info(torrent)
    out = [
        "v1\t" + str(ti.info_hashes().v1),
        "name\t" + ti.name(),
        "total_size\t%d" % ti.total_size(),
        "piece_length\t%d" % ti.piece_length(),
        "num_pieces\t%d" % ti.num_pieces(),
    ]
    fs = ti.files()
    for i in range(fs.num_files()):
        fl = fs.file_flags(i)
        flags = ""
        if fl & lt.file_storage.flag_pad_file:
            flags += "p"
        if fl & lt.file_storage.flag_executable:
            flags += "x"
        if fl & lt.file_storage.flag_hidden:
            flags += "h"
        out.append("file\t%d\t%s\t%s" % (fs.file_size(i), flags or "-", fs.file_path(i)))
    print("\n".join(out))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "check":
        print(lt.__version__)
    elif cmd == "create" and len(sys.argv) in (4, 5):
        create(sys.argv[2], sys.argv[3], sys.argv[4:] == ["--v1-only"])
    elif cmd == "show" and len(sys.argv) == 3:
        show(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
