"""install() and the ASGI entry point, on a stand-in of Kotte's ``app`` package.

Each scenario runs in a fresh interpreter, since install() changes
``sys.modules`` for good. The last test runs two uvicorn replicas of
``libkotte.kotte.asgi:app`` on one shared store, as a load balancer would
see them: a login on one replica is valid on the other, and a logout on the
other ends it on the first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import child_env, env_of, require_pg, settings_for
from libkotte import capi
from replicas import free_port, replicas
from standin_kotte import write_standin

HAS_CREDENTIALS = hasattr(capi, "kotte_cred_store_open")

SCENARIO = r"""
import asyncio, os, sys
sys.path.insert(0, os.environ["STANDIN_DIR"])
import httpx

ORDER = os.environ["ORDER"]
if ORDER == "routes-first":
    import app.api.v1.auth  # routes bound Kotte's own manager before install()
import libkotte.kotte
installed = libkotte.kotte.install()
assert libkotte.kotte.install() is installed  # idempotent
from app.main import app as asgi_app
import app.core.auth, app.api.v1.auth, app.api.v1.session

mgr = installed.session_manager
assert type(mgr).__module__ == "libkotte.kotte.session_manager", type(mgr)
assert app.core.auth.session_manager is mgr
assert app.api.v1.auth.session_manager is mgr and app.api.v1.session.session_manager is mgr
assert app.core.auth.SessionManager is libkotte.kotte.SessionManager
assert mgr._side is app.core.auth._local_session_objects  # Kotte's own side table
assert mgr.settings.session_storage_type == os.environ["SESSION_STORAGE_TYPE"]

async def main():
    async with httpx.AsyncClient(app=asgi_app, base_url="http://testserver") as c:
        assert (await c.get("/api/v1/auth/me")).status_code == 401
        r = await c.post("/api/v1/auth/login", json={"username": "admin", "password": "admin"})
        assert r.status_code == 200, r.text
        h = {"X-CSRF-Token": r.json()["csrf_token"]}  # Kotte's CSRF rule
        me = (await c.get("/api/v1/auth/me")).json()
        assert me["user_id"] == "admin" and me["role"] == "admin" and me["created_at"].endswith("+00:00")
        # nothing listens on this port: Kotte's connect fails as Kotte answers it
        cfg = {"host": "127.0.0.1", "port": int(os.environ["CLOSED_PORT"]), "database": "graphs",
               "user": "u", "password": "s3cret-connect-password"}
        assert (await c.post("/api/v1/session/connect", json={"connection": cfg})).status_code == 403
        r = await c.post("/api/v1/session/connect", json={"connection": cfg}, headers=h)
        assert r.status_code == 500 and r.json()["error"]["code"] == "DB_CONNECT_FAILED", r.text
        sid = next(iter(mgr._sessions.keys()))
        # as if another replica had connected: this one cannot open the connection
        await mgr.update_session(sid, {"connection_config": cfg})
        st = (await c.get("/api/v1/session/status")).json()
        assert st == {"connected": False, "database": None, "host": None, "port": None,
                      "current_graph": None}, st
        r = await c.get("/api/v1/standin/query")
        err = r.json()["error"]
        if ORDER == "install-first":  # answered as Kotte answers a failed connect
            assert r.status_code == 500 and err["code"] == "DB_CONNECT_FAILED" and err["retryable"], r.text
        else:  # routes imported before install() kept Kotte's own get_db_connection
            assert r.status_code == 500 and err["code"] == "DB_UNAVAILABLE", r.text
        stored = mgr.store.get(sid).data
        assert "db_connection" not in stored
        assert stored["connection_config"]["password"] == {"$secret": "s3cret-connect-password"}
        with open(os.environ["SESSION_STORAGE_PATH"], "rb") as f:
            assert b"s3cret-connect-password" not in f.read()  # sealed at rest
        r = await c.post("/api/v1/connections", json={"name": "n", "host": "h", "port": 5432,
                         "database": "d", "username": "u", "password": "p"}, headers=h)
        assert r.status_code == 201, r.text
        print("storage:", r.json()["storage"])
        assert (await c.post("/api/v1/auth/logout", headers=h)).status_code == 200
        assert (await c.get("/api/v1/auth/me")).status_code == 401
        assert list(mgr._sessions.keys()) == []
    print("scenario ok")

