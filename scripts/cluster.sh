#!/usr/bin/env bash
# The docker-compose topology without Docker, on 127.0.0.1: the demo origin, two ssegate replicas and
# HAProxy (the Debian `haproxy` package) in front, health-checking each replica's /readyz.
#
#   scripts/cluster.sh start     build if needed, start everything in the background, print the URLs
#   scripts/cluster.sh stop      stop exactly the processes `start` started (replicas drain first)
#   scripts/cluster.sh status    which of them run, and what HAProxy thinks of each replica
#   scripts/cluster.sh run       the same in the foreground (Ctrl-C stops it); `start` runs this detached
#
# State (pid files, generated configs, logs) goes to .cluster/ (CLUSTER_DIR). Every port and a few timings
# can be changed through the environment, which is how the integration test (ClusterFailoverTests) runs
# this script on free ports:
#   CLUSTER_HOST=127.0.0.1  ORIGIN_PORT=8081  LB_PORT=8080  STATS_PORT=8404
#   REPLICA_PORTS="8091 8092"  ADMIN_PORTS="9091 9092"   (one replica per port; add ports for more)
#   RATE=5 (origin events/s)  PAYLOAD=0  RETRY=1s  SHUTDOWN_TIMEOUT=5s  CHECK_INTER=500ms  CONNECT_TIMEOUT=1s
#   MAX_CLIENTS_PER_ADDRESS=0 (each replica's limits.max_clients_per_address; 0: no limit)
#   NEW_CONNECTIONS_PER_SECOND=0 (each replica's limits.new_connections_per_second; 0: no limit)
#   BALANCE=leastconn (HAProxy's algorithm; `first` puts every client on replica1 while it is up,
#   as bench/crash-storm.sh does)
#   SSEGATE_BIN (skip the build and use this binary)  HAPROXY_BIN (default: haproxy on PATH, else /usr/sbin)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self="$root/scripts/cluster.sh"
state=${CLUSTER_DIR:-$root/.cluster}
host=${CLUSTER_HOST:-127.0.0.1}
origin_port=${ORIGIN_PORT:-8081}
lb_port=${LB_PORT:-8080}
stats_port=${STATS_PORT:-8404}
read -r -a replica_ports <<<"${REPLICA_PORTS:-8091 8092}"
read -r -a admin_ports <<<"${ADMIN_PORTS:-9091 9092}"
rate=${RATE:-5}
payload=${PAYLOAD:-0}
retry=${RETRY:-1s}
shutdown_timeout=${SHUTDOWN_TIMEOUT:-5s}
check_inter=${CHECK_INTER:-500ms}
connect_timeout=${CONNECT_TIMEOUT:-1s}
max_clients_per_address=${MAX_CLIENTS_PER_ADDRESS:-0}
new_connections_per_second=${NEW_CONNECTIONS_PER_SECOND:-0}
balance=${BALANCE:-leastconn}

say() { echo "cluster: $*"; }
die() {
  echo "cluster: $*" >&2
  exit 1
}

if [ "${#replica_ports[@]}" -ne "${#admin_ports[@]}" ] || [ "${#replica_ports[@]}" -lt 1 ]; then
  die "REPLICA_PORTS and ADMIN_PORTS must list the same number (>= 1) of ports"
fi
replicas=${#replica_ports[@]}

# A duration as the config writes it (250ms, 5s, 2m) in milliseconds.
to_ms() {
  case "$1" in
    *ms) echo "${1%ms}" ;;
    *s) echo $((${1%s} * 1000)) ;;
    *m) echo $((${1%m} * 60000)) ;;
    *) echo $(($1 * 1000)) ;;
  esac
}

# Running and not a zombie (a killed orphan can linger as one where PID 1 does not reap).
alive() {
  local pid=${1:-}
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/stat" ]; then
    local st
    st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ "$st" != "Z" ] || return 1
  fi
  return 0
}

# The pid in $state/NAME.pid, if that process still runs and is the program we started under that name
# (never signal a recycled pid).
pid_of() {
  local name=$1 pid expect
  [ -f "$state/$name.pid" ] || return 1
  pid=$(cat "$state/$name.pid" 2>/dev/null) || return 1
  alive "$pid" || return 1
  case "$name" in
    supervisor) expect=cluster.sh ;;
    haproxy) expect=haproxy ;;
    *) expect=ssegate ;;
  esac
  if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$expect"; then
    return 1
  fi
  echo "$pid"
}

