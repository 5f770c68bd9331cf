#!/usr/bin/env bash
# Poll mode and /multi beside plain streams, in one script: for each phase it starts `ssegate origin`
# and `ssegate serve` afresh, drives the gateway with `ssegate bench` (a separate process, so each side
# has its own 20,000 descriptors), samples the gateway's CPU (utime+stime from /proc/PID/stat) over a
# window inside the load client's, and its RSS before the clients and at mid-window. One table row per
# phase: CPU per delivered event, deliveries/s, polls/s, connections opened/s, RSS, errors, latency, and
# the load average (the machine is shared; other work shows there).
#
#   bench/poll-multi.sh [--phases stream,poll,multi] [--clients N] [--multi-connections M] [--feeds F]
#                       [--rate R] [--payload B] [--duration S] [--bench-threads T] [--ssegate PATH]
#                       [--out DIR] [--name NAME]
#
# Phases: stream = N single-feed streams of /feed; poll = N poll clients of /feed (`ssegate bench --poll`:
# `?transport=poll`, one keep-alive connection each, the next poll after each response's `retry:` with
# Last-Event-ID); multi = M connections to /multi?feed=/f1&…&feed=/fF (`--multi`), F feeds from the same
# origin, so each connection gets F × R events/s. Defaults: 10,000 clients, 2,000 × 5 multi, 1 event/s,
# 200 B, a 20 s window (each phase about 35 s). Ports 18280 (gateway), 18281 (origin), 18290 (admin) on
# 127.0.0.1 must be free. Every process is stopped by its PID at the end of each phase and on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=bench/ssegate-config.sh
. "$HERE/ssegate-config.sh"

PHASES=stream,poll,multi CLIENTS=10000 MULTI_CONNECTIONS=2000 FEEDS=5 RATE=1 PAYLOAD=200 DURATION=20
BENCH_THREADS=2 SSEGATE=${SSEGATE:-$ROOT/.build/release/ssegate} OUT=$HERE/results NAME=
GATE=18280 ORIGIN=18281 ADMIN=18290
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage 0 ;;
        --phases|--clients|--multi-connections|--feeds|--rate|--payload|--duration|--bench-threads|--ssegate|--out|--name)
            [ $# -ge 2 ] || { echo "bench/poll-multi.sh: $1 needs a value" >&2; exit 1; }
            option=${1#--}; option=${option//-/_}
            printf -v "${option^^}" '%s' "$2"; shift 2 ;;
        *) echo "bench/poll-multi.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
    esac
done
case "$DURATION" in ''|*[!0-9]*) echo "bench/poll-multi.sh: --duration must be whole seconds" >&2; exit 1 ;; esac
[ "$DURATION" -ge 6 ] && [ "$DURATION" -le 45 ] || { echo "bench/poll-multi.sh: --duration must be 6...45 s (a phase stays under a minute)" >&2; exit 1; }
for phase in ${PHASES//,/ }; do
    case "$phase" in stream|poll|multi) ;; *) echo "bench/poll-multi.sh: unknown phase '$phase'" >&2; exit 1 ;; esac
