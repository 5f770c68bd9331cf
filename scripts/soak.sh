#!/usr/bin/env bash
# The chaos soak (scripts/soak.py): two replicas behind HAProxy, a misbehaving origin, 50 normal clients
# that must get every event exactly once and in order, for MINUTES (default 2, what .ci/run runs).
#   scripts/soak.sh [MINUTES] [soak.py options: --clients N --rate R --plot docs/soak-rss.png --seed S]
# Uses .build/debug/ssegate (built if missing; SSEGATE_BIN overrides) and the Debian haproxy package.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
minutes=${1:-2}
shift || true
bin=${SSEGATE_BIN:-$root/.build/debug/ssegate}
if [ ! -x "$bin" ]; then
  (cd "$root" && swift build --product ssegate)
fi
exec python3 "$root/scripts/soak.py" --minutes "$minutes" --binary "$bin" "$@"
