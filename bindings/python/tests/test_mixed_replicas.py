"""One login across a C and a Python replica of Kotte's backend.

A kotte-server (the real binary) and a Python replica (uvicorn running
``libkotte.kotte.asgi:app`` over the stand-in of Kotte's ``app``, whose
Starlette SessionMiddleware and CSRF rule are configured as Kotte's) share
one store, as two pods behind a load balancer would: once on PostgreSQL,
once on one json_file store. One browser (one cookie, kept across both)
then, in both directions:

* logs in on one replica and is logged in on the other (``/auth/me``);
* saves a connection on each replica with the CSRF token from the login,
  and reads it back, password and all, on the other;
* logs out on the other replica; the cookie it had, replayed to both
  replicas, is refused by both (401).

The kotte-server binary is KOTTE_SERVER_BIN, else the source tree's
build-asan/examples/kotte-server/kotte-server; without one the test is
skipped, unless KOTTE_TEST_REQUIRE_SERVER=1 (tests/suites.d/40-python.sh
sets it), which makes that a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import child_env, env_of, free_port, require_pg, settings_for, wait_http
from libkotte import capi
from standin_kotte import write_standin

ROOT = Path(__file__).resolve().parents[3]
SECRET = "mixed-replicas-session-secret-key"  # SESSION_SECRET_KEY of both replicas
CONN = {"host": "db1.internal", "port": 5433, "database": "graphs", "username": "graph_reader",
        "password": "s3cret-Connection-Passw0rd"}

pytestmark = pytest.mark.skipif(not hasattr(capi, "kotte_cred_store_open"),
                                reason="this libkotte build has no credential store")


def server_binary() -> str:
    path = os.environ.get("KOTTE_SERVER_BIN") or str(
        ROOT / "build-asan" / "examples" / "kotte-server" / "kotte-server")
    if not os.access(path, os.X_OK):
        why = f"no kotte-server binary at {path}"
        if os.environ.get("KOTTE_TEST_REQUIRE_SERVER") == "1":
            pytest.fail(why + " but KOTTE_TEST_REQUIRE_SERVER=1")
        pytest.skip(why)
    return path


class Browser:
    """One cookie (Kotte's session cookie), sent to whichever replica, and
    replaced by what any replica answers with, as a browser does behind one
    origin."""

    def __init__(self, name: str = "kotte_session") -> None:
        self.name = name
        self.cookie: str | None = None
        self.http = httpx.Client(timeout=15)

    def request(self, method: str, url: str, cookie: str | None = None, **kw) -> httpx.Response:
        ck = cookie if cookie is not None else self.cookie
        headers = dict(kw.pop("headers", {}))
        if ck:
            headers["Cookie"] = f"{self.name}={ck}"
        r = self.http.request(method, url, headers=headers, **kw)
        if cookie is None:
            for v in r.headers.get_list("set-cookie"):
                name, _, rest = v.partition("=")
                if name == self.name:
                    value = rest.split(";", 1)[0]
                    self.cookie = None if value == "null" else value
        return r

    def close(self) -> None:
        self.http.close()


class Replicas:
    """A kotte-server and a uvicorn replica on the same store and keys."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.tmp = tmp
        settings = settings_for(backend, tmp, session_secret_key=SECRET,
                                credential_storage_type=backend,
                                environment="development")
        self.env = child_env(**env_of(settings))
        self.env.update(KOTTE_BACKEND_DIR=str(write_standin(tmp / "backend")),
                        RATE_LIMIT_ENABLED="false")
        self.binary = server_binary()
        self.c_env = dict(self.env, KOTTE_SERVER_HOST="127.0.0.1", KOTTE_SERVER_PORT="0",
                          KOTTE_USERS_STORE="file", KOTTE_USERS_FILE=str(tmp / "users"),
                          ADMIN_PASSWORD="admin", LOG_LEVEL="INFO")
        # the stand-in's users (alice/wonderland), with the same user ids
        p = subprocess.run([self.binary, "user", "add", "alice"], env=self.c_env, cwd=tmp,
                           input=b"wonderland\n", capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr.decode()
        self.c_err = open(tmp / "kotte-server.stderr", "wb")
        self.c_out = open(tmp / "kotte-server.log", "wb")
        self.c_proc = subprocess.Popen([self.binary], env=self.c_env, cwd=tmp,
                                       stdout=self.c_out, stderr=self.c_err)
        py_port = free_port()
        self.py_err = open(tmp / "uvicorn.stderr", "wb")
        self.py_proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "libkotte.kotte.asgi:app", "--host", "127.0.0.1",
             "--port", str(py_port), "--log-level", "warning"],
            env=self.env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=self.py_err)
        self.py = f"http://127.0.0.1:{py_port}/api/v1"
        self.c = f"http://127.0.0.1:{self._c_port()}/api/v1"
        wait_http(self.py + "/auth/me", self.py_proc, time.monotonic() + 60,
                  lambda: (tmp / "uvicorn.stderr").read_text(errors="replace"))

    def _c_port(self) -> int:
        deadline = time.monotonic() + 60
        log = self.tmp / "kotte-server.log"
        while time.monotonic() < deadline:
            for line in log.read_text(errors="replace").splitlines():
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if j.get("event") == "listening":
                    return int(j["port"])
            if self.c_proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("kotte-server did not start: "
                             + (self.tmp / "kotte-server.stderr").read_text(errors="replace"))

    def stop(self) -> None:
        self.py_proc.terminate()
        if self.c_proc.poll() is None:
            self.c_proc.send_signal(signal.SIGTERM)
        try:
            code = self.c_proc.wait(30)
        finally:
            try:
                self.py_proc.wait(15)
            except subprocess.TimeoutExpired:
                self.py_proc.kill()
                self.py_proc.wait()
            for f in (self.c_err, self.c_out, self.py_err):
                f.close()
        err = (self.tmp / "kotte-server.stderr").read_text(errors="replace")
        assert code == 0 and "Sanitizer" not in err and "runtime error" not in err, err[-4000:]


