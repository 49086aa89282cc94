# Python binding and the Kotte drop-in (bindings/python). Sourced by
# tests/run.sh (uses `suite` and $jobs):
#   - builds the SWIG module with CMake in build-py (Debian's /usr/bin/python3),
#   - runs bindings/python/tests with pytest against the memory, json_file and
#     postgresql backends (a throw-away PostgreSQL from tests/pg/pg.sh),
#   - installs ./bindings/python with pip, offline, for Debian's python3 and
#     for every other CPython >= 3.11 found with headers (pyenv's, /usr/local).
kpy_python=/usr/bin/python3

kpy_build() {
  mkdir -p build-py
  cmake -S . -B build-py -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKOTTE_BUILD_PYTHON=ON \
    -DKOTTE_BUILD_TESTS=OFF -DKOTTE_BUILD_BENCH=OFF -DKOTTE_BUILD_EXAMPLES=OFF \
    -DPython3_EXECUTABLE="$kpy_python" >build-py/configure.log 2>&1 &&
    cmake --build build-py -j"$jobs" --target kotte_python >build-py/build.log 2>&1 ||
    { tail -40 build-py/configure.log build-py/build.log; return 1; }
}

suite "python: build (SWIG, CMake)" kpy_build

kpy_pytest() { # KOTTE_TEST_REQUIRE_PG value
  # test_mixed_replicas.py runs the ASan+UBSan kotte-server beside a Python replica
  env KOTTE_TEST_REQUIRE_PG="$1" PYTHONPATH="$PWD/build-py/bindings/python" \
    KOTTE_SERVER_BIN="$PWD/build-asan/examples/kotte-server/kotte-server" KOTTE_TEST_REQUIRE_SERVER=1 \
    timeout 900 "$kpy_python" -m pytest bindings/python/tests
}

if [ -f tests/pg/pg.sh ] && kpy_pg_env=$(bash tests/pg/pg.sh start 2>&1); then
  eval "$kpy_pg_env"
  # Once the binding has the postgresql backend, skipping its tests is a failure.
  kpy_require_pg=0
  "$kpy_python" -c 'import sys; sys.path.insert(0, "build-py/bindings/python")
from libkotte import capi; sys.exit(0 if hasattr(capi, "kotte_session_backend_postgresql_new") else 1)' \
    2>/dev/null && kpy_require_pg=1
  suite "python: pytest (memory, json_file, postgresql)" kpy_pytest $kpy_require_pg
  bash tests/pg/pg.sh stop "$KOTTE_TEST_PG_DIR"
  unset KOTTE_TEST_PG_DIR KOTTE_TEST_PG_PORT KOTTE_TEST_PG_BIN KOTTE_TEST_PG_CONNINFO \
    KOTTE_TEST_PG_OWNER_CONNINFO KOTTE_TEST_PG_SUPER_CONNINFO
else
  [ -f tests/pg/pg.sh ] && { echo "${kpy_pg_env:-}"; suite "python: PostgreSQL server start" false; }
  suite "python: pytest (memory, json_file; no PostgreSQL)" kpy_pytest 0
fi

suite "python: pip install (Debian python3)" \
  bash bindings/python/tests/pip_install.sh "$kpy_python"

# Other interpreters: any CPython >= 3.11 with headers and venv/ensurepip.
for kpy_other in $(ls -d /root/.pyenv/versions/3.1[1-9]*/bin/python3 /usr/local/bin/python3.1[1-9] \
                     /usr/bin/python3.1[2-9] 2>/dev/null | sort -u); do
  if "$kpy_other" - <<'PY' 2>/dev/null
import sys, sysconfig, os, importlib.util
ok = sys.version_info >= (3, 11) and sys.implementation.name == "cpython"
ok = ok and os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
ok = ok and importlib.util.find_spec("ensurepip") is not None
sys.exit(0 if ok else 1)
PY
  then :; else
    echo "=== python: $kpy_other skipped (not a CPython >= 3.11 with headers and ensurepip)"
    continue
  fi
  [ "$(readlink -f "$kpy_other")" = "$(readlink -f "$kpy_python")" ] && continue
  suite "python: pip install ($("$kpy_other" -c 'import sys; print("CPython", sys.version.split()[0])'))" \
    bash bindings/python/tests/pip_install.sh "$kpy_other"
done
unset kpy_python kpy_pg_env kpy_require_pg kpy_other
unset -f kpy_build kpy_pytest
