#!/usr/bin/env bash
# Installs libkotte into a temporary prefix and builds and runs a consumer
# from it: with pkg-config (shared and static) and with find_package(kotte)
# (shared and static). Prints "N passed, N failed".
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/kotte-pkg-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, command...
  local name=$1; shift
  if "$@" >"$work/$name.log" 2>&1; then echo "ok   packaging: $name"; pass=$((pass+1))
  else echo "FAIL packaging: $name"; sed 's/^/     /' "$work/$name.log" | tail -20; fail=$((fail+1)); fi
}
prefix=$work/prefix
check install bash -c "cmake -S '$src' -B '$work/build' -DCMAKE_BUILD_TYPE=Release \
  -DKOTTE_BUILD_TESTS=OFF -DKOTTE_BUILD_BENCH=OFF -DKOTTE_BUILD_EXAMPLES=ON -DKOTTE_BUILD_PYTHON=OFF \
  -DCMAKE_INSTALL_PREFIX='$prefix' && cmake --build '$work/build' -j2 && cmake --install '$work/build'"
libdir=$(ls -d "$prefix"/lib*/ 2>/dev/null | head -1)
libdir=${libdir%/}
export PKG_CONFIG_PATH="$libdir/pkgconfig"
check soname bash -c "readelf -d '$libdir/libkotte.so' | grep -q 'SONAME.*libkotte.so.0'"
check exports-only-api bash -c "! nm -D --defined-only '$libdir/libkotte.so' | awk '{print \$3}' | grep -v '^kotte_[a-z]' | grep -v '^_' | grep -q ."
# The static archive cannot hide anything: every global symbol in it is
# either the API or private with the kotte__ prefix, so none collides with
# a name of the program that links it (tests/packaging/globals.sh). The
# same rule on the shared object (where exports-only-api above is stricter
# still: not even kotte__ is exported).
check static-globals-prefixed bash "$src/tests/packaging/globals.sh" "$libdir/libkotte.a"
check shared-globals-prefixed bash "$src/tests/packaging/globals.sh" "$libdir/libkotte.so"
check pkg-config-shared bash -c "cc '$src/tests/packaging/consumer.c' -o '$work/c1' \$(pkg-config --cflags --libs kotte) \
  -Wl,-rpath,'$libdir' && '$work/c1'"
# Debian ships no static libpq dependencies (pgcommon, gssapi), so the
# static archive is linked against the shared builds of its dependencies.
check pkg-config-static-archive bash -c "cc '$src/tests/packaging/consumer.c' -o '$work/c2' \$(pkg-config --cflags kotte) \
  '$libdir/libkotte.a' \$(pkg-config --libs libuv libsodium libcjson libpq) -lpthread && '$work/c2'"
# The installed programs start from the temporary prefix, which is outside
# the loader's path, with no LD_LIBRARY_PATH: they find libkotte.so through
# their install RPATH ($ORIGIN/../lib). Every program in bin/ is run.
check installed-programs-start bash -c "set -e; n=0
  for p in '$prefix'/bin/*; do n=\$((n+1)); name=\$(basename \"\$p\")
    case \$name in
      kotte-server) out=\$(env -u LD_LIBRARY_PATH \"\$p\" --version 2>&1); echo \"\$out\"
        case \$out in *'libkotte '*) ;; *) echo \"\$name --version: no version\"; exit 1;; esac ;;
      kotte-migrate) out=\$(env -u LD_LIBRARY_PATH \"\$p\" --help 2>&1) || true; echo \"\$out\"
        case \$out in *usage:*) ;; *) echo \"\$name --help: no usage\"; exit 1;; esac ;;
      *) echo \"\$name: installed, but this test does not know how to run it\"; exit 1 ;;
    esac
  done
  [ \$n -ge 2 ] || { echo 'kotte-server and kotte-migrate not installed'; exit 1; }"
check find-package bash -c "cmake -S '$src/tests/packaging' -B '$work/consumer' -DCMAKE_PREFIX_PATH='$prefix' \
  -DCMAKE_BUILD_RPATH='$libdir' && cmake --build '$work/consumer' && '$work/consumer/consumer_shared' \
  && '$work/consumer/consumer_static'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