def _flow(r: Replicas, first: str, second: str, round_: int) -> None:
    """Log in on @first; use the session on @second; log out on @second."""
    b = Browser()
    try:
        resp = b.request("POST", f"{first}/auth/login",
                         json={"username": "alice", "password": "wonderland"})
        assert resp.status_code == 200, resp.text
        csrf = {"X-CSRF-Token": resp.json()["csrf_token"]}
        assert b.cookie, "login set the session cookie"
        for base in (second, first):
            me = b.request("GET", f"{base}/auth/me")
            assert me.status_code == 200 and me.json()["user_id"] == "alice", (base, me.text)

        ids = {}
        for base in (second, first):  # save on each, read on the other
            name = f"round {round_} saved on {'C' if base == r.c else 'Python'}"
            resp = b.request("POST", f"{base}/connections", json=dict(CONN, name=name),
                             headers=csrf)
            assert resp.status_code == 201, (base, resp.text)
            ids[base] = resp.json()["id"]
        for saved_on, cid in ids.items():
            other = first if saved_on == second else second
            got = b.request("GET", f"{other}/connections/{cid}")
            assert got.status_code == 200, (other, got.text)
            g = got.json()
            assert {k: g[k] for k in CONN} == CONN, g
        for base in (first, second):
            listed = {c["id"] for c in b.request("GET", f"{base}/connections").json()}
            assert set(ids.values()) <= listed, (base, listed)

        before = b.cookie
        out = b.request("POST", f"{second}/auth/logout", headers=csrf)
        assert out.status_code == 200 and out.json() == {"logged_out": True}, out.text
        assert b.cookie is None, "logout cleared the cookie"
        for base in (first, second):  # the cookie of before, replayed: dead on both
            me = b.request("GET", f"{base}/auth/me", cookie=before)
            assert me.status_code == 401, (base, me.status_code, me.text)
    finally:
        b.close()


@pytest.mark.parametrize("backend", ["postgresql", "json_file"])
def test_login_connections_logout_across_c_and_python(backend: str, tmp_path: Path):
    if backend == "postgresql":
        require_pg()
    r = Replicas(backend, tmp_path)
    try:
        _flow(r, r.c, r.py, 1)   # log in on C, log out on Python
        _flow(r, r.py, r.c, 2)   # log in on Python, log out on C
    finally:
        r.stop()
