"""libkotte.kotte.SessionManager against Kotte's contract, on every backend.

Kotte's own suite cannot be imported on this machine (it needs pydantic 2 and
a FastAPI built for it; Debian 12 ships pydantic 1), so these tests state
what Kotte's routes (app/api/v1/auth.py, session.py), its middleware and its
tests (tests/test_auth.py, tests/conftest.py, tests/integration/conftest.py)
need from ``session_manager``, and check it on the real stores.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

import libkotte
from conftest import TEST_KEY, settings_for
from libkotte.kotte import KotteSettings, SessionManager


@pytest.fixture
def manager(backend: str, tmp_path: Path) -> Iterator[SessionManager]:
    m = SessionManager(settings_for(backend, tmp_path))
    try:
        yield m
    finally:
        m._sessions.clear()
        m.close()


class FakePool:
    """Stands for Kotte's live DatabaseConnection: not JSON-serialisable."""

    def __init__(self) -> None:
        self.disconnected = False

    async def disconnect(self) -> None:
        self.disconnected = True


# ---- what Kotte's tests/test_auth.py::TestSessionManager checks -------------

async def test_created_session_can_be_read_back(manager: SessionManager):
    sid = await manager.create_session("user1")
    assert isinstance(sid, str) and len(sid) == 43
    session = await manager.get_session(sid)
    assert session is not None and session["user_id"] == "user1"
    assert "created_at" in session and "last_activity" in session


async def test_unknown_or_malformed_id_gives_none(manager: SessionManager):
    assert await manager.get_session("invalid-session-id") is None
    assert await manager.get_session("A" * 43) is None
    assert await manager.get_session("") is None
    assert await manager.get_user_id("invalid-session-id") is None


async def test_update_then_get(manager: SessionManager):
    sid = await manager.create_session("user1")
    await manager.update_session(sid, {"graph_context": "test_graph"})
    assert (await manager.get_session(sid))["graph_context"] == "test_graph"


async def test_delete_then_get_is_none(manager: SessionManager):
    sid = await manager.create_session("user1")
    await manager.delete_session(sid)
    assert await manager.get_session(sid) is None
    await manager.delete_session(sid)  # deleting twice is quiet, as in Kotte


async def test_get_user_id(manager: SessionManager):
    sid = await manager.create_session("user1")
    assert await manager.get_user_id(sid) == "user1"


# ---- what Kotte's routes rely on --------------------------------------------

async def test_session_shape_after_login(manager: SessionManager):
    """auth.py login: create with {"username"}, update role, read csrf_token."""
    sid = await manager.create_session("admin", {"username": "admin"})
    await manager.update_session(sid, {"role": "admin"})
    s = await manager.get_session(sid)
    assert s["connection_config"] == {"username": "admin"}
    assert s["graph_context"] is None and s["role"] == "admin"
    assert isinstance(s["csrf_token"], str) and len(s["csrf_token"]) == 43
    for key in ("created_at", "last_activity"):
        assert isinstance(s[key], datetime)
        assert s[key].tzinfo is not None and s[key].utcoffset() == timedelta(0)
        assert abs(s[key] - datetime.now(timezone.utc)) < timedelta(seconds=5)
    default = await manager.get_session(await manager.create_session("u"))
    assert default["connection_config"] == {}


async def test_get_slides_last_activity(backend: str, tmp_path: Path):
    """Every get slides with SESSION_TOUCH_INTERVAL=0 (Kotte's behaviour)."""
    m = SessionManager(settings_for(backend, tmp_path, session_touch_interval=0))
    try:
        sid = await m.create_session("u")
        first = (await m.get_session(sid))["last_activity"]
        await asyncio.sleep(0.02)
        second = await m.get_session(sid)
        assert second["last_activity"] > first
        assert second["created_at"] <= first
    finally:
        m.close()


