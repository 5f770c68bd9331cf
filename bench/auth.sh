#!/usr/bin/env bash
# What access control costs: ssegate with each `auth:` mode in turn on the same load, alternating the
# modes round by round so that drift in the machine's other load hits them alike. Per mode and round:
#
#   opens       N clients connect as fast as the load client can (--connect-concurrency 512) to a quiet
#               feed (one event per 20 s) and each waits for its 200 head: stream opens per second
#               (first connect to last head), request-to-head p50/p99, and ssegate's CPU per stream
#               (utime+stime over the whole load-client run ÷ streams: accept, request, auth, join, close).
#   deliveries  M clients of a feed at R events/s × B bytes: ssegate's CPU per delivery over a window
#               inside the load client's, as bench/compare.sh measures it.
#
#   bench/auth.sh [--modes none,es256,rs256,forward] [--rounds N] [--opens N] [--clients M] [--rate R]
#                 [--payload B] [--window S] [--bench-threads T] [--ssegate BINARY]
#
# Defaults: modes none,es256,rs256; 2 rounds; 5,000 opens; 2,000 clients × 10 events/s × 200 B with a
# 15 s CPU window; 2 load-client threads; .build/release/ssegate. Keys are made at start (bench/jwt.py:
# P-256 and RSA 2048 with openssl) and every client sends `Authorization: Bearer <token>` with a token
# signed for /feed and /open (one token per mode, valid 1 h). `forward` asks a python http.server on
# 127.0.0.1:18283 that answers 200 to every call; all clients send the same credential, so after the
# first call the answer comes from ssegate's cache (ttl 5m): the table gives the backend's call count.
# Ports 18280 (gateway), 18281 and 18282 (origins), 18283 (auth backend), 18290 (admin) on 127.0.0.1
# must be free. Every process is stopped by its PID at the end of each round and on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=bench/ssegate-config.sh
. "$HERE/ssegate-config.sh"

