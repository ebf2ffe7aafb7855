#!/bin/sh
# uTP beside TCP on a lossy, slow path: inside a network namespace of its own (loopback
# only), `tc netem` delays every packet on `lo` by DELAY_MS (each direction crosses `lo`
# once, so the round trip is twice that) and drops LOSS_PCT % of them. Two unchoke
# transfers of SIZE_MIB MiB run at the same time: one pair over `--transport utp`
# (127.0.0.1 -> 127.0.0.2), one over `--transport tcp` (127.0.0.3 -> 127.0.0.4). Prints
# each leecher's time and rate.
#
#   sudo benches/utp_netem.sh [UNCHOKE] [SIZE_MIB] [DELAY_MS] [LOSS_PCT]
#
# IMPAIR says how the delay and loss are made:
#   netem   (default) `tc qdisc add dev lo root netem delay … loss …`;
#   nfqueue for kernels built without sch_netem: iptables drops LOSS_PCT % of the packets
#           arriving on `lo` (`-m statistic --mode random`) and hands the rest to
#           NFQUEUE 0, where benches/delay_line.py holds each DELAY_MS before letting it
#           through (needs iptables and the NetfilterQueue Python module). On arrival
#           (INPUT), not on departure (OUTPUT): a packet held on the way out still counts
#           against its TCP socket's small-queue budget (TSQ, two packets at a low rate),
#           which capped any TCP flow, unchoke's or not, at 2 packets per delay (58 kB/s
#           at 50 ms); loopback has released the packet from its socket by INPUT;
#   none    leaves `lo` as it is (NETEM=0 means the same: a check of the script).
# With delay and loss, `lo` is made to look like a wire: MTU 1500, and no TSO/GSO/GRO
# (ethtool), so TCP sends 1,448-byte segments; and the uTP pair runs with
# UNCHOKE_UDP_OFFLOAD=off, because netfilter and qdiscs see a UDP GSO run as one packet
# (a real NIC cuts it before the wire), which would make one loss take 44 datagrams.
# LT=1 adds a third pair at the same time: libtorrent's uTP (TCP off, 4 MiB socket
# buffers; cli/tests/helpers/lt_peer.py) from 127.0.0.5 to 127.0.0.6, the reference for
# what uTP gets on this path.
# Needs root (unshare -n, tc) and mktorrent. Only processes this script starts are
# stopped, by pid; every wait is bounded (TIMEOUT seconds per transfer).
set -eu
UNCHOKE=$(realpath "${1:-target/release/unchoke}")
SIZE_MIB=${2:-8}
DELAY_MS=${3:-25}
LOSS_PCT=${4:-1}
TIMEOUT=${TIMEOUT:-300}
IMPAIR=${IMPAIR:-netem}
if [ "${NETEM:-1}" = 0 ]; then IMPAIR=none; fi
HERE=$(dirname "$(realpath "$0")")

if [ "${UTP_NETEM_INSIDE:-}" != 1 ]; then
    exec unshare -n env UTP_NETEM_INSIDE=1 TIMEOUT="$TIMEOUT" IMPAIR="$IMPAIR" LT="${LT:-0}" \
        sh "$0" "$UNCHOKE" "$SIZE_MIB" "$DELAY_MS" "$LOSS_PCT"
fi

WORK=$(mktemp -d)
DELAY_LINE=
cleanup() {
    if [ -n "$DELAY_LINE" ]; then kill "$DELAY_LINE" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
ip link set lo up
if [ "$IMPAIR" != none ]; then
    ip link set lo mtu 1500
    ethtool -K lo tso off gso off gro off > /dev/null 2>&1 || true
    export UNCHOKE_UDP_OFFLOAD=off
fi
case "$IMPAIR" in
netem)
    tc qdisc add dev lo root netem delay "${DELAY_MS}ms" loss "${LOSS_PCT}%"
    ;;
nfqueue)
    PROB=$(awk -v p="$LOSS_PCT" 'BEGIN { printf "%.4f", p / 100 }')
    iptables -A INPUT -i lo -m statistic --mode random --probability "$PROB" -j DROP
    iptables -A INPUT -i lo -j NFQUEUE --queue-num 0
    /usr/bin/python3 "$HERE/delay_line.py" --delay-ms "$DELAY_MS" \
        --seconds $((TIMEOUT + 60)) > "$WORK/delay-line.out" 2>&1 &
    DELAY_LINE=$!
    for _ in $(seq 100); do
        grep -q "delay line:" "$WORK/delay-line.out" && break
        sleep 0.1
    done
    grep -q "delay line:" "$WORK/delay-line.out" || { cat "$WORK/delay-line.out" >&2; exit 1; }
    ;;
none)
    DELAY_MS=0
    LOSS_PCT=0
    ;;
*)
    echo "IMPAIR is netem, nfqueue or none" >&2
    exit 2
    ;;
esac
mkdir -p "$WORK/seed"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/seed/netem.bin"
mktorrent -l 18 -o "$WORK/netem.torrent" "$WORK/seed/netem.bin" > /dev/null