async def test_gets_inside_the_touch_interval_keep_last_activity(manager: SessionManager):
    """By default (1 % of SESSION_IDLE_TIMEOUT: 18 s) a get inside the
    interval writes nothing and answers the stored last_activity."""
    sid = await manager.create_session("u")
    first = (await manager.get_session(sid))["last_activity"]
    await asyncio.sleep(0.02)
    assert (await manager.get_session(sid))["last_activity"] == first


async def test_update_of_a_dead_session_is_a_no_op(manager: SessionManager):
    sid = await manager.create_session("u")
    await manager.delete_session(sid)
    await manager.update_session(sid, {"role": "admin", "db_connection": FakePool()})
    await manager.update_session("invalid-session-id", {"x": 1})
    assert await manager.get_session(sid) is None
    assert sid not in manager._side


async def test_connect_keeps_the_live_pool_in_this_process_only(manager: SessionManager):
    """session.py connect: connection_config (with password) + db_connection."""
    sid = await manager.create_session("u")
    pool = FakePool()
    cfg = {"host": "db", "port": 5432, "database": "graphs", "user": "app",
           "password": "s3cret-Pa55", "sslmode": None}
    await manager.update_session(sid, {"connection_config": cfg, "db_connection": pool})
    s = await manager.get_session(sid)
    assert s["db_connection"] is pool
    assert s["connection_config"] == cfg
    stored = manager.store.get(sid).data  # what every replica sees
    assert "db_connection" not in stored
    assert stored["connection_config"]["host"] == "db"
    # disconnect: the route deletes the session; the side table forgets it
    await manager.delete_session(sid)
    assert sid not in manager._side


async def test_password_is_never_stored_in_clear_text(backend: str, tmp_path: Path):
    """The password is marked {"$secret": ...}; the C store seals it before the
    backend sees it (json_file journal, PostgreSQL rows) and opens it on read."""
    m = SessionManager(settings_for(backend, tmp_path))
    try:
        secret = "Pa55-word-nobody-may-read-%d" % time.time_ns()
        sid = await m.create_session("u", {"username": "u", "password": secret})
        other = await m.create_session("u2")
        await m.update_session(other, {"connection_config": {"user": "x", "password": secret}})
        for s in (sid, other):
            assert (await m.get_session(s))["connection_config"]["password"] == secret
            assert m.store.get(s).data["connection_config"]["password"] == {"$secret": secret}
        if backend == "json_file":
            on_disk = (tmp_path / "sessions.journal").read_bytes()
            assert secret.encode() not in on_disk and b"$sealed" in on_disk
        if backend == "postgresql":
            from conftest import pg_connect_kwargs
            import asyncpg

            conn = await asyncpg.connect(**pg_connect_kwargs())
            try:
                rows = [r[0] for r in await conn.fetch("SELECT data::text FROM kotte_sessions")]
            finally:
                await conn.close()
            assert len(rows) == 2 and all(secret not in r and "$sealed" in r for r in rows)
    finally:
        m._sessions.clear()
        m.close()


async def test_csrf_token_and_session_id_are_never_stored_in_clear(backend: str, tmp_path: Path):
    """Kotte reads session["csrf_token"] as a string; the store holds it sealed,
    and the session id (the cookie's secret) only as a keyed hash."""
    m = SessionManager(settings_for(backend, tmp_path))
    try:
        sid = await m.create_session("u")
        csrf = (await m.get_session(sid))["csrf_token"]
        assert isinstance(csrf, str) and len(csrf) >= 32
        assert m.store.get(sid).data["csrf_token"] == {"$secret": csrf}
        fresh = "rotated-" + csrf
        await m.update_session(sid, {"csrf_token": fresh})  # as a rotation would
        assert (await m.get_session(sid))["csrf_token"] == fresh
        if backend == "json_file":
            on_disk = (tmp_path / "sessions.journal").read_bytes()
            for value in (csrf, fresh, sid):
                assert value.encode() not in on_disk
        if backend == "postgresql":
            from conftest import pg_connect_kwargs
            import asyncpg

            conn = await asyncpg.connect(**pg_connect_kwargs())
            try:
                rows = [r[0] for r in await conn.fetch(
                    "SELECT session_id || data::text FROM kotte_sessions")]
            finally:
                await conn.close()
            assert rows and all(v not in r for r in rows for v in (csrf, fresh, sid))
    finally:
        m._sessions.clear()
        m.close()


