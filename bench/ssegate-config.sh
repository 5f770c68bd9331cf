# Sourced by bench/run.sh and bench/compare.sh: the ssegate configuration both benchmark with.

# The gateway's settings: listener, admin, no client limit. Feeds follow (bench_feed).
bench_gateway_config() {  # $1 listen port, $2 admin port
    cat <<YAML
log_level: warning
listen:
  - address: 127.0.0.1:$1
admin:
  address: 127.0.0.1:$2
shutdown_timeout: 2s
limits:
  max_clients: 1000000
feeds:
YAML
}

# One feed, connected at start, from an origin on 127.0.0.1.
bench_feed() {  # $1 name, $2 path, $3 origin port
    cat <<YAML
  - name: $1
    path: $2
    upstream:
      url: http://127.0.0.1:$3/feed
    connect: always
YAML
}
