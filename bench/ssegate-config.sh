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

# An `auth:` block for the feed printed just before (bench/auth.sh, bench/run.sh --auth).
bench_auth() {  # $1 none|es256|rs256|forward, $2 folder of the public keys (bench/jwt.py keys), $3 forward auth URL
    case "$1" in
        none) ;;
        es256|rs256) cat <<YAML
    auth:
      mode: jwt
      jwt:
        keys:
          - { file: $2/$1.pub, alg: ${1^^}, kid: bench-$1 }
YAML
        ;;
        forward) cat <<YAML
    auth:
      mode: forward
      forward:
        url: $3
        ttl: 5m
YAML
        ;;
        *) echo "bench_auth: unknown mode '$1'" >&2; return 1 ;;
    esac
}
