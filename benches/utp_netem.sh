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
# NETEM=0 leaves `lo` as it is (a check of the script on a kernel without sch_netem).
# Needs root (unshare -n, tc) and mktorrent. Only processes this script starts are
# stopped, by pid; every wait is bounded (TIMEOUT seconds per transfer).
set -eu
UNCHOKE=$(realpath "${1:-target/release/unchoke}")
SIZE_MIB=${2:-8}
DELAY_MS=${3:-25}
LOSS_PCT=${4:-1}
TIMEOUT=${TIMEOUT:-300}
NETEM=${NETEM:-1}

if [ "${UTP_NETEM_INSIDE:-}" != 1 ]; then
    exec unshare -n env UTP_NETEM_INSIDE=1 TIMEOUT="$TIMEOUT" NETEM="$NETEM" \
        sh "$0" "$UNCHOKE" "$SIZE_MIB" "$DELAY_MS" "$LOSS_PCT"
fi

ip link set lo up
if [ "$NETEM" = 1 ]; then
    tc qdisc add dev lo root netem delay "${DELAY_MS}ms" loss "${LOSS_PCT}%"
else
    DELAY_MS=0
    LOSS_PCT=0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
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

UTP_SEED=$(seed utp 127.0.0.1)
TCP_SEED=$(seed tcp 127.0.0.3)
echo "netem: delay ${DELAY_MS} ms each way, loss ${LOSS_PCT} %; ${SIZE_MIB} MiB each, at the same time"
leech utp 127.0.0.2 "$UTP_SEED" > "$WORK/utp.result" &
UTP_LEECH=$!
leech tcp 127.0.0.4 "$TCP_SEED" > "$WORK/tcp.result" &
TCP_LEECH=$!
wait "$UTP_LEECH" || echo "utp transfer failed" >&2
wait "$TCP_LEECH" || echo "tcp transfer failed" >&2
cat "$WORK/utp.result" "$WORK/tcp.result"
SEEDS="$(cat "$WORK/seed-utp.pid") $(cat "$WORK/seed-tcp.pid")"
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