MODES=none,es256,rs256 ROUNDS=2 OPENS=5000 CLIENTS=2000 RATE=10 PAYLOAD=200 WINDOW=15 BENCH_THREADS=2
SSEGATE=$ROOT/.build/release/ssegate
while [ $# -gt 0 ]; do
    case "$1" in
        # --rounds 3 sets ROUNDS=3, and so on.
        --modes|--rounds|--opens|--clients|--rate|--payload|--window|--bench-threads|--ssegate)
            [ $# -ge 2 ] || { echo "bench/auth.sh: $1 needs a value" >&2; exit 1; }
            option=${1#--}; option=${option//-/_}
            printf -v "${option^^}" '%s' "$2"; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/auth.sh: unknown argument '$1'" >&2; exit 1 ;;
    esac
done
for mode in ${MODES//,/ }; do
    case "$mode" in none|es256|rs256|forward) ;; *) echo "bench/auth.sh: unknown mode '$mode'" >&2; exit 1 ;; esac
done
[ -x "$SSEGATE" ] || { echo "bench/auth.sh: $SSEGATE is not executable (swift build -c release)" >&2; exit 1; }
ulimit -n 20000 2>/dev/null || true

GATE=18280 ORIGIN=18281 QUIET=18282 BACKEND=18283 ADMIN=18290
TMP=$(mktemp -d /tmp/ssegate-auth.XXXXXX)
PIDS=()
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
stop() { local pid; for pid in "$@"; do kill "$pid" 2>/dev/null || true; done; for pid in "$@"; do wait "$pid" 2>/dev/null || true; done; }
cleanup() { stop "${PIDS[@]}"; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'exit 129' HUP

listening() { ss -Htln "( sport = :$1 )" | grep -q .; }
for port in $GATE $ORIGIN $QUIET $BACKEND $ADMIN; do
    if listening "$port"; then echo "bench/auth.sh: 127.0.0.1:$port is already in use" >&2; exit 1; fi
done
wait_port() { local i; for i in $(seq 100); do listening "$1" && return 0; sleep 0.1; done; return 1; }
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
established() { ss -Htn state established "( sport = :$GATE )" | wc -l; }
alive() { kill -0 "$1" 2>/dev/null; }

# Keys and one token per JWT mode; the forward mode's credential is an opaque session value.
python3 "$HERE/jwt.py" keys "$TMP/keys"
declare -A TOKEN
TOKEN[es256]=$(python3 "$HERE/jwt.py" token --alg ES256 --key "$TMP/keys/es256.key" --kid bench-es256 --claims '{"feeds":["/feed","/open"]}')
TOKEN[rs256]=$(python3 "$HERE/jwt.py" token --alg RS256 --key "$TMP/keys/rs256.key" --kid bench-rs256 --claims '{"feeds":["/feed","/open"]}')
TOKEN[forward]=opaque-bench-session

# The feeders: the measured feed's origin, a quiet one for the opens, and for `forward` an auth backend
# that allows every call and logs one line per call (http.server's request log).
"$SSEGATE" origin --host 127.0.0.1 --port "$ORIGIN" --rate "$RATE" --payload "$PAYLOAD" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
"$SSEGATE" origin --host 127.0.0.1 --port "$QUIET" --rate 0.05 >"$TMP/quiet.log" 2>&1 &
PIDS+=($!)
if [[ ",$MODES," == *,forward,* ]]; then
    python3 - "$BACKEND" >/dev/null 2>"$TMP/backend.log" <<'PY' &
import http.server, sys
class Allow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_POST = do_HEAD = do_GET
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Allow).serve_forever()
PY
    PIDS+=($!)
    wait_port "$BACKEND" || { echo "bench/auth.sh: the auth backend did not start" >&2; exit 1; }
fi
wait_port "$ORIGIN" && wait_port "$QUIET" || { echo "bench/auth.sh: an origin did not start" >&2; exit 1; }

# A round's verdict goes to $TMP/round.txt (not through a pipe: a subshell would lose PIDS).
round() {   # $1 mode
    local mode=$1 serve bench i t0 t1 s0 s1 o0 o1 m0 m1 calls0 calls1 headers=()
    {
        bench_gateway_config "$GATE" "$ADMIN"
        bench_feed bench /feed "$ORIGIN"; bench_auth "$mode" "$TMP/keys" "http://127.0.0.1:$BACKEND/check"
        bench_feed open /open "$QUIET"; bench_auth "$mode" "$TMP/keys" "http://127.0.0.1:$BACKEND/check"
    } >"$TMP/ssegate.yaml"
    [ "$mode" = none ] || headers=(--header "Authorization: Bearer ${TOKEN[$mode]}")
    "$SSEGATE" serve --config "$TMP/ssegate.yaml" >"$TMP/serve.log" 2>&1 &
    serve=$!; PIDS+=("$serve")
    if ! wait_port "$GATE"; then echo "$mode skipped: ssegate serve did not listen: $(tail -n 2 "$TMP/serve.log")" >"$TMP/round.txt"; stop "$serve"; return; fi
    sleep 1
    calls0=$(grep -c '"GET ' "$TMP/backend.log" 2>/dev/null || true)

    # Opens: the whole load-client run (ramp, heads, a 0.5 s window, close) inside the CPU sample.
    o0=$(ticks "$serve"); m0=$(date +%s.%N)
    timeout -k 5 60 "$SSEGATE" bench --url "http://127.0.0.1:$GATE/open" --clients "$OPENS" --duration 0.5 \
        --connect-concurrency 512 --source-addresses 4 --threads "$BENCH_THREADS" "${headers[@]}" --json --quiet \
        >"$TMP/opens.json" 2>"$TMP/opens.log" || true
    for i in $(seq 50); do [ "$(established)" -eq 0 ] && break; sleep 0.1; done   # the closes are part of the cost
    o1=$(ticks "$serve"); m1=$(date +%s.%N)

    # Deliveries.
    timeout -k 5 $((WINDOW + 100)) "$SSEGATE" bench --url "http://127.0.0.1:$GATE/feed" --clients "$CLIENTS" \
        --duration $((WINDOW + 6)) --expected-rate "$RATE" --threads "$BENCH_THREADS" "${headers[@]}" --json --quiet \
        >"$TMP/bench.json" 2>"$TMP/bench.log" &
    bench=$!; PIDS+=("$bench")
    for i in $(seq 120); do [ "$(established)" -ge "$CLIENTS" ] && break; alive "$serve" || break; sleep 0.5; done
    sleep 3
    t0=$(ticks "$serve"); s0=$(date +%s.%N); local b0; b0=$(machine_ticks)
    sleep "$WINDOW"
    t1=$(ticks "$serve"); s1=$(date +%s.%N); local b1; b1=$(machine_ticks)
    local served=1
    alive "$serve" || served=0
    wait "$bench" || true
    calls1=$(grep -c '"GET ' "$TMP/backend.log" 2>/dev/null || true)
    stop "$serve"
    python3 - "$TMP/opens.json" "$TMP/bench.json" "$mode" "$o0" "$o1" "$m0" "$m1" "$t0" "$t1" "$s0" "$s1" \
        "$(getconf CLK_TCK)" "$OPENS" "$CLIENTS" "$served" "$b0" "$b1" "$((${calls1:-0} - ${calls0:-0}))" \
        >"$TMP/round.txt" <<'PY'
import json, sys
(opens_path, bench_path, mode, o0, o1, m0, m1, t0, t1, s0, s1, clk, opens, clients, served, b0, b1,
 calls) = sys.argv[1:]
clk = float(clk)
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None
o, b = load(opens_path), load(bench_path)
if served != "1" or o is None or b is None:
    sys.exit(print(f"{mode} skipped: server alive {served == '1'}, opens report {o is not None}, bench report {b is not None}"))
problems = []
if o["stream_opens"] != int(opens) or o["non_200"] or o["connect_errors"]:
    problems.append(f"opens: {o['stream_opens']} of {opens}, non-200 {o['non_200']}, connect errors {o['connect_errors']}")
errors = {k: b.get(k, 0) for k in ("connect_errors", "non_200", "no_response", "protocol_errors", "disconnects")}
if b["connected"] != int(clients) or any(errors.values()) or not b["deliveries_per_s"]:
    problems.append(f"deliveries: connected {b['connected']} of {clients}, {errors}")
if problems:
    sys.exit(print(f"{mode} skipped: " + "; ".join(problems)))
per_open = (float(o1) - float(o0)) / clk / o["stream_opens"] * 1e6
window = float(s1) - float(s0)
cores = (float(t1) - float(t0)) / clk / window
per = cores / b["deliveries_per_s"] * 1e6
machine = (float(b1) - float(b0)) / clk / window
print(f"{mode:8} opens {o['stream_opens_per_s']:6.0f}/s  open p50/p99 {o['open_ms_p50']:.1f}/{o['open_ms_p99']:.1f} ms  "
      f"server {per_open:6.1f} µs/stream  |  server {cores:.3f} cores  {per:5.2f} µs/delivery  "
      f"p99 {b['latency_ms_p99']:.0f} ms  missing {b['missing']}  deliveries/s {b['deliveries_per_s']:.0f}  "
      f"machine {machine:.2f} cores  backend calls {calls}")
PY
}

log "modes $MODES, $ROUNDS rounds: $OPENS opens, then $CLIENTS clients × $RATE/s × $PAYLOAD B, ${WINDOW}s CPU window"
for n in $(seq "$ROUNDS"); do
    for mode in ${MODES//,/ }; do
        round "$mode"
        cat "$TMP/round.txt"; cat "$TMP/round.txt" >>"$TMP/rounds.txt"
    done
done
awk '$2 == "opens" { n[$1]++; opens[$1] += $3; split($6, l, "/"); p99[$1] += l[2]; stream[$1] += $9; cpu[$1] += $15 }
     END { for (k in n) printf "%-8s mean of %d: %.0f opens/s, open p99 %.1f ms, %.1f µs/stream, %.2f µs/delivery\n",
           k, n[k], opens[k] / n[k], p99[k] / n[k], stream[k] / n[k], cpu[k] / n[k] }' "$TMP/rounds.txt" | sort
