#!/usr/bin/env bash
# Side-by-side SSE fan-out benchmark on 127.0.0.1: ssegate, nginx as a plain reverse proxy, nchan,
# and the origin alone, each driven by `ssegate bench`. Writes a markdown table and the raw JSON lines
# to bench/results/. See docs/performance.md for what each figure means and what limits it.
#
#   bench/run.sh [--clients N] [--rate R] [--payload B] [--duration S]
#                [--targets ssegate,nginx,nchan,origin] [--bench-threads T] [--ramp-timeout S]
#                [--quiet-timeout S] [--nginx-workers W] [--ssegate PATH] [--out DIR] [--name NAME]
#                [--probe] [--http2] [--tls] [--auth es256|rs256] [--gzip] [--foreign-limit CORES]
#
# Defaults (a quick run, about 3 minutes): 2000 clients x 10 events/s x 200 B for 15 s per target.
# The issue's two target scenarios:
#   bench/run.sh --clients 15000 --rate 1  --payload 200 --duration 30   # memory per idle-ish client
#   bench/run.sh --clients 10000 --rate 10 --payload 200 --duration 30   # 100k deliveries/s, p99 < 100 ms
#
# For each target: start it, measure idle memory, start `ssegate bench`, wait until the server has all
# N client connections, sample CPU (utime+stime from /proc/PID/stat of every server process) over a
# window inside the bench's own measured window, sample RSS and upstream connections (ss) at
# mid-window, stop everything. Every process the script starts is tracked by PID and stopped on exit.
# A target is repeated once if other processes used more than 0.3 cores during its window (--foreign-limit:
# another bound, for a machine that is never that quiet; the figures then carry the others' load).
#
# --probe (ssegate only): during the window, bench/probe.py also checks that eviction and replay hold
# under the load: stalled clients of a second, fast feed must be evicted while its readers get every
# event, and a client of the main feed resuming with Last-Event-ID must get the exact replay. The probe
# adds a little CPU to ssegate's window (its deliveries are not counted): use it in a run of its own.
#
# --http2: the load client speaks HTTP/2 with prior knowledge (h2c), 100 streams per connection, and
# nginx listens with `http2` (the targets are ssegate, nginx and nchan; the origin speaks HTTP/1.1 only).
#
# --tls: every target terminates TLS (a CA and a certificate for 127.0.0.1 made at start with openssl;
# ssegate's listener `tls:`, nginx's and nchan's `listen … ssl`), the load client trusts that CA, and with
# --http2 it speaks h2 by ALPN, as browsers do (the origin target is left out: it has no TLS).
#
# --auth es256|rs256: ssegate's feed demands a JWT (`auth: { mode: jwt }` with a P-256 or RSA 2048 public
# key made at start by bench/jwt.py with openssl), and the load client sends `Authorization: Bearer
# <token>` on every request (to every target, so the load stays the same; only ssegate checks it).
# bench/auth.sh compares the modes side by side, with stream opens per second.
#
# --gzip: adds the target ssegate-gzip right after ssegate (same gateway and feed, but the load client
# sends `Accept-Encoding: gzip` and inflates what arrives), so that plain and gzip clients are measured
# side by side in one run. The other targets stay plain.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/ssegate-config.sh
. "$HERE/ssegate-config.sh"
ROOT=$(dirname "$HERE")