# Starts a component in the background, with no file descriptor of ours but stdin/stdout/stderr: a
# descriptor inherited from whoever started this script (a test runner's pipe or socket, say) must not
# stay open in a long-lived server. Its pid is $! (the subshell execs the program).
spawn() {
  local log=$1
  shift
  (
    for fd in $(ls "/proc/${BASHPID:-$$}/fd" 2>/dev/null); do
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@" >"$log" 2>&1 </dev/null
  ) &
}

component_names() {
  echo origin
  local i
  for ((i = 1; i <= replicas; i++)); do echo "replica$i"; done
  echo haproxy
}

find_haproxy() {
  if [ -n "${HAPROXY_BIN:-}" ]; then
    echo "$HAPROXY_BIN"
  elif command -v haproxy >/dev/null 2>&1; then
    command -v haproxy
  elif [ -x /usr/sbin/haproxy ]; then
    echo /usr/sbin/haproxy
  else
    die "haproxy is not installed (Debian/Ubuntu: apt-get install haproxy)"
  fi
}

find_ssegate() {
  if [ -n "${SSEGATE_BIN:-}" ]; then
    [ -x "$SSEGATE_BIN" ] || die "SSEGATE_BIN=$SSEGATE_BIN is not executable"
    echo "$SSEGATE_BIN"
    return
  fi
  local bin="$root/.build/debug/ssegate"
  if [ ! -x "$bin" ] || [ -n "$(find "$root/Sources" "$root/Package.swift" -newer "$bin" -print -quit 2>/dev/null)" ]; then
    say "building ssegate (swift build --product ssegate)" >&2
    (cd "$root" && swift build --product ssegate >&2) || die "swift build failed"
  fi
  echo "$bin"
}

write_configs() {
  local i
  for ((i = 1; i <= replicas; i++)); do
    cat >"$state/replica$i.yaml" <<EOF
# Generated by scripts/cluster.sh: replica $i of $replicas (config/replica.yaml is the docker-compose one).
log_level: info
listen:
  - address: $host:${replica_ports[i - 1]}
    proxy_protocol: true             # HAProxy sends PROXY v2 (send-proxy-v2): the client's own address
admin:
  address: $host:${admin_ports[i - 1]}           # HAProxy health-checks /readyz here
shutdown_timeout: $shutdown_timeout
limits:
  max_clients_per_address: $max_clients_per_address
  # A crashed replica's clients all come back at once; over this rate they get 503 + Retry-After.
  new_connections_per_second: $new_connections_per_second
defaults:
  retry: $retry
  keepalive: 15s
  replay: { max_events: 10000, max_bytes: 16MiB, max_age: 10m }
  upstream:
    backoff: { initial: 100ms, max: 5s }
  cors:
    allow_origins: ["*"]
feeds:
  - name: prices
    path: /prices
    upstream:
      url: http://$host:$origin_port/prices
    connect: always                  # every replica holds the feed, so its replay buffer has every id
    ids: upstream                    # the origin's ids: the same on every replica, so Last-Event-ID fails over
  - name: rooms
    path: /rooms/{room}
    upstream:
      url: http://$host:$origin_port/rooms/{room}
    connect: on_demand               # opened by the first client, resuming from that client's Last-Event-ID
    linger: 30s
    max_feeds: 1000
EOF
  done

  {
    cat <<EOF
# Generated by scripts/cluster.sh (config/haproxy.cfg is the docker-compose one).
global
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect $connect_timeout
    # An SSE response is one long download: the client and server timeouts are idle timers, and the
    # replicas send a keepalive comment every 15s, so an hour is only a backstop.
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    # A replica that refuses the connection (crashed, or draining with its listener closed) before the
    # health check noticed: try again, on another replica.
    retries 3
    option redispatch 1

frontend sse
    bind $host:$lb_port
    default_backend replicas

backend replicas
    # Long-lived streams: leastconn spreads them evenly (roundrobin counts requests, not open streams).
    balance $balance
    # /readyz answers 503 the moment a replica starts draining; one answer is enough to take it out.
    option httpchk GET /readyz
    http-check expect status 200
    # Without it a check must finish within 'inter' (500 ms): a busy replica answering late would be taken
    # out by one slow answer and, with the other draining, HAProxy would answer 503 itself.
    timeout check 3s
    # send-proxy-v2: each connection to a replica starts with a PROXY v2 header naming the client, so the
    # replicas see (and limit, and log) real client addresses. The health checks go to the admin port
    # (the 'port' of each server line), which takes no PROXY header, and HAProxy sends none with them.
    default-server check inter $check_inter fall 1 rise 2 send-proxy-v2
    # Which replica served the stream (curl -i shows it; the failover test counts it).
    http-response set-header X-Replica %[srv_name]
EOF
    for ((i = 1; i <= replicas; i++)); do
      echo "    server replica$i $host:${replica_ports[i - 1]} port ${admin_ports[i - 1]}"
    done
    cat <<EOF

listen stats
    bind $host:$stats_port
    stats enable
    stats uri /
    stats refresh 2s
EOF
  } >"$state/haproxy.cfg"
}

