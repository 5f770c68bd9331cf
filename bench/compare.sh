#!/usr/bin/env bash
# Compares two ssegate binaries (before and after a change) on the same load, alternating them so that
# drift in the machine's other load hits both alike. Each round starts `ssegate origin`, then
# `ssegate serve` from the binary under test with one feed, drives it with `ssegate bench` (always the
# same load-client binary), and samples the server's CPU (utime+stime from /proc/PID/stat) over a
# window inside the load client's, and its resident memory before the clients and at the window's end
# (memory per client = the growth / clients). One line per round, then the mean per binary.
#
#   bench/compare.sh BEFORE AFTER [--rounds N] [--clients N] [--rate R] [--payload B] [--window S]
#                    [--bench-threads T] [--bench BINARY] [--http2] [--streams-per-connection K]
#
# Defaults: 3 rounds each, 10,000 clients × 10 events/s × 200 B, a 20 s CPU window, 2 load-client
# threads, the load client from AFTER. Ports 18180 (gateway), 18181 (origin), 18190 (admin) on
# 127.0.0.1 must be free. Every process is stopped by its PID at the end of each round and on exit.
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 1; }
BEFORE=$1 AFTER=$2; shift 2
ROUNDS=3 CLIENTS=10000 RATE=10 PAYLOAD=200 WINDOW=20 BENCH_THREADS=2 BENCH=$AFTER HTTP2=0 STREAMS_PER_CONNECTION=100
while [ $# -gt 0 ]; do
    case "$1" in
        --http2) HTTP2=1; shift ;;
        # --bench-threads 4 sets BENCH_THREADS=4, and so on.
        --rounds|--clients|--rate|--payload|--window|--bench-threads|--bench|--streams-per-connection)
            [ $# -ge 2 ] || { echo "bench/compare.sh: $1 needs a value" >&2; exit 1; }
            option=${1#--}; option=${option//-/_}
            printf -v "${option^^}" '%s' "$2"; shift 2 ;;
        *) echo "bench/compare.sh: unknown argument '$1'" >&2; exit 1 ;;
    esac
done
for binary in "$BEFORE" "$AFTER" "$BENCH"; do [ -x "$binary" ] || { echo "bench/compare.sh: $binary is not executable" >&2; exit 1; }; done
ulimit -n 20000 2>/dev/null || true

TMP=$(mktemp -d /tmp/ssegate-compare.XXXXXX)
PIDS=()
stop() { local pid; for pid in "$@"; do kill "$pid" 2>/dev/null || true; done; for pid in "$@"; do wait "$pid" 2>/dev/null || true; done; }
cleanup() { stop "${PIDS[@]}"; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'exit 129' HUP

# shellcheck source=bench/ssegate-config.sh
. "$(dirname "${BASH_SOURCE[0]}")/ssegate-config.sh"
{ bench_gateway_config 18180 18190; bench_feed bench /feed 18181; } >"$TMP/ssegate.yaml"

PROTOCOL=()
CONNECTIONS=$CLIENTS
if [ "$HTTP2" = 1 ]; then
    PROTOCOL=(--http2 --streams-per-connection "$STREAMS_PER_CONNECTION")
    CONNECTIONS=$(( (CLIENTS + STREAMS_PER_CONNECTION - 1) / STREAMS_PER_CONNECTION ))
fi
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
established() { ss -Htn state established '( sport = :18180 )' | wc -l; }
listening() { ss -Htln "( sport = :$1 )" | grep -q .; }
alive() { kill -0 "$1" 2>/dev/null; }

# A round's verdict line goes to $TMP/round.txt (not through a pipe: a subshell would lose PIDS, and
# cleanup would then miss the processes of an interrupted round). A round that did not measure the
# binary under test cleanly (a port taken, the server gone, clients missing or failing) is printed
# as skipped and left out of the means.

round() {   # $1 label, $2 server binary
    local label=$1 server=$2 origin serve bench i t0 t1 s0 s1 port r0 r1
    for port in 18180 18181 18190; do
        if listening "$port"; then echo "$label skipped: 127.0.0.1:$port is already in use" >"$TMP/round.txt"; return; fi
    done
    "$BENCH" origin --host 127.0.0.1 --port 18181 --rate "$RATE" --payload "$PAYLOAD" >"$TMP/origin.log" 2>&1 &
    origin=$!; PIDS+=("$origin")
    sleep 0.5
    "$server" serve --config "$TMP/ssegate.yaml" >"$TMP/serve.log" 2>&1 &
    serve=$!; PIDS+=("$serve")
    sleep 1
    r0=$(rss_kib "$serve")
    timeout -k 5 $((WINDOW + 100)) "$BENCH" bench --url http://127.0.0.1:18180/feed --clients "$CLIENTS" \
        --duration $((WINDOW + 6)) --expected-rate "$RATE" --threads "$BENCH_THREADS" "${PROTOCOL[@]}" --json --quiet \
        >"$TMP/bench.json" 2>"$TMP/bench.log" &
    bench=$!; PIDS+=("$bench")
    for i in $(seq 120); do [ "$(established)" -ge "$CONNECTIONS" ] && break; alive "$serve" || break; sleep 0.5; done
    sleep 3
    if ! alive "$serve"; then
        stop "$bench" "$origin"
        echo "$label skipped: ssegate serve exited: $(tail -n 1 "$TMP/serve.log")" >"$TMP/round.txt"; return
    fi
    t0=$(ticks "$serve"); s0=$(date +%s.%N)
    sleep "$WINDOW"
    t1=$(ticks "$serve"); s1=$(date +%s.%N)
    r1=$(rss_kib "$serve")
    local served=1
    alive "$serve" || served=0
    wait "$bench" || true
    stop "$serve" "$origin"
    python3 - "$TMP/bench.json" "$label" "$t0" "$t1" "$s0" "$s1" "$(getconf CLK_TCK)" "$CLIENTS" "$served" "$r0" "$r1" >"$TMP/round.txt" <<'PY'
import json, sys
path, label, t0, t1, s0, s1, clk, clients, served, r0, r1 = sys.argv[1:]
try:
    b = json.load(open(path))
except (OSError, ValueError):
    sys.exit(print(f"{label} skipped: the load client wrote no report"))
errors = {k: b.get(k, 0) for k in ("connect_errors", "non_200", "no_response", "protocol_errors", "disconnects")}
if served != "1" or b["connected"] != int(clients) or any(errors.values()) or not b["deliveries_per_s"]:
    sys.exit(print(f"{label} skipped: server alive {served == '1'}, connected {b['connected']} of {clients}, {errors}"))
cores = (float(t1) - float(t0)) / float(clk) / (float(s1) - float(s0))
per = cores / b["deliveries_per_s"] * 1e6
print(f"{label:6} server {cores:.3f} cores  {per:5.2f} µs/delivery  p50/p90/p99/max "
      f"{b['latency_ms_p50']:.0f}/{b['latency_ms_p90']:.0f}/{b['latency_ms_p99']:.0f}/{b['latency_ms_max']:.0f} ms  "
      f"missing {b['missing']}  disconnects {b['disconnects']}  deliveries/s {b['deliveries_per_s']:.0f}  "
      f"rss/client {(int(r1) - int(r0)) / int(clients):.2f} KiB")
PY
}

for n in $(seq "$ROUNDS"); do
    for side in before after; do
        if [ "$side" = before ]; then round before "$BEFORE"; else round after "$AFTER"; fi
        cat "$TMP/round.txt"; cat "$TMP/round.txt" >>"$TMP/rounds.txt"
    done
done
awk '$2 == "server" { n[$1]++; cpu[$1] += $5; split($8, l, "/"); p99[$1] += l[3]; mem[$1] += $(NF - 1) }
     END { for (k in n) printf "%-6s mean of %d: %.2f µs/delivery, p99 %.0f ms, %.2f KiB/client\n", k, n[k], cpu[k] / n[k], p99[k] / n[k], mem[k] / n[k] }' "$TMP/rounds.txt" | sort
