"""What the binding and the drop-in say when PostgreSQL is not as they need it.

* A failing statement raises with its SQLSTATE, PostgreSQL's message and a
  hint as attributes and in the text, from the blocking and the asyncio
  calls alike (the C library's detail used to be dropped on the way).
* A store opened on a database without libkotte's schema, or with an older
  one, raises SchemaError naming the version found, the version needed and
  the command that migrates.
* The drop-in (uvicorn libkotte.kotte.asgi:app) stops at start-up with that
  message; KOTTE_MIGRATE_ON_START=true migrates first; /api/v1/ready answers
  503 with the reason while the schema is wrong; ``python3 -m libkotte.kotte
  migrate`` migrates.

Each test works on a fresh database of its own on the tests/pg/pg.sh server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import child_env, env_of, free_port, pg_connect_kwargs, require_pg, settings_for
from libkotte import SessionStore
from libkotte.credentials import CredentialStore, KeyRing
from libkotte.errors import DatabaseError, SchemaError
from libkotte.pg import SCHEMA_VERSION, PgPool, migrate
from standin_kotte import write_standin

ROOT = Path(__file__).resolve().parents[3]
SQL = ROOT / "sql"
KEY = "00112233445566778899aabbccddeeff" * 2
_n = [0]


def _super(sql: str, db: str | None = None) -> None:
    import asyncpg

    async def run() -> None:
        kw = pg_connect_kwargs(os.environ["KOTTE_TEST_PG_SUPER_CONNINFO"])
        if db:
            kw["database"] = db
        conn = await asyncpg.connect(**kw)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def fresh_db():
    """A new database owned by kotte, with Kotte's own users table only (as
    Kotte's alembic migrations leave it); yields (name, owner conninfo)."""
    require_pg()
    _n[0] += 1
    name = f"kotte_py_schema_{os.getpid()}_{_n[0]}"
    _super(f"CREATE DATABASE {name} OWNER kotte")
    _super("SET ROLE kotte; CREATE TABLE kotte_users (id bigserial PRIMARY KEY, username text "
           "UNIQUE, password_hash text NOT NULL)", db=name)
    info = dict(p.split("=", 1) for p in os.environ["KOTTE_TEST_PG_CONNINFO"].split())
    ci = f"host={info['host']} port={info['port']} user=kotte dbname={name}"
    try:
        yield name, ci
    finally:
        _super(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _owner_sql(ci: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(**pg_connect_kwargs(ci))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def test_stores_refuse_a_missing_or_older_schema(fresh_db):
    _, ci = fresh_db
    with PgPool(ci, max_size=2) as pool:
        with pytest.raises(SchemaError) as e:
            SessionStore("postgresql", pool=pool, secret=b"s" * 32)
        assert "version found none" in str(e.value)
        assert f"version needed {SCHEMA_VERSION}" in e.value.detail
        assert "kotte-migrate" in e.value.detail and "libkotte.kotte migrate" in e.value.detail
        with pytest.raises(SchemaError):
            CredentialStore("postgresql", pool=pool, keyring=KeyRing(KEY))
        with pytest.raises(SchemaError):
            pool.schema_version()

        assert migrate(ci, SQL) == SCHEMA_VERSION
        assert pool.schema_version() == SCHEMA_VERSION
        _owner_sql(ci, f"DELETE FROM kotte_schema_migrations WHERE version = {SCHEMA_VERSION}")
        with pytest.raises(SchemaError) as e:
            SessionStore("postgresql", pool=pool, secret=b"s" * 32)
        assert f"at version {SCHEMA_VERSION - 1}" in e.value.detail
        assert f"needs version {SCHEMA_VERSION}" in e.value.detail


async def test_a_failed_statement_says_sqlstate_message_and_hint(fresh_db):
    _, ci = fresh_db
    migrate(ci, SQL)
    pool = PgPool(ci, max_size=2)
    store = SessionStore("postgresql", pool=pool, secret=b"s" * 32)
    try:
        await asyncio.to_thread(_owner_sql, ci, "DROP TABLE kotte_sessions")
        with pytest.raises(DatabaseError) as blocking:
            store.create("alice", {})
        with pytest.raises(DatabaseError) as aio:  # through the asyncio bridge
            await store.aio.create_raw("alice", {})
        for e in (blocking.value, aio.value):
            assert e.sqlstate == "42P01", e
            assert e.pg_message == 'relation "kotte_sessions" does not exist'
            assert "kotte-migrate" in e.hint
            assert "SQLSTATE 42P01" in str(e) and "hint:" in str(e)
    finally:
        store.close()
        pool.close()


def _dropin_env(tmp: Path, db: str, **extra: str) -> dict[str, str]:
    s = settings_for("postgresql", tmp, db_name=db, session_secret_key="schema-tests-secret-key")
    env = child_env(**env_of(s))
    env["KOTTE_BACKEND_DIR"] = str(write_standin(tmp / "backend"))
    env.update(extra)
    return env


def test_the_dropin_stops_at_start_on_a_database_without_the_schema(fresh_db, tmp_path):
    db, _ = fresh_db
    p = subprocess.run([sys.executable, "-m", "uvicorn", "libkotte.kotte.asgi:app", "--port", "0"],
                       env=_dropin_env(tmp_path, db), cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0
    assert "version found none" in p.stderr and "libkotte.kotte migrate" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr


def test_the_dropin_migrates_on_start_and_ready_tells_a_wrong_schema(fresh_db, tmp_path):
    db, ci = fresh_db
    port = free_port()
    env = _dropin_env(tmp_path, db, KOTTE_MIGRATE_ON_START="true", DB_USER="kotte",
                      KOTTE_SQL_DIR=str(SQL))
    err = open(tmp_path / "uvicorn.stderr", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "libkotte.kotte.asgi:app",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "uvicorn.stderr").read_text()
            try:
                r = httpx.post(base + "/auth/login", json={"username": "admin", "password": "admin"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the drop-in did not start"
                time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert httpx.get(base + "/ready").status_code != 503  # Kotte's own route answers
        _owner_sql(ci, f"DELETE FROM kotte_schema_migrations WHERE version = {SCHEMA_VERSION}")
        r = httpx.get(base + "/ready")
        assert r.status_code == 503, r.text
        assert f"needs version {SCHEMA_VERSION}" in r.json()["reason"]
    finally:
        proc.terminate()
        proc.wait(15)
        err.close()


def test_the_migrate_command(fresh_db, tmp_path):
    db, ci = fresh_db
    env = _dropin_env(tmp_path, db, DB_USER="kotte", KOTTE_SQL_DIR=str(SQL))
    for expect in (SCHEMA_VERSION, 0):  # again: nothing left to do
        p = subprocess.run([sys.executable, "-m", "libkotte.kotte", "migrate"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert f"{expect} migration(s) applied" in p.stdout
    with PgPool(ci) as pool:
        assert pool.schema_version() == SCHEMA_VERSION
