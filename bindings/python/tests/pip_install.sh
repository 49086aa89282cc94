#!/usr/bin/env bash
# Installs ./bindings/python with pip into a fresh virtual environment of the
# given interpreter and checks the installed package from outside the source
# tree. Offline (--no-index): the in-tree build backend needs no package.
#
#   bash bindings/python/tests/pip_install.sh /usr/bin/python3
set -euo pipefail
py=$1; shift
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$py" -m venv "$work/venv"
vpy=$work/venv/bin/python
"$vpy" -m pip install -q --no-index "$root/bindings/python" >"$work/pip.log" 2>&1 ||
  { tail -40 "$work/pip.log"; exit 1; }
cd "$work"
"$vpy" - <<'PY'
import asyncio, sys, sysconfig
import libkotte
from libkotte import SessionStore, NotFoundError, BadIdError
assert libkotte.__file__.startswith(sysconfig.get_paths()["purelib"].rsplit("/lib/", 1)[0]), libkotte.__file__
with SessionStore("json_file", "sessions.journal", secret=b"pip-install-test-secret") as st:
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
