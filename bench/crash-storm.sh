#!/usr/bin/env bash
# Crash storm (issue 14, item 7): a replica holding every client is SIGKILLed behind HAProxy, and the other
# replica takes them all back at its connection rate. The topology is scripts/cluster.sh's (origin, two
# replicas with `proxy_protocol: true`, HAProxy with `send-proxy-v2` and /readyz health checks), with
# `balance first` so that replica1 holds every client while it is up, and each replica's
# `limits.new_connections_per_second` set. The clients are `ssegate bench --reconnect`: EventSource-like,
# back after their jittered `retry:` (or a 503's Retry-After) with Last-Event-ID, counting gaps and
# duplicates across reconnects.
#
#   bench/crash-storm.sh [--clients N] [--limit L] [--events E] [--retry D] [--window S] [--settle S]
#                        [--balancers B] [--ssegate PATH] [--bench-ssegate PATH] [--out DIR] [--name NAME]
#
# Defaults: 10,000 clients, new_connections_per_second 1000 (--limit), 2 origin events/s, retry 2s (each
# stream's retry: is 2-3 s: retry_jitter 50 %), a 40 s window, the kill 5 s after every client streams on
# replica1, 2 HAProxy processes. The load client must keep up with the storm: use a release build
# (a debug one saturates its two loops near 5,000 clients here and then counts its own lag). Why two: a process may hold at most 20,000 descriptors here (ulimit -Hn), and
# HAProxy needs two per client (client side and server side) plus its listeners, so one HAProxy tops out
# just under 10,000 clients; two HAProxy processes with the same configuration (two load balancer
# nodes, as behind DNS or an L4 balancer) each hold half, and the bench's client i uses balancer i mod 2.
# The bench, each replica and each HAProxy are separate processes, each with `ulimit -n 20000`.
#
# Recorded: the kill time; the bench's JSON (missing, duplicates, reconnects, 503s, outages, full
# recovery, peak opens/connects/503s per second at the client in 100 ms buckets, a per-second series);
# replica2's `ssegate_connections_accepted_total` and `..._refused_total{reason="connection_rate"}`
# and `ssegate_connected_clients` sampled every 200 ms (the gateway's own peak accepted per second, and
# streams gained per second). --bench-ssegate runs the load client from another build. Written to
# OUT/STAMP-crash-storm-Nc.json and .md. Ports 18380-18392 and 18480-18492 on 127.0.0.1 must be free.
# The whole run takes the ramp (every client through replica1's limit: 10-70 s) plus the window.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CLIENTS=10000 LIMIT=1000 EVENTS=2 RETRY=2s WINDOW=40 SETTLE=5 BALANCERS=2
SSEGATE=${SSEGATE:-$ROOT/.build/release/ssegate} BENCH_SSEGATE= OUT=$HERE/results NAME=
ORIGIN_PORT=18381 REPLICA_PORTS="18391 18392" ADMIN_PORTS="18491 18492" LB_BASE=18380 STATS_BASE=18480
usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage 0 ;;
        --clients|--limit|--events|--retry|--window|--settle|--balancers|--ssegate|--bench-ssegate|--out|--name)
            [ $# -ge 2 ] || { echo "bench/crash-storm.sh: $1 needs a value" >&2; exit 1; }
            option=${1#--}; option=${option//-/_}
            printf -v "${option^^}" '%s' "$2"; shift 2 ;;
        *) echo "bench/crash-storm.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
    esac
done
case "$EVENTS" in ''|*[!0-9.]*) echo "bench/crash-storm.sh: --events is a number" >&2; exit 1 ;; esac
for value in "$CLIENTS" "$LIMIT" "$WINDOW" "$SETTLE" "$BALANCERS"; do
    case "$value" in ''|*[!0-9]*) echo "bench/crash-storm.sh: numbers must be whole" >&2; exit 1 ;; esac
