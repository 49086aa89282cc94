#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan + UBSan) and fuzzes the
# journal loader, the JSON merge and the id validator for a bounded time,
# starting from the seed corpus in tests/fuzz/corpus (a valid journal among
# them). Usage:
#   bash tests/fuzz/run.sh [SECONDS]      explore for SECONDS (default 30),
#                                         a new random seed each time
#   bash tests/fuzz/run.sh --runs N SEED  exactly N inputs from seed SEED:
#                                         the same inputs on every machine
# The test suite uses the second form, so that CI is reproducible: a run
# that passes here passes there. Exploring (the first form) is for finding
# new bugs; a crash it finds is printed with the input that made it.
set -eu
secs=${1:-30}
limit="-max_total_time=$secs"
if [ "${1:-}" = --runs ]; then
  limit="-runs=${2:?runs} -seed=${3:?seed}"
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v clang >/dev/null && [ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null 2>&1 ||
    apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DKOTTE_FUZZ=ON \
  -DKOTTE_SANITIZE=address,undefined,fuzzer-no-link -DKOTTE_BUILD_BENCH=OFF -DKOTTE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz --target fuzz_store -j"$(nproc)" >build-fuzz/build.log 2>&1 || { tail -30 build-fuzz/build.log; exit 1; }
work=$(mktemp -d /tmp/kotte-fuzz-XXXXXX)
trap 'rm -rf "$work" /tmp/kotte-fuzz-*.journal*' EXIT
cp tests/fuzz/corpus/* "$work/"
cd "$work"
# detect_leaks stays on; -rss_limit guards against runaway inputs.
# shellcheck disable=SC2086 # $limit is one or two options
"$root/build-fuzz/tests/fuzz_store" $limit -rss_limit_mb=2048 -max_len=8192 \
  -print_final_stats=1 "$work" >fuzz.log 2>&1 || {
  tail -40 fuzz.log
  for crash in "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-*; do
    [ -e "$crash" ] && { echo "input ($crash), base64:"; base64 -w0 "$crash"; echo; }
  done
  echo "0 passed, 1 failed"
  exit 1
}
grep -E "^INFO: Seed:|stat::number_of_executed_units|Done" fuzz.log | tail -3
echo "1 passed, 0 failed"
