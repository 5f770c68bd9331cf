#!/usr/bin/env bash
# Memory a closed connection leaves behind (issue 16, findings 1 and 2), measured on a real ssegate
# process: starts `ssegate origin` and `ssegate serve` (cleartext + TLS listener, feed /prices), and for
# each connection kind runs a warm-up round, then COUNT connections, and prints the gateway's VmRSS
# before and after the COUNT. A gateway that frees what a connection used stays flat after the
# warm-up; the leak fixed in issue 16 grew it by ~2.1 KB per HTTP/1 connection.
#
#   scripts/leakcheck.sh [--ssegate PATH] [--count N] [--tls-count N] [--h2-count N] [--warmup N] [--kinds "k1 k2"]
#
# Defaults: .build/release/ssegate, 20000 of each kind (TLS: 5000, the handshakes are CPU-bound on two
# cores; HTTP/2 streams: 5000, 100 per connection), warm-up 2000. Every process it starts is stopped by PID at the end. Needs python3 and openssl.
set -euo pipefail

SSEGATE=.build/release/ssegate
COUNT=20000
TLS_COUNT=5000
H2_COUNT=5000
WARMUP=2000
# HTTP/2 first: the kinds with the largest peak (TLS) leave freed pages that a later leak would fill
# unseen. Each kind gets its own warm-up round right before it is measured.
KINDS="h2-streams h2-reset http1-404 http1-400 stream tls-timeout"
while [ $# -gt 0 ]; do
    case "$1" in
        --ssegate) SSEGATE=$2; shift 2 ;;
        --count) COUNT=$2; shift 2 ;;
        --tls-count) TLS_COUNT=$2; shift 2 ;;
        --h2-count) H2_COUNT=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --kinds) KINDS=$2; shift 2 ;;
        *) echo "leakcheck.sh: unknown option $1" >&2; exit 1 ;;
    esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n 20000

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); TLS_PORT=$(free_port); ADMIN_PORT=$(free_port); ORIGIN_PORT=$(free_port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat >"$TMP/ssegate.yaml" <<YAML
log_level: warning
listen:
  - address: 127.0.0.1:$PORT
  - address: 127.0.0.1:$TLS_PORT
    tls: { certificate: $TMP/cert.pem, private_key: $TMP/key.pem }
admin:
  address: 127.0.0.1:$ADMIN_PORT
shutdown_timeout: 2s
limits:
  max_clients: 1000000
  header_timeout: 2s                 # long enough for a debug build under load between h2 streams
feeds:
  - name: prices
    path: /prices
    upstream: { url: "http://127.0.0.1:$ORIGIN_PORT/prices" }
    connect: always
YAML

"$SSEGATE" origin --host 127.0.0.1 --port "$ORIGIN_PORT" --rate 1 >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
"$SSEGATE" serve --config "$TMP/ssegate.yaml" >"$TMP/ssegate.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null || { cat "$TMP/ssegate.log"; exit 1; }

rss() { awk '/VmRSS/ { print $2 }' "/proc/$GATEWAY/status"; }
fds() { ls "/proc/$GATEWAY/fd" | wc -l; }
run() {  # $1 kind, $2 count
    local count=$2
    local concurrency=200
    if [ "$1" = tls-timeout ]; then
        [ "$count" -gt "$TLS_COUNT" ] && count=$TLS_COUNT
        concurrency=100  # each waits out the header timeout
    fi
    # 100 streams a connection: a few connections at once keep the gateway's loops busy already.
    if [ "$1" = h2-streams ]; then
        [ "$count" -gt "$H2_COUNT" ] && count=$H2_COUNT
        concurrency=10
    fi
    python3 "$HERE/leakcheck.py" "$1" "$count" --port "$PORT" --tls-port "$TLS_PORT" --concurrency "$concurrency"
}

# Waits (at most 15 s) until the gateway holds no more descriptors than when idle: every connection of
# the round is closed (a TLS close waits for the client's close_notify) before its memory is read.
settle() {
    for _ in $(seq 150); do
        [ "$(fds)" -le "$IDLE_FDS" ] && break
        sleep 0.1
    done
    sleep 1
}

IDLE_FDS=$(fds)
echo "ssegate $SSEGATE, pid $GATEWAY; RSS at start: $(rss) kB, $IDLE_FDS descriptors"
printf '%-12s %8s %8s %14s %12s %12s\n' kind count took "RSS before kB" "after kB" "growth kB"
for kind in $KINDS; do
    run "$kind" "$WARMUP" >/dev/null
    settle
    before=$(rss)
    line=$(run "$kind" "$COUNT")
    settle
    after=$(rss)
    printf '%-12s %8s %8s %14s %12s %12s\n' "$kind" "$(echo "$line" | cut -d' ' -f2)" "$(echo "$line" | cut -d' ' -f3)" \
        "$before" "$after" "$((after - before))"
    case "$line" in *failures=0) ;; *) echo "  client failures: $line" ;; esac
done
echo "descriptors at the end: $(fds)"
