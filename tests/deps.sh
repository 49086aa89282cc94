#!/usr/bin/env bash
# Installs what libkotte builds and tests with, from Debian 12's packages.
# Idempotent; needs root (or sudo). Usage: bash tests/deps.sh [build|test]
set -eu
what=${1:-test}
pkgs="build-essential cmake pkg-config libuv1-dev libsodium-dev libcjson-dev libpq-dev uthash-dev libhttp-parser-dev libssl-dev"
if [ "$what" = test ]; then
  # Areas add their test packages as tests/deps.d/NAME.txt (one a line, # comments).
  extra=$(cat "$(dirname "$0")"/deps.d/*.txt 2>/dev/null | sed 's/#.*//' | tr -s ' \n' ' ')
  pkgs="$pkgs libcmocka-dev binutils $extra"
fi
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $pkgs 2>/dev/null | awk '$NF != "installed" {print $1}' || true)
# dpkg-query prints nothing for packages it has never heard of: count those too.
for p in $pkgs; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$(echo $missing)" ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