CLIENTS=2000
RATE=10
PAYLOAD=200
DURATION=15
TARGETS=ssegate,nginx,nchan,origin
BENCH_THREADS=2
RAMP_TIMEOUT=90
QUIET_TIMEOUT=120
SSEGATE=${SSEGATE:-$ROOT/.build/release/ssegate}
OUT=$HERE/results
NAME=
GATE_PORT=18080
ORIGIN_PORT=18081
ADMIN_PORT=18090
NGINX_WORKERS=2
PROBE=0
AUTH=none
HTTP2=0
TLS=0
GZIP=0
STREAMS_PER_CONNECTION=100
BURST_PORT=18082
FOREIGN_LIMIT=0.3
PUBLISH_PORT=18083   # nchan's publisher location over HTTP/1.1 when the clients' listener is h2c-only

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --payload) PAYLOAD=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --targets) TARGETS=$2; shift 2 ;;
        --bench-threads) BENCH_THREADS=$2; shift 2 ;;
        --ramp-timeout) RAMP_TIMEOUT=$2; shift 2 ;;
        --quiet-timeout) QUIET_TIMEOUT=$2; shift 2 ;;
        --nginx-workers) NGINX_WORKERS=$2; shift 2 ;;
        --ssegate) SSEGATE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --name) NAME=$2; shift 2 ;;
        --probe) PROBE=1; shift ;;
        --auth) AUTH=$2; shift 2 ;;
        --http2) HTTP2=1; shift ;;
        --tls) TLS=1; shift ;;
        --gzip) GZIP=1; shift ;;
        --foreign-limit) FOREIGN_LIMIT=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench/run.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
    esac
done

case "$DURATION" in ''|*[!0-9]*) echo "bench/run.sh: --duration must be whole seconds" >&2; exit 1 ;; esac
[ "$DURATION" -ge 6 ] || { echo "bench/run.sh: --duration must be at least 6 s" >&2; exit 1; }
if [ "$GZIP" = 1 ] && [[ ",$TARGETS," != *,ssegate-gzip,* ]]; then
    if [[ ",$TARGETS," == *,ssegate,* ]]; then TARGETS=$(sed 's/\(^\|,\)ssegate\(,\|$\)/\1ssegate,ssegate-gzip\2/' <<<"$TARGETS"); else TARGETS=ssegate-gzip,$TARGETS; fi
fi
for t in ${TARGETS//,/ }; do
    case "$t" in ssegate|ssegate-gzip|nginx|nchan|origin) ;; *) echo "bench/run.sh: unknown target '$t'" >&2; exit 1 ;; esac
    if [ "$HTTP2" = 1 ] && [ "$t" = origin ]; then echo "bench/run.sh: --http2: the origin speaks HTTP/1.1 only; leave 'origin' out of --targets" >&2; exit 1; fi
    if [ "$TLS" = 1 ] && [ "$t" = origin ]; then echo "bench/run.sh: --tls: the origin has no TLS; leave 'origin' out of --targets" >&2; exit 1; fi
done
case "$AUTH" in none|es256|rs256) ;; *) echo "bench/run.sh: --auth must be es256 or rs256" >&2; exit 1 ;; esac
if [ "$AUTH" != none ] && [ "$PROBE" = 1 ]; then echo "bench/run.sh: --probe's clients send no token; leave out --auth" >&2; exit 1; fi
BENCH_PROTOCOL=()
CONNECTIONS=$CLIENTS     # TCP connections the load client opens
if [ "$HTTP2" = 1 ]; then
    BENCH_PROTOCOL=(--http2 --streams-per-connection "$STREAMS_PER_CONNECTION")
    CONNECTIONS=$(( (CLIENTS + STREAMS_PER_CONNECTION - 1) / STREAMS_PER_CONNECTION ))
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- process bookkeeping and cleanup
TMP=$(mktemp -d /tmp/ssegate-bench.XXXXXX)
chmod 755 "$TMP"
STARTED=()          # every PID this script started (servers, origin, publisher, bench)
WATCHDOG=

alive() { kill -0 "$1" 2>/dev/null; }

