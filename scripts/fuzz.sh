#!/usr/bin/env bash
# Builds the libFuzzer targets (the separate package in Fuzz/, one executable `ssegate-fuzz`) and runs them:
#
#   scripts/fuzz.sh TARGET [SECONDS]     # one target; SECONDS defaults to 60
#   scripts/fuzz.sh all [SECONDS]        # every target in turn, SECONDS each, after one build (what CI runs)
#   scripts/fuzz.sh build                # only the build
#   scripts/fuzz.sh list                 # the targets
#
# TARGET is one of FuzzSSEParser, FuzzConfig, FuzzRequestHead, FuzzCompositeID, FuzzProxyHeader. A run
# starts from the seeds in Fuzz/corpus/TARGET (committed) with the tokens in Fuzz/dict/TARGET.dict, and keeps
# what it finds new in Fuzz/.work/TARGET (not committed). A crash or a failed check exits non-zero, prints the
# path of the input that caused it (Fuzz/crashes/TARGET-crash-…) and its bytes in base64 (a CI machine's files
# are gone after the run); replay it with `Fuzz/.build/release/ssegate-fuzz --target=TARGET FILE`.
# Installs nothing: the fuzzer runtime comes with the Swift toolchain. SSEGATE_FUZZ_JOBS=N runs N fuzzer
# processes at once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
targets=(FuzzSSEParser FuzzConfig FuzzRequestHead FuzzCompositeID FuzzProxyHeader)

usage() {
  echo "usage: $0 TARGET|all [SECONDS] | build | list   (TARGET: ${targets[*]})" >&2
  exit 2
}
[ $# -ge 1 ] || usage
if [ "$1" = list ]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
what=$1
seconds=${2:-60}
[[ "$what" = all || "$what" = build || " ${targets[*]} " == *" $what "* ]] || usage
[[ "$seconds" =~ ^[0-9]+$ ]] || usage

# -sanitize=fuzzer instruments every Swift module (the gateway's too: that is the coverage libFuzzer steers by);
# -enable-testing lets the targets call the gateway's internal parsers; lld, because SwiftPM links executables
# with `--defsym main=<Module>_main`, which gold rejects next to the fuzzer runtime's own `main`. Release: a
# run makes several times more executions per second than a debug build would. Fuzz/.build is this package's
# own build directory, never the gateway's .build.
flags=(-c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld)
cd "$root/Fuzz"
build() {
  local start
  start=$(date +%s)
  # SwiftPM does not notice that the gateway's own manifest (a dependency by path) gained a target: with a
  # build plan older than it, the build fails with "no such module". Planning again keeps the objects.
  if [ -f .build/release.yaml ] && [ "$root/Package.swift" -nt .build/release.yaml ]; then
    rm -f .build/release.yaml
  fi
  # One product holds every target: one invocation, one link, and nothing else of the gateway's package.
  if ! swift build "${flags[@]}" --product ssegate-fuzz 2>&1 | grep -v "Cannot export local symbol" | tail -n 30; then
    echo "fuzz: build FAILED" >&2
    exit 1
  fi
  echo "fuzz build: $(($(date +%s) - start)) s"
  binary="$(swift build "${flags[@]}" --show-bin-path)/ssegate-fuzz"
}

# Runs one target for `seconds`; returns libFuzzer's status.
run() {
  local target=$1 work="$root/Fuzz/.work/$1" log="$root/Fuzz/.work/$1.log" status
  mkdir -p "$work" "$root/Fuzz/crashes"
  local options=(
    --target="$target" "$work" "$root/Fuzz/corpus/$target"
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
  # Swift's own backtracer off: on a trap its memory-reading thread trips AddressSanitizer, whose report
  # ("unknown-crash" on a wild pointer) then hides the real failure; libFuzzer's report is demangled below.
  SWIFT_BACKTRACE=enable=no "$binary" "${options[@]}" >"$log" 2>&1
  status=$?
  set -e
  if [ "$status" -ne 0 ]; then
    # The failed check or sanitizer report, then the input that caused it: its path and its bytes.
    grep -v -E "^#[0-9]+" "$log" | tail -n 40 | swift demangle --simplified
    local input
    input=$(sed -n -E "s/.*Test unit written to (.*)$/\1/p" "$log" | tail -n 1)
    echo "fuzz: $target FAILED (exit $status); log $log" >&2
    if [ -n "$input" ]; then
      echo "fuzz: crashing input: $input" >&2
      echo "fuzz: replay: $binary --target=$target $input" >&2
      echo "fuzz: input (base64): $(base64 -w 0 "$input")" >&2
    fi
    return "$status"
  fi
  # libFuzzer's summary: runs, executions per second, coverage, corpus.
  grep -E "^#[0-9]+.*DONE" "$log" | tail -n 1 || true
  grep -E "^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec)" "$log" || true
  echo "fuzz: $target passed $seconds s; log $log"
}

build
case "$what" in
  build) ;;
  all)
    # Every target, even after one fails, so one run reports every crash; fails if any failed.
    failed=()
    for target in "${targets[@]}"; do
      start=$(date +%s)
      run "$target" || failed+=("$target")
      echo "fuzz: $target took $(($(date +%s) - start)) s"
    done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzz: FAILED: ${failed[*]} (inputs in $root/Fuzz/crashes/)" >&2
      exit 1
    fi
    ;;
  *) run "$what" ;;
esac
