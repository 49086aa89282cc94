#!/usr/bin/env bash
# Sets up and runs every libkotte test on a fresh Debian 12 machine:
#   - all C suites under AddressSanitizer + UndefinedBehaviorSanitizer,
#   - the threaded suites (runtime, facade, conformance, json_file) under
#     ThreadSanitizer, and kotte-server's end-to-end, robustness and
#     shutdown suites against its ThreadSanitizer build,
#   - the SIGKILL crash test of the json_file backend (200 kills),
#   - the install/packaging test (pkg-config and find_package consumers),
#   - the Kubernetes manifest validation (tests/k8s/run.sh),
#   - whatever tests/suites.d/*.sh add.
# Ends with "N passed, N failed" over the suites; exits non-zero on failure.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
bash tests/deps.sh test || { echo "dependency installation failed"; exit 1; }

passed=0 failed=0 failures=""
# Each suite's output is kept in a file and printed when it ends (a file,
# not a pipe to tee: a process a suite leaves behind cannot hold the run
# up); a failed suite's last lines are printed again at the end, where a CI
# log cut in the middle still shows them.
logs=$(mktemp -d /tmp/kotte-run-XXXXXX)
trap 'rm -rf "$logs"' EXIT
suite() { # name, command...
  local name=$1 rc; shift
  echo "=== $name"
  "$@" >"$logs/current" 2>&1
  rc=$?
  cat "$logs/current"
  if [ "$rc" -eq 0 ]; then passed=$((passed+1)); else
    failed=$((failed+1)); failures="$failures $name"
    { echo "--- $name (exit $rc), last lines:"; tail -n 30 "$logs/current"; } >>"$logs/failed"
  fi
}

build() { # dir, sanitizer, extra cmake args...
  local dir=$1 san=$2; shift 2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DKOTTE_SANITIZE="$san" "$@" >/dev/null &&
    cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; return 1; }
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

suite "build (ASan+UBSan)" build build-asan address,undefined -DKOTTE_BUILD_BENCH=ON
suite "C suites (ASan+UBSan)" ctest --test-dir build-asan --output-on-failure -j"$jobs"
suite "build (TSan)" build build-tsan thread -DKOTTE_BUILD_BENCH=OFF
suite "threaded suites (TSan)" ctest --test-dir build-tsan --output-on-failure \
  -R '^(runtime|session_conformance|json_file|query_registry|server_e2e|server_robustness|server_shutdown)$'
suite "packaging" bash tests/packaging/run.sh
suite "kubernetes manifests" bash tests/k8s/run.sh

# Further areas (PostgreSQL, Python, the example server) add their suites as
# tests/suites.d/NN-name.sh, sourced here in order; they may call `suite`
# and use build-asan / build-tsan.
for extra in tests/suites.d/*.sh; do
  [ -e "$extra" ] || continue
  # shellcheck source=/dev/null
  . "$extra"
done

echo
[ -s "$logs/failed" ] && { echo "=== failures again"; cat "$logs/failed"; echo; }
[ -z "$failures" ] || echo "failed suites:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