asyncio.run(main())
"""


@pytest.mark.parametrize("order", ["install-first", "routes-first"])
def test_install_puts_libkotte_stores_into_kotte(order: str, tmp_path: Path):
    standin = write_standin(tmp_path / "backend")
    marker = tmp_path / "kotte-storage-imported"
    env = child_env(STANDIN_DIR=str(standin), ORDER=order, STANDIN_IMPORT_MARKER=str(marker),
                    CLOSED_PORT=str(free_port()), STANDIN_CONNECT_TIMEOUT="1",
                    **env_of(settings_for("json_file", tmp_path)))
    p = subprocess.run([sys.executable, "-c", SCENARIO], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "scenario ok" in p.stdout
    if HAS_CREDENTIALS:
        assert "storage: libkotte.kotte.connection_storage" in p.stdout
        if order == "install-first":
            assert not marker.exists(), "Kotte's JSON-file connection storage was executed"
    else:  # this build keeps Kotte's own connection storage
        assert "storage: app.core.connection_storage" in p.stdout


@pytest.mark.parametrize("backend", ["json_file", "postgresql"])
def test_two_uvicorn_replicas_share_logins(backend: str, tmp_path: Path):
    if backend == "postgresql":
        require_pg()
    standin = write_standin(tmp_path / "backend")
    # Replicas share SESSION_SECRET_KEY (cookie signing; and row keys for postgresql).
    settings = settings_for(backend, tmp_path, session_secret_key="shared-cookie-secret-" * 2)
    env = child_env(KOTTE_BACKEND_DIR=str(standin), **env_of(settings))
    with replicas(2, env, tmp_path) as (a, b):
        with a.client() as ca, b.client() as cb:
            r = ca.post("/api/v1/auth/login", json={"username": "alice", "password": "wonderland"})
            assert r.status_code == 200, r.text
            cb.cookies.update(ca.cookies)  # the load balancer sends the next request to B
            me = cb.get("/api/v1/auth/me")
            assert me.status_code == 200 and me.json()["user_id"] == "alice", me.text
            assert ca.get("/api/v1/auth/me").json() == me.json()
            csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
            assert cb.post("/api/v1/auth/logout", headers=csrf).status_code == 200
            assert ca.get("/api/v1/auth/me").status_code == 401  # logged out everywhere


KOTTE_STYLE_TEST = """
from app.core.auth import session_manager


def test_tests_see_libkotte_manager():
    assert type(session_manager).__module__ == "libkotte.kotte.session_manager"


async def test_roundtrip_like_kottes_test_auth():
    sid = await session_manager.create_session("user1")
    assert (await session_manager.get_user_id(sid)) == "user1"
    await session_manager.delete_session(sid)
    assert await session_manager.get_session(sid) is None
"""

KOTTE_STYLE_CONFTEST = """
import os


def pytest_configure(config):
    os.environ["ENVIRONMENT"] = "test"


def pytest_unconfigure(config):
    from app.core.auth import session_manager
    session_manager._sessions.clear()
"""


def test_pytest_plugin_runs_a_kotte_style_suite_on_libkotte(tmp_path: Path):
    standin = write_standin(tmp_path / "backend")
    (standin / "tests").mkdir()
    (standin / "tests" / "conftest.py").write_text(KOTTE_STYLE_CONFTEST)
    (standin / "tests" / "test_kotte_style.py").write_text(KOTTE_STYLE_TEST)
    (standin / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    env = child_env(**env_of(settings_for("json_file", tmp_path)))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "libkotte.kotte.pytest_plugin", "tests"],
                       env=env, cwd=standin, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 passed" in p.stdout