done
[ -x "$SSEGATE" ] || { echo "bench/poll-multi.sh: no $SSEGATE (swift build -c release --product ssegate)" >&2; exit 1; }
ulimit -n 20000 2>/dev/null || true

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
TMP=$(mktemp -d /tmp/ssegate-poll-multi.XXXXXX)
PIDS=()
alive() { kill -0 "$1" 2>/dev/null; }
stop_pid() {        # TERM, up to 5 s, then KILL
    local pid=$1 i
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && { log "pid $pid did not stop within 5 s of SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
    wait "$pid" 2>/dev/null || true
}
cleanup() { local pid; for pid in "${PIDS[@]}"; do stop_pid "$pid"; done; [ -n "${KEEP_TMP:-}" ] && log "kept $TMP" || rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
established() { { ss -Htn state established "( sport = :$GATE )" 2>/dev/null || true; } | wc -l; }
listening() { ss -Htln "( sport = :$1 )" 2>/dev/null | grep -q .; }
wait_listen() { local i; for i in $(seq 100); do listening "$1" && return 0; alive "$2" || return 1; sleep 0.1; done; return 1; }
CLK_TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }

multi_query() { local i q=; for i in $(seq "$FEEDS"); do q="$q${q:+&}feed=/f$i"; done; echo "$q"; }

phase() {   # $1 stream|poll|multi; writes $TMP/$1.env
    local name=$1 dir=$TMP/$1 origin serve bench url clients connections mode=() i t0 t1 c0 c1 b0 b1 r0 rmid load0 load1 ramp0 ramp1
    mkdir -p "$dir"
    for port in $GATE $ORIGIN $ADMIN; do
        listening "$port" && { log "$name skipped: 127.0.0.1:$port is in use"; echo "status=port_in_use" >"$dir/measured.env"; return 0; }
    done
    { bench_gateway_config "$GATE" "$ADMIN"; bench_feed bench /feed "$ORIGIN"
      if [ "$name" = multi ]; then for i in $(seq "$FEEDS"); do bench_feed "f$i" "/f$i" "$ORIGIN" | sed "s|/feed\$|/f$i|"; done; fi
    } >"$dir/ssegate.yaml"
    "$SSEGATE" origin --host 127.0.0.1 --port "$ORIGIN" --rate "$RATE" --payload "$PAYLOAD" >"$dir/origin.log" 2>&1 &
    origin=$!; PIDS+=("$origin")
    wait_listen "$ORIGIN" "$origin" || { log "origin did not start"; return 1; }
    "$SSEGATE" serve --config "$dir/ssegate.yaml" >"$dir/serve.log" 2>&1 &
    serve=$!; PIDS+=("$serve")
    wait_listen "$GATE" "$serve" || { log "ssegate did not start: $(tail -3 "$dir/serve.log")"; return 1; }
    sleep 2
    r0=$(rss_kib "$serve")
    case "$name" in
        stream) url=http://127.0.0.1:$GATE/feed; clients=$CLIENTS ;;
        poll)   url=http://127.0.0.1:$GATE/feed; clients=$CLIENTS; mode=(--poll) ;;
        multi)  url="http://127.0.0.1:$GATE/multi?$(multi_query)"; clients=$MULTI_CONNECTIONS; mode=(--multi) ;;
    esac
    connections=$clients
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    log "== $name: $clients clients ${mode[*]:-} at $RATE events/s, load average $load0"
    ramp0=$(now)
    timeout -k 5 $((DURATION + 75)) "$SSEGATE" bench --url "$url" --clients "$clients" --duration "$DURATION" \
        --expected-rate "$RATE" --threads "$BENCH_THREADS" "${mode[@]}" --json --quiet >"$dir/bench.json" 2>"$dir/bench.log" &
    bench=$!; PIDS+=("$bench")
    # Ramp: until the gateway has every connection, or 45 s (a busy machine accepts slowly; the load
    # client then starts its window with what it has, at most 10 s after its last connect).
    while [ "$(established)" -lt "$connections" ] && alive "$bench" && [ "$(awk -v a="$ramp0" -v b="$(now)" 'BEGIN { print (b - a < 45) }')" = 1 ]; do sleep 0.25; done
    ramp1=$(now)
    log "$name: $(established) connections after $(awk -v a="$ramp0" -v b="$ramp1" 'BEGIN { printf "%.1f", b - a }') s"
    sleep 1.5
    t0=$(now); c0=$(ticks "$serve"); b0=$(ticks "$bench")
    sleep "$(awk -v d="$DURATION" 'BEGIN { print (d - 3) / 2 }')"
    rmid=$(rss_kib "$serve")
    curl -s --max-time 2 "http://127.0.0.1:$ADMIN/metrics" >"$dir/metrics-mid.txt" 2>/dev/null || true
    sleep "$(awk -v d="$DURATION" 'BEGIN { print (d - 3) / 2 }')"
    t1=$(now); c1=$(ticks "$serve"); b1=$(ticks "$bench")
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    wait "$bench" 2>/dev/null || log "$name: bench exited with status $?"
    stop_pid "$serve"; stop_pid "$origin"
    sleep 1
    cat >"$dir/measured.env" <<EOF
status=ok
clients=$clients
window_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
server_cpu_s=$(awk -v d=$((c1 - c0)) -v t="$CLK_TCK" 'BEGIN { printf "%.3f", d / t }')
bench_cpu_s=$(awk -v d=$((b1 - b0)) -v t="$CLK_TCK" 'BEGIN { printf "%.3f", d / t }')
idle_rss_kib=$r0
loaded_rss_kib=$rmid
ramp_s=$(awk -v a="$ramp0" -v b="$ramp1" 'BEGIN { printf "%.3f", b - a }')
loadavg_start=$load0
loadavg_end=$load1
EOF
    cp "$dir/bench.json" "$dir/bench.jsonl"
}

