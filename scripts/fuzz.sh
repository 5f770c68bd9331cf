#!/usr/bin/env bash
# Builds the libFuzzer targets (the separate package in Fuzz/) and runs one:
#
#   scripts/fuzz.sh TARGET [SECONDS]     # SECONDS defaults to 60
#   scripts/fuzz.sh list                 # the targets
#
# TARGET is one of FuzzSSEParser, FuzzConfig, FuzzRequestHead, FuzzCompositeID, FuzzProxyHeader. The run
# starts from the seeds in Fuzz/corpus/TARGET (committed) with the tokens in Fuzz/dict/TARGET.dict, and keeps
# what it finds new in Fuzz/.work/TARGET (not committed). A crash or a failed check exits non-zero and leaves
# its input in Fuzz/crashes/TARGET-crash-…; replay it with `Fuzz/.build/release/TARGET Fuzz/crashes/…`.
# Installs nothing: the fuzzer runtime comes with the Swift toolchain. SSEGATE_FUZZ_JOBS=N runs N fuzzer
# processes at once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
targets=(FuzzSSEParser FuzzConfig FuzzRequestHead FuzzCompositeID FuzzProxyHeader)

usage() {
  echo "usage: $0 TARGET [SECONDS]   (TARGET: ${targets[*]})" >&2
  exit 2
}
[ $# -ge 1 ] || usage
if [ "$1" = list ]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
target=$1
seconds=${2:-60}
[[ " ${targets[*]} " == *" $target "* ]] || usage
[[ "$seconds" =~ ^[0-9]+$ ]] || usage

# -sanitize=fuzzer instruments every module (the gateway's too: that is the coverage libFuzzer steers by);
# -enable-testing lets the targets call the gateway's internal parsers; lld, because SwiftPM links executables
# with `--defsym main=<Module>_main`, which gold rejects next to the fuzzer runtime's own `main`.
flags=(-c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld)
cd "$root/Fuzz"
start=$(date +%s)
swift build "${flags[@]}" --product "$target" 2>&1 | grep -v "Cannot export local symbol" | tail -n 5
echo "fuzz build of $target: $(($(date +%s) - start)) s"
binary="$(swift build "${flags[@]}" --show-bin-path)/$target"

work="$root/Fuzz/.work/$target"
mkdir -p "$work" "$root/Fuzz/crashes"
log="$root/Fuzz/.work/$target.log"
options=(
  "$work" "$root/Fuzz/corpus/$target"
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096
  -print_final_stats=1 -artifact_prefix="$root/Fuzz/crashes/$target-"
)
if [ -f "$root/Fuzz/dict/$target.dict" ]; then
  options+=(-dict="$root/Fuzz/dict/$target.dict")
fi
if [ "${SSEGATE_FUZZ_JOBS:-1}" -gt 1 ]; then
  options+=(-fork="$SSEGATE_FUZZ_JOBS")
fi
set +e
"$binary" "${options[@]}" >"$log" 2>&1
status=$?
set -e
if [ "$status" -ne 0 ]; then
  # The failed check or sanitizer report, and the input that caused it.
  grep -v -E "^#[0-9]+" "$log" | tail -n 40
  echo "fuzz: $target FAILED (exit $status); log $log; input kept in Fuzz/crashes/" >&2
  exit "$status"
fi
# libFuzzer's summary: runs, executions per second, coverage, corpus.
grep -E "^#[0-9]+.*(DONE|pulse)" "$log" | tail -n 1 || true
grep -E "^Done [0-9]+ runs|^stat::" "$log" || true
echo "fuzz: $target passed $seconds s; log $log"
