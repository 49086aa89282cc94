#!/usr/bin/env bash
# Installs ./bindings/python with pip into a fresh virtual environment of the
# given interpreter and checks the installed package from outside the source
# tree. Offline: the build uses the interpreter's own setuptools and wheel
# (--no-build-isolation --no-index); for a venv without wheel, Debian's
# python3-wheel-whl provides it.
#
#   bash bindings/python/tests/pip_install.sh /usr/bin/python3 [--system-site-packages]
set -euo pipefail
py=$1; shift
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$py" -m venv "$@" "$work/venv"
vpy=$work/venv/bin/python
if ! "$vpy" -c 'import setuptools' 2>/dev/null; then
  echo "pip_install.sh: $py has no setuptools (and no package index is reachable)" >&2
  exit 1
fi
if ! "$vpy" -c 'import wheel' 2>/dev/null; then
  whl=$(ls /usr/share/python-wheels/wheel-*.whl 2>/dev/null | head -1)
  [ -n "$whl" ] || { echo "pip_install.sh: no wheel package for $py" >&2; exit 1; }
  "$vpy" -m pip install -q --no-index "$whl"
fi
"$vpy" -m pip install -q --no-build-isolation --no-index "$root/bindings/python" >"$work/pip.log" 2>&1 ||
  { tail -40 "$work/pip.log"; exit 1; }
cd "$work"
"$vpy" - <<'PY'
import asyncio, sys, sysconfig
import libkotte
from libkotte import SessionStore, NotFoundError, BadIdError
assert libkotte.__file__.startswith(sysconfig.get_paths()["purelib"].rsplit("/lib/", 1)[0]), libkotte.__file__
with SessionStore("json_file", "sessions.journal") as st:
    s = st.create("alice", {"a": 1})
    assert st.get(s.id).data == {"a": 1}
    async def main():
        got = await asyncio.gather(*(st.aio.get(s.id) for _ in range(100)))
        assert {g.id for g in got} == {s.id}
    asyncio.run(main())
    try:
        st.get("bad")
    except BadIdError:
        pass
    st.delete(s.id)
    try:
        st.get(s.id)
        raise SystemExit("deleted session still readable")
    except NotFoundError:
        pass
import libkotte.kotte
print(f"pip install ok: Python {sys.version.split()[0]} ({sys.executable}), libkotte {libkotte.__version__}")
PY
