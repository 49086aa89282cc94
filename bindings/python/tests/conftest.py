"""Fixtures of the libkotte Python tests.

Run with libkotte importable, e.g. (what tests/suites.d/40-python.sh does):

    PYTHONPATH=build-py/bindings/python /usr/bin/python3 -m pytest bindings/python/tests

PostgreSQL: the tests of the postgresql backend use the server named by
KOTTE_TEST_PG_CONNINFO (tests/pg/pg.sh start exports it). Without one they
are skipped, unless KOTTE_TEST_REQUIRE_PG=1, which turns that into failures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import libkotte
from libkotte import capi
from libkotte.kotte.config import KotteSettings

HERE = Path(__file__).resolve().parent
BACKENDS = ["memory", "json_file", "postgresql"]
TEST_KEY = "00112233445566778899aabbccddeeff" * 2  # 32 bytes as hex: no Argon2id per key ring
# The json_file session backend's secret (SESSION_SECRET_KEY): its keys hide ids at rest.
SESSION_SECRET = b"python-suite-session-secret"


def pg_conninfo() -> str | None:
    return os.environ.get("KOTTE_TEST_PG_CONNINFO") or None


def pg_supported() -> bool:
    return hasattr(capi, "kotte_session_backend_postgresql_new")


def require_pg() -> str:
    """The test server's conninfo, or skip (fail when KOTTE_TEST_REQUIRE_PG=1)."""
    why = None
    if not pg_supported():
        why = "this libkotte build has no postgresql session backend"
    elif pg_conninfo() is None:
        why = "no PostgreSQL (KOTTE_TEST_PG_CONNINFO unset)"
    if why:
        if os.environ.get("KOTTE_TEST_REQUIRE_PG") == "1":
            pytest.fail(why + " but KOTTE_TEST_REQUIRE_PG=1")
        pytest.skip(why)
    return pg_conninfo()  # type: ignore[return-value]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_pg()
    return request.param


def settings_for(backend: str, tmp: Path, **extra: Any) -> KotteSettings:
    """Drop-in settings for one backend, all state under `tmp`."""
    values: dict[str, Any] = dict(
        session_storage_type=backend,
        session_storage_path=str(tmp / "sessions.journal"),
        credential_storage_type="memory" if backend == "postgresql" else backend,
        credential_storage_path=str(tmp / "connections.journal"),
        master_encryption_key=TEST_KEY,
        environment="test",
    )
    if backend == "postgresql":
        values["credential_storage_type"] = "postgresql"
    values.update(extra)
    if "postgresql" in (values["session_storage_type"], values["credential_storage_type"]):
        for k, v in pg_settings_values().items():
            if k not in extra:
                values[k] = v
    return KotteSettings(**values)


def pg_settings_values() -> dict[str, Any]:
    """DB_* settings parsed from KOTTE_TEST_PG_CONNINFO (key=value form)."""
    info = dict(part.split("=", 1) for part in (pg_conninfo() or "").split())
    return dict(db_host=info.get("host", "localhost"), db_port=int(info.get("port", 5432)),
                db_name=info.get("dbname", "kotte"), db_user=info.get("user", "kotte_app"),
                db_password=info.get("password", ""))


def open_store(backend: str, tmp: Path, **kw: Any) -> libkotte.SessionStore:
    if backend == "memory":
        return libkotte.SessionStore("memory", **kw)
    if backend == "json_file":
        return libkotte.SessionStore("json_file", tmp / "sessions.journal", secret=SESSION_SECRET, **kw)
    from libkotte.kotte._pg import session_secret, shared_pool

    settings = settings_for(backend, tmp)
    return libkotte.SessionStore("postgresql", pool=shared_pool(settings),
                                 secret=session_secret(settings), **kw)


def pg_connect_kwargs(conninfo: str | None = None) -> dict[str, Any]:
    """asyncpg.connect() arguments for a key=value libpq conninfo."""
    info = dict(part.split("=", 1) for part in (conninfo or pg_conninfo() or "").split())
    kw: dict[str, Any] = {"host": info.get("host"), "user": info.get("user"),
                          "database": info.get("dbname")}
    if "port" in info:
        kw["port"] = int(info["port"])
    if "password" in info:
        kw["password"] = info["password"]
    return kw


def pg_execute(sql: str) -> None:
    """Runs one statement on the test server (as the application role)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(**pg_connect_kwargs())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(autouse=True)
def _empty_pg_tables(request: pytest.FixtureRequest) -> None:
    """Every postgresql-backed test starts with empty libkotte tables."""
    if not (pg_conninfo() and pg_supported()):
        return
    for name in ("backend", "cred_backend"):
        if name in request.fixturenames and request.getfixturevalue(name) == "postgresql":
            pg_execute("DELETE FROM kotte_sessions; DELETE FROM kotte_credentials")
            return


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[libkotte.SessionStore]:
    st = open_store(backend, tmp_path)
    try:
        yield st
    finally:
        st.close()


def env_of(settings: KotteSettings) -> dict[str, str]:
    """The environment variables that give ``settings`` to a child process."""
    import dataclasses

    return {f.name.upper(): str(getattr(settings, f.name)) for f in dataclasses.fields(settings)}


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that must import this libkotte."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and Path(p, "libkotte").is_dir()]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: Any, deadline: float, why: Any = "") -> None:
    """Waits until @url answers at all (any status), failing when @proc
    exits first (with @why, or a callable giving it) or @deadline passes."""
    import time

    import httpx

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: the server exited: {why() if callable(why) else why}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not start")
