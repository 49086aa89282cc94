#!/usr/bin/env bash
# The main job: installs the build dependencies, builds libkotte and runs
# the example on the embedded default backend (json_file under ./data).
set -eu
cd "$(dirname "$0")/.."
bash tests/deps.sh build
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKOTTE_BUILD_TESTS=OFF -DKOTTE_BUILD_BENCH=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
exec ./build-release/examples/session-demo/kotte-session-demo "$@"