# Waits until URL answers 200 (curl -f), the process PID still running; TIMEOUT seconds at most.
wait_ready() {
  local name=$1 pid=$2 url=$3 tries=$(($4 * 10))
  while ((tries-- > 0)); do
    alive "$pid" || die "$name exited at start; see $state/$name.log: $(tail -n 3 "$state/$name.log" 2>/dev/null | tr '\n' ' ')"
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$name not ready at $url; see $state/$name.log"
}

# Waits until PORT accepts a connection (the origin streams on every path, so no HTTP probe ends).
wait_port() {
  local name=$1 pid=$2 port=$3 tries=$(($4 * 10))
  while ((tries-- > 0)); do
    alive "$pid" || die "$name exited at start; see $state/$name.log: $(tail -n 3 "$state/$name.log" 2>/dev/null | tr '\n' ' ')"
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$name not listening on $host:$port; see $state/$name.log"
}

print_urls() {
  local i rel=${state#"$root"/}
  echo "cluster on $host: origin, $replicas ssegate replicas, HAProxy in front"
  echo "  load balancer   http://$host:$lb_port/prices          (HAProxy; X-Replica names the replica)"
  echo "  HAProxy stats   http://$host:$stats_port/"
  for ((i = 1; i <= replicas; i++)); do
    echo "  replica$i        $host:${replica_ports[i - 1]} (PROXY protocol: through HAProxy only)   admin http://$host:${admin_ports[i - 1]}/"
  done
  echo "  origin          http://$host:$origin_port/prices"
  echo "  pids and logs   $rel/"
  echo "try:"
  echo "  curl -N -i http://$host:$lb_port/prices"
  echo "  kill -9 \$(cat $rel/replica1.pid)     # crash a replica: curl reconnects elsewhere with Last-Event-ID"
  echo "  scripts/cluster.sh status; scripts/cluster.sh stop"
}

# Stops the components: the replicas first (they drain: readyz 503, retry: to each client, closes spread
# over the drain window, while HAProxy still routes the reconnects to the others), then HAProxy, then the
# origin. Only the pids in $state, and only if they are still the programs started under those names.
stop_components() {
  local name pid i waited limit
  limit=$(($(to_ms "$shutdown_timeout") / 100 + 30))
  for group in replicas haproxy origin; do
    local pids=()
    case $group in
      replicas) for ((i = 1; i <= replicas; i++)); do pid=$(pid_of "replica$i") && pids+=("$pid"); done ;;
      *) pid=$(pid_of "$group") && pids+=("$pid") ;;
    esac
    [ ${#pids[@]} -gt 0 ] || continue
    kill -TERM "${pids[@]}" 2>/dev/null || true
    waited=0
    while ((waited < limit)); do
      local any=0
      for pid in "${pids[@]}"; do alive "$pid" && any=1; done
      [ $any -eq 1 ] || break
      sleep 0.1
      waited=$((waited + 1))
    done
    for pid in "${pids[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
  done
  for name in $(component_names); do rm -f "$state/$name.pid"; done
  rm -f "$state/ready"
}

cmd_run() {
  command -v curl >/dev/null 2>&1 || die "curl is needed (readiness checks)"
  local haproxy bin i name pid
  haproxy=$(find_haproxy)
  bin=$(find_ssegate)
  mkdir -p "$state"
  if pid=$(pid_of supervisor) && [ "$pid" != "$$" ]; then die "already running (supervisor pid $pid); scripts/cluster.sh stop"; fi
  rm -f "$state/ready"
  echo $$ >"$state/supervisor.pid"
  trap 'trap - TERM INT HUP; say "stopping"; stop_components; rm -f "$state/supervisor.pid"; exit 0' TERM INT HUP
  trap 'stop_components; rm -f "$state/supervisor.pid"' EXIT
  write_configs
  "$haproxy" -c -q -f "$state/haproxy.cfg" || die "haproxy rejected $state/haproxy.cfg"

  spawn "$state/origin.log" "$bin" origin --host "$host" --port "$origin_port" --rate "$rate" --payload "$payload"
  echo $! >"$state/origin.pid"
  wait_port origin $! "$origin_port" 10
  for ((i = 1; i <= replicas; i++)); do
    spawn "$state/replica$i.log" "$bin" serve --config "$state/replica$i.yaml"
    echo $! >"$state/replica$i.pid"
  done
  for ((i = 1; i <= replicas; i++)); do
    wait_ready "replica$i" "$(cat "$state/replica$i.pid")" "http://$host:${admin_ports[i - 1]}/readyz" 20
  done
  spawn "$state/haproxy.log" "$haproxy" -f "$state/haproxy.cfg" -db
  echo $! >"$state/haproxy.pid"
  wait_ready haproxy $! "http://$host:$stats_port/" 10
  touch "$state/ready"
  print_urls

  # Supervise: report each exit (a replica killed by hand stays down: that is the point of the demo).
  local reported=()
  while :; do
    local running=0
    for name in $(component_names); do
      if pid=$(pid_of "$name"); then
        running=1
      elif [ -f "$state/$name.pid" ] && [[ " ${reported[*]-} " != *" $name "* ]]; then
        say "$name (pid $(cat "$state/$name.pid")) exited; see $state/$name.log"
        reported+=("$name")
      fi
    done
    [ $running -eq 1 ] || break
    wait -n 2>/dev/null || sleep 1
  done
  say "every component has exited"
}

cmd_start() {
  local pid
  mkdir -p "$state"
  if pid=$(pid_of supervisor); then
    say "already running (supervisor pid $pid)"
    print_urls
    return 0
  fi
  command -v curl >/dev/null 2>&1 || die "curl is needed (readiness checks)"
  find_haproxy >/dev/null
  local bin
  bin=$(find_ssegate)
  rm -f "$state/ready"
  # Detached: its own session (no terminal signals), output to cluster.log.
  if command -v setsid >/dev/null 2>&1; then
    SSEGATE_BIN="$bin" nohup setsid bash "$self" run >"$state/cluster.log" 2>&1 </dev/null &
  else
    SSEGATE_BIN="$bin" nohup bash "$self" run >"$state/cluster.log" 2>&1 </dev/null &
  fi
  local sup=$! tries=600
  while ((tries-- > 0)); do
    if [ -f "$state/ready" ]; then
      cat "$state/cluster.log"
      return 0
    fi
    if ! alive "$sup" && ! pid_of supervisor >/dev/null; then
      cat "$state/cluster.log" >&2
      die "failed to start"
    fi
    sleep 0.1
  done
  die "not ready after 60s; see $state/cluster.log"
}

cmd_stop() {
  local pid tries
  if pid=$(pid_of supervisor); then
    kill -TERM "$pid"
    tries=$(($(to_ms "$shutdown_timeout") / 100 + 100))
    while alive "$pid" && ((tries-- > 0)); do sleep 0.1; done
  fi
  # Whatever the supervisor left (it was killed, say): the recorded pids, checked one by one.
  stop_components
  rm -f "$state/supervisor.pid"
  say "stopped"
}

cmd_status() {
  local name pid up=0
  for name in supervisor $(component_names); do
    if pid=$(pid_of "$name"); then
      printf '  %-11s running (pid %s)\n' "$name" "$pid"
      up=1
    else
      printf '  %-11s stopped\n' "$name"
    fi
  done
  if pid_of haproxy >/dev/null && command -v curl >/dev/null 2>&1; then
    echo "HAProxy's view of the replicas:"
    curl -fsS --max-time 2 "http://$host:$stats_port/;csv" 2>/dev/null |
      awk -F, '$1 == "replicas" && $2 != "BACKEND" { printf "  %-11s %s (%s streams)\n", $2, $18, $5 }'
  fi
  [ $up -eq 1 ]
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  run) cmd_run ;;
  restart)
    cmd_stop
    cmd_start
    ;;
  *)
    echo "usage: scripts/cluster.sh start|stop|status|run|restart" >&2
    exit 1
    ;;
esac