done
[ "$WINDOW" -le 60 ] || { echo "bench/crash-storm.sh: --window is at most 60 s" >&2; exit 1; }
[ "$BALANCERS" -ge 1 ] && [ "$BALANCERS" -le 4 ] || { echo "bench/crash-storm.sh: --balancers is 1...4" >&2; exit 1; }
[ -x "$SSEGATE" ] || { echo "bench/crash-storm.sh: no $SSEGATE (swift build -c release --product ssegate)" >&2; exit 1; }
BENCH_SSEGATE=${BENCH_SSEGATE:-$SSEGATE}
[ -x "$BENCH_SSEGATE" ] || { echo "bench/crash-storm.sh: no $BENCH_SSEGATE" >&2; exit 1; }
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { echo "bench/crash-storm.sh: haproxy is not installed (Debian package 'haproxy')" >&2; exit 1; }
command -v curl >/dev/null && command -v python3 >/dev/null || { echo "bench/crash-storm.sh: needs curl and python3" >&2; exit 1; }
ulimit -n 20000 2>/dev/null || true
[ "$(ulimit -n)" -ge 20000 ] || echo "bench/crash-storm.sh: warning: ulimit -n is $(ulimit -n); 10,000 clients need 20,000" >&2

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
TMP=$(mktemp -d /tmp/ssegate-crash-storm.XXXXXX)
STATE=$TMP/cluster
PIDS=()
alive() { kill -0 "$1" 2>/dev/null; }
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
    CLUSTER_DIR=$STATE "$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true
    [ -n "${KEEP_TMP:-}" ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now_ms() { date +%s%3N; }
metric() {   # $1 admin port, $2 metric line prefix: its value, or empty (a busy replica may not answer in 2 s)
    { curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } | awk -v name="$2" 'index($0, name " ") == 1 { print $2 + 0; exit }'
}

# Origin, replicas and the first HAProxy: scripts/cluster.sh, supervised in the background.
log "starting the cluster (origin at $EVENTS events/s, 2 replicas with new_connections_per_second $LIMIT, HAProxy balance first)"
CLUSTER_DIR=$STATE CLUSTER_HOST=127.0.0.1 ORIGIN_PORT=$ORIGIN_PORT LB_PORT=$LB_BASE STATS_PORT=$STATS_BASE \
    REPLICA_PORTS=$REPLICA_PORTS ADMIN_PORTS=$ADMIN_PORTS RATE=$EVENTS RETRY=$RETRY SHUTDOWN_TIMEOUT=2s \
    CHECK_INTER=500ms CONNECT_TIMEOUT=1s NEW_CONNECTIONS_PER_SECOND=$LIMIT BALANCE=first SSEGATE_BIN=$SSEGATE \
    HAPROXY_BIN=$HAPROXY "$ROOT/scripts/cluster.sh" start >"$TMP/cluster-start.log" 2>&1 \
    || { cat "$TMP/cluster-start.log" >&2; exit 1; }
read -r -a admins <<<"$ADMIN_PORTS"
urls=("--url" "http://127.0.0.1:$LB_BASE/prices")
# The other HAProxy processes: the same generated configuration on their own ports.
for ((i = 1; i < BALANCERS; i++)); do
    sed -e "s/bind 127.0.0.1:$LB_BASE\$/bind 127.0.0.1:$((LB_BASE + 2 * i))/" \
        -e "s/bind 127.0.0.1:$STATS_BASE\$/bind 127.0.0.1:$((STATS_BASE + i))/" "$STATE/haproxy.cfg" >"$TMP/haproxy$i.cfg"
    "$HAPROXY" -f "$TMP/haproxy$i.cfg" -db >"$TMP/haproxy$i.log" 2>&1 </dev/null &
    PIDS+=("$!")
    for _ in $(seq 50); do curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$((STATS_BASE + i))/" && break; sleep 0.1; done
    urls+=("--url" "http://127.0.0.1:$((LB_BASE + 2 * i))/prices")
done

# The clients, through the balancers. Their window starts once every one of them streams.
log "bench: $CLIENTS reconnecting clients through $BALANCERS HAProxy process(es)"
timeout -k 5 $((WINDOW + 240)) "$BENCH_SSEGATE" bench "${urls[@]}" --reconnect --clients "$CLIENTS" --duration "$WINDOW" \
    --connect-concurrency 500 --source-addresses 8 --threads 2 --json --expected-rate "$EVENTS" \
    >"$TMP/bench.json" 2>"$TMP/bench.log" &
bench=$!
PIDS+=("$bench")
started=$(now_ms)
held=0
while alive "$bench" && [ $(($(now_ms) - started)) -lt 200000 ]; do
    held=$(metric "${admins[0]}" ssegate_connected_clients) || held=0
    [ "${held:-0}" -ge "$CLIENTS" ] && break
    sleep 0.5
done
log "replica1 holds ${held:-0} clients after $(( ($(now_ms) - started) / 1000 )) s"
[ "${held:-0}" -ge "$CLIENTS" ] || { log "not every client reached replica1; see $TMP (KEEP_TMP=1)"; tail -5 "$TMP/bench.log" >&2; exit 1; }
sleep "$SETTLE"

# replica2's accepted and refused connections, every 200 ms, until the bench ends.
(
    while :; do
        m=$(curl -s --max-time 1 "http://127.0.0.1:${admins[1]}/metrics" 2>/dev/null) || true
        # A build without ssegate_connections_accepted_total (before it existed) samples "-" there.
        printf '%s %s %s %s\n' "$(now_ms)" \
            "$(awk 'BEGIN { v = "-" } /^ssegate_connections_accepted_total / { v = $2 + 0 } END { print v }' <<<"$m")" \
            "$(awk 'BEGIN { v = "-" } /^ssegate_connections_refused_total\{reason="connection_rate"\} / { v = $2 + 0 } END { print v }' <<<"$m")" \
            "$(awk 'BEGIN { v = "-" } /^ssegate_connected_clients / { v = $2 + 0 } END { print v }' <<<"$m")"
        sleep 0.2
    done
) >"$TMP/replica2-samples.txt" 2>/dev/null &
sampler=$!
PIDS+=("$sampler")
sleep 1
killed=$(now_ms)
kill -KILL "$(cat "$STATE/replica1.pid")"
log "SIGKILL replica1 (pid $(cat "$STATE/replica1.pid")) at $killed"
wait "$bench" || log "bench exited with status $?"
kill -TERM "$sampler" 2>/dev/null || true

STAMP=$(date -u +%Y-%m-%d-%H%M)
mkdir -p "$OUT"
BASE="$OUT/$STAMP-crash-storm-${CLIENTS}c${NAME:+-$NAME}"
COMMAND="bench/crash-storm.sh${BENCH_SSEGATE:+ --bench-ssegate $BENCH_SSEGATE} --ssegate $SSEGATE --clients $CLIENTS --limit $LIMIT --events $EVENTS --retry $RETRY --window $WINDOW --settle $SETTLE --balancers $BALANCERS"
python3 - "$TMP/bench.json" "$TMP/replica2-samples.txt" "$killed" "$BASE" "$COMMAND" "$LIMIT" \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
bench_path, samples_path, killed, base, command, rate, commit, load = sys.argv[1:9]
killed, rate = int(killed), int(rate)
bench = json.loads(open(bench_path).read().strip().splitlines()[-1])
samples = []
for line in open(samples_path):
    parts = line.split()
    if len(parts) == 4 and "-" not in (parts[0], parts[3]):
        samples.append(tuple(None if p == "-" else int(float(p)) for p in parts))
# The gateway's peak: the most accepted (and refused) between two samples at most 1 s apart.
def peak(column):
    best = None
    for i, a in enumerate(samples):
        for b in samples[i:]:
            if b[0] - a[0] <= 1000 and a[column] is not None and b[column] is not None:
                best = max(best or 0, b[column] - a[column])
    return best
def total(column):
    known = [s[column] for s in samples if s[column] is not None]
    return known[-1] - known[0] if known else None
accepted, refused = total(1), total(2)
recovered_ms = bench.get("last_recovery_unix_ms", 0)
summary = {
    "command": command, "commit": commit, "loadavg_end": load, "limit_per_s": rate,
    "clients": bench["clients"], "connected_at_end": bench["connected"],
    "killed_unix_ms": killed,
    "kill_to_full_recovery_s": round((recovered_ms - killed) / 1000, 3) if bench.get("unrecovered") == 0 and recovered_ms else None,
    "first_close_to_full_recovery_s": bench.get("full_recovery_s"),
    "longest_outage_s": bench.get("longest_outage_s"),
    "missing": bench["missing"], "duplicates": bench["duplicates"], "non_200": bench["non_200"],
    "outages": bench.get("outages"), "unrecovered": bench.get("unrecovered"),
    "reconnects": bench.get("reconnects"), "refusals_503": bench.get("refusals_503"),
    "connect_failures": bench.get("connect_failures"),
    "client_peak_opens_per_s": bench.get("peak_opens_per_s"), "client_peak_opens_per_100ms": bench.get("peak_opens_per_100ms"),
    "client_peak_connects_per_s": bench.get("peak_connects_per_s"), "client_peak_503_per_s": bench.get("peak_refusals_per_s"),
    "replica2_peak_accepted_per_s": peak(1), "replica2_peak_refused_per_s": peak(2),
    "replica2_peak_streams_gained_per_s": peak(3),
    "replica2_accepted": accepted, "replica2_refused": refused,
}
first = bench.get("run_start_unix_ms", killed)
kill_second = max(0, (killed - first) // 1000)
series = bench.get("per_second", {})
after = {k: v[kill_second:kill_second + 25] for k, v in series.items()}
with open(base + ".json", "w") as out:
    json.dump({"summary": summary, "bench": bench, "replica2_samples": samples}, out)
    out.write("\n")
def fmt(v):
    return "-" if v is None else str(v)
rows = [
    "# Crash storm: %d clients, replica1 SIGKILLed behind HAProxy" % bench["clients"], "",
    "`%s` (commit %s, load average at the end %s)" % (command, commit, load), "",
    "| figure | value |", "| --- | --- |",
    "| clients streaming at the end | %d of %d |" % (bench["connected"], bench["clients"]),
    "| missing events / duplicates / non-200 | %d / %d / %d |" % (bench["missing"], bench["duplicates"], bench["non_200"]),
    "| streams lost / clients still without an event | %s / %s |" % (fmt(bench.get("outages")), fmt(bench.get("unrecovered"))),
    "| kill → every client had an event again | %s s |" % fmt(summary["kill_to_full_recovery_s"]),
    "| first close → full recovery; longest single outage | %s s; %s s |" % (fmt(bench.get("full_recovery_s")), fmt(bench.get("longest_outage_s"))),
    "| reconnect attempts / 503s / failed connects | %s / %s / %s |" % (fmt(bench.get("reconnects")), fmt(bench.get("refusals_503")), fmt(bench.get("connect_failures"))),
    "| limit (`new_connections_per_second`) | %d |" % rate,
    "| peak streams opened in any 1 s (client, 100 ms buckets) | %s (most in 100 ms: %s) |" % (fmt(bench.get("peak_opens_per_s")), fmt(bench.get("peak_opens_per_100ms"))),
    "| peak connects / 503s in any 1 s (client) | %s / %s |" % (fmt(bench.get("peak_connects_per_s")), fmt(bench.get("peak_refusals_per_s"))),
    "| replica2 accepted / refused / streams gained in any 1 s (`/metrics`, 200 ms samples) | %s / %s / %s |" % (fmt(summary["replica2_peak_accepted_per_s"]), fmt(summary["replica2_peak_refused_per_s"]), fmt(peak(3))),
    "| replica2 accepted / refused in all | %s / %s |" % (fmt(accepted), fmt(refused)),
    "",
    "Per second from the kill's second (client side): " + "; ".join("%s %s" % (k, v) for k, v in after.items()),
]
open(base + ".md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
log "written $BASE.json and $BASE.md"