# seed TRANSPORT IP: starts a seed, prints its address.
seed() {
    "$UNCHOKE" seed "$WORK/netem.torrent" "$WORK/seed" --transport "$1" \
        --listen "$2:0" --json --no-lsd > "$WORK/seed-$1.out" 2>&1 &
    echo $! > "$WORK/seed-$1.pid"
    for _ in $(seq 100); do
        addr=$(grep -o "\"addr\":\"$2:[0-9]*\"" "$WORK/seed-$1.out" | head -1 | cut -d'"' -f4)
        if [ -n "$addr" ]; then echo "$addr"; return; fi
        sleep 0.1
    done
    echo "seed over $1 did not start" >&2
    exit 1
}

# leech TRANSPORT IP SEED_ADDR: downloads, prints "TRANSPORT SECONDS MB/s".
leech() {
    start=$(date +%s.%N)
    timeout "$TIMEOUT" "$UNCHOKE" download "$WORK/netem.torrent" -o "$WORK/out-$1" \
        --transport "$1" --listen "$2:0" --peer "$3" --quiet --no-lsd --no-dht
    end=$(date +%s.%N)
    cmp -s "$WORK/seed/netem.bin" "$WORK/out-$1/netem.bin" || { echo "$1: bytes differ" >&2; exit 1; }
    echo "$1 $start $end" | awk -v mib="$SIZE_MIB" \
        '{ s = $3 - $2; printf "%s %.1f s %.2f MB/s\n", $1, s, mib * 1048576 / 1e6 / s }'
}

LT_PEER="$HERE/../cli/tests/helpers/lt_peer.py"
# lt_leech SEED_ADDR: libtorrent's uTP leech, prints "libtorrent-utp SECONDS MB/s".
lt_leech() {
    mkdir -p "$WORK/out-lt"
    start=$(date +%s.%N)
    timeout "$TIMEOUT" /usr/bin/python3 "$LT_PEER" leech "$WORK/netem.torrent" "$WORK/out-lt" \
        --listen 127.0.0.6 --connect "$1" --transport utp --socket-buffer 4194304 \
        --timeout "$TIMEOUT" > "$WORK/lt-leech.out" 2>&1
    end=$(date +%s.%N)
    cmp -s "$WORK/seed/netem.bin" "$WORK/out-lt/netem.bin" || { echo "libtorrent: bytes differ" >&2; exit 1; }
    echo "libtorrent-utp $start $end" | awk -v mib="$SIZE_MIB" \
        '{ s = $3 - $2; printf "%s %.1f s %.2f MB/s\n", $1, s, mib * 1048576 / 1e6 / s }'
}
LT_SEED_PID=
if [ "${LT:-0}" = 1 ]; then
    /usr/bin/python3 "$LT_PEER" seed "$WORK/netem.torrent" "$WORK/seed" --listen 127.0.0.5 \
        --transport utp --socket-buffer 4194304 --timeout $((TIMEOUT + 60)) \
        > "$WORK/lt-seed.out" 2>&1 &
    LT_SEED_PID=$!
    LT_SEED=
    for _ in $(seq 200); do
        LT_SEED=$(grep -o '"addr": *"127.0.0.5:[0-9]*"' "$WORK/lt-seed.out" | head -1 | grep -o '127[0-9.:]*' || true)
        [ -n "$LT_SEED" ] && break
        sleep 0.1
    done
    [ -n "$LT_SEED" ] || { echo "libtorrent seed did not start" >&2; cat "$WORK/lt-seed.out" >&2; exit 1; }
fi

UTP_SEED=$(seed utp 127.0.0.1)
TCP_SEED=$(seed tcp 127.0.0.3)
echo "$IMPAIR: delay ${DELAY_MS} ms each way, loss ${LOSS_PCT} %; ${SIZE_MIB} MiB each, at the same time"
leech utp 127.0.0.2 "$UTP_SEED" > "$WORK/utp.result" &
UTP_LEECH=$!
leech tcp 127.0.0.4 "$TCP_SEED" > "$WORK/tcp.result" &
TCP_LEECH=$!
: > "$WORK/lt.result"
if [ -n "$LT_SEED_PID" ]; then
    lt_leech "$LT_SEED" > "$WORK/lt.result" &
    LT_LEECH=$!
fi
wait "$UTP_LEECH" || echo "utp transfer failed" >&2
wait "$TCP_LEECH" || echo "tcp transfer failed" >&2
if [ -n "$LT_SEED_PID" ]; then wait "$LT_LEECH" || echo "libtorrent transfer failed" >&2; fi
cat "$WORK/utp.result" "$WORK/tcp.result" "$WORK/lt.result"
SEEDS="$(cat "$WORK/seed-utp.pid") $(cat "$WORK/seed-tcp.pid") $LT_SEED_PID"
# shellcheck disable=SC2086 # two pids
kill $SEEDS 2>/dev/null || true
# The seeds save their resume data as they leave: wait (bounded) before removing WORK.
for _ in $(seq 100); do
    alive=0
    for pid in $SEEDS; do
        if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
done
if [ -n "$DELAY_LINE" ]; then
    iptables -F INPUT
    kill "$DELAY_LINE" 2>/dev/null || true
    wait "$DELAY_LINE" 2>/dev/null || true
    DELAY_LINE=
    cat "$WORK/delay-line.out"
fi
