"""kotte-server answers ``/api/v1/session/status`` from the shared session (issue 16).

A session logged in on kotte-server (the C example server), then connected
by the Python side (libkotte's drop-in writes ``connection_config`` with the
password sealed, as its ``session/connect`` does): kotte-server reads the
session, sealed password and all, and says ``connected`` as Kotte's route
would. Needs a kotte-server binary (``build-asan``, which tests/run.sh builds
first, or ``KOTTE_SERVER_BIN``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from conftest import TEST_KEY, require_pg, settings_for
from libkotte.kotte import SessionManager

ROOT = Path(__file__).resolve().parents[3]
SECRET = "status-cookie-secret-" * 2
PASSWORD = "status-Pw-only-sealed"


def server_binary() -> str:
    given = os.environ.get("KOTTE_SERVER_BIN")
    for path in ([given] if given else []) + [
            str(ROOT / d / "examples/kotte-server/kotte-server") for d in ("build-asan", "build")]:
        if os.access(path, os.X_OK):
            return path
    pytest.skip("no kotte-server binary (build-asan/examples/kotte-server/kotte-server, "
                "build/...; or set KOTTE_SERVER_BIN)")


@pytest.mark.parametrize("cfg_port", ["int", "absent"])
def test_kotte_server_reports_the_connection_the_drop_in_made(tmp_path: Path, cfg_port: str):
    require_pg()
    binary = server_binary()
    sys.path.insert(0, str(ROOT / "tests" / "server"))
    from harness import Client, Server, cookie_session

    port = int(os.environ["KOTTE_TEST_PG_PORT"])
    cfg = {"host": "db.example", "port": port, "database": "graphs", "user": "graph_user",
           "password": PASSWORD, "sslmode": None}
    if cfg_port == "absent":
        del cfg["port"]
    manager = SessionManager(settings_for("postgresql", tmp_path, session_secret_key=SECRET))
    srv = Server(binary, env={
        "SESSION_STORAGE_TYPE": "postgresql", "KOTTE_USERS_STORE": "file",
        "DB_HOST": os.environ["KOTTE_TEST_PG_DIR"], "DB_PORT": str(port), "DB_NAME": "kotte",
        "DB_USER": "kotte_app", "SESSION_SECRET_KEY": SECRET, "MASTER_ENCRYPTION_KEY": TEST_KEY,
    }).start()
    try:
        c = Client(srv)
        c.login()
        sid = cookie_session(c.cookie)["session_id"]  # Kotte's signed cookie carries it
        not_connected = {"connected": False, "database": None, "host": None, "port": None,
                         "current_graph": None}
        r, js, _ = c.request("GET", "/api/v1/session/status")
        assert r.status == 200 and js == not_connected, js
        # the Python side connects the session (graph_context too)
        asyncio.run(manager.update_session(sid, {"connection_config": cfg,
                                                 "graph_context": "social"}))
        assert manager.store.get(sid).data["connection_config"]["password"] == {"$secret": PASSWORD}
        r, js, _ = c.request("GET", "/api/v1/session/status")
        assert r.status == 200 and js == {
            "connected": True, "database": "graphs", "host": "db.example",
            "port": port if cfg_port == "int" else None, "current_graph": "social"}, js
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        assert r.status == 200 and js["username"] == "admin", js
        # a connection_config that names no user is no connection
        asyncio.run(manager.update_session(sid, {"connection_config": {**cfg, "user": ""}}))
        r, js, _ = c.request("GET", "/api/v1/session/status")
        assert r.status == 200 and js == {**not_connected, "current_graph": "social"}, js
        # ended on the Python side: ended for kotte-server
        asyncio.run(manager.delete_session(sid))
        r, js, _ = c.request("GET", "/api/v1/session/status")
        assert r.status == 401, js
        c.close()
        assert PASSWORD not in "\n".join(srv.raw)
    finally:
        srv.stop()  # exit 0, and under ASan no leak or other report
        manager.close()