STAMP=$(date -u +%Y-%m-%d-%H%M)
SCENARIO=${NAME:-poll-multi-${CLIENTS}c-${MULTI_CONNECTIONS}x${FEEDS}-${RATE}eps}
COMMAND="bench/poll-multi.sh --phases $PHASES --clients $CLIENTS --multi-connections $MULTI_CONNECTIONS --feeds $FEEDS --rate $RATE --payload $PAYLOAD --duration $DURATION --bench-threads $BENCH_THREADS"
for phase in ${PHASES//,/ }; do phase "$phase"; done
mkdir -p "$OUT"
python3 - "$TMP" "$PHASES" "$OUT/$STAMP-$SCENARIO" "$COMMAND" "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" "$(nproc)" <<'PY'
import json, os, sys
tmp, phases, out, command, commit, nproc = sys.argv[1:7]
rows, lines = [], []
for phase in phases.split(","):
    env = {}
    path = os.path.join(tmp, phase, "measured.env")
    if os.path.exists(path):
        env = dict(line.rstrip("\n").split("=", 1) for line in open(path) if "=" in line)
    if env.get("status") != "ok":
        rows.append(f"| {phase} | not measured ({env.get('status', 'failed')}) |" + " |" * 11)
        continue
    bench = json.loads(open(os.path.join(tmp, phase, "bench.json")).read() or "{}")
    window = float(env["window_s"]); cpu = float(env["server_cpu_s"])
    dps = float(bench.get("deliveries_per_s", 0)); pps = float(bench.get("polls_per_s", 0))
    per_delivery = cpu / window / dps * 1e6 if dps > 0 else float("nan")
    per_poll = cpu / window / pps * 1e6 if pps > 0 else None
    clients = int(env["clients"])
    rss_growth = (int(env["loaded_rss_kib"]) - int(env["idle_rss_kib"])) / clients
    errors = sum(int(bench.get(k, 0)) for k in ("connect_errors", "non_200", "protocol_errors", "disconnects", "no_response"))
    record = {"phase": phase, "env": env, "bench": bench, "server_cpu_us_per_delivery": per_delivery,
              "server_cpu_us_per_poll": per_poll, "rss_kib_per_connection": rss_growth}
    lines.append(json.dumps(record))
    feeds = bench.get("feed_deliveries")
    rows.append("| {} | {:,} | {:.0f} ({:.1f} %) | {} | {:.2f} | {:.1f} % | {} | {:.0f} | {:.1f} → {:.1f} MiB ({:.2f} KiB/conn) | {} missing, {} dup{}, {} errors | {:.0f} / {:.0f} ms{} | {} → {} |".format(
        phase, clients, dps, 100 * dps / max(float(bench.get("expected_per_s", dps) or 1), 1e-9),
        f"{pps:,.0f}" if pps else "—", per_delivery, 100 * cpu / window,
        f"{per_poll:.2f}" if per_poll else "—", float(bench.get("stream_opens_per_s", 0)),
        int(env["idle_rss_kib"]) / 1024, int(env["loaded_rss_kib"]) / 1024, rss_growth,
        bench.get("missing", "?"), bench.get("duplicates", "?"),
        (", per feed " + "/".join(str(f) for f in feeds) + f", {bench.get('unattributed', 0)} unattributed") if feeds is not None else "",
        errors, float(bench.get("latency_ms_p50", 0)), float(bench.get("latency_ms_p99", 0)),
        " (polls held p50 {:.0f} / p99 {:.0f} ms)".format(float(bench["poll_wait_ms_p50"]), float(bench["poll_wait_ms_p99"])) if "poll_wait_ms_p50" in bench else "",
        env["loadavg_start"], env["loadavg_end"]))
header = ("| phase | clients (connections) | deliveries/s (of expected) | polls/s | gateway CPU µs per delivery "
          "| gateway CPU (of one core) | µs per poll | connections opened/s (ramp) | gateway RSS idle → loaded "
          "| missing, duplicates, errors | latency p50 / p99 | load average start → end |")
table = "\n".join([f"`{command}` at {commit}, {nproc} cores", "", header, "|" + "---|" * 12] + rows) + "\n"
open(out + ".md", "w").write(table)
open(out + ".jsonl", "w").write("\n".join(lines) + "\n")
print(table)
PY
log "wrote $OUT/$STAMP-$SCENARIO.md and .jsonl"