STOP_NOTES=         # processes of the current target that needed SIGKILL
stop_pid() {        # TERM, up to 5 s, then KILL; only PIDs from STARTED
    local pid=$1 i name
    alive "$pid" || return 0
    name=$({ tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true; } | cut -c1-60)
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        log "pid $pid ($name) did not stop within 5 s of SIGTERM; SIGKILL"
        STOP_NOTES="${STOP_NOTES:+$STOP_NOTES; }$name"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    [ -n "$NAP_PID" ] && kill "$NAP_PID" 2>/dev/null
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    [ -n "$WATCHDOG" ] && { kill "$WATCHDOG" 2>/dev/null || true; wait "$WATCHDOG" 2>/dev/null || true; }
    [ -n "${KEEP_TMP:-}" ] && log "temporary files kept in $TMP" || rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

NAP_PID=
nap() {             # a sleep that lets the TERM trap run at once
    sleep "$1" >/dev/null 2>&1 </dev/null & NAP_PID=$!
    wait "$NAP_PID" || true
    NAP_PID=
}

SCHEME=http
BENCH_TLS=()       # the load client's --cacert, for --tls
if [ "$TLS" = 1 ]; then
    # A CA and a server certificate for 127.0.0.1 (ECDSA P-256, what most sites serve today).
    mkdir -p "$TMP/tls"
    (
        cd "$TMP/tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
            -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile ext.cnf -out server.pem 2>/dev/null
        chmod 644 server.key
    )
    SCHEME=https
    BENCH_TLS=(--cacert "$TMP/tls/ca.pem")
fi

AUTH_HEADER=()     # the load client's --header with a token, for --auth
if [ "$AUTH" != none ]; then
    python3 "$HERE/jwt.py" keys "$TMP/keys"
    AUTH_HEADER=(--header "Authorization: Bearer $(python3 "$HERE/jwt.py" token --alg "${AUTH^^}" --key "$TMP/keys/$AUTH.key" --kid "bench-$AUTH" --ttl 7200)")
fi

# Whole-run bound: per target ramp + window + start/stop margins.
n_targets=$(tr ',' '\n' <<<"$TARGETS" | grep -c .)
MAX_TOTAL=$(( 2 * n_targets * (RAMP_TIMEOUT + DURATION + QUIET_TIMEOUT + 60) + 120 ))   # one retry each
(
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$MAX_TOTAL" >/dev/null 2>&1 </dev/null & sleeper=$!
    wait "$sleeper" && { log "run exceeded ${MAX_TOTAL}s; stopping"; kill -TERM $$; }
) &
WATCHDOG=$!

# ---------------------------------------------------------------- what the run needs
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
    local packages=()
    command -v nginx >/dev/null || packages+=(nginx)
    if [[ ",$TARGETS," == *,nchan,* ]] && ! dpkg -s libnginx-mod-nchan >/dev/null 2>&1; then packages+=(libnginx-mod-nchan); fi
    command -v python3 >/dev/null || packages+=(python3)
    command -v ss >/dev/null || packages+=(iproute2)
    command -v curl >/dev/null || packages+=(curl)
    command -v pgrep >/dev/null || packages+=(procps)
    command -v timeout >/dev/null || packages+=(coreutils)
    [ ${#packages[@]} -eq 0 ] && return 0
    log "installing: ${packages[*]}"
    # Keep the package's own nginx service from being started by the install (we run our own
    # instance on 127.0.0.1 only); the guard is removed again right after.
    local guard=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
        guard=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends "${packages[@]}" || {
        [ -n "$guard" ] && as_root rm -f /usr/sbin/policy-rc.d; exit 1; }
    [ -n "$guard" ] && as_root rm -f /usr/sbin/policy-rc.d
    return 0
}
install_missing

if [ ! -x "$SSEGATE" ]; then
    log "no $SSEGATE: building (swift build -c release, several minutes)"
    (cd "$ROOT" && timeout 1800 swift build -c release --product ssegate)
fi

NCHAN_SO=$(dpkg -L libnginx-mod-nchan 2>/dev/null | grep 'ngx_nchan_module\.so$' | head -1 || true)
NCHAN_SO=${NCHAN_SO:-/usr/lib/nginx/modules/ngx_nchan_module.so}

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ $((CLIENTS + 64)) -gt "$NOFILE" ]; then
    log "warning: $CLIENTS clients need more than 'ulimit -n' = $NOFILE descriptors in the load client and the servers"
fi
[ "$NOFILE" = unlimited ] && NOFILE=1048576

for port in $GATE_PORT $ORIGIN_PORT $ADMIN_PORT; do
    if [ -n "$(ss -Htln "( sport = :$port )" 2>/dev/null)" ]; then
        echo "bench/run.sh: port $port is already in use on this machine" >&2; exit 1
    fi
done

# ---------------------------------------------------------------- measurements
CLK_TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }
conns() { { ss -Htn state established "( sport = :$1 )" 2>/dev/null || true; } | wc -l; }   # server side of established conns
cpu_ticks() {       # utime+stime of the given PIDs (all their threads), in clock ticks
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
cpu_split() {       # "UTIME STIME CTXT_SWITCHES" of the given PIDs (ticks, ticks, count over all threads)
    local pid
    for pid in "$@"; do
        awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$pid/stat" 2>/dev/null || true
        { cat /proc/"$pid"/task/*/status 2>/dev/null || true; } | awk '/ctxt_switches:/ { s += $2 } END { print "c", s + 0 }'
    done | awk '$1 == "c" { c += $2; next } { u += $1; s += $2 } END { print u + 0, s + 0, c + 0 }'
}
mem_kib() {         # "RSS PRIVATE" summed over the given PIDs, KiB; PRIVATE = Pss_Anon + Pss_Shmem: the
                    # process's own heap/stack plus its share of shared memory (nginx's zones), without
                    # the file-backed pages (binary, libraries) whose PSS moves when another process maps them
    local rss=0 pss=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0); rss=$((rss + ${v:-0}))
        v=$(awk '/^Pss_(Anon|Shmem):/ { s += $2 } END { print s + 0 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        pss=$((pss + ${v:-0}))
    done
    echo "$rss $pss"
}
machine_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
machine_softirq_ticks() { awk '/^cpu / { print $7 + $8; exit }' /proc/stat; }   # irq + softirq: no process is charged
tcp_mem_pages() { awk '/^TCP:/ { for (i = 1; i <= NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }

wait_port() {       # wait until something listens on 127.0.0.1:$1 (10 s), checking $2 stays alive
    local port=$1 pid=$2 i
    for i in $(seq 100); do
        [ -n "$(ss -Htln "( sport = :$port )" 2>/dev/null)" ] && return 0
        alive "$pid" || { log "process $pid exited before listening on $port"; return 1; }
        sleep 0.1
    done
    log "nothing listens on $port after 10 s"; return 1
}

busy_cores_over() { # machine-wide busy cores over $1 seconds
    local a b
    a=$(machine_busy_ticks); nap "$1"; b=$(machine_busy_ticks)
    awk -v d=$((b - a)) -v t="$CLK_TCK" -v s="$1" 'BEGIN { printf "%.2f", d / t / s }'
}
wait_quiet() {      # before a target: wait (up to QUIET_TIMEOUT) until other work on the machine is < 0.15 cores
    local start=$SECONDS busy
    while :; do
        busy=$(busy_cores_over 2)
        awk -v b="$busy" 'BEGIN { exit !(b < 0.15) }' && break
        if [ $((SECONDS - start)) -ge "$QUIET_TIMEOUT" ]; then
            log "machine still busy ($busy cores used by other processes); measuring anyway"; break
        fi
        log "machine busy ($busy cores used by other processes); waiting"
        nap 3
    done
    QUIET_BUSY=$busy
}

# ---------------------------------------------------------------- the targets
ORIGIN_PID= SERVER_PID= PUBLISHER_PID= BURST_PID=

start_origin() {
    "$SSEGATE" origin --host 127.0.0.1 --port "$ORIGIN_PORT" --rate "$RATE" --payload "$PAYLOAD" \
        >"$TMP/$1/origin.log" 2>&1 &
    ORIGIN_PID=$!; STARTED+=("$ORIGIN_PID")
    wait_port "$ORIGIN_PORT" "$ORIGIN_PID"
}

start_ssegate() {
    { bench_gateway_config "$GATE_PORT" "$ADMIN_PORT"; bench_feed bench /feed "$ORIGIN_PORT"; bench_auth "$AUTH" "$TMP/keys"; } >"$TMP/$1/ssegate.yaml"
    if [ "$TLS" = 1 ]; then
        sed -i "s|^  - address: 127.0.0.1:$GATE_PORT\$|&\\n    tls: { certificate: $TMP/tls/server.pem, private_key: $TMP/tls/server.key }|" "$TMP/$1/ssegate.yaml"
        grep -q "private_key: $TMP/tls/server.key" "$TMP/$1/ssegate.yaml" || { log "could not add tls: to the listener"; return 1; }
    fi
    if [ "$PROBE" = 1 ]; then
        # The probe's fast feed: 16 KB events at 100/s, so a client that does not read fills the
        # kernel's socket buffers (a few MiB on loopback) and then goes over max_queue (1 MiB) within
        # seconds.
        "$SSEGATE" origin --host 127.0.0.1 --port "$BURST_PORT" --rate 100 --payload 16000 >"$TMP/$1/burst-origin.log" 2>&1 &
        BURST_PID=$!; STARTED+=("$BURST_PID")
        wait_port "$BURST_PORT" "$BURST_PID"
        bench_feed burst /burst "$BURST_PORT" >>"$TMP/$1/ssegate.yaml"
    fi
    "$SSEGATE" serve --config "$TMP/$1/ssegate.yaml" >"$TMP/$1/server.log" 2>&1 &
    SERVER_PID=$!; STARTED+=("$SERVER_PID")
    wait_port "$GATE_PORT" "$SERVER_PID"
    local i
    for i in $(seq 50); do [ "$(conns "$ORIGIN_PORT")" -ge 1 ] && return 0; sleep 0.1; done
    log "ssegate has no upstream connection after 5 s"; return 1
}

start_nginx() {     # $1 target dir, $2 proxy|nchan
    local dir=$TMP/$1/nginx
    mkdir -p "$dir/logs" "$dir/tmp"
    chmod -R 755 "$TMP/$1"
    {
        [ "$2" = nchan ] && echo "load_module $NCHAN_SO;"
        cat <<EOF
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile $NOFILE;
error_log $dir/logs/error.log warn;
events {
    worker_connections $((NOFILE - 64));
}
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$GATE_PORT reuseport backlog=4096$([ "$TLS" = 1 ] && echo ' ssl')$([ "$HTTP2" = 1 ] && echo ' http2');
$([ "$TLS" = 1 ] && echo "        ssl_certificate $TMP/tls/server.pem;")
$([ "$TLS" = 1 ] && echo "        ssl_certificate_key $TMP/tls/server.key;")
$([ "$TLS" = 1 ] && echo "        ssl_session_cache shared:SSL:10m;")
$({ [ "$HTTP2" = 1 ] || [ "$TLS" = 1 ]; } && [ "$2" = nchan ] && echo "        listen 127.0.0.1:$PUBLISH_PORT;")
EOF
        if [ "$2" = proxy ]; then cat <<EOF
        location / {
            proxy_pass http://127.0.0.1:$ORIGIN_PORT;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
        }
EOF
        else cat <<EOF
        location = /feed {
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            nchan_subscriber_first_message newest;
        }
        location = /pub {
            nchan_publisher;
            nchan_channel_id bench;
            nchan_message_buffer_length 10;
            nchan_message_timeout 5m;
        }
EOF
        fi
        echo "    }"
        echo "}"
    } >"$dir/nginx.conf"
    nginx -e "$dir/logs/error.log" -p "$dir/" -c "$dir/nginx.conf" -g "daemon off; pid $dir/nginx.pid;" \
        >"$TMP/$1/server.log" 2>&1 &
    SERVER_PID=$!; STARTED+=("$SERVER_PID")
    wait_port "$GATE_PORT" "$SERVER_PID"
}

start_publisher() {
    python3 "$HERE/publisher.py" --port "$({ [ "$HTTP2" = 1 ] || [ "$TLS" = 1 ]; } && echo "$PUBLISH_PORT" || echo "$GATE_PORT")" --path /pub --rate "$RATE" --payload "$PAYLOAD" \
        >"$TMP/$1/publisher.json" 2>"$TMP/$1/publisher.log" &
    PUBLISHER_PID=$!; STARTED+=("$PUBLISHER_PID")
}

server_pids() {     # the server's processes: nginx master + workers, or the one ssegate process
    [ -n "$SERVER_PID" ] || return 0
    echo "$SERVER_PID" $(pgrep -P "$SERVER_PID" || true)
}
other_pids() {      # what feeds the server: the origin, or nchan's publisher
    [ -n "$ORIGIN_PID" ] && [ "$ORIGIN_PID" != "$SERVER_PID" ] && echo "$ORIGIN_PID"
    [ -n "$PUBLISHER_PID" ] && echo "$PUBLISHER_PID"
    [ -n "$BURST_PID" ] && echo "$BURST_PID"
    return 0
}

run_target() {
    local target=$1 dir=$TMP/$1 url listen
    mkdir -p "$dir"
    ORIGIN_PID= SERVER_PID= PUBLISHER_PID= BURST_PID= STOP_NOTES=
    wait_quiet
    log "== $target: $CLIENTS clients x $RATE events/s x $PAYLOAD B, ${DURATION}s window"
    case "$target" in
        ssegate|ssegate-gzip) start_origin "$target" && start_ssegate "$target" ;;
        nginx)   start_origin "$target" && start_nginx "$target" proxy ;;
        nchan)   start_nginx "$target" nchan && start_publisher "$target" ;;
        origin)  start_origin "$target" && SERVER_PID=$ORIGIN_PID ;;
    esac || { log "$target did not start; skipped"; echo "status=failed_to_start" >"$dir/measured.env"; stop_target; return 0; }
    if [ "$target" = origin ]; then listen=$ORIGIN_PORT; else listen=$GATE_PORT; fi
    url=$SCHEME://127.0.0.1:$listen/feed

    nap 2
    local idle_server idle_other idle_tcp
    idle_server=$(mem_kib $(server_pids)); idle_other=$(mem_kib $(other_pids)); idle_tcp=$(tcp_mem_pages)

    local bench_bound=$((RAMP_TIMEOUT + DURATION + 30)) encoding=()
    [ "$target" = ssegate-gzip ] && encoding=(--gzip)
    timeout -k 5 "$bench_bound" "$SSEGATE" bench --url "$url" --clients "$CLIENTS" --duration "$DURATION" \
        --expected-rate "$RATE" --threads "$BENCH_THREADS" "${BENCH_PROTOCOL[@]}" "${BENCH_TLS[@]}" "${encoding[@]}" "${AUTH_HEADER[@]}" --json --quiet >"$dir/bench.json" 2>"$dir/bench.log" &
    local bench_pid=$!; STARTED+=("$bench_pid")

    # Ramp: wait until the server side has all N connections, or the count has not grown for 12 s
    # (longer than the load client's 10 s connect timeout, after which it starts its window anyway).
    local ramp_start seen last=-1 since=$SECONDS ramp_end
    ramp_start=$(now)
    while :; do
        seen=$(conns "$listen")
        [ "$seen" -ge "$CONNECTIONS" ] && break
        alive "$bench_pid" || { log "bench exited during ramp-up"; break; }
        [ "$seen" -ne "$last" ] && since=$SECONDS
        [ "$seen" -gt 0 ] && [ $((SECONDS - since)) -ge 12 ] && { log "connections stopped growing at $seen of $CONNECTIONS"; break; }
        awk -v a="$ramp_start" -v b="$(now)" -v m="$RAMP_TIMEOUT" 'BEGIN { exit !(b - a > m) }' &&
            { log "ramp-up timeout at $seen of $CONNECTIONS connections"; break; }
        last=$seen
        nap 0.25
    done
    ramp_end=$(now)
    log "$target: $seen server-side connections after $(awk -v a="$ramp_start" -v b="$ramp_end" 'BEGIN { printf "%.1f", b - a }') s"

    # CPU window: from 1 s after the ramp to 1 s before the bench's window ends (the bench starts
    # its window once every response head is in, which is at or just after the ramp end seen here).
    nap 1
    local t0 c0 o0 b0 m0 q0 t1 c1 o1 b1 m1 q1 mid_server mid_other mid_tcp upstream clients_seen bench_child
    bench_child=$(pgrep -P "$bench_pid" || true)
    local split0 split1
    split0=$(cpu_split $(server_pids))
    t0=$(now); c0=$(cpu_ticks $(server_pids)); o0=$(cpu_ticks $(other_pids)); b0=$(cpu_ticks $bench_child); m0=$(machine_busy_ticks); q0=$(machine_softirq_ticks)
    local probe_pid=
    if [ "$PROBE" = 1 ] && [ "$target" = ssegate ]; then
        timeout -k 5 $((DURATION + 10)) python3 "$HERE/probe.py" --port "$GATE_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
            --duration "$(awk -v d="$DURATION" 'BEGIN { print (d - 4 < 10) ? d - 4 : 10 }')" >"$dir/probe.json" 2>"$dir/probe.log" &
        probe_pid=$!; STARTED+=("$probe_pid")
    fi
    nap "$(awk -v d="$DURATION" 'BEGIN { print (d - 2) / 2 }')"
    mid_server=$(mem_kib $(server_pids)); mid_other=$(mem_kib $(other_pids)); mid_tcp=$(tcp_mem_pages)
    clients_seen=$(conns "$listen")
    # Where undelivered bytes sit right now: the load client's receive queues, the server's send queues.
    local client_recvq server_sendq
    client_recvq=$({ ss -Htn state established "( dport = :$listen )" 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }')
    server_sendq=$({ ss -Htn state established "( sport = :$listen )" 2>/dev/null || true; } | awk '{ s += $2 } END { print s + 0 }')
    if [ "${target%-gzip}" = ssegate ]; then
        curl -s --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" >"$dir/metrics-mid.txt" 2>/dev/null || true
    fi
    case "$target" in nchan) upstream=0 ;; *) upstream=$(conns "$ORIGIN_PORT") ;; esac
    # Until 1 s before the window ends, or until the load client exits if its window started earlier than
    # seen here (a stalled ramp: it starts measuring at most 10 s after its last connect attempt).
    local truncated=0
    while awk -v t0="$t0" -v d="$DURATION" -v n="$(now)" 'BEGIN { exit !(t0 + d - 2 - n > 0) }'; do
        if [ -z "$(pgrep -P "$bench_pid" || true)" ]; then truncated=1; log "$target: load client ended before the CPU window did"; break; fi
        nap 0.25
    done
    split1=$(cpu_split $(server_pids))
    t1=$(now); c1=$(cpu_ticks $(server_pids)); o1=$(cpu_ticks $(other_pids)); b1=$(cpu_ticks $bench_child); m1=$(machine_busy_ticks); q1=$(machine_softirq_ticks)
    [ "$truncated" = 1 ] && b1=$b0   # its CPU is gone with it; counted as unknown

    wait "$bench_pid" 2>/dev/null || log "bench exited with status $? (124: time bound hit)"
    if [ -n "$probe_pid" ]; then wait "$probe_pid" 2>/dev/null || log "probe: a check failed (status $?), see the notes"; fi
    if [ "${target%-gzip}" = ssegate ]; then
        curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" >"$dir/metrics.txt" 2>/dev/null || true
    fi
    stop_target
    [ -f "$dir/nginx/logs/error.log" ] && cp "$dir/nginx/logs/error.log" "$dir/error.log"

    cat >"$dir/measured.env" <<EOF
status=ok
busy_cores_before=$QUIET_BUSY
clients=$CLIENTS
rate=$RATE
payload=$PAYLOAD
duration=$DURATION
ramp_s=$(awk -v a="$ramp_start" -v b="$ramp_end" 'BEGIN { printf "%.3f", b - a }')
window_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
clk_tck=$CLK_TCK
server_cpu_ticks=$((c1 - c0))
other_cpu_ticks=$((o1 - o0))
server_utime_ticks=$(( $(cut -d' ' -f1 <<<"$split1") - $(cut -d' ' -f1 <<<"$split0") ))
server_stime_ticks=$(( $(cut -d' ' -f2 <<<"$split1") - $(cut -d' ' -f2 <<<"$split0") ))
server_ctxt_switches=$(( $(cut -d' ' -f3 <<<"$split1") - $(cut -d' ' -f3 <<<"$split0") ))
bench_cpu_ticks=$((b1 - b0))
machine_busy_ticks=$((m1 - m0))
machine_softirq_ticks=$((q1 - q0))
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)
idle_rss_kib=${idle_server% *}
idle_private_kib=${idle_server#* }
loaded_rss_kib=${mid_server% *}
loaded_private_kib=${mid_server#* }
other_idle_rss_kib=${idle_other% *}
other_loaded_rss_kib=${mid_other% *}
tcp_mem_idle_pages=$idle_tcp
tcp_mem_loaded_pages=$mid_tcp
page_kib=$(( $(getconf PAGESIZE) / 1024 ))
server_side_clients=$clients_seen
client_recvq_bytes=$client_recvq
server_sendq_bytes=$server_sendq
upstream_connections=$upstream
needed_sigkill=$STOP_NOTES
window_truncated=$truncated
EOF
}

stop_target() {
    local pid
    for pid in $PUBLISHER_PID $SERVER_PID $ORIGIN_PID $BURST_PID; do stop_pid "$pid"; done
    nap 1    # let the sockets go before the next target binds the same ports
}

# ---------------------------------------------------------------- run, then write the table
STAMP=$(date -u +%Y-%m-%d-%H%M)
SCENARIO=${NAME:-${CLIENTS}c-${RATE}eps-${PAYLOAD}B-${DURATION}s}
mkdir -p "$OUT"
{
    echo "command=bench/run.sh --clients $CLIENTS --rate $RATE --payload $PAYLOAD --duration $DURATION --targets $TARGETS --bench-threads $BENCH_THREADS --nginx-workers $NGINX_WORKERS$([ "$PROBE" = 1 ] && echo ' --probe')$([ "$HTTP2" = 1 ] && echo ' --http2')$([ "$TLS" = 1 ] && echo ' --tls')$([ "$GZIP" = 1 ] && echo ' --gzip')$([ "$FOREIGN_LIMIT" != 0.3 ] && echo " --foreign-limit $FOREIGN_LIMIT") --quiet-timeout $QUIET_TIMEOUT$([ "$AUTH" != none ] && echo " --auth $AUTH")"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel=$(uname -r)"
    echo "mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "nofile=$NOFILE"
    echo "nginx=$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "nginx_workers=$NGINX_WORKERS"
    echo "nchan=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo none)"
    echo "ssegate_commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
    built=$(stat -c %Y "$SSEGATE")
    head_time=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)
    if [ "$built" -lt "$head_time" ]; then
        older=$(git -C "$ROOT" log -1 --before="@$built" --format=%h 2>/dev/null || echo unknown)
        echo "ssegate_binary=$SSEGATE (built $(date -u -d "@$built" '+%Y-%m-%d %H:%M UTC'), before HEAD was committed: the newest commit older than the binary is $older; uncommitted edits at build time unknown)"
    else
        echo "ssegate_binary=$SSEGATE (built $(date -u -d "@$built" '+%Y-%m-%d %H:%M UTC'))"
    fi
    echo "bench_threads=$BENCH_THREADS"
    echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$TMP/run.env"

foreign_cores() {   # CPU used during the target's window by processes that are not part of the run
    awk -F= '{ v[$1] = $2 } END {
        w = v["window_s"] + 0; if (w <= 0 || v["status"] != "ok" || v["window_truncated"] == "1") { print 0; exit }
        printf "%.2f", (v["machine_busy_ticks"] - v["server_cpu_ticks"] - v["other_cpu_ticks"] - v["bench_cpu_ticks"]) / v["clk_tck"] / w }' "$1"
}
for target in ${TARGETS//,/ }; do
    run_target "$target"
    foreign=$(foreign_cores "$TMP/$target/measured.env")
    if awk -v f="$foreign" -v limit="$FOREIGN_LIMIT" 'BEGIN { exit !(f > limit) }'; then
        log "$target: other processes used $foreign cores during the window; running it once more"
        mv "$TMP/$target" "$TMP/$target.busy"
        run_target "$target"
        echo "retried_after_foreign_cores=$foreign" >>"$TMP/$target/measured.env"
    fi
done

python3 "$HERE/report.py" --run "$TMP" --targets "$TARGETS" \
    --jsonl "$OUT/$STAMP-$SCENARIO.jsonl" --markdown "$OUT/$STAMP-$SCENARIO.md"
log "wrote $OUT/$STAMP-$SCENARIO.md and .jsonl"
cat "$OUT/$STAMP-$SCENARIO.md"
