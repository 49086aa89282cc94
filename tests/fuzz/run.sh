#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes them for
# a bounded time, each from its seed corpus in tests/fuzz/corpus/TARGET:
#   store    the journal loader, the JSON merge and the id validator;
#   http     whole byte streams through kotte-server's HTTP layer and router
#            on a loopback connection (split writes, pipelining, half-close,
#            resets, chunked bodies with trailers), stores on memory;
#   request  the cookie, CSRF header and JSON body readers of kotte-server.
# Usage:
#   bash tests/fuzz/run.sh [SECONDS] [TARGET...]
#        explore each target for SECONDS (default 30), a new random seed each
#        time; all targets unless named
#   bash tests/fuzz/run.sh --runs N SEED [TARGET...]
#        exactly N inputs from seed SEED per target: the same inputs on every
#        machine
# The test suite uses the second form, so that CI is reproducible: a run
# that passes here passes there. Exploring (the first form) is for finding
# new bugs; a crash it finds is printed with the input that made it (add
# that input to the target's corpus with the fix).
set -eu
secs=30
limit=""
if [ "${1:-}" = --runs ]; then
  limit="-runs=${2:?runs} -seed=${3:?seed}"
  shift 3
elif [ -n "${1:-}" ] && [ "${1#*[!0-9]}" = "$1" ]; then
  secs=$1
  shift
fi
[ -n "$limit" ] || limit="-max_total_time=$secs"
targets=${*:-store http request}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v clang >/dev/null && [ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null 2>&1 ||
    apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
}
# The examples are built for kotte-server's objects (fuzz_http, fuzz_request).
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DKOTTE_FUZZ=ON \
  -DKOTTE_SANITIZE=address,undefined,fuzzer-no-link -DKOTTE_BUILD_BENCH=OFF -DKOTTE_BUILD_EXAMPLES=ON >/dev/null
build_targets=""
for t in $targets; do
  [ -d "tests/fuzz/corpus/$t" ] || { echo "unknown fuzz target: $t"; exit 2; }
  build_targets="$build_targets --target fuzz_$t"
done
# shellcheck disable=SC2086 # one --target per word
cmake --build build-fuzz $build_targets -j"$(nproc)" >build-fuzz/build.log 2>&1 || { tail -30 build-fuzz/build.log; exit 1; }
work=$(mktemp -d /tmp/kotte-fuzz-XXXXXX)
# only this run's folder: another run's files (a fuzzer's journal among
# them) are that run's
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
for t in $targets; do
  mkdir -p "$work/$t/corpus"
  cp tests/fuzz/corpus/"$t"/* "$work/$t/corpus/"
  # The http target sends up to 16 KiB (its server's limits are lower, so
  # the limits are reached); -timeout: a connection that never ends is a hang.
  case $t in
    http) opts="-max_len=16384 -timeout=20" ;;
    *) opts="-max_len=8192" ;;
  esac
  # detect_leaks stays on; -rss_limit guards against runaway inputs.
  # shellcheck disable=SC2086 # $limit and $opts are several options
  if (cd "$work/$t" && KOTTE_FUZZ_DIR="$work/$t" "$root/build-fuzz/tests/fuzz_$t" $limit $opts -rss_limit_mb=2048 \
        -print_final_stats=1 corpus >fuzz.log 2>&1); then
    echo "fuzz_$t: $(grep -E "^INFO: Seed:" "$work/$t/fuzz.log" | head -1)," \
      "$(grep -E "stat::number_of_executed_units" "$work/$t/fuzz.log" | tail -1)"
    passed=$((passed + 1))
  else
    echo "fuzz_$t FAILED:"
    tail -40 "$work/$t/fuzz.log"
    for crash in "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/oom-* "$work/$t"/timeout-*; do
      [ -e "$crash" ] && { echo "input ($crash), base64:"; base64 -w0 "$crash"; echo; }
    done
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
