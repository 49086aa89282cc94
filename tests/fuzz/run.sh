#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan + UBSan) and fuzzes the
# journal loader, the JSON merge and the id validator for a bounded time,
# starting from the seed corpus in tests/fuzz/corpus (a valid journal among
# them). Usage: bash tests/fuzz/run.sh [SECONDS]  (default 30)
set -eu
secs=${1:-30}
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
"$root/build-fuzz/tests/fuzz_store" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=8192 \
  -print_final_stats=1 "$work" >fuzz.log 2>&1 || { tail -40 fuzz.log; echo "0 passed, 1 failed"; exit 1; }
grep -E "stat::number_of_executed_units|Done" fuzz.log | tail -2
echo "1 passed, 0 failed"
