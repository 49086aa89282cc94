"""Kotte's real graph routes on two replicas of its real backend (issue 16).

Runs only where both are at hand, and says which is missing otherwise:

* Apache AGE in the test PostgreSQL (tests/pg/pg.sh creates the extension
  in database ``kotte`` when the server has it; CI's Debian PostgreSQL has
  not, AGE is built from source for local checks only);
* Kotte's backend with the libraries it needs (pydantic 2, its FastAPI and
  Starlette): the cache of the acceptance harness kotte-suite.sh, named by
  ``KOTTE_SUITE_DIR``, run with ``KOTTE_SUITE_PYTHON`` (default: python3 on
  PATH). Without uvicorn there, Debian's (python3-uvicorn) is borrowed.

Connect on replica A, then the graph list and graph metadata routes
alternating A/B/A/B: B re-opens the connection with Kotte's own
``DatabaseConnection`` (its ``LOAD 'age'`` and ``search_path``) and answers
as A does. (Kotte's ``queries/execute`` calls ``cypher(text, text)``, which
no AGE release defines, so it is not among them.)
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import child_env, env_of, pg_connect_kwargs, require_pg, settings_for
from replicas import replicas

GRAPH = "libkotte_follow_social"


def _super_sql(database: str, *statements: str) -> list[Any]:
    import asyncio

    import asyncpg

    async def run() -> list[Any]:
        kw = pg_connect_kwargs(os.environ["KOTTE_TEST_PG_SUPER_CONNINFO"])
        conn = await asyncpg.connect(**{**kw, "database": database})
        try:
            return [await conn.fetch(s) for s in statements]
        finally:
            await conn.close()

    return asyncio.run(run())


def _kotte_backend(tmp: Path) -> tuple[str, str, str]:
    """(backend dir, PYTHONPATH, python) of Kotte's real backend, or skip."""
    cache = os.environ.get("KOTTE_SUITE_DIR")
    if not cache:
        pytest.skip("Kotte's real backend is not here: set KOTTE_SUITE_DIR to the cache of "
                    "kotte-suite.sh (after one run of it) to test Kotte's graph routes")
    backends = sorted(glob.glob(os.path.join(cache, "kotte-*", "backend")))
    vendor = os.path.join(cache, "vendor")
    debs = os.path.join(cache, "debroot", "usr", "lib", "python3", "dist-packages")
    if not backends or not os.path.isdir(vendor):
        pytest.skip(f"{cache} holds no Kotte backend and vendored libraries (run kotte-suite.sh)")
    python = os.environ.get("KOTTE_SUITE_PYTHON") or shutil.which("python3") or sys.executable
    paths = [vendor, debs]
    probe = "import uvicorn"
    if subprocess.run([python, "-c", probe], env=child_env(PYTHONPATH=os.pathsep.join(paths)),
                      capture_output=True).returncode != 0:
        shim = tmp / "uvicorn-shim"
        shim.mkdir()
        for mod in ("uvicorn", "asgiref"):
            src = Path("/usr/lib/python3/dist-packages") / mod
            if not src.is_dir():
                pytest.skip(f"no uvicorn for {python} (and no Debian python3-uvicorn to borrow)")
            (shim / mod).symlink_to(src)
        paths.insert(0, str(shim))
    own = [p for p in sys.path if p and Path(p, "libkotte").is_dir()]
    pythonpath = os.pathsep.join(own + paths)
    check = subprocess.run([python, "-c", "import pydantic, uvicorn, libkotte.kotte, psycopg_pool;"
                            "assert pydantic.VERSION.startswith('2')"],
                           env=child_env(PYTHONPATH=pythonpath), capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"{python} cannot run Kotte's backend with this libkotte: "
                    f"{check.stderr.strip().splitlines()[-1:]}")
    return backends[-1], pythonpath, python


@pytest.fixture
def age_graph():
    require_pg()
    if not _super_sql("kotte", "SELECT 1 FROM pg_extension WHERE extname = 'age'")[0]:
        pytest.skip("Apache AGE is not installed in the test PostgreSQL: Kotte's real graph "
                    "routes are not run (the stand-in tests cover the follow)")
    prep = ["LOAD 'age'", 'SET search_path = ag_catalog, "$user", public']
    _super_sql("kotte", *prep,
               f"SELECT drop_graph('{GRAPH}', true) FROM ag_graph WHERE name = '{GRAPH}'",
               f"SELECT create_graph('{GRAPH}')",
               f"SELECT * FROM cypher('{GRAPH}', $$ CREATE (:Person {{name: 'Ada'}})"
               f"-[:KNOWS]->(:Person {{name: 'Grace'}}) $$) AS (v agtype)")
    try:
        yield GRAPH
    finally:
        _super_sql("kotte", *prep, f"SELECT drop_graph('{GRAPH}', true)")


def test_kotte_graph_routes_alternating_replicas(age_graph, tmp_path: Path):
    backend, pythonpath, python = _kotte_backend(tmp_path)
    settings = settings_for("postgresql", tmp_path, session_secret_key="age-cookie-secret-" * 2,
                            db_follow_check_interval=1)
    env = child_env(**{**env_of(settings), "PYTHONPATH": pythonpath,
                       "KOTTE_BACKEND_DIR": backend, "RATE_LIMIT_ENABLED": "false",
                       "USE_UVLOOP": "false"})
    # LOAD 'age' needs a superuser (Kotte's own tests connect as postgres);
    # the test server trusts TCP logins, so the password only has to be unique
    cfg = {"host": "127.0.0.1", "port": int(os.environ["KOTTE_TEST_PG_PORT"]),
           "database": "kotte", "user": "postgres", "password": "age-" + secrets.token_hex(8)}
    with replicas(2, env, tmp_path, python=python, probe="/api/v1/health") as (a, b):
        with httpx.Client(timeout=60) as c:
            r = c.post(a.base + "/api/v1/auth/login", json={"username": "admin", "password": "admin"})
            assert r.status_code == 200, r.text
            csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
            r = c.post(a.base + "/api/v1/session/connect", json={"connection": cfg}, headers=csrf)
            assert r.status_code == 201, r.text
            st = [c.get(x.base + "/api/v1/session/status").json() for x in (a, b)]
            assert st[0] == st[1] and st[0]["connected"] is True, st
            for x in (a, b, a, b):
                graphs = c.get(x.base + "/api/v1/graphs")
                assert graphs.status_code == 200, (x.base, graphs.text)
                assert age_graph in [g["name"] for g in graphs.json()], graphs.json()
                meta = c.get(x.base + f"/api/v1/graphs/{age_graph}/metadata")
                assert meta.status_code == 200, (x.base, meta.text)
                labels = [n["label"] for n in meta.json()["node_labels"]]
                assert "Person" in labels, meta.json()
                mg = c.get(x.base + f"/api/v1/graphs/{age_graph}/meta-graph")
                assert mg.status_code == 200, (x.base, mg.text)
            r = c.post(b.base + "/api/v1/session/disconnect", headers=csrf)
            assert r.status_code == 200, r.text
        assert "re-opened the graph database connection" not in a.output()
    for x in (a, b):
        assert cfg["password"] not in x.output()