@pytest.mark.parametrize("backend", ["json_file", "postgresql"])
async def test_key_rotation_and_a_foreign_key(backend: str, tmp_path: Path, monkeypatch):
    if backend == "postgresql":
        from conftest import require_pg

        require_pg()
    old_key = TEST_KEY
    new_key = "ffeeddccbbaa99887766554433221100" * 2
    # the session backend's own secret (ids at rest) stays; only the key ring rotates
    a = SessionManager(settings_for(backend, tmp_path,
                                    session_secret_key="pg-row-key-kept-the-same"))
    sid = await a.create_session("u", {"username": "u", "password": "pw-1"})
    a.close()
    # a replica with another key only: the session cannot be read there
    b = SessionManager(settings_for(backend, tmp_path, master_encryption_key=new_key,
                                    session_secret_key="pg-row-key-kept-the-same"))
    c = None
    try:
        if backend == "json_file":
            assert await b.get_session(sid) is None
        # after rotation (old key listed as previous) it opens again
        monkeypatch.setenv("MASTER_ENCRYPTION_KEYS_PREVIOUS", old_key)
        c = SessionManager(settings_for(backend, tmp_path, master_encryption_key=new_key,
                                        session_secret_key="pg-row-key-kept-the-same"))
        if backend == "json_file":
            assert (await c.get_session(sid))["connection_config"]["password"] == "pw-1"
    finally:
        b.close()
        if c is not None:
            c.close()


async def test_serialisable_value_replaces_an_earlier_local_one(manager: SessionManager):
    sid = await manager.create_session("u")
    await manager.update_session(sid, {"extra": FakePool()})
    assert isinstance((await manager.get_session(sid))["extra"], FakePool)
    await manager.update_session(sid, {"extra": "plain"})
    assert (await manager.get_session(sid))["extra"] == "plain"


async def test_store_managed_keys_cannot_be_overwritten(manager: SessionManager):
    sid = await manager.create_session("u")
    before = await manager.get_session(sid)
    await manager.update_session(sid, {"user_id": "mallory", "created_at": "yesterday"})
    after = await manager.get_session(sid)
    assert after["user_id"] == "u" and after["created_at"] == before["created_at"]


async def test_idle_timeout_and_max_age(backend: str, tmp_path: Path):
    m = SessionManager(settings_for(backend, tmp_path, session_idle_timeout=1, session_max_age=2))
    try:
        idle = await m.create_session("u")
        busy = await m.create_session("u")
        for _ in range(3):
            await asyncio.sleep(0.5)
            assert await m.get_session(busy) is not None
        assert await m.get_session(idle) is None
        await asyncio.sleep(0.8)
        assert await m.get_session(busy) is None  # 2.3 s > max age, despite activity
    finally:
        m.close()


# ---- what Kotte's test fixtures do with `_sessions` -------------------------

async def test_sessions_view_as_kottes_fixtures_use_it(manager: SessionManager):
    assert list(manager._sessions.keys()) == []
    sid = await manager.create_session("admin", {"username": "admin"})
    # integration/conftest.py: the first key is the logged-in session
    assert next(iter(manager._sessions.keys()), None) == sid
    pool = FakePool()
    await manager.update_session(sid, {"db_connection": pool})
    values = list(manager._sessions.values())
    assert len(values) == 1 and values[0]["db_connection"] is pool
    assert values[0]["user_id"] == "admin"
    assert sid in manager._sessions and len(manager._sessions) == 1
    other = await manager.create_session("u2")
    await manager.delete_session(other)
    assert list(manager._sessions) == [sid]
    # conftest.py cleanup_sessions: clear() after every test
    manager._sessions.clear()
    assert await manager.get_session(sid) is None
    assert len(manager._sessions) == 0 and manager._side == {}


