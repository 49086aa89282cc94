"""Kotte's graph database connection follows the session to every replica (issue 16).

Two (or more) uvicorn replicas of ``libkotte.kotte.asgi:app`` on the Kotte
stand-in, sessions in PostgreSQL, one browser cookie for all, as behind a
round-robin ingress. The stand-in's ``session/connect`` opens a real psycopg
pool on the test PostgreSQL (its own ``DatabaseConnection``, which configures
every connection itself, as Kotte's runs ``LOAD 'age'``); its
``/standin/query`` runs SQL through ``get_db_connection``; ``/standin/pools``
tells what a replica holds.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from conftest import child_env, env_of, pg_connect_kwargs, require_pg, settings_for
from libkotte.kotte import SessionManager
from replicas import Replica, replicas
from standin_kotte import write_standin

CHECK = 1  # DB_FOLLOW_CHECK_INTERVAL of most replicas here, seconds
# The test server trusts every TCP login, so any password connects: a
# distinctive one shows where it would leak.
PASSWORD = "Follow-Pw-" + secrets.token_hex(8)


def target(password: str = PASSWORD, user: str = "kotte_app") -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": int(os.environ["KOTTE_TEST_PG_PORT"]),
            "database": "kotte", "user": user, "password": password}


def super_sql(*statements: str) -> list[Any]:
    import asyncpg

    async def run() -> list[Any]:
        conn = await asyncpg.connect(**pg_connect_kwargs(os.environ["KOTTE_TEST_PG_SUPER_CONNINFO"]))
        try:
            return [await conn.fetch(s) for s in statements]
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., list[Replica]]]:
    """start(n=2, **env) -> replicas of the stand-in on PostgreSQL sessions."""
    require_pg()
    standin = write_standin(tmp_path / "backend")
    settings = settings_for("postgresql", tmp_path, session_secret_key="follow-cookie-secret-" * 2,
                            db_follow_check_interval=CHECK, db_follow_retry_after=1)
    base = dict(KOTTE_BACKEND_DIR=str(standin), STANDIN_CONNECT_TIMEOUT="2",
                STANDIN_LOG_LEVEL="INFO", **env_of(settings))
    stack: list[Any] = []

    def start(n: int = 2, **env: str) -> list[Replica]:
        cm = replicas(n, child_env(**{**base, **env}), tmp_path, log_level="info")
        stack.append(cm)
        return cm.__enter__()

    try:
        yield start
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)


class Browser:
    """One cookie for every replica (they share 127.0.0.1; cookies ignore ports)."""

    def __init__(self) -> None:
        self.c = httpx.Client(timeout=30)
        self.csrf: dict[str, str] = {}

    def get(self, r: Replica, path: str, **kw: Any) -> httpx.Response:
        return self.c.get(r.base + path, **kw)

    def post(self, r: Replica, path: str, **kw: Any) -> httpx.Response:
        # Kotte's frontend sends the login's CSRF token on every POST
        kw["headers"] = {**self.csrf, **kw.get("headers", {})}
        return self.c.post(r.base + path, **kw)

    def login(self, r: Replica, user: str = "alice", password: str = "wonderland") -> None:
        res = self.post(r, "/api/v1/auth/login", json={"username": user, "password": password})
        assert res.status_code == 200, res.text
        self.csrf = {"X-CSRF-Token": res.json()["csrf_token"]}

    def connect(self, r: Replica, cfg: dict[str, Any]) -> None:
        res = self.post(r, "/api/v1/session/connect", json={"connection": cfg})
        assert res.status_code == 201, res.text

    def query(self, r: Replica) -> httpx.Response:
        return self.get(r, "/api/v1/standin/query")

    def connected_there_used_here(self, there: Replica, here: Replica,
                                  cfg: dict[str, Any] | None = None, user: str = "alice",
                                  password: str = "wonderland") -> None:
        """Logs in and connects on ``there``, then runs a query on ``here``."""
        self.login(there, user, password)
        self.connect(there, cfg or target())
        q = self.query(here)
        assert q.status_code == 200, q.text

    def cookies(self) -> dict[str, str]:
        return dict(self.c.cookies)

    def close(self) -> None:
        self.c.close()


@pytest.fixture
def browser() -> Iterator[Callable[[], Browser]]:
    made: list[Browser] = []

    def new() -> Browser:
        made.append(Browser())
        return made[-1]

    yield new
    for b in made:
        b.close()


def pools(r: Replica) -> dict[str, Any]:
    return httpx.get(r.base + "/api/v1/standin/pools", timeout=30).json()


def wait_until(pred: Callable[[], bool], timeout: float) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def connected_status(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"connected": True, "database": cfg["database"], "host": cfg["host"],
            "port": cfg["port"], "current_graph": None}


def test_connect_on_a_every_replica_runs_queries(cluster, browser):
    a, b = cluster()
    u = browser()
    u.login(a)
    u.connect(a, target())
    st = u.get(a, "/api/v1/session/status")
    assert st.status_code == 200 and st.json() == connected_status(target())
    assert u.get(b, "/api/v1/session/status").json() == st.json()  # B answers as A does
    pids = set()
    for r in (a, b, a, b, b, a):
        q = u.query(r)
        assert q.status_code == 200, q.text
        row = q.json()
        # the connection B opened is the app's own: its configure ran
        assert row["search_path"] == "standin_graphs, public", row
        assert row["application_name"] == "standin-kotte" and row["db_user"] == "kotte_app", row
        pids.add(row["pid"])
    assert len(pids) >= 2  # two processes, two pools
    pb = pools(b)
    assert pb["live"] == 1 and pb["opened"] == 1 and pb["holding"] == 1, pb
    assert pb["follow"]["pools"] == 1 and pb["follow"]["holders"] == 1, pb
    pa = pools(a)  # A holds Kotte's own connection from connect, nothing re-opened
    assert pa["live"] == 1 and pa["follow"]["pools"] == 0 and pa["follow"]["sessions"] == 1, pa
    # a replica that stops closes what it re-opened (after Kotte's own lifespan)
    b.proc.terminate()
    assert b.proc.wait(30) == 0
    assert "re-opened graph database connection <kotte_app@127.0.0.1" in b.output()
    assert ": shutdown" in b.output(), b.output()[-2000:]


def test_disconnect_on_b_leaves_no_connection_anywhere(cluster, browser):
    a, b = cluster()
    u = browser()
    u.connected_there_used_here(a, b)
    assert pools(a)["live"] == 1 and pools(b)["live"] == 1
    old_cookie = u.cookies()
    res = u.post(b, "/api/v1/session/disconnect")
    assert res.status_code == 200 and res.json() == {"disconnected": True}
    pb = pools(b)  # B let go before it answered
    assert pb["live"] == 0 and pb["holding"] == 0 and pb["follow"]["pools"] == 0, pb
    # A gets no request of the session: its check closes Kotte's own pool
    wait_until(lambda: pools(a)["live"] == 0, CHECK + 10)
    pa = pools(a)
    assert pa["holding"] == 0 and pa["follow"]["sessions"] == 0, pa
    for r in (a, b):  # the session is over on both (Kotte's disconnect deletes it)
        st = httpx.get(r.base + "/api/v1/session/status", cookies=old_cookie)
        assert st.status_code == 401, st.text
        assert httpx.get(r.base + "/api/v1/standin/query", cookies=old_cookie).status_code == 401


def test_logout_on_a_closes_b_pool_within_the_check_interval(cluster, browser):
    a, b = cluster()
    u = browser()
    u.connected_there_used_here(a, b)
    assert pools(b)["live"] == 1
    assert u.post(a, "/api/v1/auth/logout").status_code == 200
    assert pools(a)["live"] == 0  # Kotte's logout disconnected A's own
    # B has no request of the session; the documented bound is CHECK seconds
    # plus a store round trip (generous margin here)
    waited = wait_until(lambda: pools(b)["live"] == 0, CHECK + 10)
    pb = pools(b)
    assert pb["holding"] == 0 and pb["follow"] == {**pb["follow"], "pools": 0, "sessions": 0}
    print(f"B closed the pool {waited:.2f} s after the logout on A")


def test_expiry_and_revoke_close_every_replica_pool(cluster, browser, tmp_path):
    # the checks read without sliding the idle expiry: they keep no session alive
    a, b = cluster(SESSION_IDLE_TIMEOUT="3")
    u = browser()
    u.connected_there_used_here(a, b)
    waited = wait_until(lambda: pools(a)["live"] == 0 and pools(b)["live"] == 0, 3 + CHECK + 10)
    assert u.get(a, "/api/v1/auth/me").status_code == 401
    print(f"closed {waited:.2f} s after the last use, idle timeout 3 s")
    # revoke: every session of the user deleted in the store (as an admin tool does)
    v = browser()
    v.connected_there_used_here(a, b, user="admin", password="admin")
    store = SessionManager(settings_for("postgresql", tmp_path,
                                        session_secret_key="follow-cookie-secret-" * 2))
    try:
        assert store.store.delete_user("admin") >= 1
    finally:
        store.close()
    wait_until(lambda: pools(a)["live"] == 0 and pools(b)["live"] == 0, CHECK + 10)


def test_a_session_connected_again_elsewhere_moves_every_replica(cluster, browser):
    a, b = cluster()
    u = browser()
    u.login(a)
    u.connect(a, target())
    assert u.query(a).status_code == 200
    u.connect(b, target("Moved-" + PASSWORD))  # connected again, on B, with other credentials
    # A's own connection was made for the old target: closed without traffic
    wait_until(lambda: pools(a)["live"] == 0, CHECK + 10)
    assert u.query(a).status_code == 200  # re-opened for the new target
    pa = pools(a)
    assert pa["opened"] == 2 and pa["live"] == 1 and pa["follow"]["pools"] == 1, pa
    assert u.get(a, "/api/v1/session/status").json() == u.get(b, "/api/v1/session/status").json()


def test_a_logged_out_session_never_reaches_a_pool(cluster, browser):
    # no periodic check in this test: only the read on use can close it
    a, b = cluster(DB_FOLLOW_CHECK_INTERVAL="3600")
    u = browser()
    u.connected_there_used_here(a, b)
    old_cookie = u.cookies()
    assert u.post(a, "/api/v1/auth/logout").status_code == 200
    assert pools(b)["live"] == 1  # still open on B: nothing told B yet
    q = httpx.get(b.base + "/api/v1/standin/query", cookies=old_cookie)
    assert q.status_code == 401, q.text  # the store said no before the pool was reached
    pb = pools(b)
    assert pb["live"] == 0 and pb["holding"] == 0 and pb["follow"]["pools"] == 0, pb


def test_50_concurrent_first_requests_open_one_pool(cluster, browser):
    a, b = cluster()
    u = browser()
    u.login(a)
    u.connect(a, target())
    cookies = u.cookies()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=b.base, cookies=cookies, timeout=60) as c:
            return await asyncio.gather(*(c.get("/api/v1/standin/query") for _ in range(50)))

    answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [200] * 50, [r.text for r in answers if r.status_code != 200][:3]
    pb = pools(b)
    assert pb["opened"] == 1 and pb["live"] == 1, pb
    assert pb["follow"]["pools"] == 1 and pb["follow"]["holders"] == 1, pb


def test_pools_are_shared_by_target_and_credentials_never_across_passwords(cluster, browser):
    a, b = cluster()
    other = "Other-Pw-" + secrets.token_hex(8)
    users = [("alice", "wonderland", PASSWORD), ("admin", "admin", PASSWORD),
             ("alice", "wonderland", other)]
    sessions = []
    for user, pw, db_pw in users:
        u = browser()
        u.login(a, user, pw)
        u.connect(a, target(db_pw))
        sessions.append(u)
    for u in sessions:
        assert u.query(b).status_code == 200
        assert u.get(b, "/api/v1/session/status").json()["connected"] is True
    pb = pools(b)
    assert pb["opened"] == 2 and pb["live"] == 2, pb  # the same password shares, the other not
    assert pb["follow"]["pools"] == 2 and pb["follow"]["holders"] == 3, pb
    # one session letting go leaves the shared pool to the other
    assert sessions[0].post(b, "/api/v1/session/disconnect").status_code == 200
    assert pools(b)["follow"]["pools"] == 2
    assert sessions[1].query(b).status_code == 200
    assert pools(b)["opened"] == 2


def test_the_cap_refuses_as_a_failed_connect_and_idle_pools_close(cluster, browser):
    a, b = cluster(DB_FOLLOW_MAX_POOLS="1", DB_FOLLOW_IDLE_TIMEOUT="2")
    u1, u2 = browser(), browser()
    for u, pw in ((u1, PASSWORD), (u2, "Second-" + PASSWORD)):
        u.login(a)
        u.connect(a, target(pw))
    assert u1.query(b).status_code == 200
    refused = u2.query(b)  # a second target on B: over the cap
    err = refused.json()["error"]
    assert refused.status_code == 500 and err["code"] == "DB_CONNECT_FAILED", refused.text
    assert err["retryable"] is True and "DB_FOLLOW_MAX_POOLS" in err["message"], err
    assert u2.get(b, "/api/v1/session/status").json()["connected"] is False  # true on B
    assert u2.query(a).status_code == 200  # A has its own
    # u1's pool goes unused: closed after the idle timeout, the session lives on
    wait_until(lambda: pools(b)["live"] == 0, 2 + CHECK + 10)
    assert pools(b)["follow"]["pools"] == 0
    assert u2.query(b).status_code == 200  # room again
    assert u1.get(b, "/api/v1/auth/me").status_code == 200


@pytest.fixture
def scram_role() -> Iterator[tuple[str, str]]:
    """A role that logs in over TCP with a password (the test server trusts
    every other login): (name, password). Needs pg_hba.conf to be writable."""
    require_pg()
    hba = Path(os.environ["KOTTE_TEST_PG_DIR"]) / "data" / "pg_hba.conf"
    if not os.access(hba, os.W_OK):
        pytest.skip(f"cannot edit {hba} (not root?): no password-checked login to test with")
    name, pw = "kotte_follow_pw", "Scram-" + secrets.token_hex(8)
    original = hba.read_text()
    super_sql(f"DROP ROLE IF EXISTS {name}", f"CREATE ROLE {name} LOGIN PASSWORD '{pw}'")
    hba.write_text(f"host all {name} 127.0.0.1/32 scram-sha-256\n" + original)
    super_sql("SELECT pg_reload_conf()")
    try:
        yield name, pw
    finally:
        hba.write_text(original)
        super_sql("SELECT pg_reload_conf()",
                  f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'")
        for _ in range(50):  # terminated backends leave pg_stat_activity asynchronously
            try:
                super_sql(f"DROP ROLE IF EXISTS {name}")
                break
            except Exception:
                time.sleep(0.1)


def test_a_replica_that_cannot_connect_answers_as_a_failed_connect(cluster, browser, scram_role):
    name, pw = scram_role
    a, b = cluster()
    u = browser()
    u.login(a)
    u.connect(a, target(pw, user=name))
    super_sql(f"ALTER ROLE {name} PASSWORD 'changed-{pw}'")  # changed since the connect
    st = u.get(b, "/api/v1/session/status")
    assert st.status_code == 200 and st.json() == {"connected": False, "database": None,
                                                   "host": None, "port": None,
                                                   "current_graph": None}, st.text
    q = u.query(b)
    err = q.json()["error"]
    assert q.status_code == 500 and err["code"] == "DB_CONNECT_FAILED" and err["retryable"], q.text
    assert "Failed to connect to database" in err["message"], err
    assert u.query(a).status_code == 200  # A's connection was opened before the change
    assert u.get(a, "/api/v1/session/status").json()["connected"] is True
    super_sql(f"ALTER ROLE {name} PASSWORD '{pw}'")
    time.sleep(1.2)  # DB_FOLLOW_RETRY_AFTER=1: the failure is remembered that long
    assert u.query(b).status_code == 200
    assert u.get(b, "/api/v1/session/status").json()["connected"] is True


def test_the_password_is_never_written_in_clear(cluster, browser, tmp_path):
    a, b = cluster()
    u = browser()
    u.connected_there_used_here(a, b)
    assert u.get(b, "/api/v1/session/status").json()["connected"] is True
    # the shared session holds it sealed
    dump = subprocess.run([os.path.join(os.environ["KOTTE_TEST_PG_BIN"], "pg_dump"),
                           "-h", os.environ["KOTTE_TEST_PG_DIR"], "-p",
                           os.environ["KOTTE_TEST_PG_PORT"], "-U", "postgres", "kotte"],
                          capture_output=True, timeout=120)
    assert dump.returncode == 0, dump.stderr
    assert b"kotte_sessions" in dump.stdout and b'"$sealed"' in dump.stdout
    assert PASSWORD.encode() not in dump.stdout
    assert u.post(b, "/api/v1/auth/logout").status_code == 200
    wait_until(lambda: pools(a)["live"] == 0, CHECK + 10)
    logs = {r.log.name: r.output() for r in (a, b)}
    assert "re-opened the graph database connection" in logs["replica-b.log"]  # INFO is on
    server_log = Path(os.environ["KOTTE_TEST_PG_DIR"]) / "log"
    if os.access(server_log, os.R_OK):
        logs["postgresql"] = server_log.read_text(errors="replace")
    for name, text in logs.items():
        assert PASSWORD not in text, f"the password is in the {name} log"