def test_sessions_view_is_usable_without_a_running_loop(backend: str, tmp_path: Path):
    m = SessionManager(settings_for(backend, tmp_path))
    try:
        sid = asyncio.run(m.create_session("u"))
        assert list(m._sessions.keys()) == [sid]
        m._sessions.clear()
        assert asyncio.run(m.get_session(sid)) is None
    finally:
        m.close()


# ---- settings ----------------------------------------------------------------

def test_defaults_match_kotte_today(tmp_path: Path):
    s = KotteSettings.from_env({}, env_file=None)
    assert s.session_storage_type == "memory"
    assert s.credential_storage_type == "json_file"
    assert (s.session_idle_timeout, s.session_max_age) == (1800, 3600)
    assert s.credential_storage_path == "./data/connections.json"


def test_settings_from_environment_and_env_file(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("# Kotte's .env\nSESSION_STORAGE_TYPE=json_file\n"
                        "session_storage_path='/tmp/x.journal'\nSESSION_MAX_AGE=99\n"
                        "export DB_HOST=dbhost\nMASTER_ENCRYPTION_KEY=\"from-file\"\n")
    s = KotteSettings.from_env({"SESSION_MAX_AGE": "120", "db_port": "6543"}, env_file=env_file)
    assert s.session_storage_type == "json_file" and s.session_storage_path == "/tmp/x.journal"
    assert s.session_max_age == 120  # the environment wins over .env, as in pydantic-settings
    assert (s.db_host, s.db_port) == ("dbhost", 6543)
    assert s.master_encryption_key == "from-file"
    assert "from-file" not in repr(s)


def test_kotte_settings_object_fills_in_what_the_environment_lacks():
    class KotteConfig:
        session_idle_timeout = 60
        credential_storage_path = "/var/lib/kotte/connections.json"
        redis_enabled = False

    s = KotteSettings.from_env({"SESSION_STORAGE_TYPE": "memory"}, env_file=None,
                               kotte_settings=KotteConfig())
    assert s.session_idle_timeout == 60
    assert s.credential_storage_path == "/var/lib/kotte/connections.json"


@pytest.mark.parametrize("bad", [{"SESSION_STORAGE_TYPE": "redis"},
                                 {"CREDENTIAL_STORAGE_TYPE": "sqlite"},
                                 {"SESSION_IDLE_TIMEOUT": "soon"},
                                 {"SESSION_MAX_AGE": "0"}])
def test_invalid_settings_are_refused_clearly(bad):
    with pytest.raises(ValueError) as ei:
        KotteSettings.from_env(bad, env_file=None)
    assert list(bad)[0] in str(ei.value)


async def test_production_without_a_key_refuses_to_start(tmp_path: Path):
    m = SessionManager(settings_for("memory", tmp_path, master_encryption_key="",
                                    environment="production"))
    with pytest.raises(ValueError, match="MASTER_ENCRYPTION_KEY"):
        await m.create_session("u")


async def test_development_key_file_is_created_once_and_reused(tmp_path: Path):
    settings = settings_for("json_file", tmp_path, master_encryption_key="",
                            environment="test")
    a = SessionManager(settings)
    sid = await a.create_session("u", {"password": "pw"})
    keyfile = tmp_path / ".master_encryption_key"
    assert keyfile.is_file() and (keyfile.stat().st_mode & 0o777) == 0o600
    a.close()
    b = SessionManager(settings)  # a restart: same key, the password still opens
    try:
        assert (await b.get_session(sid))["connection_config"]["password"] == "pw"
    finally:
        b.close()


def test_test_key_constant_is_long_enough():
    assert len(TEST_KEY) >= 32
